//! Reading one version out of Redis into sealed memory, checked against its metadata.
//!
//! Each compressed body is copied from Redis a chunk at a time straight into its sealed
//! file ([`SnapshotStore::copy_body`]), so a body exists once in this process, never as a
//! Redis reply and a copy besides. The identity document is decompressed from the zstd
//! body once, to check it against its recorded hash, and kept (sealed too) only when it is
//! no larger than the hold limit; otherwise responses decompress it as they send it.
//! The version's dcz deltas are read the same way, once its index is written; a delta
//! that does not match the index, or names another dictionary, is refused alone.

use std::io::{self, Write};
use std::sync::Arc;

use bytes::Bytes;

use shared::delta::{Delta, dcz_dictionary};
use shared::sha256::Sha256;
use shared::snapshot::{Codec, DocumentDigest, SnapshotMeta};
use shared::store::{SnapshotStore, StoreError};

use crate::http::sealed::{BodyFiles, SealedWriter};
use crate::snapshot::prepared::{Snapshot, UnusableMeta};

/// Why a stored snapshot was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Reading Redis failed, or a compressed body does not match its metadata.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The zstd body does not decompress to the recorded document.
    #[error("zstd body of version {version} does not decompress to its document: {source}")]
    Document {
        /// Version refused.
        version: String,
        /// What went wrong.
        #[source]
        source: io::Error,
    },
    /// No memory could be had for a body.
    #[error("cannot hold the bodies of snapshot {version}: {source}")]
    Memory {
        /// Version not loaded.
        version: String,
        /// The system's refusal.
        #[source]
        source: io::Error,
    },
    /// Its metadata cannot be written into headers.
    #[error(transparent)]
    Meta(#[from] UnusableMeta),
}

impl LoadError {
    /// Whether the stored snapshot itself is bad (as opposed to Redis or memory failing):
    /// such a version is refused, counted, and not fetched again.
    pub fn is_corrupt(&self) -> bool {
        matches!(
            self,
            Self::Store(StoreError::Corrupt(_)) | Self::Document { .. } | Self::Meta(_)
        )
    }
}

/// Loads the version `meta` describes: both compressed bodies into sealed files in
/// `files`, the identity document checked and, when `meta.json_bytes <= hold_identity`,
/// held too. Its deltas come with [`load_deltas`].
///
/// # Errors
/// [`LoadError`]; nothing of the version is kept then.
pub async fn load(
    store: &SnapshotStore,
    meta: SnapshotMeta,
    files: &Arc<BodyFiles>,
    hold_identity: u64,
) -> Result<Snapshot, LoadError> {
    let zstd = fetch(store, &meta, Codec::Zstd, files).await?;
    let gzip = fetch(store, &meta, Codec::Gzip, files).await?;
    let version = meta.version.clone();
    let (files, source) = (files.clone(), zstd.clone());
    let checked = tokio::task::spawn_blocking(move || {
        let identity = inflate_checked(&meta, &source, hold_identity, &files);
        (meta, identity)
    })
    .await;
    let (meta, identity) = checked.map_err(|e| LoadError::Document {
        version,
        source: io::Error::other(e),
    })?;
    let (json_sha256, identity) = identity?;
    Ok(Snapshot::new(
        meta,
        json_sha256,
        zstd,
        gzip,
        identity,
        None,
    )?)
}

/// A delta ready to serve: its index entry, its dictionary's SHA-256, its body.
pub type HeldDelta = (Delta, Sha256, Bytes);

/// The deltas of a version that could be held, and those refused.
pub struct Deltas {
    /// Checked and held.
    pub held: Vec<HeldDelta>,
    /// Refused (missing, not matching the index, or another dictionary): the earlier
    /// version, and why.
    pub refused: Vec<(String, LoadError)>,
}

/// The deltas `version`'s index lists, each copied into a sealed file and checked;
/// `None` while refresh-service has not written the index.
///
/// # Errors
/// [`LoadError::Store`] when Redis fails or the index is unreadable.
pub async fn load_deltas(
    store: &SnapshotStore,
    version: &str,
    files: &Arc<BodyFiles>,
) -> Result<Option<Deltas>, LoadError> {
    let Some(index) = store.deltas(version).await? else {
        return Ok(None);
    };
    let mut deltas = Deltas {
        held: Vec::with_capacity(index.len()),
        refused: Vec::new(),
    };
    for delta in index {
        match load_delta(store, version, &delta, files).await {
            Ok((dictionary, body)) => deltas.held.push((delta, dictionary, body)),
            Err(LoadError::Store(StoreError::Redis(e))) => return Err(StoreError::Redis(e).into()),
            Err(e) => deltas.refused.push((delta.version, e)),
        }
    }
    Ok(Some(deltas))
}

/// One delta of `version`, copied and checked: its body, and the dictionary it names.
async fn load_delta(
    store: &SnapshotStore,
    version: &str,
    delta: &Delta,
    files: &Arc<BodyFiles>,
) -> Result<(Sha256, Bytes), LoadError> {
    let memory = |source| LoadError::Memory {
        version: version.to_owned(),
        source,
    };
    let mut file = SealedWriter::new().map_err(memory)?;
    store.copy_delta(version, delta, &mut file).await?;
    let body = file.seal(files).map_err(memory)?;
    match dcz_dictionary(&body) {
        Some(named) if named == delta.json_sha256 => Ok((named, body)),
        _ => Err(LoadError::Document {
            version: version.to_owned(),
            source: io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "the dcz body from {} does not name its dictionary",
                    delta.version
                ),
            ),
        }),
    }
}

/// One compressed body, copied from Redis into a sealed file.
async fn fetch(
    store: &SnapshotStore,
    meta: &SnapshotMeta,
    codec: Codec,
    files: &Arc<BodyFiles>,
) -> Result<Bytes, LoadError> {
    let memory = |source| LoadError::Memory {
        version: meta.version.clone(),
        source,
    };
    let mut file = SealedWriter::new().map_err(memory)?;
    store.copy_body(meta, codec, &mut file).await?;
    file.seal(files).map_err(memory)
}

/// Decompresses `zstd`, checks the document against `meta`, and returns its SHA-256
/// and, when it is no larger than `hold` bytes, the document sealed.
fn inflate_checked(
    meta: &SnapshotMeta,
    zstd: &[u8],
    hold: u64,
    files: &Arc<BodyFiles>,
) -> Result<(Sha256, Option<Bytes>), LoadError> {
    let memory = |source| LoadError::Memory {
        version: meta.version.clone(),
        source,
    };
    let kept = if meta.json_bytes <= hold {
        Some(SealedWriter::new().map_err(memory)?)
    } else {
        None
    };
    let mut out = Checked {
        digest: DocumentDigest::default(),
        expected: meta.json_bytes,
        written: 0,
        kept,
    };
    let inflated = zstd::stream::read::Decoder::with_buffer(zstd)
        .and_then(|mut decoder| io::copy(&mut decoder, &mut out));
    if let Err(source) = inflated {
        return Err(LoadError::Document {
            version: meta.version.clone(),
            source,
        });
    }
    let hashes = out.digest.finish();
    meta.verify_document_hashes(&hashes)
        .map_err(StoreError::from)?;
    let kept = out
        .kept
        .map(|file| file.seal(files))
        .transpose()
        .map_err(memory)?;
    Ok((hashes.sha256, kept))
}

/// Hashes what passes through and keeps it when asked to.
struct Checked {
    digest: DocumentDigest,
    expected: u64,
    written: u64,
    kept: Option<SealedWriter>,
}

impl Write for Checked {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.written + buf.len() as u64 > self.expected {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "longer than the recorded document",
            ));
        }
        let n = match &mut self.kept {
            Some(file) => file.write(buf)?,
            None => buf.len(),
        };
        self.digest.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

//! Delta downloads (RFC 9842 `dcz`), the refresher's side: once a version is current,
//! a delta to it from each earlier retained version is built here and stored with it,
//! its index last (layout and framing in [`shared::delta`]).
//!
//! This runs after the switch and `snapshot.updated`, never before them: the daemon keeps
//! a task of its own that [`build_missing`] runs in whenever a refresh ends, and `once`
//! runs it before it exits. A version whose index exists is left alone, so a daemon
//! restart or a failed build is made up for by the next call.

use std::io::{self, Write};
use std::time::Instant;

use bytes::Bytes;
use thiserror::Error;
use zstd::stream::raw::CParameter;

use shared::delta::{Delta, MAX_DICTIONARY_BYTES, dcz_header};
use shared::sha256::Sha256;
use shared::snapshot::{Codec, SnapshotMeta, hash_hex};
use shared::store::{RETAINED_VERSIONS, StoreError};

use crate::context::RefreshContext;

/// How a delta is compressed, chosen by measurement (`docs/delta-findings.md`; the table
/// is in the README, "Delta downloads for app clients").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeltaSettings {
    /// zstd level.
    pub level: i32,
    /// Long-distance matching.
    pub long_distance: bool,
}

/// Largest dictionary compressed with [`SMALL_DOCUMENTS`]: the 7,000-offer documents
/// (2.6 MB) measured, with room to grow; past it the larger setting was measured.
pub const SMALL_DICTIONARY_BYTES: u64 = 8 << 20;
/// Level 19 with long-distance matching on a 2.6 MB pair: the `zstd --patch-from
/// --ultra -22` limit to within 0.5 % (12,805 against 12,863 bytes), 0.65 s of CPU.
pub const SMALL_DOCUMENTS: DeltaSettings = DeltaSettings {
    level: 19,
    long_distance: true,
};
/// Level 12 without long-distance matching on a 37 MB pair (100,000 offers): the smallest
/// and fastest measured there (0.27 s; level 19 took 20–33 s per delta).
pub const LARGE_DOCUMENTS: DeltaSettings = DeltaSettings {
    level: 12,
    long_distance: false,
};

impl DeltaSettings {
    /// The setting for a delta against a dictionary of `dictionary_len` bytes.
    pub fn for_dictionary(dictionary_len: u64) -> Self {
        if dictionary_len <= SMALL_DICTIONARY_BYTES {
            SMALL_DOCUMENTS
        } else {
            LARGE_DOCUMENTS
        }
    }
}

/// Smallest and largest window logs a client accepts (RFC 9842 §5: at least 8 MiB, at
/// most 128 MiB; Chromium clamps to 23..=27).
const WINDOW_LOG: std::ops::RangeInclusive<u32> = 23..=27;

/// A delta that could not be built.
#[derive(Debug, Error)]
pub enum DeltaError {
    /// Redis failed, or a stored body does not match its metadata.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored zstd body does not decompress.
    #[error("zstd body of version {version} does not decompress: {source}")]
    Decompress {
        /// Its version.
        version: String,
        /// What went wrong.
        #[source]
        source: io::Error,
    },
    /// Compressing failed.
    #[error("cannot compress a delta: {0}")]
    Compress(#[source] io::Error),
    /// The compression thread panicked.
    #[error("delta compression task failed: {0}")]
    Task(String),
}

/// What one [`build_missing`] call stored.
#[derive(Debug)]
pub struct Built {
    /// The version the deltas lead to.
    pub version: String,
    /// Its deltas, newest base first.
    pub deltas: Vec<Delta>,
}

/// Whether a delta of a `document_len`-byte document against a `dictionary_len`-byte
/// dictionary fits RFC 9842: the frame is a single segment, whose window is the
/// document's size, and a client may refuse a window over 8 MiB or 1.25 × the
/// dictionary (at most 128 MiB); neither may exceed 100 MiB.
pub fn allowed(dictionary_len: u64, document_len: u64) -> bool {
    let window = (dictionary_len + dictionary_len / 4).clamp(1 << 23, 1 << 27);
    dictionary_len <= MAX_DICTIONARY_BYTES
        && document_len <= MAX_DICTIONARY_BYTES
        && document_len <= window
}

/// The window log the compressor works in for a `document_len`-byte document: the
/// smallest power of two that holds the whole document (within what Chromium accepts),
/// so the frame is a single segment and every byte of the dictionary stays reachable.
pub fn window_log(document_len: u64) -> u32 {
    let log = 64 - document_len.saturating_sub(1).leading_zeros();
    log.clamp(*WINDOW_LOG.start(), *WINDOW_LOG.end())
}

/// The dcz body that turns `dictionary` into `document`: the RFC 9842 header naming the
/// dictionary's SHA-256, then one single-segment zstd frame (its window is the
/// document's size: the size is pledged and fits [`window_log`]) made with the
/// dictionary as a raw-content prefix.
///
/// # Errors
/// When zstd refuses a parameter or runs out of memory.
pub fn compress(
    dictionary: &[u8],
    document: &[u8],
    settings: DeltaSettings,
) -> io::Result<Vec<u8>> {
    let mut body = Vec::with_capacity(document.len() / 16 + 64);
    body.extend_from_slice(&dcz_header(&Sha256::of(dictionary)));
    let mut encoder =
        zstd::stream::write::Encoder::with_ref_prefix(&mut body, settings.level, dictionary)?;
    encoder.set_parameter(CParameter::WindowLog(window_log(document.len() as u64)))?;
    encoder.set_parameter(CParameter::EnableLongDistanceMatching(
        settings.long_distance,
    ))?;
    encoder.include_checksum(true)?;
    encoder.set_pledged_src_size(Some(document.len() as u64))?;
    encoder.write_all(document)?;
    encoder.finish()?;
    Ok(body)
}

/// Builds and stores the deltas of the current version, unless its index is already
/// written. No delta is made that RFC 9842 would not let a client take ([`allowed`]: a
/// document over 100 MiB, or much larger than its dictionary); a version with none gets
/// an empty index.
///
/// # Errors
/// [`DeltaError`]; nothing is listed then, and the next call tries again.
pub async fn build_missing(ctx: &RefreshContext) -> Result<Option<Built>, DeltaError> {
    let Some(current) = ctx.store.current_meta().await? else {
        return Ok(None);
    };
    if ctx.store.deltas(&current.version).await?.is_some() {
        return Ok(None);
    }
    let bases: Vec<SnapshotMeta> = ctx
        .store
        .versions()
        .await?
        .into_iter()
        .filter(|m| m.seq < current.seq)
        .take(RETAINED_VERSIONS - 1)
        .collect();
    let mut deltas = Vec::with_capacity(bases.len());
    let usable: Vec<(usize, &SnapshotMeta)> = bases
        .iter()
        .enumerate()
        .filter(|(_, base)| allowed(base.json_bytes, current.json_bytes))
        .collect();
    if !usable.is_empty() {
        let document = document(ctx, &current).await?;
        for (back, base) in usable {
            let started = Instant::now();
            let dictionary = document_of(ctx, base).await?;
            let (document, json_sha256) = (document.clone(), Sha256::of(&dictionary));
            let settings = DeltaSettings::for_dictionary(base.json_bytes);
            let body =
                tokio::task::spawn_blocking(move || compress(&dictionary, &document, settings))
                    .await
                    .map_err(|e| DeltaError::Task(e.to_string()))?
                    .map_err(DeltaError::Compress)?;
            let took = started.elapsed();
            ctx.metrics.delta_built(back + 1, body.len() as u64, took);
            tracing::info!(snapshot.version = %current.version, delta.base = %base.version, delta.bytes = body.len(), delta.build_ms = took.as_millis() as u64, "delta built");
            let delta = Delta {
                version: base.version.clone(),
                json_sha256,
                dcz_bytes: body.len() as u64,
                dcz_hash: hash_hex(&body),
            };
            deltas.push((delta, Bytes::from(body)));
        }
    }
    if !ctx.store.publish_deltas(&current.version, &deltas).await? {
        tracing::info!(snapshot.version = %current.version, "version gone before its deltas were stored");
        return Ok(None);
    }
    Ok(Some(Built {
        version: current.version,
        deltas: deltas.into_iter().map(|(delta, _)| delta).collect(),
    }))
}

/// [`build_missing`], its failure logged and counted (deltas never fail a refresh).
pub async fn build_logged(ctx: &RefreshContext) {
    match build_missing(ctx).await {
        Ok(Some(built)) => {
            tracing::info!(snapshot.version = %built.version, deltas = built.deltas.len(), "deltas ready")
        }
        Ok(None) => {}
        Err(e) => {
            ctx.metrics.delta_failed();
            tracing::warn!(error = %e, "deltas not built; the whole encodings serve meanwhile");
        }
    }
}

/// The identity document of `meta`'s version, decompressed from its stored zstd body.
async fn document(ctx: &RefreshContext, meta: &SnapshotMeta) -> Result<Bytes, DeltaError> {
    document_of(ctx, meta).await.map(Bytes::from)
}

async fn document_of(ctx: &RefreshContext, meta: &SnapshotMeta) -> Result<Vec<u8>, DeltaError> {
    let mut zstd = Vec::with_capacity(meta.zstd_bytes as usize);
    ctx.store.copy_body(meta, Codec::Zstd, &mut zstd).await?;
    let document =
        zstd::stream::decode_all(&zstd[..]).map_err(|source| DeltaError::Decompress {
            version: meta.version.clone(),
            source,
        })?;
    meta.verify_document(&document).map_err(StoreError::from)?;
    Ok(document)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_holds_the_document_within_what_rfc_9842_and_chromium_allow() {
        assert_eq!(window_log(0), 23);
        assert_eq!(window_log(2_600_000), 23);
        assert_eq!(window_log(8 << 20), 23);
        assert_eq!(window_log((8 << 20) + 1), 24);
        assert_eq!(window_log(37_000_000), 26);
        assert_eq!(window_log(100 << 20), 27);
        assert!(allowed(2_600_000, 2_700_000));
        assert!(allowed(1_000, 8 << 20), "8 MiB is always allowed");
        assert!(!allowed(1_000, (8 << 20) + 1));
        assert!(allowed(40 << 20, 50 << 20));
        assert!(!allowed(40 << 20, 51 << 20), "over 1.25 × the dictionary");
        assert!(!allowed(101 << 20, 101 << 20), "over 100 MiB");
        assert_eq!(DeltaSettings::for_dictionary(2_600_000), SMALL_DOCUMENTS);
        assert_eq!(DeltaSettings::for_dictionary(37_000_000), LARGE_DOCUMENTS);
    }

    #[test]
    fn a_delta_frame_is_one_segment_whose_window_is_the_document() {
        let dictionary: Vec<u8> = (0..300_000u32)
            .flat_map(|i| (i / 3).to_le_bytes())
            .collect();
        let body = compress(&dictionary, &dictionary[..1_000_000], SMALL_DOCUMENTS).unwrap();
        // Frame header descriptor: bit 5 is Single_Segment_flag; then the content size.
        let frame = &body[40..];
        assert_eq!(frame[..4], [0x28, 0xB5, 0x2F, 0xFD]);
        assert_ne!(frame[4] & 0x20, 0, "single segment");
        assert_eq!(
            zstd::zstd_safe::get_frame_content_size(frame).ok(),
            Some(Some(1_000_000))
        );
    }

    #[test]
    fn a_delta_decodes_to_the_document_with_its_dictionary() {
        let dictionary: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let mut document = dictionary.clone();
        document[1000..1010].copy_from_slice(b"0123456789");
        let body = compress(&dictionary, &document, LARGE_DOCUMENTS).unwrap();
        assert!(body.len() < 2_000, "{} bytes", body.len());
        assert_eq!(
            shared::delta::dcz_dictionary(&body),
            Some(Sha256::of(&dictionary))
        );
        let mut decoder =
            zstd::stream::read::Decoder::with_ref_prefix(&body[40..], &dictionary[..]).unwrap();
        let mut decoded = Vec::new();
        io::Read::read_to_end(&mut decoder, &mut decoded).unwrap();
        assert_eq!(decoded, document);
    }
}

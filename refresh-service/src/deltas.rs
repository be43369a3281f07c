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
use sha2::{Digest, Sha256};
use thiserror::Error;
use zstd::stream::raw::CParameter;

use shared::delta::{Delta, MAX_DICTIONARY_BYTES, dcz_header};
use shared::snapshot::{Codec, SnapshotMeta, hash_hex, sha256_hex};
use shared::store::{RETAINED_VERSIONS, StoreError};

use crate::context::RefreshContext;

/// zstd level of the deltas: see the README, "Delta downloads", for the measurements
/// behind it (size and time against the other levels, window logs and long-distance
/// matching on a pair of snapshots of the churn model).
pub const DELTA_LEVEL: i32 = 19;

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

/// The window log of a delta made against a dictionary of `dictionary_len` bytes: the
/// largest window RFC 9842 lets a client require (8 MiB, or 1.25 × the dictionary), within
/// what Chromium accepts.
pub fn window_log(dictionary_len: u64) -> u32 {
    let allowed = (dictionary_len + dictionary_len / 4).max(1 << 23);
    (63 - allowed.leading_zeros()).clamp(*WINDOW_LOG.start(), *WINDOW_LOG.end())
}

/// The dcz body that turns `dictionary` into `document`: the RFC 9842 header naming the
/// dictionary's SHA-256, then a zstd frame made with the dictionary as a raw-content
/// prefix, long-distance matching on.
///
/// # Errors
/// When zstd refuses a parameter or runs out of memory.
pub fn compress(dictionary: &[u8], document: &[u8], level: i32) -> io::Result<Vec<u8>> {
    let sha: [u8; 32] = Sha256::digest(dictionary).into();
    let mut body = Vec::with_capacity(document.len() / 16 + 64);
    body.extend_from_slice(&dcz_header(&sha));
    let mut encoder = zstd::stream::write::Encoder::with_ref_prefix(&mut body, level, dictionary)?;
    encoder.set_parameter(CParameter::WindowLog(window_log(dictionary.len() as u64)))?;
    encoder.set_parameter(CParameter::EnableLongDistanceMatching(true))?;
    encoder.set_pledged_src_size(Some(document.len() as u64))?;
    encoder.write_all(document)?;
    encoder.finish()?;
    Ok(body)
}

/// Builds and stores the deltas of the current version, unless its index is already
/// written. A document over 100 MiB (RFC 9842's dictionary limit, as Chromium applies it)
/// gets an empty index: no delta is made to or from it.
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
    if current.json_bytes <= MAX_DICTIONARY_BYTES && !bases.is_empty() {
        let document = document(ctx, &current).await?;
        for (back, base) in bases.iter().enumerate() {
            if base.json_bytes > MAX_DICTIONARY_BYTES {
                continue;
            }
            let started = Instant::now();
            let dictionary = document_of(ctx, base).await?;
            let (document, json_sha256) = (document.clone(), sha256_hex(&dictionary));
            let body =
                tokio::task::spawn_blocking(move || compress(&dictionary, &document, DELTA_LEVEL))
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
    fn the_window_covers_what_rfc_9842_allows_and_chromium_accepts() {
        assert_eq!(window_log(0), 23);
        assert_eq!(window_log(2_600_000), 23);
        assert_eq!(window_log(7 << 20), 23);
        assert_eq!(window_log(10 << 20), 23);
        assert_eq!(window_log(14 << 20), 24);
        assert_eq!(window_log(100 << 20), 26);
        assert_eq!(window_log(u64::MAX / 2), 27);
        for len in [1u64 << 20, 9 << 20, 30 << 20, 100 << 20] {
            let window = 1u64 << window_log(len);
            assert!(window <= (len + len / 4).max(1 << 23), "{len}");
        }
    }

    #[test]
    fn a_delta_decodes_to_the_document_with_its_dictionary() {
        let dictionary: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let mut document = dictionary.clone();
        document[1000..1010].copy_from_slice(b"0123456789");
        let body = compress(&dictionary, &document, 3).unwrap();
        assert!(body.len() < 2_000, "{} bytes", body.len());
        assert_eq!(
            shared::delta::dcz_dictionary(&body).map(hex::encode),
            Some(sha256_hex(&dictionary))
        );
        let mut decoder =
            zstd::stream::read::Decoder::with_ref_prefix(&body[40..], &dictionary[..]).unwrap();
        let mut decoded = Vec::new();
        io::Read::read_to_end(&mut decoder, &mut decoded).unwrap();
        assert_eq!(decoded, document);
    }
}

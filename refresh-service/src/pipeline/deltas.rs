//! Delta downloads (RFC 9842 `dcz`), the refresher's side: once a version is current,
//! a delta to it from each earlier retained version is built here and stored with it,
//! its index last (layout, framing and how a delta is compressed in [`shared::delta`],
//! which the API's tests build their deltas with too).
//!
//! This runs after the switch and `snapshot.updated`, never before them: the daemon keeps
//! a task of its own that [`build_missing`] runs in whenever a refresh ends, and `once`
//! runs it before it exits. A version whose index exists is left alone, so a daemon
//! restart or a failed build is made up for by the next call.

use std::io;
use std::time::Instant;

use bytes::Bytes;
use thiserror::Error;

use shared::delta::{Delta, allowed, compress};
use shared::sha256::Sha256;
use shared::snapshot::{Codec, SnapshotMeta, hash_hex};
use shared::store::{RETAINED_VERSIONS, StoreError};

use crate::pipeline::context::RefreshContext;

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
    Task(#[source] tokio::task::JoinError),
}

/// What one [`build_missing`] call stored.
#[derive(Debug)]
pub struct Built {
    /// The version the deltas lead to.
    pub version: String,
    /// Its deltas, newest base first.
    pub deltas: Vec<Delta>,
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
            let body = tokio::task::spawn_blocking(move || compress(&dictionary, &document))
                .await
                .map_err(DeltaError::Task)?
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

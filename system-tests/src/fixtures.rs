//! Plausible values for tests and development tools that need one without building it
//! the real way (the `*_metric_names` examples render a metric registry with one sample in
//! every family, and a snapshot sample needs metadata).

use chrono::DateTime;

use shared::snapshot::{DocumentHashes, SnapshotMeta, hash_hex};

/// Metadata of a one-offer snapshot whose bodies are `document`, `gzip` and `zstd`, with
/// the sizes and hashes they really have, generated at 2026-11-22T15:00:00.123Z (a time
/// with milliseconds, as refreshes write them).
pub fn sample_meta(document: &[u8], gzip: &[u8], zstd: &[u8]) -> SnapshotMeta {
    let generated_at = DateTime::from_timestamp_millis(1_795_359_600_123).unwrap_or_default();
    let hashes = DocumentHashes::of(document);
    SnapshotMeta::describing(1, 1, generated_at, hash_hex(document), hashes, gzip, zstd)
}

//! A reader of the raw Redis keys that checks, read after read, that the current snapshot
//! is never torn: the pointer, the version's own metadata and both bodies belong together.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use fred::prelude::{KeysInterface, SortedSetsInterface};
use tokio_util::sync::CancellationToken;

use shared::snapshot::{Codec, SnapshotMeta};
use shared::store::SnapshotStore;

use super::document::document_matches;
use super::{MetaBook, lock};
use crate::stack::Stack;
use crate::wait::eventually;

/// Pause between two reads: the checker reads as often as it can without starving the
/// processes under test.
const READ_PACE: Duration = Duration::from_millis(2);
/// Bound for the checker to read a version that is current.
const READ_WITHIN: Duration = Duration::from_secs(30);

/// What the raw reader saw.
#[derive(Default)]
pub struct CheckReport {
    /// How many times it read.
    pub reads: usize,
    /// Current versions seen, in order.
    pub versions: Vec<String>,
    /// What was wrong, read by read.
    pub problems: Vec<String>,
}

impl CheckReport {
    /// Every read found a whole snapshot, and there were reads.
    pub fn assert_never_torn(&self) {
        assert!(
            self.problems.is_empty(),
            "{} of {} reads of the current snapshot were wrong; first ones: {:#?}",
            self.problems.len(),
            self.reads,
            &self.problems[..self.problems.len().min(5)]
        );
        assert!(self.reads > 0, "the checker never read");
    }
}

/// Reads the current pointer, the version's own metadata and both bodies from Redis in a
/// loop, as a replica does, and checks they belong together.
pub struct Checker {
    stop: CancellationToken,
    report: Arc<Mutex<CheckReport>>,
    task: tokio::task::JoinHandle<()>,
}

impl Checker {
    /// Starts reading `stack`'s current snapshot, noting every version in `book`.
    pub fn start(stack: &Stack, book: &Arc<MetaBook>) -> Self {
        let stop = CancellationToken::new();
        let report: Arc<Mutex<CheckReport>> = Arc::default();
        let (store, book, until, seen) = (
            stack.store.clone(),
            book.clone(),
            stop.clone(),
            report.clone(),
        );
        let task = tokio::spawn(async move {
            let (mut last_seq, mut decoded) = (0, HashSet::new());
            while !until.is_cancelled() {
                let read = read_current(&store, &mut decoded).await;
                note(&seen, read, &mut last_seq, &book);
                tokio::time::sleep(READ_PACE).await;
            }
        });
        Self { stop, report, task }
    }

    /// Whether a read so far found something wrong with `version`.
    pub fn saw_problem(&self, version: &str) -> bool {
        lock(&self.report)
            .problems
            .iter()
            .any(|p| p.contains(version))
    }

    /// Waits until the checker has read `last` as current, then stops it.
    pub async fn finish(self, last: &str) -> CheckReport {
        let read_last = || lock(&self.report).versions.last().map(String::as_str) == Some(last);
        let what = format!("the checker to read {last} as current");
        eventually(READ_WITHIN, &what, || std::future::ready(read_last())).await;
        self.stop.cancel();
        self.task.await.expect("checker task");
        std::mem::take(&mut *lock(&self.report))
    }
}

/// Adds one read to the report.
fn note(
    report: &Mutex<CheckReport>,
    read: Result<SnapshotMeta, String>,
    last_seq: &mut u64,
    book: &MetaBook,
) {
    let mut report = lock(report);
    report.reads += 1;
    match read {
        Ok(meta) => {
            if meta.seq < *last_seq {
                report.problems.push(format!(
                    "current went back from seq {last_seq} to {}",
                    meta.version
                ));
            }
            *last_seq = meta.seq;
            if report.versions.last() != Some(&meta.version) {
                report.versions.push(meta.version.clone());
            }
            book.remember(&meta);
        }
        Err(problem) => report.problems.push(problem),
    }
}

/// One read of the current snapshot. The document of each version is decompressed and
/// checked once (`decoded`); every read checks the metadata pair, both bodies' sizes and
/// hashes, and the version's place in the retained list.
async fn read_current(
    store: &SnapshotStore,
    decoded: &mut HashSet<String>,
) -> Result<SnapshotMeta, String> {
    let (client, keys) = (store.client(), store.keys());
    let redis = |e: fred::error::Error| format!("redis: {e}");
    let current: Option<Bytes> = client.get(keys.current()).await.map_err(redis)?;
    let current = current.ok_or("no current snapshot")?;
    let meta: SnapshotMeta = serde_json::from_slice(&current)
        .map_err(|e| format!("current metadata unreadable: {e}"))?;
    let version = meta.version.as_str();
    let (own, gzip, zstd, listed): (Option<Bytes>, Option<Bytes>, Option<Bytes>, Option<f64>) =
        tokio::try_join!(
            client.get(keys.version_meta(version)),
            client.get(keys.version_body(version, Codec::Gzip)),
            client.get(keys.version_body(version, Codec::Zstd)),
            client.zscore(keys.versions(), version),
        )
        .map_err(redis)?;
    let (Some(own), Some(gzip), Some(zstd)) = (own, gzip, zstd) else {
        return Err(format!("current {version} lacks its metadata or a body"));
    };
    let own: SnapshotMeta = serde_json::from_slice(&own)
        .map_err(|e| format!("metadata of {version} unreadable: {e}"))?;
    if own != meta {
        return Err(format!("current and {version}'s own metadata differ"));
    }
    for (codec, body) in [(Codec::Gzip, &gzip), (Codec::Zstd, &zstd)] {
        meta.verify_body(codec, body).map_err(|e| e.to_string())?;
    }
    if listed != Some(meta.seq as f64) {
        return Err(format!("{version} is current but listed as {listed:?}"));
    }
    if !decoded.contains(version) {
        let document = zstd::bulk::decompress(&zstd, meta.json_bytes as usize + 1)
            .map_err(|e| format!("zstd body of {version} does not decompress: {e}"))?;
        meta.verify_document(&document).map_err(|e| e.to_string())?;
        document_matches(&document, version, Some(&meta.count.to_string()))?;
        decoded.insert(version.to_owned());
    }
    Ok(meta)
}

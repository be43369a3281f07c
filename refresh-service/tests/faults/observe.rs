//! Watching a deployment under fault: a steady GET load on every replica that checks each
//! body against its ETag and the version's stored metadata, a reader of the raw Redis
//! keys that checks the current snapshot is never torn, and the refresh log's proof that
//! refreshes never overlap.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, TimeDelta, Utc};
use fred::prelude::{KeysInterface, SortedSetsInterface};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use shared::snapshot::{Codec, SnapshotMeta, hash_hex};
use shared::store::SnapshotStore;

use crate::stack::{LogRow, REPLICAS, Stack};

/// Pause between two requests of one replica's load (about 50 requests a second each).
const LOAD_PACE: Duration = Duration::from_millis(20);

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Metadata of every version seen, read from its versioned key on first sight (versions
/// stay readable after they are replaced, so a body can be checked after the fact).
pub struct MetaBook {
    store: SnapshotStore,
    known: Mutex<HashMap<String, SnapshotMeta>>,
}

impl MetaBook {
    pub fn new(stack: &Stack) -> Arc<Self> {
        Arc::new(Self {
            store: stack.store.clone(),
            known: Mutex::default(),
        })
    }

    fn remember(&self, meta: &SnapshotMeta) {
        lock(&self.known)
            .entry(meta.version.clone())
            .or_insert_with(|| meta.clone());
    }

    async fn get(&self, version: &str) -> Option<SnapshotMeta> {
        if let Some(meta) = lock(&self.known).get(version) {
            return Some(meta.clone());
        }
        let read =
            tokio::time::timeout(Duration::from_secs(1), self.store.version_meta(version)).await;
        let meta = read.ok()?.ok()??;
        self.remember(&meta);
        Some(meta)
    }
}

/// One request of the load.
#[derive(Clone, Debug)]
pub struct Sample {
    pub replica: usize,
    pub sent: Instant,
    /// HTTP status; 0 when no response came.
    pub status: u16,
    /// Version named by the ETag of a 200.
    pub version: Option<String>,
    /// What was wrong with it, if anything.
    pub problem: Option<String>,
}

/// A body not yet checked against its version's metadata (Redis was unreachable).
struct Unchecked {
    sample: usize,
    version: String,
    codec: Codec,
    bytes: u64,
    hash: String,
}

#[derive(Default)]
struct Recorded {
    samples: Vec<Sample>,
    unchecked: Vec<Unchecked>,
}

/// A task per replica issuing authenticated GETs of the snapshot back to back,
/// alternating zstd and gzip.
pub struct Load {
    stop: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    recorded: Arc<Mutex<Recorded>>,
    book: Arc<MetaBook>,
}

impl Load {
    pub fn start(stack: &Stack, book: &Arc<MetaBook>) -> Self {
        let stop = CancellationToken::new();
        let recorded: Arc<Mutex<Recorded>> = Arc::default();
        // Long enough that a request to a frozen replica waits for it rather than failing.
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("http client");
        let tasks = (0..REPLICAS)
            .map(|replica| {
                let url = stack.url(replica, "/api/v4/ofertasws");
                let (token, client, stop) =
                    (stack.user_token.clone(), client.clone(), stop.clone());
                let (recorded, book) = (recorded.clone(), book.clone());
                tokio::spawn(async move {
                    let mut n = 0usize;
                    while !stop.is_cancelled() {
                        let codec = if n.is_multiple_of(2) {
                            Codec::Zstd
                        } else {
                            Codec::Gzip
                        };
                        n += 1;
                        let sent = Instant::now();
                        let request = client
                            .get(&url)
                            .bearer_auth(&token)
                            .header("accept-encoding", codec.name())
                            .send();
                        let (sample, unchecked) = match request.await {
                            Ok(response) => served(replica, sent, codec, response, &book).await,
                            Err(e) => (
                                Sample {
                                    replica,
                                    sent,
                                    status: 0,
                                    version: None,
                                    problem: Some(format!("no response: {e}")),
                                },
                                None,
                            ),
                        };
                        record(&recorded, sample, unchecked);
                        tokio::time::sleep(LOAD_PACE).await;
                    }
                })
            })
            .collect();
        Self {
            stop,
            tasks,
            recorded,
            book: book.clone(),
        }
    }

    /// Waits until every replica has answered at least `n` requests.
    pub async fn wait_for_requests(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while (0..REPLICAS).any(|r| {
            lock(&self.recorded)
                .samples
                .iter()
                .filter(|s| s.replica == r)
                .count()
                < n
        }) {
            assert!(Instant::now() < deadline, "the load is not flowing");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until every replica's latest response is `last`, stops the load (letting
    /// requests in flight finish) and checks the bodies that could not be checked while
    /// Redis was away.
    pub async fn finish(self, last: &str) -> LoadReport {
        let deadline = Instant::now() + Duration::from_secs(30);
        while (0..REPLICAS).any(|r| {
            lock(&self.recorded)
                .samples
                .iter()
                .rev()
                .find(|s| s.replica == r)
                .is_none_or(|s| s.version.as_deref() != Some(last))
        }) {
            assert!(Instant::now() < deadline, "the load never got {last}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.stop.cancel();
        for task in self.tasks {
            task.await.expect("load task");
        }
        let recorded = std::mem::take(&mut *lock(&self.recorded));
        let mut samples = recorded.samples;
        for body in recorded.unchecked {
            let problem = match self.book.get(&body.version).await {
                None => Some(format!(
                    "metadata of served version {} not found",
                    body.version
                )),
                Some(meta) => check_hash(&meta, body.codec, body.bytes, &body.hash).err(),
            };
            if problem.is_some() {
                samples[body.sample].problem = problem;
            }
        }
        LoadReport { samples }
    }
}

fn record(recorded: &Mutex<Recorded>, sample: Sample, unchecked: Option<Unchecked>) {
    let mut recorded = lock(recorded);
    if let Some(mut unchecked) = unchecked {
        unchecked.sample = recorded.samples.len();
        recorded.unchecked.push(unchecked);
    }
    recorded.samples.push(sample);
}

fn check_hash(meta: &SnapshotMeta, codec: Codec, bytes: u64, hash: &str) -> Result<(), String> {
    let (expected_bytes, expected_hash) = match codec {
        Codec::Gzip => (meta.gzip_bytes, &meta.gzip_hash),
        Codec::Zstd => (meta.zstd_bytes, &meta.zstd_hash),
        Codec::Identity => (meta.json_bytes, &meta.json_hash),
    };
    if (expected_bytes, expected_hash.as_str()) == (bytes, hash) {
        Ok(())
    } else {
        Err(format!(
            "{} body of {} ({bytes} bytes) does not match its metadata",
            codec.name(),
            meta.version
        ))
    }
}

fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Records a response; a 200 must be a body of the version its ETag names, in the
/// encoding asked for, whose hash is the one stored for that version.
async fn served(
    replica: usize,
    sent: Instant,
    codec: Codec,
    response: reqwest::Response,
    book: &MetaBook,
) -> (Sample, Option<Unchecked>) {
    let status = response.status().as_u16();
    let mut sample = Sample {
        replica,
        sent,
        status,
        version: None,
        problem: None,
    };
    if status != 200 {
        let body = response.text().await.unwrap_or_default();
        sample.problem = Some(format!("status {status}: {body}"));
        return (sample, None);
    }
    let (etag, encoding, count) = (
        header(&response, "etag"),
        header(&response, "content-encoding"),
        header(&response, "x-ofertas-count"),
    );
    let body = match response.bytes().await {
        Ok(body) => body,
        Err(e) => {
            sample.problem = Some(format!("body cut short: {e}"));
            return (sample, None);
        }
    };
    let version = match check_document(codec, etag, encoding, count, &body) {
        Ok(version) => version,
        Err(problem) => {
            sample.problem = Some(problem);
            return (sample, None);
        }
    };
    sample.version = Some(version.clone());
    let hash = hash_hex(&body);
    let bytes = body.len() as u64;
    match book.get(&version).await {
        Some(meta) => {
            sample.problem = check_hash(&meta, codec, bytes, &hash).err();
            (sample, None)
        }
        None => (
            sample,
            Some(Unchecked {
                sample: 0,
                version,
                codec,
                bytes,
                hash,
            }),
        ),
    }
}

/// Decodes the body and checks it is the document of the version its ETag names, with
/// as many offers as `X-Ofertas-Count` says. Returns the version.
fn check_document(
    codec: Codec,
    etag: Option<String>,
    encoding: Option<String>,
    count: Option<String>,
    body: &[u8],
) -> Result<String, String> {
    let etag = etag.ok_or("a 200 without ETag")?;
    let suffix = format!("-{}\"", codec.name());
    let version = etag
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix(&suffix))
        .ok_or_else(|| format!("ETag {etag} is not a {} ETag", codec.name()))?;
    if encoding.as_deref() != Some(codec.name()) {
        return Err(format!("asked for {}, got {encoding:?}", codec.name()));
    }
    let mut document = Vec::new();
    match codec {
        Codec::Zstd => zstd::stream::read::Decoder::new(body)
            .and_then(|mut d| d.read_to_end(&mut document))
            .map(drop),
        Codec::Gzip => flate2::read::GzDecoder::new(body)
            .read_to_end(&mut document)
            .map(drop),
        Codec::Identity => {
            document.extend_from_slice(body);
            Ok(())
        }
    }
    .map_err(|e| format!("{} body of {version} does not decode: {e}", codec.name()))?;
    document_matches(&document, version, count.as_deref())?;
    Ok(version.to_owned())
}

fn document_matches(document: &[u8], version: &str, count: Option<&str>) -> Result<(), String> {
    let doc: Value =
        serde_json::from_slice(document).map_err(|e| format!("document is not JSON: {e}"))?;
    if doc["version"] != version {
        return Err(format!(
            "document of version {} served as {version}",
            doc["version"]
        ));
    }
    let offers = doc["ofertas"].as_array().map_or(0, Vec::len) as u64;
    let counted = count.map(|c| c.parse::<u64>().ok());
    if doc["count"].as_u64() != Some(offers) || counted.is_some_and(|c| c != Some(offers)) {
        return Err(format!(
            "{version}: {offers} offers, count {}, X-Ofertas-Count {count:?}",
            doc["count"]
        ));
    }
    Ok(())
}

/// Every request the load made.
pub struct LoadReport {
    pub samples: Vec<Sample>,
}

impl LoadReport {
    /// Every request got a 200 with a body that matches its ETag and stored metadata.
    pub fn assert_all_served(&self) {
        let failures: Vec<&Sample> = self
            .samples
            .iter()
            .filter(|s| s.status != 200 || s.problem.is_some())
            .collect();
        assert!(
            failures.is_empty(),
            "{} of {} requests failed; first ones: {:#?}",
            failures.len(),
            self.samples.len(),
            &failures[..failures.len().min(5)]
        );
        for replica in 0..REPLICAS {
            assert!(
                self.samples.iter().any(|s| s.replica == replica),
                "replica {replica} got no load"
            );
        }
    }

    /// Requests sent to `replica` between `from` and `to`.
    pub fn sent_between(&self, replica: usize, from: Instant, to: Instant) -> usize {
        self.samples
            .iter()
            .filter(|s| s.replica == replica && s.sent >= from && s.sent < to)
            .count()
    }

    /// Versions `replica` served, in order, each once.
    pub fn versions(&self, replica: usize) -> Vec<String> {
        let mut order: Vec<String> = Vec::new();
        for version in self
            .samples
            .iter()
            .filter(|s| s.replica == replica)
            .filter_map(|s| s.version.as_ref())
        {
            if order.last() != Some(version) {
                order.push(version.clone());
            }
        }
        order
    }

    /// Every replica served versions of `expected` only, in that order (never going
    /// back), starting with the first and ending with the last; an intermediate one may
    /// have been current too briefly for the load to see it.
    pub fn assert_served_in_order(&self, expected: &[&str]) {
        for replica in 0..REPLICAS {
            let served = self.versions(replica);
            let mut allowed = expected.iter();
            let in_order = served.iter().all(|v| allowed.by_ref().any(|e| e == v));
            assert!(
                in_order
                    && served.first().map(String::as_str) == expected.first().copied()
                    && served.last().map(String::as_str) == expected.last().copied(),
                "replica {replica} served {served:?}; expected, in order, {expected:?}"
            );
        }
    }
}

impl LoadReport {
    /// Every replica served versions in the order they were made (increasing sequence
    /// numbers, never going back), ending with `last`.
    pub fn assert_served_in_sequence(&self, last: &str) {
        let seq = |v: &str| -> u64 {
            v.split_once('-')
                .and_then(|(seq, _)| seq.parse().ok())
                .unwrap_or_else(|| panic!("version {v} has no sequence number"))
        };
        for replica in 0..REPLICAS {
            let served = self.versions(replica);
            assert!(
                served.windows(2).all(|w| seq(&w[0]) < seq(&w[1]))
                    && served.last().map(String::as_str) == Some(last),
                "replica {replica} served {served:?}, ending with {last} expected"
            );
        }
    }
}

/// What the raw reader saw.
#[derive(Default)]
pub struct CheckReport {
    pub reads: usize,
    /// Current versions seen, in order.
    pub versions: Vec<String>,
    pub problems: Vec<String>,
}

impl CheckReport {
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
                tokio::time::sleep(Duration::from_millis(2)).await;
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
        let deadline = Instant::now() + Duration::from_secs(30);
        while lock(&self.report).versions.last().map(String::as_str) != Some(last) {
            assert!(Instant::now() < deadline, "the checker never read {last}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
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

/// Time span a log row says its refresh held the lock within: `executed_at` is when the
/// attempt started (before taking the lock) and `execution_time_ms` its whole duration
/// (until after the release), so the lock was held inside this span.
fn span(row: &LogRow) -> (DateTime<Utc>, DateTime<Utc>) {
    (
        row.executed_at,
        row.executed_at + TimeDelta::milliseconds(i64::from(row.execution_time_ms)),
    )
}

/// The refreshes that ran (success or unchanged; skipped and failed ones may not have
/// held the lock) never overlap in time.
pub fn assert_one_refresh_at_a_time(rows: &[LogRow]) {
    let mut ran: Vec<&LogRow> = rows
        .iter()
        .filter(|r| matches!(r.status.as_str(), "success" | "unchanged"))
        .collect();
    ran.sort_by_key(|r| r.executed_at);
    let closest = ran
        .windows(2)
        .map(|pair| span(pair[1]).0 - span(pair[0]).1)
        .min();
    println!(
        "{} refreshes ran; smallest gap between two: {closest:?}",
        ran.len()
    );
    for pair in ran.windows(2) {
        let ((_, first_end), (second_start, _)) = (span(pair[0]), span(pair[1]));
        assert!(
            first_end <= second_start,
            "two refreshes overlap: {:?} ran until {first_end}, {:?} started at {second_start}",
            pair[0],
            pair[1]
        );
    }
}

/// Parses a `Duration` as its `Debug` form prints it in the logs (`312.5ms`, `1.2s`).
pub fn parse_debug_duration(text: &str) -> Option<Duration> {
    [
        ("ns", 1e-9),
        ("µs", 1e-6),
        ("us", 1e-6),
        ("ms", 1e-3),
        ("s", 1.0),
    ]
    .into_iter()
    .find_map(|(unit, scale)| {
        let value: f64 = text.strip_suffix(unit)?.parse().ok()?;
        Some(Duration::from_secs_f64(value * scale))
    })
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn document(version: &str, offers: usize) -> Vec<u8> {
        let ofertas: Vec<Value> = (0..offers)
            .map(|id| serde_json::json!({"id": id}))
            .collect();
        serde_json::to_vec(
            &serde_json::json!({"version": version, "count": offers, "ofertas": ofertas}),
        )
        .unwrap()
    }

    fn check(etag: &str, body: &[u8], count: &str) -> Result<String, String> {
        check_document(
            Codec::Zstd,
            Some(etag.to_owned()),
            Some("zstd".to_owned()),
            Some(count.to_owned()),
            body,
        )
    }

    #[test]
    fn a_body_is_checked_against_the_version_and_count_its_headers_name() {
        let body = zstd::encode_all(&document("7-abc", 3)[..], 3).unwrap();
        assert_eq!(check("\"7-abc-zstd\"", &body, "3"), Ok("7-abc".to_owned()));
        assert!(
            check("\"8-def-zstd\"", &body, "3").is_err(),
            "another version"
        );
        assert!(
            check("\"7-abc-gzip\"", &body, "3").is_err(),
            "another encoding"
        );
        assert!(
            check("\"7-abc-zstd\"", &body, "4").is_err(),
            "another count"
        );
        assert!(
            check("\"7-abc-zstd\"", &body[..body.len() - 1], "3").is_err(),
            "cut"
        );
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gzip.write_all(&document("7-abc", 3)).unwrap();
        let gzip = gzip.finish().unwrap();
        let served = check_document(
            Codec::Gzip,
            Some("\"7-abc-gzip\"".to_owned()),
            Some("gzip".to_owned()),
            None,
            &gzip,
        );
        assert_eq!(served, Ok("7-abc".to_owned()));
    }

    fn row(start_ms: i64, ms: i32, status: &str) -> LogRow {
        LogRow {
            executed_at: DateTime::<Utc>::UNIX_EPOCH + TimeDelta::milliseconds(start_ms),
            trigger: "test".to_owned(),
            status: status.to_owned(),
            execution_time_ms: ms,
            request_id: None,
            error: None,
        }
    }

    #[test]
    fn refreshes_that_touch_end_to_start_do_not_overlap() {
        assert_one_refresh_at_a_time(&[row(0, 100, "success"), row(100, 50, "unchanged")]);
        // A skipped attempt never held the lock.
        assert_one_refresh_at_a_time(&[row(0, 100, "success"), row(10, 5, "skipped")]);
    }

    #[test]
    #[should_panic(expected = "two refreshes overlap")]
    fn overlapping_refreshes_are_caught() {
        assert_one_refresh_at_a_time(&[row(200, 10, "success"), row(0, 201, "unchanged")]);
    }

    #[test]
    fn retry_waits_are_read_as_logged() {
        assert_eq!(
            parse_debug_duration("312.5ms"),
            Some(Duration::from_micros(312_500))
        );
        assert_eq!(
            parse_debug_duration("1.5s"),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(parse_debug_duration("soon"), None);
    }
}

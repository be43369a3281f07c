//! A steady GET load on every API replica whose every body is checked against its ETag
//! and the version's stored metadata.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use shared::snapshot::{Codec, hash_hex};

use super::document::{check_document, check_hash};
use super::{LoadReport, MetaBook, lock};
use crate::stack::{REPLICAS, Stack};
use crate::wait::eventually;

/// Pause between two requests of one replica's load (about 50 requests a second each).
const LOAD_PACE: Duration = Duration::from_millis(20);
/// Bound for requests of the load to be answered: replicas answer in milliseconds, a
/// frozen one once it resumes.
const FLOWING: Duration = Duration::from_secs(30);

/// One request of the load.
#[derive(Clone, Debug)]
pub struct Sample {
    /// The replica it went to.
    pub replica: usize,
    /// When it was sent.
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
    /// Starts the load on every replica of `stack`, checking bodies against `book`.
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
        let flowing = || {
            let recorded = lock(&self.recorded);
            (0..REPLICAS).all(|r| recorded.samples.iter().filter(|s| s.replica == r).count() >= n)
        };
        let what = format!("{n} requests of the load answered by every replica");
        eventually(FLOWING, &what, || std::future::ready(flowing())).await;
    }

    /// Waits until every replica's latest response is `last`, stops the load (letting
    /// requests in flight finish) and checks the bodies that could not be checked while
    /// Redis was away.
    pub async fn finish(self, last: &str) -> LoadReport {
        let got_last = || {
            let recorded = lock(&self.recorded);
            (0..REPLICAS).all(|r| {
                let latest = recorded.samples.iter().rev().find(|s| s.replica == r);
                latest.is_some_and(|s| s.version.as_deref() == Some(last))
            })
        };
        let what = format!("every replica's latest response to be {last}");
        eventually(FLOWING, &what, || std::future::ready(got_last())).await;
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

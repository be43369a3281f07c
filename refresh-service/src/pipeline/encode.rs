//! Serialising the ranked document once and compressing it to gzip and zstd.
//!
//! The document is never materialised: [`DocumentWriter`] hands it, chunk by chunk, to
//! two encoder threads, gzip on one core and zstd (plus the BLAKE3 and SHA-256 of the
//! identity bytes) on the other.

use std::io::{self, Write};

use bytes::Bytes;
use flate2::{Compression, write::GzEncoder};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use shared::document::{DOCUMENT_END, SnapshotDocument};
use shared::snapshot::{DocumentDigest, DocumentHashes};

/// gzip level: 6 is zlib's default and the best size per millisecond here (README, "Compression").
pub const GZIP_LEVEL: u32 = 6;
/// zstd level: the smallest body that still compresses within gzip-6's time, so running
/// both side by side costs no more than gzip alone (README, "Compression").
pub const ZSTD_LEVEL: i32 = 7;
/// Size of the chunks handed to the encoders.
const CHUNK_BYTES: usize = 128 * 1024;
/// Chunks waiting per encoder before the writer waits for it.
const CHUNKS_IN_FLIGHT: usize = 8;

/// `score` is written with four decimals: they rank the offers as the model's six did
/// (the same order on the churn model) and leave out digits that changed with the clock
/// alone; README, "Ranking model", has the measurements.
const SCORE_SCALE: f64 = 1e4;

/// The offers in document order with their scores.
pub struct Ranking {
    /// Offer indexes (positions in the offers read) by score descending, then id ascending.
    pub order: Vec<u32>,
    /// Score of each offer, by offer index, rounded to four decimals.
    pub scores: Vec<f64>,
}

impl Ranking {
    /// Orders the offers `ids` by `raw_scores` (one per offer) descending, then id
    /// ascending.
    pub fn new(ids: &[i64], raw_scores: &[f32]) -> Self {
        let scores: Vec<f64> = raw_scores
            .iter()
            .map(|&s| {
                let s = if s.is_finite() { f64::from(s) } else { 0.0 };
                (s * SCORE_SCALE).round() / SCORE_SCALE
            })
            .collect();
        let mut order: Vec<u32> = (0..ids.len() as u32).collect();
        order.sort_unstable_by(|&a, &b| {
            let (a, b) = (a as usize, b as usize);
            scores[b].total_cmp(&scores[a]).then(ids[a].cmp(&ids[b]))
        });
        Self { order, scores }
    }
}

/// Both compressed bodies and what is known of the identity document.
pub struct Encoded {
    /// gzip body.
    pub gzip: Vec<u8>,
    /// zstd body.
    pub zstd: Vec<u8>,
    /// Size and hashes of the identity document.
    pub json: DocumentHashes,
}

/// Counts and hashes what passes through to `inner`.
struct Tee<W> {
    inner: W,
    digest: DocumentDigest,
}

impl<W: Write> Write for Tee<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.digest.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Feeds every chunk received to `out` until the sender is dropped.
fn drain(chunks: &mut mpsc::Receiver<Bytes>, out: &mut impl Write) -> io::Result<()> {
    while let Some(chunk) = chunks.blocking_recv() {
        out.write_all(&chunk)?;
    }
    Ok(())
}

fn gzip(mut chunks: mpsc::Receiver<Bytes>, capacity: usize) -> io::Result<Vec<u8>> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(capacity), Compression::new(GZIP_LEVEL));
    drain(&mut chunks, &mut encoder)?;
    encoder.finish()
}

fn zstd_and_hash(
    mut chunks: mpsc::Receiver<Bytes>,
    capacity: usize,
) -> io::Result<(Vec<u8>, DocumentHashes)> {
    let mut encoder = zstd::stream::Encoder::new(Vec::with_capacity(capacity), ZSTD_LEVEL)?;
    encoder.include_checksum(true)?;
    let mut tee = Tee {
        inner: encoder,
        digest: DocumentDigest::default(),
    };
    drain(&mut chunks, &mut tee)?;
    Ok((tee.inner.finish()?, tee.digest.finish()))
}

/// Writes the document once, in chunks, to two encoder threads: gzip on one core, zstd
/// (plus the hashes of the identity bytes) on the other. The document itself is never
/// materialised; at most `CHUNKS_IN_FLIGHT` chunks wait per encoder.
pub struct DocumentWriter {
    chunk: Vec<u8>,
    offers: usize,
    score: ryu::Buffer,
    to_gzip: mpsc::Sender<Bytes>,
    to_zstd: mpsc::Sender<Bytes>,
    gzip: JoinHandle<io::Result<Vec<u8>>>,
    zstd: JoinHandle<io::Result<(Vec<u8>, DocumentHashes)>>,
}

impl DocumentWriter {
    /// Starts both encoders and writes the document's header (`header`, whose offers are
    /// left out: they follow); `json_bytes` (the offers' JSON size) sizes the output
    /// buffers.
    pub fn start(header: &SnapshotDocument<'_>, json_bytes: usize) -> io::Result<Self> {
        // Compressed output is ~1/5 of the offer JSON; start near that to avoid regrowth.
        let capacity = json_bytes / 4 + 4096;
        let (to_gzip, gzip_chunks) = mpsc::channel(CHUNKS_IN_FLIGHT);
        let (to_zstd, zstd_chunks) = mpsc::channel(CHUNKS_IN_FLIGHT);
        let mut chunk = header.head()?;
        chunk.reserve(CHUNK_BYTES + 4096);
        Ok(Self {
            chunk,
            offers: 0,
            score: ryu::Buffer::new(),
            to_gzip,
            to_zstd,
            gzip: tokio::task::spawn_blocking(move || gzip(gzip_chunks, capacity)),
            zstd: tokio::task::spawn_blocking(move || zstd_and_hash(zstd_chunks, capacity)),
        })
    }

    /// Appends one offer: its [`Offer`](shared::document::Offer) JSON object `{…}` and
    /// `score`, as [`Oferta`](shared::document::Oferta) serialises the two.
    pub async fn offer(&mut self, object: &[u8], score: f64) -> io::Result<()> {
        let Some((_, fields)) = object.split_last() else {
            return Err(io::Error::other("empty offer object"));
        };
        if self.offers > 0 {
            self.chunk.push(b',');
        }
        self.chunk.extend_from_slice(fields);
        self.chunk.extend_from_slice(br#","score":"#);
        self.chunk
            .extend_from_slice(self.score.format_finite(score).as_bytes());
        self.chunk.push(b'}');
        self.offers += 1;
        if self.chunk.len() >= CHUNK_BYTES {
            self.send().await?;
        }
        Ok(())
    }

    async fn send(&mut self) -> io::Result<()> {
        let chunk = Bytes::from(std::mem::replace(
            &mut self.chunk,
            Vec::with_capacity(CHUNK_BYTES + 4096),
        ));
        let stopped = || io::Error::other("an encoder stopped early");
        self.to_gzip
            .send(chunk.clone())
            .await
            .map_err(|_| stopped())?;
        self.to_zstd.send(chunk).await.map_err(|_| stopped())
    }

    /// Closes the document and waits for both encoders.
    ///
    /// # Errors
    /// An encoder failure (in practice only allocation limits).
    pub async fn finish(mut self) -> io::Result<Encoded> {
        self.chunk.extend_from_slice(DOCUMENT_END);
        let sent = self.send().await;
        let Self {
            to_gzip,
            to_zstd,
            gzip,
            zstd,
            ..
        } = self;
        drop((to_gzip, to_zstd));
        let joined = |e: tokio::task::JoinError| io::Error::other(format!("encoder failed: {e}"));
        let gzip = gzip.await.map_err(joined)?;
        let zstd = zstd.await.map_err(joined)?;
        // An encoder's own error explains a failed send better than the send does.
        let gzip = gzip?;
        let (zstd, json) = zstd?;
        sent?;
        Ok(Encoded { gzip, zstd, json })
    }
}

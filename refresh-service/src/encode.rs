//! Serialising the ranked document once and compressing it to gzip and zstd.
//!
//! The document is never materialised: two threads each walk the ranked offers and
//! write the same bytes straight into their encoder, gzip on one core and zstd (plus the
//! BLAKE3 of the identity bytes) on the other.

use std::io::{self, BufWriter, Write};

use flate2::{Compression, write::GzEncoder};
use serde::Serialize;

use crate::source::OfferSet;

/// gzip level: 6 is zlib's default and the best size per millisecond here (README, "Compression").
pub const GZIP_LEVEL: u32 = 6;
/// zstd level: the smallest body that still compresses within gzip-6's time, so running
/// both side by side costs no more than gzip alone (README, "Compression").
pub const ZSTD_LEVEL: i32 = 7;
/// Buffer in front of each encoder, so per-offer writes do not reach it one by one.
const WRITE_BUFFER: usize = 64 * 1024;

/// The document's fields before the offers.
#[derive(Serialize)]
pub struct DocumentHeader<'a> {
    /// Snapshot version.
    pub version: &'a str,
    /// Generation time (`…T15:00:00.123Z`).
    pub generated_at: &'a str,
    /// Number of offers.
    pub count: usize,
}

/// The offers in document order with their scores.
pub struct Ranking {
    /// Offer indexes (into the [`OfferSet`]) by score descending, then id ascending.
    pub order: Vec<u32>,
    /// Score of each offer, by offer index, rounded to six decimals.
    pub scores: Vec<f64>,
}

impl Ranking {
    /// Orders `offers` by `raw_scores` (one per offer) descending, then id ascending.
    pub fn new(offers: &OfferSet, raw_scores: &[f32]) -> Self {
        let scores: Vec<f64> = raw_scores
            .iter()
            .map(|&s| {
                let s = if s.is_finite() { f64::from(s) } else { 0.0 };
                (s * 1e6).round() / 1e6
            })
            .collect();
        let ids = offers.ids();
        let mut order: Vec<u32> = (0..offers.len() as u32).collect();
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
    /// Identity document size.
    pub json_bytes: u64,
    /// BLAKE3 (hex) of the identity document.
    pub json_hash: String,
}

/// Counts and hashes what passes through to `inner`.
struct Tee<W> {
    inner: W,
    hasher: blake3::Hasher,
    bytes: u64,
}

impl<W: Write> Write for Tee<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Writes the whole document into `out`.
///
/// # Errors
/// Only those of `out`.
pub fn write_document<W: Write>(
    out: &mut W,
    header: &DocumentHeader<'_>,
    offers: &OfferSet,
    ranking: &Ranking,
) -> io::Result<()> {
    let head = serde_json::to_vec(header)?;
    out.write_all(&head[..head.len() - 1])?;
    out.write_all(br#","ofertas":["#)?;
    let mut number = ryu::Buffer::new();
    for (position, &index) in ranking.order.iter().enumerate() {
        let index = index as usize;
        let object = offers.object(index);
        if position > 0 {
            out.write_all(b",")?;
        }
        out.write_all(&object[..object.len() - 1])?;
        out.write_all(br#","score":"#)?;
        out.write_all(number.format_finite(ranking.scores[index]).as_bytes())?;
        out.write_all(b"}")?;
    }
    out.write_all(b"]}")
}

fn gzip(
    header: &DocumentHeader<'_>,
    offers: &OfferSet,
    ranking: &Ranking,
    capacity: usize,
) -> io::Result<Vec<u8>> {
    let encoder = GzEncoder::new(Vec::with_capacity(capacity), Compression::new(GZIP_LEVEL));
    let mut out = BufWriter::with_capacity(WRITE_BUFFER, encoder);
    write_document(&mut out, header, offers, ranking)?;
    out.into_inner()
        .map_err(io::IntoInnerError::into_error)?
        .finish()
}

fn zstd_and_hash(
    header: &DocumentHeader<'_>,
    offers: &OfferSet,
    ranking: &Ranking,
    capacity: usize,
) -> io::Result<(Vec<u8>, u64, String)> {
    let mut encoder = zstd::stream::Encoder::new(Vec::with_capacity(capacity), ZSTD_LEVEL)?;
    encoder.include_checksum(true)?;
    let tee = Tee {
        inner: encoder,
        hasher: blake3::Hasher::new(),
        bytes: 0,
    };
    let mut out = BufWriter::with_capacity(WRITE_BUFFER, tee);
    write_document(&mut out, header, offers, ranking)?;
    let tee = out.into_inner().map_err(io::IntoInnerError::into_error)?;
    let hash = tee.hasher.finalize().to_hex().to_string();
    Ok((tee.inner.finish()?, tee.bytes, hash))
}

/// Serialises and compresses the document, gzip and zstd in parallel.
///
/// # Errors
/// An encoder failure (in practice only allocation limits).
pub fn encode(
    header: &DocumentHeader<'_>,
    offers: &OfferSet,
    ranking: &Ranking,
) -> io::Result<Encoded> {
    // Compressed output is ~1/5 of the offer JSON; start near that to avoid regrowth.
    let capacity = offers.json_bytes() / 4 + 4096;
    let (gzip, zstd) = std::thread::scope(|scope| {
        let gzip = scope.spawn(|| gzip(header, offers, ranking, capacity));
        let zstd = zstd_and_hash(header, offers, ranking, capacity);
        let gzip = gzip
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("gzip encoder panicked")));
        (gzip, zstd)
    });
    let (zstd, json_bytes, json_hash) = zstd?;
    Ok(Encoded {
        gzip: gzip?,
        zstd,
        json_bytes,
        json_hash,
    })
}

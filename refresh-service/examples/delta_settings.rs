//! Measures RFC 9842 `dcz` deltas between real snapshot documents (issue 12): how large a
//! delta is and how long it takes to build for each zstd setting, and what rounding the
//! score and anchoring the ranker's clock do to the delta and to the ranking. Run by
//! `bench/delta.sh`; the findings are in `docs/delta-findings.md`.
//!
//! The documents are identity documents as the API serves them, from real
//! `refresh-service once` runs. A delta is built the way the refresher is to build it:
//! `zstd::stream::write::Encoder::with_ref_prefix` with the earlier document as a
//! raw-content prefix. Every delta is decoded again with that prefix, in the largest
//! window RFC 9842 lets a client accept for it, and compared with the new document before
//! its size counts. Sizes are `dcz` bodies: the zstd frame plus the 40-byte RFC 9842 header.
//!
//! - `signals --out FILE`: every offer's `updated_at` (`DATABASE_URL`), the one ranking
//!   input the document does not carry; taken right after each refresh.
//! - `dcz NEW --base OLD…`: the delta to NEW from each base, with [`recommended`] (or
//!   `--level`, `--window-log`, `--ldm`): bytes, build time, verified.
//! - `settings OLD NEW`: levels × window logs × long-distance matching, next to the plain
//!   bodies and the `zstd --patch-from` limit measured in the same run.
//! - `stability --pair LABEL OLD NEW …`: both documents re-ranked by the model itself
//!   (`refresh_service::rank`) with the score rounded to fewer decimals and the
//!   clock-dependent features evaluated at an anchored time; for each variant the delta
//!   and how far its order is from the exact model order.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, Read as _, Write as _};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::Command as Process;
use std::time::Instant;

use anyhow::{Context as _, anyhow, bail, ensure};
use chrono::{DateTime, TimeZone as _, Utc};
use chrono_tz::Tz;
use clap::{Parser, Subcommand, ValueEnum};
use secrecy::ExposeSecret as _;
use serde::Deserialize;
use sqlx::Connection as _;

use zstd::zstd_safe::{self, CParameter};

use refresh_service::encode::{GZIP_LEVEL, ZSTD_LEVEL};
use refresh_service::rank::{self, OfferSignals, Ranker};
use shared::config::RefreshSettings;

/// One way of building a delta.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Setting {
    level: i32,
    /// `None`: the level's default (what zstd picks for the sizes pledged).
    window_log: Option<u32>,
    /// Long-distance matching; off leaves zstd's automatic choice, which stays off below a
    /// window log of 27.
    ldm: bool,
}

/// Dictionaries up to this size get the thorough setting; larger ones the fast one.
const THOROUGH_UP_TO: usize = 8 << 20;

/// The setting `docs/delta-findings.md` recommends for a dictionary of `len` bytes, and
/// `dcz` builds with by default: the largest window every client accepts for that
/// dictionary, with level 19 and long-distance matching up to [`THOROUGH_UP_TO`] (at the
/// `--patch-from` limit for 7,000 offers), level 12 without it beyond (level 19 took 33 s
/// of CPU per delta for 100,000 offers, level 12 a third of a second).
fn recommended(len: usize) -> Setting {
    let thorough = len <= THOROUGH_UP_TO;
    Setting {
        level: if thorough { 19 } else { 12 },
        window_log: Some(max_window_log(len)),
        ldm: thorough,
    }
}

impl fmt::Display for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let window = self.window_log.map_or("default".into(), |w| w.to_string());
        let ldm = if self.ldm { "on" } else { "off" };
        write!(f, "level {}, window log {window}, LDM {ldm}", self.level)
    }
}

/// RFC 9842 §5: 8 bytes of skippable-frame magic and size, then the dictionary's SHA-256.
const DCZ_HEADER_BYTES: usize = 8 + 32;

/// The largest window log a client accepts with a dictionary of `len` bytes: RFC 9842
/// allows max(8 MiB, 1.25 × dictionary); Chromium takes clamp(⌈log2(1.25 × len)⌉, 23, 27).
fn max_window_log(len: usize) -> u32 {
    ((len as f64 * 1.25).log2().ceil() as u32).clamp(23, 27)
}

/// The zstd frame that turns `old` into `new`, `old` being a raw-content prefix, made in one
/// call (`ZSTD_compress2`: the same bytes as a stream with the size pledged, see the tests),
/// and the memory its compression context held.
fn delta_frame(old: &[u8], new: &[u8], setting: Setting) -> io::Result<(Vec<u8>, usize)> {
    let fail = |code: usize| io::Error::other(zstd_safe::get_error_name(code));
    let mut context = zstd_safe::CCtx::try_create()
        .ok_or_else(|| io::Error::other("cannot allocate a zstd context"))?;
    context
        .set_parameter(CParameter::CompressionLevel(setting.level))
        .map_err(fail)?;
    if let Some(log) = setting.window_log {
        context
            .set_parameter(CParameter::WindowLog(log))
            .map_err(fail)?;
    }
    if setting.ldm {
        context
            .set_parameter(CParameter::EnableLongDistanceMatching(true))
            .map_err(fail)?;
    }
    context
        .set_parameter(CParameter::ChecksumFlag(true))
        .map_err(fail)?;
    context.ref_prefix(old).map_err(fail)?;
    let mut frame = Vec::with_capacity(zstd_safe::compress_bound(new.len()));
    context.compress2(&mut frame, new).map_err(fail)?;
    Ok((frame, context.sizeof()))
}

/// Decodes `frame` with `old` as its prefix, as a client would: no larger window than
/// RFC 9842 allows for `old`.
fn apply_delta(old: &[u8], frame: &[u8]) -> io::Result<Vec<u8>> {
    let mut decoder = zstd::stream::read::Decoder::with_ref_prefix(frame, old)?;
    decoder.window_log_max(max_window_log(old.len()))?;
    let mut out = Vec::new();
    decoder.read_to_end(&mut out)?;
    Ok(out)
}

/// A delta that decoded back to the new document.
struct Built {
    /// `dcz` body bytes: header and frame.
    dcz_bytes: usize,
    /// Median build time, wall clock.
    ms: f64,
    /// Median CPU time of the building thread: what the build costs a shared machine,
    /// however busy it is (`NaN` where `/proc/thread-self/schedstat` is unreadable).
    cpu_ms: f64,
    /// Memory of the compression context (tables, window), MiB.
    context_mib: f64,
    frame: Vec<u8>,
}

/// CPU time this thread has run, in milliseconds (Linux: `/proc/thread-self/schedstat`).
fn thread_cpu_ms() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|stat| stat.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(f64::NAN, |ns| ns / 1e6)
}

/// Builds the delta `runs` times; `Ok(Err(why))` when a client would refuse it (its window
/// is larger than RFC 9842 allows).
///
/// # Errors
/// A failure to compress, or a delta that decodes to anything but `new`.
fn build(
    old: &[u8],
    new: &[u8],
    setting: Setting,
    runs: usize,
) -> anyhow::Result<Result<Built, String>> {
    let (mut times, mut cpu) = (Vec::with_capacity(runs), Vec::with_capacity(runs));
    let (mut frame, mut context_bytes) = (Vec::new(), 0);
    for _ in 0..runs.max(1) {
        let (started, cpu_started) = (Instant::now(), thread_cpu_ms());
        (frame, context_bytes) = delta_frame(old, new, setting)
            .with_context(|| format!("compressing with {setting}"))?;
        times.push(started.elapsed().as_secs_f64() * 1e3);
        cpu.push(thread_cpu_ms() - cpu_started);
    }
    match apply_delta(old, &frame) {
        Ok(decoded) => ensure!(
            decoded == new,
            "the delta built with {setting} decodes to another document"
        ),
        Err(e) => return Ok(Err(e.to_string())),
    }
    Ok(Ok(Built {
        dcz_bytes: DCZ_HEADER_BYTES + frame.len(),
        ms: median(&mut times),
        cpu_ms: median(&mut cpu),
        context_mib: context_bytes as f64 / f64::from(1 << 20),
        frame,
    }))
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// The gzip and zstd bodies the refresher makes of `document` (its levels and flags).
fn plain_bodies(document: &[u8]) -> io::Result<(usize, usize)> {
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(GZIP_LEVEL));
    gzip.write_all(document)?;
    let gzip = gzip.finish()?.len();
    let mut zstd = zstd::stream::write::Encoder::new(Vec::new(), ZSTD_LEVEL)?;
    zstd.include_checksum(true)?;
    zstd.write_all(document)?;
    Ok((gzip, zstd.finish()?.len()))
}

/// What `zstd --patch-from=OLD --ultra -22 --long=27 NEW` makes: the best zstd does on the
/// pair, with a window no client is required to accept. Returns bytes and milliseconds.
fn patch_from_limit(zstd_cli: &str, old: &[u8], new: &[u8]) -> anyhow::Result<(usize, f64)> {
    let dir = std::env::temp_dir().join(format!("delta-settings-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let (old_path, new_path) = (dir.join("old.json"), dir.join("new.json"));
    std::fs::write(&old_path, old)?;
    std::fs::write(&new_path, new)?;
    let started = Instant::now();
    let output = Process::new(zstd_cli)
        .arg("-q")
        .arg("-c")
        .arg(format!("--patch-from={}", old_path.display()))
        .args(["--ultra", "-22", "--long=27"])
        .arg(&new_path)
        .output()
        .with_context(|| format!("running {zstd_cli}"))?;
    let ms = started.elapsed().as_secs_f64() * 1e3;
    std::fs::remove_dir_all(&dir)?;
    ensure!(
        output.status.success(),
        "{zstd_cli} --patch-from failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok((output.stdout.len(), ms))
}

// ------------------------------------------------------------------------------ documents

const OFFERS_START: &[u8] = b"\"ofertas\":[";
const SCORE_FIELD: &[u8] = b",\"score\":";

/// A snapshot document split into its header and its offers' records.
struct Document {
    text: Vec<u8>,
    /// `{"version":…,"ofertas":[`.
    header: Range<usize>,
    generated_at: DateTime<Utc>,
    offers: Vec<Offer>,
}

/// One offer: where its record is, and the ranking inputs the document carries.
struct Offer {
    id: i64,
    /// The record up to its score: `{"id":…,"ends_at":…` (`,"score":…}` follows).
    fields: Range<usize>,
    price: f64,
    discount_pct: Option<f64>,
    ends_at: Option<DateTime<Utc>>,
    has_image: bool,
    category: String,
}

#[derive(Deserialize)]
struct Header {
    generated_at: DateTime<Utc>,
}

#[derive(Deserialize)]
struct OfferFields {
    id: i64,
    category: String,
    price: String,
    discount_pct: Option<f64>,
    image_url: Option<String>,
    ends_at: Option<DateTime<Utc>>,
}

impl Document {
    fn read(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        Self::parse(text).with_context(|| format!("parsing {}", path.display()))
    }

    fn parse(text: Vec<u8>) -> anyhow::Result<Self> {
        let start = find(&text, OFFERS_START).context("no \"ofertas\" array")? + OFFERS_START.len();
        let mut header = text[..start].to_vec();
        header.extend_from_slice(b"]}");
        let Header { generated_at } = serde_json::from_slice(&header)?;
        let mut offers = Vec::new();
        let mut at = start;
        while text.get(at) != Some(&b']') {
            ensure!(
                text.get(at) == Some(&b'{'),
                "expected an offer at byte {at}"
            );
            let end = object_end(&text, at)
                .with_context(|| format!("unterminated offer at byte {at}"))?;
            let object = &text[at..end];
            let fields: OfferFields = serde_json::from_slice(object)?;
            let score = rfind(object, SCORE_FIELD)
                .with_context(|| format!("offer {} has no score", fields.id))?;
            offers.push(Offer {
                id: fields.id,
                fields: at..at + score,
                price: fields.price.parse().unwrap_or(0.0),
                discount_pct: fields.discount_pct,
                ends_at: fields.ends_at,
                has_image: fields.image_url.is_some(),
                category: fields.category,
            });
            at = end;
            if text.get(at) == Some(&b',') {
                at += 1;
            }
        }
        ensure!(&text[at..] == b"]}", "unexpected bytes after the offers");
        Ok(Self {
            header: 0..start,
            text,
            generated_at,
            offers,
        })
    }

    fn fields(&self, index: usize) -> &[u8] {
        &self.text[self.offers[index].fields.clone()]
    }

    /// The document with the offers in `order` (indexes), each with its score in `scores`.
    fn render(&self, order: &[usize], scores: &[f64]) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.text.len() + 1024);
        out.extend_from_slice(&self.text[self.header.clone()]);
        let mut number = ryu::Buffer::new();
        for (n, &index) in order.iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            out.extend_from_slice(self.fields(index));
            out.extend_from_slice(SCORE_FIELD);
            out.extend_from_slice(number.format_finite(scores[index]).as_bytes());
            out.push(b'}');
        }
        out.extend_from_slice(b"]}");
        out
    }

    /// Offer indexes by `scores` descending, then id ascending: the document's order rule.
    fn ranked(&self, scores: &[f64]) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.offers.len()).collect();
        order.sort_unstable_by(|&a, &b| {
            scores[b]
                .total_cmp(&scores[a])
                .then(self.offers[a].id.cmp(&self.offers[b].id))
        });
        order
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn rfind(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).rposition(|w| w == needle)
}

/// The index just past the `}` that closes the object starting at `start`. Offers hold no
/// nested objects or arrays; braces inside strings are skipped.
fn object_end(text: &[u8], start: usize) -> Option<usize> {
    let (mut in_string, mut escaped) = (false, false);
    for (i, &byte) in text.iter().enumerate().skip(start + 1) {
        match (in_string, escaped, byte) {
            (true, true, _) => escaped = false,
            (true, false, b'\\') => escaped = true,
            (true, false, b'"') => in_string = false,
            (true, false, _) => {}
            (false, _, b'"') => in_string = true,
            (false, _, b'}') => return Some(i + 1),
            (false, _, b'{' | b'[') => return None,
            (false, _, _) => {}
        }
    }
    None
}

// ------------------------------------------------------------------------------ ranking

/// Where the clock-dependent features (urgency, freshness) are evaluated.
#[derive(Clone, Copy, Debug, PartialEq, ValueEnum)]
enum Clock {
    /// At the refresh's own time, as the refresher does today.
    Exact,
    /// At 00:00 of the refresh's day in `REFRESH_TIMEZONE`.
    DayStart,
    /// At 12:00 of the refresh's day in `REFRESH_TIMEZONE`.
    Midday,
}

impl Clock {
    fn at(self, refresh: DateTime<Utc>, zone: Tz) -> anyhow::Result<DateTime<Utc>> {
        let hour = match self {
            Self::Exact => return Ok(refresh),
            Self::DayStart => 0,
            Self::Midday => 12,
        };
        let local = refresh
            .with_timezone(&zone)
            .date_naive()
            .and_hms_opt(hour, 0, 0);
        local
            .and_then(|local| zone.from_local_datetime(&local).earliest())
            .map(|at| at.with_timezone(&Utc))
            .with_context(|| format!("{hour}:00 does not exist in {zone} on the refresh's day"))
    }
}

/// The model's raw score of every offer of `document` (by index) with the clock at `at`.
/// Rows go to the model in id order, one batch, as the refresher sends them.
fn model_scores(
    ranker: &Ranker,
    document: &Document,
    updated_at: &HashMap<i64, DateTime<Utc>>,
    at: DateTime<Utc>,
) -> anyhow::Result<Vec<f32>> {
    let mut by_id: Vec<usize> = (0..document.offers.len()).collect();
    by_id.sort_unstable_by_key(|&i| document.offers[i].id);
    let mut features = Vec::with_capacity(by_id.len() * rank::FEATURES);
    for &i in &by_id {
        let offer = &document.offers[i];
        let updated_at = *updated_at
            .get(&offer.id)
            .with_context(|| format!("no updated_at for offer {}", offer.id))?;
        let signals = OfferSignals {
            price: offer.price,
            discount_pct: offer.discount_pct,
            ends_at: offer.ends_at,
            updated_at,
            has_image: offer.has_image,
            category: &offer.category,
        };
        features.extend_from_slice(&rank::features(&signals, at));
    }
    let raw = ranker.score(&features)?;
    ensure!(
        raw.len() == by_id.len(),
        "the model returned {} scores for {} offers",
        raw.len(),
        by_id.len()
    );
    let mut scores = vec![0.0; raw.len()];
    for (score, &i) in raw.into_iter().zip(&by_id) {
        scores[i] = score;
    }
    Ok(scores)
}

/// A raw score as printed with `decimals` decimals (the refresher's rounding).
fn rounded(score: f32, decimals: i32) -> f64 {
    let score = if score.is_finite() {
        f64::from(score)
    } else {
        0.0
    };
    let scale = 10f64.powi(decimals);
    (score * scale).round() / scale
}

/// How close a published order and its scores are to the exact model's.
struct Fidelity {
    kendall_tau: f64,
    top100: f64,
    top1000: f64,
    /// Largest rank change of an offer of the exact top 100.
    top100_shift: usize,
    max_score_error: f64,
}

fn fidelity(document: &Document, exact: &[f32], order: &[usize], scores: &[f64]) -> Fidelity {
    let exact: Vec<f64> = exact.iter().map(|&s| f64::from(s)).collect();
    let exact_order = document.ranked(&exact);
    let n = order.len();
    let mut exact_rank = vec![0; n];
    for (rank, &i) in exact_order.iter().enumerate() {
        exact_rank[i] = rank;
    }
    let mut published_rank = vec![0; n];
    for (rank, &i) in order.iter().enumerate() {
        published_rank[i] = rank;
    }
    let mut sequence: Vec<usize> = order.iter().map(|&i| exact_rank[i]).collect();
    let discordant = inversions(&mut sequence) as f64;
    let pairs = (n * n.saturating_sub(1) / 2).max(1) as f64;
    let overlap = |k: usize| {
        let k = k.min(n);
        let top = |o: &[usize]| {
            o[..k]
                .iter()
                .copied()
                .collect::<std::collections::HashSet<_>>()
        };
        top(order).intersection(&top(&exact_order)).count() as f64 / k.max(1) as f64
    };
    Fidelity {
        kendall_tau: 1.0 - 2.0 * discordant / pairs,
        top100: overlap(100),
        top1000: overlap(1000),
        top100_shift: exact_order
            .iter()
            .take(100)
            .map(|&i| published_rank[i].abs_diff(exact_rank[i]))
            .max()
            .unwrap_or(0),
        max_score_error: (0..n)
            .map(|i| (scores[i] - exact[i]).abs())
            .fold(0.0, f64::max),
    }
}

/// Pairs out of order in `values` (merge sort; sorts `values`).
fn inversions(values: &mut [usize]) -> u64 {
    let n = values.len();
    if n < 2 {
        return 0;
    }
    let (mut count, middle) = (0, n / 2);
    count += inversions(&mut values[..middle]);
    count += inversions(&mut values[middle..]);
    let mut merged = Vec::with_capacity(n);
    let (mut i, mut j) = (0, middle);
    while i < middle && j < n {
        if values[i] <= values[j] {
            merged.push(values[i]);
            i += 1;
        } else {
            merged.push(values[j]);
            count += (middle - i) as u64;
            j += 1;
        }
    }
    merged.extend_from_slice(&values[i..middle]);
    merged.extend_from_slice(&values[j..]);
    values.copy_from_slice(&merged);
    count
}

/// A document as it would be published with `decimals` and `clock`.
struct Variant {
    text: Vec<u8>,
    /// Published score by offer index.
    scores: Vec<f64>,
    order: Vec<usize>,
}

/// A document of a pair, with what re-ranking it needs.
struct Snapshot {
    document: Document,
    updated_at: HashMap<i64, DateTime<Utc>>,
    /// Raw model scores at the refresh's own time.
    exact: Vec<f32>,
}

impl Snapshot {
    fn load(ranker: &Ranker, path: &Path) -> anyhow::Result<Self> {
        let document = Document::read(path)?;
        let signals = path.with_extension("signals.json");
        let rows: Vec<(i64, DateTime<Utc>)> = serde_json::from_slice(
            &std::fs::read(&signals).with_context(|| format!("reading {}", signals.display()))?,
        )
        .with_context(|| format!("parsing {}", signals.display()))?;
        let updated_at = rows.into_iter().collect();
        let exact = model_scores(ranker, &document, &updated_at, document.generated_at)?;
        let snapshot = Self {
            document,
            updated_at,
            exact,
        };
        // The model, the inputs and the rendering must give back the refresher's own bytes.
        let today = snapshot.variant(ranker, Clock::Exact, 6, Tz::UTC)?;
        ensure!(
            today.text == snapshot.document.text,
            "re-ranking {} at its own time does not reproduce it: the model, the inputs or the \
             document format differ from the refresher's",
            path.display()
        );
        Ok(snapshot)
    }

    fn variant(
        &self,
        ranker: &Ranker,
        clock: Clock,
        decimals: i32,
        zone: Tz,
    ) -> anyhow::Result<Variant> {
        let raw = match clock {
            Clock::Exact => self.exact.clone(),
            _ => {
                let at = clock.at(self.document.generated_at, zone)?;
                model_scores(ranker, &self.document, &self.updated_at, at)?
            }
        };
        let scores: Vec<f64> = raw.iter().map(|&s| rounded(s, decimals)).collect();
        let order = self.document.ranked(&scores);
        Ok(Variant {
            text: self.document.render(&order, &scores),
            scores,
            order,
        })
    }
}

/// Unchanged offers (same record but for the score, same `updated_at`) of the two
/// documents, and how many of them are byte-identical, score included, in the variants.
fn unchanged(
    old: &Snapshot,
    old_variant: &Variant,
    new: &Snapshot,
    new_variant: &Variant,
) -> (usize, usize) {
    let before: HashMap<i64, usize> = (0..old.document.offers.len())
        .map(|i| (old.document.offers[i].id, i))
        .collect();
    let (mut same, mut identical) = (0, 0);
    for (j, offer) in new.document.offers.iter().enumerate() {
        let Some(&i) = before.get(&offer.id) else {
            continue;
        };
        if old.document.fields(i) == new.document.fields(j)
            && old.updated_at.get(&offer.id) == new.updated_at.get(&offer.id)
        {
            same += 1;
            if old_variant.scores[i].to_bits() == new_variant.scores[j].to_bits() {
                identical += 1;
            }
        }
    }
    (same, identical)
}

// ------------------------------------------------------------------------------ commands

#[derive(Parser)]
#[command(about = "Measures RFC 9842 dcz deltas between snapshot documents")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Writes every offer's `updated_at` (from `DATABASE_URL`) as JSON `[[id, time], …]`.
    Signals {
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        settings: Box<RefreshSettings>,
    },
    /// Builds the delta to NEW from each base; prints `base, dcz bytes, build ms, CPU ms`
    /// (TSV, medians).
    Dcz {
        new: PathBuf,
        #[arg(long = "base", required = true)]
        bases: Vec<PathBuf>,
        /// Without it, the recommended level for the base's size.
        #[arg(long)]
        level: Option<i32>,
        /// 0: the level's default; without it, the largest a client accepts for the base.
        #[arg(long)]
        window_log: Option<u32>,
        /// Without it, as recommended for the base's size.
        #[arg(long)]
        ldm: Option<bool>,
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Also writes the zstd frame (one base only) to this file.
        #[arg(long)]
        frame_out: Option<PathBuf>,
    },
    /// Sizes and build times of the delta OLD → NEW over a grid of settings (Markdown).
    Settings {
        old: PathBuf,
        new: PathBuf,
        #[arg(long, value_delimiter = ',', default_values_t = [3, 7, 12, 16, 19, 22])]
        levels: Vec<i32>,
        /// 0: the level's default.
        #[arg(long, value_delimiter = ',', default_values_t = [0, 21, 22, 23])]
        window_logs: Vec<u32>,
        #[arg(long, default_value_t = 3)]
        runs: usize,
        #[arg(long, default_value = "zstd")]
        zstd_cli: String,
        /// Re-rank both documents first, with the clock-dependent features at this time
        /// (needs DOC.signals.json); without it the documents are used as they are.
        #[arg(long)]
        clock: Option<Clock>,
        /// With `--clock`: the score's decimals.
        #[arg(long, default_value_t = 6)]
        decimals: i32,
        #[command(flatten)]
        settings: Box<RefreshSettings>,
    },
    /// Deltas and ranking fidelity of the documents re-ranked with each clock and precision
    /// (Markdown). Each DOC.json needs its DOC.signals.json (`signals`).
    Stability {
        /// A pair of documents: a label (e.g. `5h`), the earlier and the later one.
        #[arg(long = "pair", num_args = 3, value_names = ["LABEL", "OLD", "NEW"], required = true)]
        pairs: Vec<String>,
        #[arg(long, value_delimiter = ',', default_values_t = [6, 4, 3, 2])]
        decimals: Vec<i32>,
        #[arg(long, value_delimiter = ',', default_values = ["exact", "day-start", "midday"])]
        clocks: Vec<Clock>,
        /// Also: the fidelity of the first pair's later document when the clock-dependent
        /// features are read this many hours off its refresh time (what an anchor costs).
        #[arg(long, value_delimiter = ',', allow_negative_numbers = true,
              default_values_t = [-12, -3, 2, 12, 24, 84, 168])]
        offsets: Vec<i64>,
        #[arg(long, default_value = "zstd")]
        zstd_cli: String,
        #[command(flatten)]
        settings: Box<RefreshSettings>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Signals { out, settings } => signals(&settings, &out).await,
        Command::Dcz {
            new,
            bases,
            level,
            window_log,
            ldm,
            runs,
            frame_out,
        } => {
            let setting = |base: &[u8]| {
                let recommended = recommended(base.len());
                Setting {
                    level: level.unwrap_or(recommended.level),
                    window_log: window_log
                        .map_or(recommended.window_log, |log| (log > 0).then_some(log)),
                    ldm: ldm.unwrap_or(recommended.ldm),
                }
            };
            dcz(&new, &bases, setting, runs, frame_out.as_deref())
        }
        Command::Settings {
            old,
            new,
            levels,
            window_logs,
            runs,
            zstd_cli,
            clock,
            decimals,
            settings,
        } => {
            let (old, new) = match clock {
                None => (read(&old)?, read(&new)?),
                Some(clock) => {
                    let (ranker, zone) = ranker_and_zone(&settings)?;
                    let variant = |path: &Path| {
                        Snapshot::load(&ranker, path)?.variant(&ranker, clock, decimals, zone)
                    };
                    println!("re-ranked: clock {clock:?}, {decimals} decimals");
                    (variant(&old)?.text, variant(&new)?.text)
                }
            };
            settings_grid(&old, &new, &levels, &window_logs, runs, &zstd_cli)
        }
        Command::Stability {
            pairs,
            decimals,
            clocks,
            offsets,
            zstd_cli,
            settings,
        } => stability(&settings, &pairs, &decimals, &clocks, &offsets, &zstd_cli),
    }
}

async fn signals(settings: &RefreshSettings, out: &Path) -> anyhow::Result<()> {
    let mut db = sqlx::PgConnection::connect(settings.database_url.expose_secret())
        .await
        .context("connecting to DATABASE_URL")?;
    let rows: Vec<(i64, DateTime<Utc>)> =
        sqlx::query_as("select id, updated_at from ofertas order by id")
            .fetch_all(&mut db)
            .await?;
    std::fs::write(out, serde_json::to_vec(&rows)?)
        .with_context(|| format!("writing {}", out.display()))
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

fn dcz(
    new: &Path,
    bases: &[PathBuf],
    setting: impl Fn(&[u8]) -> Setting,
    runs: usize,
    frame_out: Option<&Path>,
) -> anyhow::Result<()> {
    ensure!(
        frame_out.is_none() || bases.len() == 1,
        "--frame-out takes one --base"
    );
    let new_text = read(new)?;
    for base in bases {
        let old = read(base)?;
        let setting = setting(&old);
        let built = build(&old, &new_text, setting, runs)?.map_err(|why| {
            anyhow!(
                "the delta from {} with {setting} is refused by a client: {why}",
                base.display()
            )
        })?;
        println!(
            "{}\t{}\t{:.1}\t{:.1}",
            base.display(),
            built.dcz_bytes,
            built.ms,
            built.cpu_ms
        );
        if let Some(path) = frame_out {
            std::fs::write(path, &built.frame)
                .with_context(|| format!("writing {}", path.display()))?;
        }
    }
    Ok(())
}

fn settings_grid(
    old: &[u8],
    new: &[u8],
    levels: &[i32],
    window_logs: &[u32],
    runs: usize,
    zstd_cli: &str,
) -> anyhow::Result<()> {
    let (gzip, zstd) = plain_bodies(new)?;
    let (limit, limit_ms) = patch_from_limit(zstd_cli, old, new)?;
    println!(
        "documents: {} → {} bytes; gzip-{GZIP_LEVEL} {gzip}, zstd-{ZSTD_LEVEL} {zstd}; \
         limit (`zstd --patch-from --ultra -22 --long=27`) {limit} bytes in {limit_ms:.0} ms; \
         RFC 9842 window for this dictionary: log ≤ {}; build time: median of {runs}\n",
        old.len(),
        new.len(),
        max_window_log(old.len())
    );
    println!(
        "| level | window log | LDM | dcz bytes | ÷ limit | gzip ÷ dcz | zstd ÷ dcz | build ms \
         | CPU ms | context MiB |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for &level in levels {
        for &window_log in window_logs {
            for ldm in [false, true] {
                let setting = Setting {
                    level,
                    window_log: (window_log > 0).then_some(window_log),
                    ldm,
                };
                let window = setting
                    .window_log
                    .map_or("default".into(), |w| w.to_string());
                let ldm = if ldm { "on" } else { "off" };
                match build(old, new, setting, runs)? {
                    Ok(b) => println!(
                        "| {level} | {window} | {ldm} | {} | {:.2} | {:.1} | {:.1} | {:.0} \
                         | {:.0} | {:.0} |",
                        b.dcz_bytes,
                        b.dcz_bytes as f64 / limit as f64,
                        gzip as f64 / b.dcz_bytes as f64,
                        zstd as f64 / b.dcz_bytes as f64,
                        b.ms,
                        b.cpu_ms,
                        b.context_mib
                    ),
                    Err(why) => println!(
                        "| {level} | {window} | {ldm} | refused by a client: {why} | | | | | | |"
                    ),
                }
            }
        }
    }
    Ok(())
}

/// The model, loaded as the refresher loads it, and `REFRESH_TIMEZONE`.
fn ranker_and_zone(settings: &RefreshSettings) -> anyhow::Result<(Ranker, Tz)> {
    let zone: Tz = settings
        .refresh_timezone
        .parse()
        .map_err(|e| anyhow!("REFRESH_TIMEZONE={:?}: {e}", settings.refresh_timezone))?;
    Ok((
        Ranker::load(&settings.ranker_model, &settings.ort_dylib_path)?,
        zone,
    ))
}

fn stability(
    settings: &RefreshSettings,
    pairs: &[String],
    decimals: &[i32],
    clocks: &[Clock],
    offsets: &[i64],
    zstd_cli: &str,
) -> anyhow::Result<()> {
    let (ranker, zone) = ranker_and_zone(settings)?;
    let mut first_new = None;
    println!(
        "delta: the recommended setting (up to 8 MiB: level 19, the largest window a client \
         accepts, LDM on); fidelity of the later document against the exact model order (raw \
         scores at its refresh time, ties by id); clock anchors in {zone}\n"
    );
    println!(
        "| pair | clock | decimals | unchanged offers byte-identical | dcz bytes | limit | gzip-6 \
         | zstd-7 | gzip ÷ dcz | zstd ÷ dcz | dcz ÷ limit | Kendall τ | top-100 | top-1000 \
         | top-100 max shift | max score error |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for pair in pairs.chunks(3) {
        let [label, old, new] = pair else {
            bail!("--pair takes LABEL OLD NEW");
        };
        let old = Snapshot::load(&ranker, Path::new(old))?;
        let new = Snapshot::load(&ranker, Path::new(new))?;
        for &clock in clocks {
            for &places in decimals {
                let old_variant = old.variant(&ranker, clock, places, zone)?;
                let new_variant = new.variant(&ranker, clock, places, zone)?;
                let (same, identical) = unchanged(&old, &old_variant, &new, &new_variant);
                let setting = recommended(old_variant.text.len());
                let built = build(&old_variant.text, &new_variant.text, setting, 1)?
                    .map_err(|why| anyhow!("a client refuses the recommended setting: {why}"))?;
                let (limit, _) = patch_from_limit(zstd_cli, &old_variant.text, &new_variant.text)?;
                let (gzip, zstd) = plain_bodies(&new_variant.text)?;
                let f = fidelity(
                    &new.document,
                    &new.exact,
                    &new_variant.order,
                    &new_variant.scores,
                );
                let dcz = built.dcz_bytes as f64;
                println!(
                    "| {label} | {} | {places} | {identical} of {same} | {} | {limit} | {gzip} \
                     | {zstd} | {:.1} \
                     | {:.1} | {:.2} | {:.4} | {:.0} % | {:.1} % | {} | {:.4} |",
                    clock
                        .to_possible_value()
                        .map_or("?".into(), |v| v.get_name().to_owned()),
                    built.dcz_bytes,
                    gzip as f64 / dcz,
                    zstd as f64 / dcz,
                    dcz / limit as f64,
                    f.kendall_tau,
                    f.top100 * 100.0,
                    f.top1000 * 100.0,
                    f.top100_shift,
                    f.max_score_error,
                );
            }
        }
        first_new.get_or_insert((label.clone(), new));
    }
    if let Some((label, new)) = first_new.filter(|_| !offsets.is_empty()) {
        offset_fidelity(&ranker, &label, &new, offsets)?;
    }
    Ok(())
}

/// Fidelity of `snapshot` (six decimals) with the clock-dependent features read `offsets`
/// hours off its refresh time: what anchoring them costs, whatever the anchor.
fn offset_fidelity(
    ranker: &Ranker,
    label: &str,
    snapshot: &Snapshot,
    offsets: &[i64],
) -> anyhow::Result<()> {
    let refresh = snapshot.document.generated_at;
    println!(
        "\nclock read off the refresh time ({label}, later document, refreshed {refresh}; \
         6 decimals)\n"
    );
    println!(
        "| offset (h) | Kendall τ | top-100 | top-1000 | top-100 max shift | max score error |"
    );
    println!("|---|---|---|---|---|---|");
    for &hours in offsets {
        let at = refresh + chrono::TimeDelta::hours(hours);
        let raw = model_scores(ranker, &snapshot.document, &snapshot.updated_at, at)?;
        let scores: Vec<f64> = raw.iter().map(|&s| rounded(s, 6)).collect();
        let order = snapshot.document.ranked(&scores);
        let f = fidelity(&snapshot.document, &snapshot.exact, &order, &scores);
        println!(
            "| {hours:+} | {:.4} | {:.0} % | {:.1} % | {} | {:.4} |",
            f.kendall_tau,
            f.top100 * 100.0,
            f.top1000 * 100.0,
            f.top100_shift,
            f.max_score_error
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inversions_count_discordant_pairs() {
        assert_eq!(inversions(&mut [0, 1, 2, 3]), 0);
        assert_eq!(inversions(&mut [3, 2, 1, 0]), 6);
        assert_eq!(inversions(&mut [1, 0, 3, 2]), 2);
    }

    #[test]
    fn a_document_renders_back_to_its_bytes() -> anyhow::Result<()> {
        let text = concat!(
            r#"{"version":"1-a","generated_at":"2026-11-30T15:00:00.000Z","count":2,"ofertas":["#,
            r#"{"id":2,"category":"Moda","price":"1.00","discount_pct":null,"image_url":null,"#,
            r#""ends_at":null,"title":"a } \" {","score":0.5},"#,
            r#"{"id":1,"category":"Moda","price":"2.00","discount_pct":10.0,"image_url":"x","#,
            r#""ends_at":"2026-12-01T04:59:00Z","score":0.25}]}"#
        )
        .as_bytes();
        let document = Document::parse(text.to_vec())?;
        assert_eq!(document.offers.len(), 2);
        let scores = [0.5, 0.25];
        assert_eq!(document.render(&document.ranked(&scores), &scores), text);
        Ok(())
    }

    #[test]
    fn a_one_shot_delta_is_the_stream_encoder_s_and_decodes() -> anyhow::Result<()> {
        let old: Vec<u8> = (0..20_000u32)
            .flat_map(|i| format!("{{\"id\":{i},\"score\":0.{}}},", i % 97).into_bytes())
            .collect();
        let mut new = old.clone();
        new[1000] = b'x';
        new.extend_from_slice(b"{\"id\":-1}");
        let setting = recommended(old.len());
        let (frame, _) = delta_frame(&old, &new, setting)?;
        let mut stream =
            zstd::stream::write::Encoder::with_ref_prefix(Vec::new(), setting.level, &old)?;
        if let Some(log) = setting.window_log {
            stream.window_log(log)?;
        }
        stream.long_distance_matching(setting.ldm)?;
        stream.include_checksum(true)?;
        stream.set_pledged_src_size(Some(new.len() as u64))?;
        stream.write_all(&new)?;
        assert_eq!(stream.finish()?, frame);
        assert_eq!(apply_delta(&old, &frame)?, new);
        assert!(frame.len() < 200, "{} bytes", frame.len());
        Ok(())
    }

    #[test]
    fn large_dictionaries_get_the_fast_setting() {
        assert_eq!(recommended(2_600_000).level, 19);
        assert_eq!(recommended(37_000_000).level, 12);
        assert_eq!(recommended(37_000_000).window_log, Some(26));
    }

    #[test]
    fn window_follows_rfc_9842() {
        assert_eq!(max_window_log(2_600_000), 23);
        assert_eq!(max_window_log(10 << 20), 24);
        assert_eq!(max_window_log(1 << 30), 27);
    }
}

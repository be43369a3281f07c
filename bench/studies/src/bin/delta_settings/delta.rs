//! Building a `dcz` delta and checking it as a client would: the zstd settings and the
//! recommended one, the frame with the earlier document as prefix, its decoding in the
//! window RFC 9842 allows, the build timed (wall clock and CPU), and what a delta is set
//! against: the refresher's plain bodies and the `zstd --patch-from` limit.

use std::fmt;
use std::io::{self, Read as _, Write as _};
use std::process::Command as Process;
use std::time::Instant;

use anyhow::{Context as _, ensure};
use zstd::zstd_safe::{self, CParameter};

use refresh_service::pipeline::encode::{GZIP_LEVEL, ZSTD_LEVEL};

/// One way of building a delta.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Setting {
    pub(crate) level: i32,
    /// `None`: the level's default (what zstd picks for the sizes pledged).
    pub(crate) window_log: Option<u32>,
    /// Long-distance matching; off leaves zstd's automatic choice, which stays off below a
    /// window log of 27.
    pub(crate) ldm: bool,
}

/// Dictionaries up to this size get the thorough setting; larger ones the fast one.
const THOROUGH_UP_TO: usize = 8 << 20;

/// The setting `docs/delta-findings.md` recommends for a dictionary of `len` bytes, and
/// `dcz` builds with by default: the largest window every client accepts for that
/// dictionary, with level 19 and long-distance matching up to [`THOROUGH_UP_TO`] (at the
/// `--patch-from` limit for 7,000 offers), level 12 without it beyond (level 19 took 33 s
/// of CPU per delta for 100,000 offers, level 12 a third of a second).
pub(crate) fn recommended(len: usize) -> Setting {
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
pub(crate) fn max_window_log(len: usize) -> u32 {
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
pub(crate) struct Built {
    /// `dcz` body bytes: header and frame.
    pub(crate) dcz_bytes: usize,
    /// Median build time, wall clock.
    pub(crate) ms: f64,
    /// Median CPU time of the building thread: what the build costs a shared machine,
    /// however busy it is (`NaN` where `/proc/thread-self/schedstat` is unreadable).
    pub(crate) cpu_ms: f64,
    /// Memory of the compression context (tables, window), MiB.
    pub(crate) context_mib: f64,
    pub(crate) frame: Vec<u8>,
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
pub(crate) fn build(
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
pub(crate) fn plain_bodies(document: &[u8]) -> io::Result<(usize, usize)> {
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
pub(crate) fn patch_from_limit(
    zstd_cli: &str,
    old: &[u8],
    new: &[u8],
) -> anyhow::Result<(usize, f64)> {
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

#[cfg(test)]
mod tests {
    use super::*;

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

//! The `dcz` and `settings` subcommands: the delta to a document from each base with one
//! setting (TSV, what `bench/delta.sh` reads), and the grid of settings on one pair next
//! to the plain bodies and the `--patch-from` limit (Markdown).

use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow, ensure};

use refresh_service::pipeline::encode::{GZIP_LEVEL, ZSTD_LEVEL};

use crate::delta::{Setting, build, max_window_log, patch_from_limit, plain_bodies};
use crate::document::read;

pub(crate) fn dcz(
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

pub(crate) fn settings_grid(
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

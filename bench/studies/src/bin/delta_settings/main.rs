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
//!   (`refresh_service::pipeline::rank`) with the score rounded to fewer decimals and the
//!   clock-dependent features evaluated at an anchored time; for each variant the delta
//!   and how far its order is from the exact model order.

mod delta;
mod document;
mod fidelity;
mod rerank;
mod settings;
mod stability;

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

use refresh_service::settings::RefreshSettings;

use crate::delta::{Setting, recommended};
use crate::document::read;
use crate::rerank::{Clock, Snapshot, ranker_and_zone, signals};
use crate::settings::{dcz, settings_grid};
use crate::stability::stability;

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
                        Snapshot::load(&ranker, path, zone)?.variant(&ranker, clock, decimals, zone)
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

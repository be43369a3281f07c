//! End-to-end latency of a refresh through Redis, measured from outside the services (run
//! by `bench/refresh-e2e.sh` and `bench/invalidation.sh`).
//!
//! It drives a running `refresh-service run` the way an operator does. Before every run
//! it changes one live offer in PostgreSQL (`DATABASE_URL`), so every refresh publishes a
//! new snapshot; then it publishes a refresh request on `P:refresh` and watches `P:events`
//! (`REDIS_URL`, `OFERTASWS_PREFIX`), subscribed once before the first run. All times are
//! `Instant`s of this one process, so they share a monotonic clock.
//!
//! - `refresh`: from just before the `PUBLISH` of the request to the receipt of
//!   `snapshot.updated`, next to the outcome's in-process `execution_time_ms`.
//! - `invalidation --replica URL …`: when each api-service replica first answers `HEAD`
//!   with the new ETag. One task per replica sends `HEAD` back to back on one keep-alive
//!   connection, from before the request is published until that replica has switched;
//!   the switch happened between the sending of the last old-ETag poll and the receipt of
//!   the first new-ETag answer, and the width of that window is the resolution, printed
//!   here. The times are also written as wall-clock microseconds, so that
//!   `bench/invalidation.sh` can measure them from the refresher's own log timestamp of
//!   the `snapshot.updated` publish rather than from this process's receipt of it.
//!
//! Writes one CSV row per run (per run and replica for `invalidation`) to `--out` and
//! prints a summary.

mod bench;
mod invalidation;
mod refresh;
mod stats;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use shared::config::RedisSettings;

use crate::bench::Bench;
use crate::invalidation::invalidation_bench;
use crate::refresh::refresh_bench;

/// How long one run may take before the benchmark gives up.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    redis: RedisSettings,
    /// PostgreSQL database whose offers the refresher reads.
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    /// Measured runs.
    #[arg(long, default_value_t = 20)]
    runs: usize,
    /// Quiet time between runs, so each starts from an idle system.
    #[arg(long, default_value_t = 300)]
    pause_ms: u64,
    /// Before the next run, wait up to this long (ms) for the refresher to have built the
    /// deltas of the version just published: in production refreshes are hours apart, so
    /// a refresh never shares the cores with the previous one's delta build. 0: do not
    /// wait (a refresher that builds no deltas).
    #[arg(long, default_value_t = 30_000)]
    deltas_timeout_ms: u64,
    /// CSV file that receives the raw measurements.
    #[arg(long)]
    out: PathBuf,
    #[command(subcommand)]
    probe: Probe,
}

#[derive(Subcommand)]
enum Probe {
    /// Refresh request published → `snapshot.updated` received.
    Refresh,
    /// `snapshot.updated` received → each replica serving the new ETag.
    Invalidation {
        /// `GET /api/v4/ofertasws` URL of one replica; repeat for each replica.
        #[arg(long = "replica", required = true)]
        replicas: Vec<String>,
        /// Bearer token the replicas accept.
        #[arg(long, env = "BENCH_TOKEN", hide_env_values = true)]
        token: String,
        /// Pause between two polls of one replica (0: back to back).
        #[arg(long, default_value_t = 0)]
        poll_gap_us: u64,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut bench = Bench::connect(&args).await?;
    let csv = match &args.probe {
        Probe::Refresh => refresh_bench(&mut bench, &args).await?,
        Probe::Invalidation {
            replicas,
            token,
            poll_gap_us,
        } => {
            invalidation_bench(
                &mut bench,
                &args,
                replicas,
                token,
                Duration::from_micros(*poll_gap_us),
            )
            .await?
        }
    };
    std::fs::write(&args.out, csv)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    println!("raw: {}", args.out.display());
    Ok(())
}

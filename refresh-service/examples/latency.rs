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

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail, ensure};
use clap::{Parser, Subcommand};
use fred::clients::{Client, SubscriberClient};
use fred::prelude::{EventInterface, PubsubInterface};
use sqlx::Connection as _;
use tokio::sync::{broadcast, oneshot};

use shared::config::RedisSettings;
use shared::events::{Event, RefreshRequest, RefreshStatus, SnapshotUpdated};
use shared::keys::Keys;

/// Changes one live offer, a different one each run, so the next refresh publishes.
const CHANGE_OFFER: &str = "update ofertas set title = title || '.', updated_at = now() \
    where id = (select id from ofertas \
                where active and starts_at <= now() and (ends_at is null or ends_at > now()) \
                order by id offset ($1 * 37) % 5000 limit 1)";

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

/// Connections to PostgreSQL and Redis, and the events seen so far.
struct Bench {
    keys: Keys,
    db: sqlx::PgConnection,
    redis: Client,
    events: broadcast::Receiver<fred::types::Message>,
    _subscriber: SubscriberClient,
}

/// What one refresh request produced.
struct Refreshed {
    /// When the request was about to be published.
    requested: Instant,
    /// When `snapshot.updated` was received.
    updated_at: Instant,
    updated: SnapshotUpdated,
    execution_time_ms: u64,
}

impl Bench {
    async fn connect(args: &Args) -> anyhow::Result<Self> {
        let keys = Keys::new(&args.redis.prefix);
        let db = sqlx::PgConnection::connect(&args.database_url)
            .await
            .context("cannot connect to DATABASE_URL")?;
        let redis = shared::redis::client(&args.redis, shared::redis::Start::FailFast)?;
        shared::redis::connect(&redis)
            .await
            .context("cannot connect to Redis")?;
        let subscriber = shared::redis::subscriber(&args.redis, shared::redis::Start::FailFast)?;
        shared::redis::connect(&subscriber)
            .await
            .context("cannot connect to Redis")?;
        let events = subscriber.message_rx();
        subscriber
            .subscribe(keys.events_channel())
            .await
            .context("cannot subscribe to the events channel")?;
        Ok(Self {
            keys,
            db,
            redis,
            events,
            _subscriber: subscriber,
        })
    }

    /// Changes an offer, publishes a refresh request and waits for both the new snapshot's
    /// `snapshot.updated` and the request's outcome, which must be `success`.
    async fn refresh(&mut self, run: usize) -> anyhow::Result<Refreshed> {
        let changed = sqlx::query(CHANGE_OFFER)
            .bind(i64::try_from(run)?)
            .execute(&mut self.db)
            .await
            .context("cannot change an offer")?;
        ensure!(changed.rows_affected() == 1, "no live offer to change");
        let request_id = format!("bench-{run}-{}", uuid::Uuid::new_v4());
        let request = serde_json::to_string(&RefreshRequest {
            request_id: Some(request_id.clone()),
            reason: Some("latency benchmark".into()),
            requested_by: Some("refresh-service/examples/latency".into()),
            trigger: Some("bench".into()),
            traceparent: None,
        })?;
        let requested = Instant::now();
        let receivers: i64 = self
            .redis
            .publish(self.keys.refresh_channel(), request)
            .await
            .context("cannot publish the refresh request")?;
        ensure!(
            receivers > 0,
            "no refresh-service subscribed to the refresh channel"
        );

        let (mut updated, mut outcome) = (None, None);
        tokio::time::timeout(RUN_TIMEOUT, async {
            while updated.is_none() || outcome.is_none() {
                let message = match self.events.recv().await {
                    Ok(message) => message,
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => bail!("Redis connection closed"),
                };
                let received = Instant::now();
                let Ok(event) =
                    serde_json::from_slice::<Event>(message.value.as_bytes().unwrap_or_default())
                else {
                    continue;
                };
                match &event {
                    Event::SnapshotUpdated(snapshot) => {
                        updated = Some((received, snapshot.clone()));
                    }
                    _ => {
                        if let Some(o) = event
                            .outcome()
                            .filter(|o| o.request_id.as_deref() == Some(&request_id))
                        {
                            ensure!(
                                o.status == RefreshStatus::Success,
                                "run {run}: refresh ended {:?} ({})",
                                o.status,
                                o.error.as_deref().unwrap_or("no error")
                            );
                            outcome = Some(o.execution_time_ms.unwrap_or_default());
                        }
                    }
                }
            }
            Ok::<(), anyhow::Error>(())
        })
        .await
        .with_context(|| format!("run {run}: no outcome within {RUN_TIMEOUT:?}"))??;
        let ((updated_at, updated), Some(execution_time_ms)) =
            (updated.context("no snapshot.updated")?, outcome)
        else {
            bail!("run {run}: no outcome");
        };
        Ok(Refreshed {
            requested,
            updated_at,
            updated,
            execution_time_ms,
        })
    }
}

/// Median (mean of the two middle values for an even count) and nearest-rank percentile.
fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted
        .get(rank.clamp(1, sorted.len().max(1)) - 1)
        .copied()
        .unwrap_or(f64::NAN)
}

fn sorted(mut values: Vec<f64>) -> Vec<f64> {
    values.sort_by(f64::total_cmp);
    values
}

fn ms(from: Instant, to: Instant) -> f64 {
    if to >= from {
        to.duration_since(from).as_secs_f64() * 1000.0
    } else {
        -(from.duration_since(to).as_secs_f64() * 1000.0)
    }
}

async fn refresh_bench(bench: &mut Bench, args: &Args) -> anyhow::Result<String> {
    let mut csv = String::from("run,end_to_end_ms,execution_time_ms,outside_ms,version\n");
    let (mut total, mut inside) = (Vec::new(), Vec::new());
    for run in 1..=args.runs {
        let r = bench.refresh(run).await?;
        let e2e = ms(r.requested, r.updated_at);
        writeln!(
            csv,
            "{run},{e2e:.3},{},{:.3},{}",
            r.execution_time_ms,
            e2e - r.execution_time_ms as f64,
            r.updated.version
        )?;
        total.push(e2e);
        inside.push(r.execution_time_ms as f64);
        tokio::time::sleep(Duration::from_millis(args.pause_ms)).await;
    }
    let (total, inside) = (sorted(total), sorted(inside));
    println!(
        "refresh end to end (PUBLISH {} → snapshot.updated received), {} runs: \
         median {:.1} ms, p90 {:.1} ms, min {:.1} ms, max {:.1} ms",
        bench.keys.refresh_channel(),
        args.runs,
        median(&total),
        percentile(&total, 90.0),
        total[0],
        total[total.len() - 1]
    );
    println!(
        "  of which inside the refresh (outcome's execution_time_ms, lock to switch): \
         median {} ms, p90 {} ms",
        median(&inside),
        percentile(&inside, 90.0)
    );
    Ok(csv)
}

/// One replica's polls during one run.
#[derive(Default)]
struct Polled {
    /// Sending of the last poll that still returned the old ETag.
    last_old_sent: Option<Instant>,
    /// Receipt of the first poll that returned another ETag, and that ETag.
    first_new: Option<(Instant, String)>,
    /// Round-trip time of every poll, in µs.
    round_trips_us: Vec<f64>,
}

/// Reads the ETag `url` serves, says so on `ready`, then polls it with `HEAD` until the
/// ETag changes.
async fn poll_until_changed(
    client: reqwest::Client,
    url: String,
    token: String,
    gap: Duration,
    ready: oneshot::Sender<()>,
) -> anyhow::Result<Polled> {
    let old = head_etag(&client, &url, &token).await?;
    let _ = ready.send(());
    let mut polled = Polled::default();
    let deadline = Instant::now() + RUN_TIMEOUT;
    while Instant::now() < deadline {
        let sent = Instant::now();
        let etag = head_etag(&client, &url, &token).await?;
        let received = Instant::now();
        polled
            .round_trips_us
            .push(received.duration_since(sent).as_secs_f64() * 1e6);
        if etag == old {
            polled.last_old_sent = Some(sent);
        } else {
            polled.first_new = Some((received, etag));
            return Ok(polled);
        }
        if !gap.is_zero() {
            tokio::time::sleep(gap).await;
        }
    }
    bail!("{url} still serves {old} after {RUN_TIMEOUT:?}")
}

async fn head_etag(client: &reqwest::Client, url: &str, token: &str) -> anyhow::Result<String> {
    let response = client
        .head(url)
        .bearer_auth(token)
        .header("Accept-Encoding", "gzip")
        .send()
        .await
        .with_context(|| format!("HEAD {url}"))?;
    ensure!(
        response.status() == reqwest::StatusCode::OK,
        "HEAD {url}: {}",
        response.status()
    );
    Ok(response
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned())
}

/// A runtime that may be dropped from async code: it stops without waiting for its tasks.
struct Background(Option<tokio::runtime::Runtime>);

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

async fn invalidation_bench(
    bench: &mut Bench,
    args: &Args,
    replicas: &[String],
    token: &str,
    gap: Duration,
) -> anyhow::Result<String> {
    // The pollers get a runtime (and threads) of their own, so their busy loops never delay
    // the receipt of `snapshot.updated` on this one; each opens its connection there.
    let polling = Background(Some(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?,
    ));
    let polling_handle = polling
        .0
        .as_ref()
        .context("no polling runtime")?
        .handle()
        .clone();
    let clients = replicas
        .iter()
        .map(|_| {
            reqwest::Client::builder()
                .no_proxy()
                .tcp_nodelay(true)
                .pool_max_idle_per_host(1)
                .build()
        })
        .collect::<Result<Vec<_>, _>>()?;
    // Wall-clock (Unix) times of the polls, to set against the services' log timestamps.
    let (base, base_unix_us) = (
        Instant::now(),
        SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs_f64() * 1e6,
    );
    let unix_us = |at: Instant| base_unix_us + ms(base, at) * 1000.0;
    let mut csv = String::from(
        "run,replica,version,first_new_unix_us,last_old_sent_unix_us,\
         after_receipt_ms,polls,median_round_trip_us\n",
    );
    let (mut windows, mut round_trips) = (Vec::new(), Vec::new());
    for run in 1..=args.runs {
        let mut pollers = Vec::new();
        for (client, url) in clients.iter().zip(replicas) {
            let (ready, started) = oneshot::channel();
            pollers.push(polling_handle.spawn(poll_until_changed(
                client.clone(),
                url.clone(),
                token.to_owned(),
                gap,
                ready,
            )));
            started.await.context("a poller failed before it started")?;
        }
        let refreshed = bench.refresh(run).await?;
        for (replica, poller) in pollers.into_iter().enumerate() {
            let polled = poller.await??;
            let (seen, etag) = polled
                .first_new
                .context("poller ended without a new ETag")?;
            let version = &refreshed.updated.version;
            ensure!(
                etag.contains(version.as_str()),
                "replica {replica} switched to {etag}, not to {version}"
            );
            let last_old = polled.last_old_sent.unwrap_or(seen);
            let rtts = sorted(polled.round_trips_us);
            writeln!(
                csv,
                "{run},{replica},{version},{:.0},{:.0},{:.3},{},{:.1}",
                unix_us(seen),
                unix_us(last_old),
                ms(refreshed.updated_at, seen),
                rtts.len(),
                median(&rtts),
            )?;
            windows.push(ms(last_old, seen));
            round_trips.extend(rtts);
        }
        tokio::time::sleep(Duration::from_millis(args.pause_ms)).await;
    }
    let (windows, round_trips) = (sorted(windows), sorted(round_trips));
    println!(
        "polling {} replicas through {} refreshes: HEAD round trip median {:.0} µs, p99 {:.0} µs \
         ({} polls, gap {} µs); switch window (last old-ETag poll sent → first new-ETag answer) \
         median {:.2} ms, p99 {:.2} ms",
        replicas.len(),
        args.runs,
        median(&round_trips),
        percentile(&round_trips, 99.0),
        round_trips.len(),
        gap.as_micros(),
        median(&windows),
        percentile(&windows, 99.0)
    );
    drop(polling);
    Ok(csv)
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

//! The `invalidation` probe: when each api-service replica first answers `HEAD` with the
//! new ETag, polled back to back on a runtime of its own, with the switch window (the
//! resolution) and wall-clock times to set against the services' logs.

use std::fmt::Write as _;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail, ensure};
use tokio::sync::oneshot;

use crate::bench::Bench;
use crate::stats::{median, ms, percentile, sorted};
use crate::{Args, RUN_TIMEOUT};

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

pub(crate) async fn invalidation_bench(
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

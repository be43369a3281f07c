//! Staying current: events, missed events, Redis outages.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use api_service::snapshot::sync::POLL_EVERY;

use crate::helpers::*;

/// Pause between two requests of the load (a steady ~200 requests a second).
const LOAD_PACE: Duration = Duration::from_millis(5);

#[tokio::test]
async fn two_instances_switch_within_a_second_of_snapshot_updated() {
    let prefix = TestPrefix::new();
    let writer = Writer::new(&prefix.0).await;
    let first = writer.publish(3, true).await;
    let spawned = Instant::now();
    let (a, b) = (spawn_api(&prefix.0).await, spawn_api(&prefix.0).await);
    // A replica serves its first snapshot from its first poll, which it makes once it is
    // subscribed to the events; its next poll comes POLL_EVERY later.
    for api in [&a, &b] {
        wait_for_version(api, &first.meta.version, Duration::from_secs(5)).await;
    }
    let second = writer.publish(4, true).await;
    let started = Instant::now();
    for api in [&a, &b] {
        wait_for_version(api, &second.meta.version, Duration::from_secs(1)).await;
    }
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(
        spawned.elapsed() < POLL_EVERY,
        "both switched {:?} after starting: a second poll could have found the snapshot, \
         so this run does not show that the event did it",
        spawned.elapsed()
    );
    for api in [&a, &b] {
        let response = http()
            .get(api.url("/api/v4/ofertasws"))
            .header("authorization", bearer(&user_token()))
            .send()
            .await
            .unwrap();
        assert_eq!(response.headers()["x-ofertas-count"], "4");
    }
}

#[tokio::test]
async fn a_missed_event_is_recovered_within_five_seconds() {
    let prefix = TestPrefix::new();
    let writer = Writer::new(&prefix.0).await;
    let first = writer.publish(3, false).await;
    let api = spawn_api(&prefix.0).await;
    wait_for_version(&api, &first.meta.version, Duration::from_secs(5)).await;
    let silent = writer.publish(5, false).await; // no snapshot.updated
    wait_for_version(&api, &silent.meta.version, Duration::from_secs(5)).await;
}

#[tokio::test]
async fn redis_outage_under_load_serves_the_held_snapshot_then_recovers() {
    let prefix = TestPrefix::new();
    let writer = Writer::new(&prefix.0).await;
    let first = writer.publish(3, true).await;
    let redis_addr = redis_url().trim_start_matches("redis://").parse().unwrap();
    let proxy = Proxy::start(redis_addr).await;
    let mut settings = settings(&prefix.0);
    settings.redis.redis_url = format!("redis://{}", proxy.addr);
    let api = Arc::new(spawn_api_with(settings).await);
    wait_for_version(&api, &first.meta.version, Duration::from_secs(5)).await;

    let stop = tokio_util::sync::CancellationToken::new();
    let served = Arc::new(AtomicUsize::new(0));
    let load = tokio::spawn({
        let (api, stop, served) = (api.clone(), stop.clone(), served.clone());
        async move {
            let client = http();
            let token = bearer(&user_token());
            let mut failures = Vec::new();
            while !stop.is_cancelled() {
                let response = client
                    .get(api.url("/api/v4/ofertasws"))
                    .header("authorization", &token)
                    .header("accept-encoding", "zstd")
                    .send()
                    .await;
                match response {
                    Ok(r) if r.status().is_success() => {
                        served.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) => failures.push(r.status().as_u16()),
                    Err(e) => failures.push(e.status().map_or(0, |s| s.as_u16())),
                }
                tokio::time::sleep(LOAD_PACE).await;
            }
            failures
        }
    });

    proxy.cut();
    let second = writer.publish(6, true).await; // published while the API cannot hear
    eventually(
        Duration::from_secs(15),
        "/health to report Redis down",
        || async {
            let health: Value = get_json(&api, "/health").await;
            health["redis"] == "down"
        },
    )
    .await;
    assert_eq!(api.current.get().unwrap().meta.version, first.meta.version);
    let during = served.load(Ordering::Relaxed);

    proxy.restore();
    wait_for_version(&api, &second.meta.version, Duration::from_secs(10)).await;
    stop.cancel();
    let failures = load.await.unwrap();
    assert!(
        failures.is_empty(),
        "non-2xx while a snapshot was held: {failures:?}"
    );
    assert!(during > 10, "requests flowed during the outage ({during})");
    let metrics = get_text(&api, "/metrics").await;
    assert!(
        metrics.contains("ofertasws_redis_reconnects_total"),
        "{metrics}"
    );
}

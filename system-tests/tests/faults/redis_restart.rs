//! Redis killed and restarted under load.

use std::time::{Duration, Instant};

use system_tests::observe::{Load, MetaBook};
use system_tests::servers::shared_cluster;
use system_tests::stack::{FIVE_SECONDS, REPLICAS, SETUP, Stack};
use system_tests::{eventually, until};

/// Bound for a replica to notice Redis is gone: its next poll (every 2 s) fails once its
/// command timeout (5 s) runs out.
const NOTICED_WITHIN: Duration = Duration::from_secs(15);
/// Bound, from Redis returning, for the daemon to subscribe to `P:refresh` again: its
/// client retries every 2 s at the most, then resubscribes.
const RESUBSCRIBED_WITHIN: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_and_restarted_under_load_serves_throughout_and_catches_up() {
    let stack = Stack::start(shared_cluster().await).await;
    let first = stack.current().await.unwrap();
    let book = MetaBook::new(&stack);
    let load = Load::start(&stack, &book);
    load.wait_for_requests(10).await;

    // SIGKILL: every connection drops at once, and the restarted server is empty (no
    // persistence), like a Redis pod replaced without a volume.
    stack.redis.kill();
    let killed = Instant::now();
    stack.change_offer(1).await;
    for replica in 0..REPLICAS {
        let what = format!("replica {replica} to report Redis down");
        eventually(NOTICED_WITHIN, &what, || async {
            stack.health(replica).await["redis"] == "down"
        })
        .await;
        assert_eq!(
            stack.health(replica).await["snapshot_version"],
            first.version.as_str(),
            "replica {replica} keeps the snapshot it holds"
        );
    }

    stack.redis.restart();
    let back = Instant::now();
    // The next snapshot, from a CronJob-style run: pub/sub is at-most-once, so a request
    // published before the daemon has resubscribed could be lost.
    let run = stack.once("after-restart").await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let second = run.outcome();
    assert_eq!(second.status.as_str(), "success", "{second:?}");
    let second = second.version.unwrap();
    assert_ne!(second, first.version);
    stack
        .wait_served(
            &second,
            back + FIVE_SECONDS,
            "within 5 s of Redis returning",
        )
        .await;
    println!(
        "both replicas served the next snapshot {:?} after Redis returned",
        back.elapsed()
    );

    // The daemon resubscribes to the refresh channel (the API answers 503 `no_refresher`
    // until then); then a request through the API is taken, and both replicas switch to
    // its snapshot. (Not `wait=true`: the outcome event can be lost while the API's own
    // event subscriber is still reconnecting, and the request would then wait its
    // timeout.)
    stack.change_offer(2).await;
    let within = RESUBSCRIBED_WITHIN.saturating_sub(back.elapsed());
    stack
        .wait_refresher_listening(within, "the daemon after Redis returned")
        .await;
    let (status, body) = stack.refresh_via_api(0, "?wait=false").await;
    assert_eq!(status, 202, "{body}");
    let third = until(SETUP, "the requested refresh to switch", || async {
        let current = stack.current().await.unwrap().version;
        (current != second).then_some(current)
    })
    .await;
    stack
        .wait_served(
            &third,
            Instant::now() + FIVE_SECONDS,
            "after an API refresh",
        )
        .await;

    let report = load.finish(&third).await;
    report.assert_all_served();
    for replica in 0..REPLICAS {
        let during = report.sent_between(replica, killed, back);
        assert!(
            during >= 10,
            "replica {replica}: {during} requests during the outage"
        );
        let health = stack.health(replica).await;
        assert_eq!(health["redis"], "up", "{health}");
        assert!(
            stack
                .metric(replica, "ofertasws_redis_reconnects_total")
                .await
                >= 1.0
        );
    }
    report.assert_served_in_order(&[&first.version, &second, &third]);
}

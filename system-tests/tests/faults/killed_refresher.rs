//! A refresher killed with SIGKILL in the middle of a refresh.

use std::time::{Duration, Instant};

use fred::prelude::KeysInterface;

use shared::events::RefreshStatus;

use system_tests::eventually;
use system_tests::observe::{Checker, Load, MetaBook, assert_one_refresh_at_a_time};
use system_tests::servers::shared_cluster;
use system_tests::stack::{FIVE_SECONDS, Stack};

/// How late after its expiry time Redis may still show the lock (it expires keys lazily
/// and in a background cycle, within milliseconds).
const LOCK_EXPIRY_SLACK: Duration = Duration::from_secs(2);
/// Bound for a started daemon to subscribe to `P:refresh`: it loads the ranking model and
/// connects first (a second or two here; more on a loaded machine).
const SUBSCRIBED_WITHIN: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresher_killed_mid_refresh_lets_its_lock_expire_and_never_leaves_a_partial_version() {
    let mut stack = Stack::start(shared_cluster().await).await;
    let first = stack.current().await.unwrap();
    let book = MetaBook::new(&stack);
    let (load, checker) = (Load::start(&stack, &book), Checker::start(&stack, &book));

    // The daemon takes the lock and blocks in its query; then it is killed.
    stack.change_offer(6).await;
    let blocker = stack.block_offers_table().await;
    assert_eq!(stack.publish(r#"{"request_id":"doomed"}"#).await, 1);
    let holder = stack.wait_for_lock().await;
    let pid = stack.refresher().pid();
    assert!(
        holder.contains(&format!(":{pid}:")),
        "lock held by {holder}"
    );
    let refresher = stack.refresher.as_mut().unwrap();
    refresher.kill().await;
    drop(blocker);
    let lock_key = stack.store.keys().refresh_lock();
    let ttl_ms: i64 = stack.store.client().pttl(&lock_key).await.unwrap();
    assert!(
        ttl_ms > 0,
        "the dead refresher's lock is still there ({ttl_ms} ms)"
    );
    let expires = Instant::now() + Duration::from_millis(ttl_ms as u64);

    // Until it expires, the lock keeps the next refresh out.
    stack.start_refresher().await;
    let restarted = Instant::now();
    let run = stack.once("while-locked").await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let skipped = run.outcome();
    assert_eq!(skipped.status, RefreshStatus::Skipped, "{skipped:?}");
    assert!(
        skipped.error.as_deref().unwrap().contains(&holder),
        "{skipped:?}"
    );

    // Nobody renews it: it expires by itself, and the next refresh runs.
    let expiry = expires.saturating_duration_since(Instant::now()) + LOCK_EXPIRY_SLACK;
    eventually(expiry, "the dead refresher's lock to expire", || async {
        stack.lock_holder().await.is_none()
    })
    .await;
    let within = SUBSCRIBED_WITHIN.saturating_sub(restarted.elapsed());
    stack
        .wait_refresher_listening(within, "the new daemon")
        .await;
    let second = stack.refreshed(1).await;
    stack
        .wait_served(
            &second,
            Instant::now() + FIVE_SECONDS,
            "after the next refresh",
        )
        .await;

    // No partial version was ever current, and none is left: only the two complete
    // versions have keys (their bodies, and the deltas built once each was current).
    let checks = checker.finish(&second).await;
    checks.assert_never_torn();
    assert_eq!(checks.versions, [first.version.clone(), second.clone()]);
    let pattern = format!("{}:{{snapshot}}:v:*", stack.prefix);
    let keys = stack.redis_cli(format!("KEYS {pattern}\n")).await;
    let (deltas, mut keys): (Vec<&str>, Vec<&str>) = keys
        .lines()
        .partition(|key| key.ends_with(":dcz") || key.ends_with(":deltas"));
    for key in deltas {
        assert!(
            [&first.version, &second]
                .iter()
                .any(|v| key.contains(&format!(":v:{v}:"))),
            "{key} belongs to no complete version"
        );
    }
    keys.sort_unstable();
    let mut expected: Vec<String> = [&first.version, &second]
        .iter()
        .flat_map(|v| {
            ["gzip", "meta", "zstd"].map(|k| format!("{}:{{snapshot}}:v:{v}:{k}", stack.prefix))
        })
        .collect();
    expected.sort_unstable();
    assert_eq!(keys, expected);

    let report = load.finish(&second).await;
    report.assert_all_served();
    report.assert_served_in_order(&[&first.version, &second]);
    let rows = stack.log_rows().await;
    let statuses: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r.trigger.as_str(), r.status.as_str()))
        .collect();
    assert_eq!(
        statuses,
        [
            ("startup", "success"),
            ("while-locked", "skipped"),
            ("api", "success")
        ],
        "the killed refresh left no row: {rows:?}"
    );
    assert_one_refresh_at_a_time(&rows);
}

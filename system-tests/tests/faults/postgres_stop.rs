//! PostgreSQL stopped during a refresh.

use std::time::{Duration, Instant};

use chrono::Utc;
use fred::prelude::SortedSetsInterface;

use shared::events::RefreshStatus;

use system_tests::observe::{
    Checker, Load, MetaBook, assert_one_refresh_at_a_time, parse_debug_duration,
};
use system_tests::servers::own_cluster;
use system_tests::stack::{FIVE_SECONDS, SETUP, Stack};
use system_tests::until;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_during_a_refresh_keeps_the_snapshot_retries_and_records_the_failure() {
    let stack = Stack::start(own_cluster().await).await;
    let first = stack.current().await.unwrap();
    let book = MetaBook::new(&stack);
    let (load, checker) = (Load::start(&stack, &book), Checker::start(&stack, &book));
    let events = stack.events().await;

    // A refresh in progress: blocked in its query by a lock on the offers table.
    stack.change_offer(1).await;
    let blocker = stack.block_offers_table().await;
    assert_eq!(stack.publish(r#"{"request_id":"pg-down"}"#).await, 1);
    stack.wait_for_lock().await;
    let cluster = stack.pg.clone();
    tokio::task::spawn_blocking(move || cluster.stop())
        .await
        .unwrap();
    // Taken once Postgres is down, not when the lock is seen: the refresher reads its
    // clock just after its SET returns, which on a busy machine can be after this
    // process already saw the key.
    let stopped_at = Utc::now();
    drop(blocker);

    // Retried with backoff while Postgres stays down, then failed; nothing the API
    // reads was touched.
    let failed = events.wait_outcome("pg-down").await;
    assert_eq!(failed.status, RefreshStatus::Failed, "{failed:?}");
    let retries: Vec<Duration> = stack
        .refresher()
        .logged("refresh failed; retrying")
        .iter()
        .map(|line| {
            let wait = line["fields"]["retry_in"].as_str().unwrap_or_default();
            parse_debug_duration(wait).unwrap_or_else(|| panic!("retry_in in {line}"))
        })
        .collect();
    assert!(retries.len() >= 2, "retries: {retries:?}");
    assert!(
        retries.windows(2).all(|w| w[0] <= w[1]) && retries[0] < *retries.last().unwrap(),
        "the waits between retries grow: {retries:?}"
    );
    let waited: Duration = retries.iter().sum();
    println!(
        "retried after {retries:?}; failed after {:?} ms",
        failed.execution_time_ms
    );
    assert!(
        failed.execution_time_ms.unwrap() >= waited.as_millis() as u64,
        "{failed:?} after waiting {waited:?}"
    );
    assert_eq!(stack.current().await.unwrap(), first);
    let listed: Vec<String> = stack
        .store
        .client()
        .zrange(
            stack.store.keys().versions(),
            0,
            -1,
            None,
            false,
            None,
            false,
        )
        .await
        .unwrap();
    assert_eq!(listed, std::slice::from_ref(&first.version));
    for replica in 0..2 {
        assert_eq!(stack.served_version(replica).await.unwrap(), first.version);
    }

    // Postgres returns: the failure is written to the refresh log without another
    // refresh having to run (the daemon retries unwritten rows every 10 s).
    let cluster = stack.pg.clone();
    tokio::task::spawn_blocking(move || cluster.start_again())
        .await
        .unwrap();
    let row = until(SETUP, "the failed row in the refresh log", || async {
        let rows = stack.log_rows().await;
        rows.into_iter()
            .find(|r| r.request_id.as_deref() == Some("pg-down"))
    })
    .await;
    assert_eq!(
        (row.status.as_str(), row.trigger.as_str()),
        ("failed", "ops")
    );
    assert!(row.executed_at < stopped_at, "{row:?}");
    assert!(
        !row.error.as_deref().unwrap_or_default().is_empty(),
        "{row:?}"
    );

    // The next refresh succeeds and every replica serves it.
    assert_eq!(stack.publish(r#"{"request_id":"pg-back"}"#).await, 1);
    let next = events.wait_outcome("pg-back").await;
    assert_eq!(next.status, RefreshStatus::Success, "{next:?}");
    let second = next.version.unwrap();
    stack
        .wait_served(&second, Instant::now() + FIVE_SECONDS, "after the refresh")
        .await;

    let checks = checker.finish(&second).await;
    checks.assert_never_torn();
    assert_eq!(checks.versions, [first.version.clone(), second.clone()]);
    let report = load.finish(&second).await;
    report.assert_all_served();
    report.assert_served_in_order(&[&first.version, &second]);
    let rows = stack.log_rows().await;
    let statuses: Vec<&str> = rows.iter().map(|r| r.status.as_str()).collect();
    assert_eq!(statuses, ["success", "failed", "success"], "{rows:?}");
    assert_one_refresh_at_a_time(&rows);
}

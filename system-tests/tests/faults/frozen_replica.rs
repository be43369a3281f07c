//! An API replica frozen (SIGSTOP) across a refresh, then resumed.

use std::time::Instant;

use system_tests::observe::{Load, MetaBook};
use system_tests::servers::shared_cluster;
use system_tests::stack::{FIVE_SECONDS, Stack};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_frozen_across_a_refresh_serves_the_new_snapshot_within_five_seconds() {
    let stack = Stack::start(shared_cluster().await).await;
    let first = stack.current().await.unwrap();
    let book = MetaBook::new(&stack);
    let load = Load::start(&stack, &book);
    load.wait_for_requests(5).await;

    let frozen = &stack.apis[1].service;
    frozen.signal("STOP");
    stack.change_offer(3).await;
    let second = stack.refreshed(0).await;
    stack
        .wait_replica_serves(0, &second, Instant::now() + FIVE_SECONDS, "the awake one")
        .await;

    frozen.signal("CONT");
    let resumed = Instant::now();
    stack
        .wait_replica_serves(1, &second, resumed + FIVE_SECONDS, "within 5 s of resuming")
        .await;
    println!(
        "the resumed replica served {second} after {:?}",
        resumed.elapsed()
    );

    // Requests sent to the frozen replica waited and were answered once it resumed.
    let report = load.finish(&second).await;
    report.assert_all_served();
    report.assert_served_in_order(&[&first.version, &second]);
}

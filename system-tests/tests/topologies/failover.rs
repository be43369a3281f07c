//! Failover under a steady GET load on every API replica: the primary holding the snapshot
//! keys is killed with SIGKILL and its replica promoted, on a Cluster and on a Sentinel
//! group; once with replication intact, once after cutting it, so that the promoted
//! replica lacks the last switch the replicas already serve.

use std::time::{Duration, Instant};

use shared::snapshot::SnapshotMeta;

use crate::blocking;
use crate::contract::replication_of;
use system_tests::observe::{Checker, Load, MetaBook};
use system_tests::servers::redis_cluster::RedisCluster;
use system_tests::servers::redis_sentinel::SentinelGroup;
use system_tests::servers::redis_server::cut_replication;
use system_tests::servers::{Topology, shared_cluster};
use system_tests::stack::{FIVE_SECONDS, Stack};
use system_tests::until;

/// The contract's bound, from the promotion, for every replica to serve one version.
const TEN_SECONDS: Duration = Duration::from_secs(10);

async fn on_cluster() -> Stack {
    Stack::start_on(shared_cluster().await, |scratch| {
        Topology::Cluster(RedisCluster::start(scratch))
    })
    .await
}

async fn on_sentinel() -> Stack {
    Stack::start_on(shared_cluster().await, |scratch| {
        Topology::Sentinel(SentinelGroup::start(scratch))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_failover_under_load_serves_throughout() {
    failover_under_load(on_cluster().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sentinel_failover_under_load_serves_throughout() {
    failover_under_load(on_sentinel().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_failover_losing_the_last_switch_ends_on_one_version() {
    failover_losing_the_last_switch(on_cluster().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sentinel_failover_losing_the_last_switch_ends_on_one_version() {
    failover_losing_the_last_switch(on_sentinel().await).await;
}

/// Kills the primary holding the snapshot keys; returns when its replica said it was
/// primary.
fn kill_snapshot_primary(stack: &Stack) -> Instant {
    let key = stack.store.keys().current();
    blocking(|| {
        let (primary, replica) = stack.redis.primary_and_replica_for(&key);
        primary.kill();
        let promoted = stack.redis.wait_promoted(replica);
        println!("replica on port {} promoted", replica.port);
        promoted
    })
}

/// The current snapshot as the new primary has it, once the store's client reaches it.
async fn current_after_failover(stack: &Stack, promoted: Instant) -> SnapshotMeta {
    let within = TEN_SECONDS.saturating_sub(promoted.elapsed());
    until(
        within,
        "the store's client to reach the new primary",
        || async { stack.store.current_meta().await.ok().flatten() },
    )
    .await
}

/// A refresh through the API once the refresher listens again (the API answers 503
/// `no_refresher` until then, which is why it is not asked before); returns the version
/// it published.
async fn refresh_after_failover(stack: &Stack, promoted: Instant) -> SnapshotMeta {
    let within = TEN_SECONDS.saturating_sub(promoted.elapsed());
    stack
        .wait_refresher_listening(within, "resubscribed after the promotion")
        .await;
    let version = stack.refreshed(0).await;
    println!(
        "a refresh succeeded {:?} after the promotion",
        promoted.elapsed()
    );
    stack
        .store
        .version_meta(&version)
        .await
        .expect("metadata readable")
        .expect("the version is stored")
}

async fn failover_under_load(mut stack: Stack) {
    // The failover covers the refresher's resubscription too: restarted until its
    // subscription is on the primary about to be killed.
    let key = stack.store.keys().current();
    let primary = blocking(|| stack.redis.primary_and_replica_for(&key).0.port);
    stack
        .refresher_subscribed_where(|port| port == primary)
        .await;
    let first = stack.current().await.expect("start-up snapshot");
    let book = MetaBook::new(&stack);
    let load = Load::start(&stack, &book);
    load.wait_for_requests(5).await;

    let promoted = kill_snapshot_primary(&stack);
    let current = current_after_failover(&stack, promoted).await;
    assert_eq!(
        current.version, first.version,
        "the switch was on the replica"
    );
    stack
        .wait_served(
            &current.version,
            promoted + TEN_SECONDS,
            "after the promotion",
        )
        .await;

    stack.change_offer(1).await;
    let second = refresh_after_failover(&stack, promoted).await;
    stack
        .wait_served(
            &second.version,
            Instant::now() + FIVE_SECONDS,
            "next refresh",
        )
        .await;
    println!(
        "every replica served {} {:?} after the promotion",
        second.version,
        promoted.elapsed()
    );
    assert_eq!(stack.refresh_subscribers().await, 1, "resubscribed once");
    let report = load.finish(&second.version).await;
    report.assert_all_served();
    report.assert_served_in_order(&[&first.version, &second.version]);
}

async fn failover_losing_the_last_switch(stack: Stack) {
    let first = stack.current().await.expect("start-up snapshot");
    let book = MetaBook::new(&stack);
    let load = Load::start(&stack, &book);
    // Reads every current snapshot while the old primary lives, so the load can check
    // bodies of the version about to be lost against its metadata afterwards.
    let checker = Checker::start(&stack, &book);
    load.wait_for_requests(5).await;

    let key = stack.store.keys().current();
    blocking(|| cut_replication(stack.redis.primary_and_replica_for(&key).0));
    stack.change_offer(1).await;
    let lost = stack.refreshed(0).await;
    assert_eq!(
        replication_of(&stack, &lost),
        "no_replica",
        "replication was cut"
    );
    let lost = stack
        .store
        .version_meta(&lost)
        .await
        .expect("metadata readable")
        .expect("the switch happened on the old primary");
    stack
        .wait_served(
            &lost.version,
            Instant::now() + FIVE_SECONDS,
            "before the failover",
        )
        .await;
    checker.finish(&lost.version).await.assert_never_torn();

    let promoted = kill_snapshot_primary(&stack);
    let current = current_after_failover(&stack, promoted).await;
    assert_eq!(
        current.version, first.version,
        "the promoted replica should lack the switch to {}",
        lost.version
    );
    stack
        .wait_served(&first.version, promoted + TEN_SECONDS, "one version again")
        .await;
    println!(
        "every replica serves {} again {:?} after the promotion",
        first.version,
        promoted.elapsed()
    );

    // The next refresh publishes the same offers as the lost version, under a version id
    // never handed out before.
    let next = refresh_after_failover(&stack, promoted).await;
    assert_eq!(next.content_hash, lost.content_hash);
    assert!(
        next.seq > lost.seq && next.version != lost.version,
        "{} reuses the lost {}'s sequence",
        next.version,
        lost.version
    );
    stack
        .wait_served(&next.version, Instant::now() + FIVE_SECONDS, "next refresh")
        .await;
    let report = load.finish(&next.version).await;
    report.assert_all_served();
    report.assert_served_in_order(&[&first.version, &lost.version, &first.version, &next.version]);
}

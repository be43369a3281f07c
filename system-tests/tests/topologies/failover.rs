//! Failover under a steady GET load on every API replica: the primary holding the snapshot
//! keys is killed with SIGKILL and its replica promoted, on a Cluster and on a Sentinel
//! group; once with replication intact, once after cutting it, so that the promoted
//! replica lacks the last switch the replicas already serve.

use std::time::{Duration, Instant};

use shared::snapshot::SnapshotMeta;

use crate::blocking;
use crate::contract::{refreshed, replication_of};
use system_tests::observe::{Checker, Load, MetaBook};
use system_tests::servers::redis_cluster::RedisCluster;
use system_tests::servers::redis_sentinel::SentinelGroup;
use system_tests::servers::redis_server::cut_replication;
use system_tests::servers::{Topology, shared_cluster};
use system_tests::stack::{FIVE_SECONDS, SETUP, Stack};

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
async fn current_after_failover(stack: &Stack) -> SnapshotMeta {
    let deadline = Instant::now() + SETUP;
    loop {
        if let Ok(Some(meta)) = stack.store.current_meta().await {
            return meta;
        }
        assert!(Instant::now() < deadline, "the new primary never answered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A refresh through the API once the refresher listens again (503 until then); returns
/// the version it published.
async fn refresh_after_failover(stack: &Stack, promoted: Instant) -> SnapshotMeta {
    let deadline = Instant::now() + SETUP;
    loop {
        let (status, body) = stack.refresh_via_api(0, "").await;
        if status == 200 && body["status"] == "success" {
            println!(
                "a refresh succeeded {:?} after the promotion",
                promoted.elapsed()
            );
            let version = body["version"].as_str().expect("a version");
            return stack
                .store
                .version_meta(version)
                .await
                .expect("metadata readable")
                .expect("the version is stored");
        }
        assert!(
            status == 503 && Instant::now() < deadline,
            "{status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Subscribers of `channel` on the primary listening on `port`, and on all of them.
fn subscribers(stack: &Stack, channel: &str, port: u16) -> (u64, u64) {
    blocking(|| {
        let counts: Vec<(u16, u64)> = stack
            .redis
            .primaries()
            .iter()
            .map(|p| {
                let reply = p.cli(&["PUBSUB", "NUMSUB", channel]);
                (
                    p.port,
                    reply
                        .lines()
                        .nth(1)
                        .and_then(|n| n.trim().parse().ok())
                        .unwrap_or(0),
                )
            })
            .collect();
        let on_port = counts
            .iter()
            .filter(|(p, _)| *p == port)
            .map(|(_, n)| n)
            .sum();
        (on_port, counts.iter().map(|(_, n)| n).sum())
    })
}

/// Restarts the refresher until its subscription to `P:refresh` is on the primary about
/// to be killed (fred subscribes on a node derived from its client id), so that the
/// failover always covers its resubscription.
async fn refresher_subscribed_on(stack: &mut Stack, port: u16) {
    let channel = stack.store.keys().refresh_channel();
    for restarts in 0..30 {
        let deadline = Instant::now() + SETUP;
        let (here, anywhere) = loop {
            let counts = subscribers(stack, &channel, port);
            if counts.1 == 1 {
                break counts;
            }
            assert!(Instant::now() < deadline, "the refresher never subscribed");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        if here == anywhere {
            println!("the refresher listens on the snapshot primary after {restarts} restarts");
            return;
        }
        if let Some(mut old) = stack.refresher.take() {
            old.kill().await;
        }
        stack.start_refresher().await;
    }
    panic!("the refresher never subscribed on port {port}");
}

async fn failover_under_load(mut stack: Stack) {
    let key = stack.store.keys().current();
    let primary = blocking(|| stack.redis.primary_and_replica_for(&key).0.port);
    refresher_subscribed_on(&mut stack, primary).await;
    let first = stack.current().await.expect("start-up snapshot");
    let book = MetaBook::new(&stack);
    let load = Load::start(&stack, &book);
    load.wait_for_requests(5).await;

    let promoted = kill_snapshot_primary(&stack);
    let current = current_after_failover(&stack).await;
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
    let channel = stack.store.keys().refresh_channel();
    assert_eq!(subscribers(&stack, &channel, 0).1, 1, "resubscribed once");
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
    let lost = refreshed(&stack).await;
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
    let current = current_after_failover(&stack).await;
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

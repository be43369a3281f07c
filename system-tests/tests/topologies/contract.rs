//! The contract on a Cluster and on a Sentinel group, in one deployment each: the start-up
//! snapshot, (on a Cluster) requests answered by a refresher subscribed on another node,
//! ops requests published on every primary, refreshes through every API replica,
//! `trigger --wait`, invalidation, the switch waiting for a replica, a frozen replica
//! catching up, two concurrent `once`, `versions`/`rollback`, and `no_refresher` once the
//! refresher is really gone.

use std::time::Instant;

use shared::events::RefreshStatus;

use crate::{blocking, cross_node, replication};
use system_tests::servers::redis_cluster::RedisCluster;
use system_tests::servers::redis_sentinel::SentinelGroup;
use system_tests::servers::{Topology, shared_cluster};
use system_tests::stack::{FIVE_SECONDS, REPLICAS, SETUP, Stack};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_holds_the_contract() {
    let mut stack = Stack::start_on(shared_cluster().await, |scratch| {
        Topology::Cluster(RedisCluster::start(scratch))
    })
    .await;
    snapshot_keys_share_one_slot(&stack).await;
    let events = stack.events().await;
    cross_node::requests_reach_a_refresher_on_another_node(&mut stack, &events).await;
    drop(events);
    holds_the_contract(stack).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sentinel_group_holds_the_contract() {
    let stack = Stack::start_on(shared_cluster().await, |scratch| {
        Topology::Sentinel(SentinelGroup::start(scratch))
    })
    .await;
    holds_the_contract(stack).await;
}

/// Every key of the snapshot store, on whichever node holds it, is in the `{snapshot}`
/// slot, and only the primary owning that slot holds any: the switch script's keys can
/// never be refused as cross-slot.
async fn snapshot_keys_share_one_slot(stack: &Stack) {
    let Topology::Cluster(cluster) = &stack.redis else {
        unreachable!("a cluster test")
    };
    let pattern = format!("{}:{{snapshot}}:*", stack.prefix);
    let owner = blocking(|| cluster.primary_for(&stack.store.keys().current()).port);
    let slot = blocking(|| cluster.slot_of(&stack.store.keys().current()));
    let mut found = Vec::new();
    for primary in blocking(|| cluster.primaries()) {
        let keys = blocking(|| primary.cli(&["--scan", "--pattern", &pattern]));
        for key in keys.lines().filter(|k| !k.is_empty()) {
            assert_eq!(primary.port, owner, "{key} is on another primary");
            assert_eq!(blocking(|| cluster.slot_of(key)), slot, "{key}");
            found.push(key.to_owned());
        }
    }
    let current = stack.current().await.expect("start-up snapshot");
    for suffix in ["current", "seq", "versions"] {
        assert!(found.contains(&format!("{}:{{snapshot}}:{suffix}", stack.prefix)));
    }
    for body in ["meta", "gzip", "zstd"] {
        let key = format!("{}:{{snapshot}}:v:{}:{body}", stack.prefix, current.version);
        assert!(found.contains(&key), "{key} not among {found:?}");
    }
}

async fn holds_the_contract(mut stack: Stack) {
    let first = stack.current().await.expect("start-up snapshot");
    let rows = stack.log_rows().await;
    assert!(
        rows.iter()
            .any(|r| r.trigger == "startup" && r.status == "success"),
        "{rows:?}"
    );
    stack
        .wait_served(&first.version, Instant::now() + FIVE_SECONDS, "start-up")
        .await;
    let events = stack.events().await;

    // Ops publish with redis-cli on each primary in turn; whichever node the refresher's
    // subscription lives on, each request is answered.
    let channel = stack.store.keys().refresh_channel();
    let ports: Vec<u16> = blocking(|| stack.redis.primaries().iter().map(|p| p.port).collect());
    for port in ports {
        let id = format!("ops-on-{port}");
        let request =
            serde_json::json!({"request_id": id, "reason": "promo", "requested_by": "ops"});
        let cli = [
            "-p",
            &port.to_string(),
            "PUBLISH",
            &channel,
            &request.to_string(),
        ];
        let out = blocking(|| std::process::Command::new("redis-cli").args(cli).output())
            .expect("redis-cli runs");
        assert!(out.status.success(), "{out:?}");
        let outcome = events.wait_outcome(&id).await;
        assert_eq!(outcome.status, RefreshStatus::Unchanged, "{outcome:?}");
        assert_eq!(outcome.trigger, "ops");
    }

    // POST …/refresh on every replica, ten times: answered every time.
    for round in 0..10 {
        for replica in 0..REPLICAS {
            let (status, body) = stack.refresh_via_api(replica, "").await;
            assert_eq!(status, 200, "round {round}, replica {replica}: {body}");
            assert!(
                matches!(body["status"].as_str(), Some("unchanged" | "skipped")),
                "{body}"
            );
        }
    }

    trigger_answers(&stack).await;

    // Invalidation: a new snapshot reaches every replica within 5 s of being announced.
    stack.change_offer(1).await;
    let second = stack.refreshed(0).await;
    stack
        .wait_served(&second, Instant::now() + FIVE_SECONDS, "invalidation")
        .await;
    assert_eq!(replication_of(&stack, &second), "acknowledged");

    // The switch waits for a replica before it is announced; without one in time, it is
    // announced anyway and counted.
    replication::the_switch_waits_for_a_replica(&stack, &events).await;
    replication::an_unconfirmed_switch_is_still_announced(&stack, &events).await;

    // A replica frozen across a refresh catches up within 5 s of resuming.
    stack.apis[1].service.signal("STOP");
    stack.change_offer(2).await;
    let third = stack.refreshed(0).await;
    stack
        .wait_replica_serves(0, &third, Instant::now() + FIVE_SECONDS, "awake")
        .await;
    stack.apis[1].service.signal("CONT");
    stack
        .wait_replica_serves(1, &third, Instant::now() + FIVE_SECONDS, "resumed")
        .await;

    two_concurrent_onces(&stack).await;
    rolls_back(&stack, &third).await;

    // The refresher really gone: no_refresher from the API, exit 3 from trigger.
    stack.refresher.as_mut().expect("a refresher").kill().await;
    let (status, body) = stack.refresh_via_api(0, "").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (503, Some("no_refresher")),
        "{body}"
    );
    let trigger = stack
        .once_with(&["trigger", "--wait", "--timeout", "5"])
        .await;
    assert_eq!(
        trigger.code,
        Some(3),
        "{}{}",
        trigger.stdout,
        trigger.stderr
    );
}

/// Whether a replica had `version` before the refresher announced it, as it logged.
pub fn replication_of(stack: &Stack, version: &str) -> String {
    let published = stack.refresher().logged("snapshot published");
    let line = published
        .iter()
        .find(|line| line["fields"]["snapshot.version"] == version)
        .unwrap_or_else(|| panic!("no 'snapshot published' line for {version}"));
    line["fields"]["snapshot.replication"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// `refresh-service trigger --wait` publishes a request and exits 0 with its outcome.
pub async fn trigger_answers(stack: &Stack) {
    let trigger = stack
        .once_with(&["trigger", "--wait", "--timeout", "30"])
        .await;
    assert_eq!(
        trigger.code,
        Some(0),
        "{}{}",
        trigger.stdout,
        trigger.stderr
    );
    assert!(
        trigger.stdout.contains("refresh.completed"),
        "{}",
        trigger.stdout
    );
}

/// Two `once` at the same time while the first one's query is held: one refreshes, the
/// other is skipped (the lock), and both exit 0.
async fn two_concurrent_onces(stack: &Stack) {
    stack.change_offer(3).await;
    let blocker = stack.block_offers_table().await;
    let (first, second) = (stack.once("cron-a"), stack.once("cron-b"));
    tokio::pin!(first, second);
    let (skipped, running) = tokio::select! {
        run = &mut first => (run, second),
        run = &mut second => (run, first),
    };
    drop(blocker);
    let ran = tokio::time::timeout(SETUP, running)
        .await
        .expect("the other once ends");
    let statuses = [skipped.outcome().status, ran.outcome().status];
    assert_eq!(statuses, [RefreshStatus::Skipped, RefreshStatus::Success]);
    assert_eq!((skipped.code, ran.code), (Some(0), Some(0)));
}

/// `versions` lists what the refreshes made; `rollback --to` makes `to` current again and
/// every replica serves it.
async fn rolls_back(stack: &Stack, to: &str) {
    let listed = stack.once_with(&["versions"]).await;
    assert_eq!(listed.code, Some(0), "{}", listed.stderr);
    let current = stack.current().await.expect("current").version;
    let marked = listed.stdout.lines().find(|line| line.starts_with('*'));
    assert!(
        marked.is_some_and(|line| line.contains(&current)),
        "{}",
        listed.stdout
    );
    assert!(listed.stdout.contains(to), "{}", listed.stdout);
    let rolled = stack.once_with(&["rollback", "--to", to]).await;
    assert_eq!(rolled.code, Some(0), "{}", rolled.stderr);
    assert_eq!(stack.current().await.expect("current").version, to);
    let deadline = Instant::now() + FIVE_SECONDS;
    stack.wait_served(to, deadline, "rollback").await;
}

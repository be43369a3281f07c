//! The newest snapshot corrupted in Redis by hand.

use std::time::Instant;

use bytes::Bytes;
use fred::prelude::KeysInterface;

use shared::events::RefreshStatus;
use shared::snapshot::Codec;

use system_tests::eventually;
use system_tests::observe::{Checker, Load, MetaBook};
use system_tests::servers::shared_cluster;
use system_tests::stack::{FIVE_SECONDS, REPLICAS, Stack};

const REFUSED: &str = "refusing corrupt snapshot; still serving the previous one";
const REJECTED_TOTAL: &str = "ofertasws_snapshot_rejected_total";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_newest_snapshot_is_refused_and_the_previous_one_served() {
    let stack = Stack::start(shared_cluster().await).await;
    let first = stack.current().await.unwrap();
    let book = MetaBook::new(&stack);
    let (load, checker) = (Load::start(&stack, &book), Checker::start(&stack, &book));
    let events = stack.events().await;
    load.wait_for_requests(5).await;

    // The replicas are frozen while the next snapshot is published and then damaged, so
    // that the damaged one is the newest they find when they resume.
    for api in &stack.apis {
        api.service.signal("STOP");
    }
    stack.change_offer(4).await;
    assert_eq!(stack.publish(r#"{"request_id":"to-corrupt"}"#).await, 1);
    let outcome = events.wait_outcome("to-corrupt").await;
    assert_eq!(outcome.status, RefreshStatus::Success, "{outcome:?}");
    let second = outcome.version.unwrap();

    // By hand, as an operator with redis-cli would: one byte in the middle of the gzip
    // body changes; its size stays the same.
    let key = stack.store.keys().version_body(&second, Codec::Gzip);
    let body: Bytes = stack.store.client().get(&key).await.unwrap();
    let offset = body.len() / 2;
    let replacement = if body[offset] == b'X' { "Y" } else { "X" };
    let reply = stack
        .redis_cli(format!("SETRANGE {key} {offset} {replacement}\n"))
        .await;
    assert_eq!(reply.trim(), body.len().to_string());
    for api in &stack.apis {
        api.service.signal("CONT");
    }

    for replica in 0..REPLICAS {
        let what = format!("replica {replica} to refuse {second}");
        eventually(FIVE_SECONDS, &what, || async {
            stack.metric(replica, REJECTED_TOTAL).await >= 1.0
        })
        .await;
        assert_eq!(stack.served_version(replica).await.unwrap(), first.version);
        let health = stack.health(replica).await;
        assert_eq!(
            health["snapshot_version"],
            first.version.as_str(),
            "{health}"
        );
        let refused = stack.apis[replica].service.logged(REFUSED);
        assert!(
            refused.iter().any(|line| line["level"] == "ERROR"
                && line["fields"]["error"]
                    .as_str()
                    .is_some_and(|e| e.contains(&second))),
            "replica {replica} logged no refusal of {second}: {refused:?}"
        );
    }

    // The raw reader of the other scenarios notices the damage too: its silence there
    // means something.
    eventually(FIVE_SECONDS, "the checker to see the damaged body", || {
        std::future::ready(checker.saw_problem(&second))
    })
    .await;

    // A good, newer snapshot is taken as usual; the damaged one was refused once only.
    stack.change_offer(5).await;
    assert_eq!(stack.publish(r#"{"request_id":"repaired"}"#).await, 1);
    let third = events.wait_outcome("repaired").await.version.unwrap();
    stack
        .wait_served(&third, Instant::now() + FIVE_SECONDS, "after the repair")
        .await;
    for replica in 0..REPLICAS {
        assert_eq!(stack.metric(replica, REJECTED_TOTAL).await, 1.0);
    }

    let checks = checker.finish(&third).await;
    assert!(
        checks.problems.iter().all(|p| p.contains(&second)),
        "{:?}",
        checks.problems
    );

    // No response ever carried the damaged version; every body matched its metadata.
    let report = load.finish(&third).await;
    report.assert_all_served();
    report.assert_served_in_order(&[&first.version, &third]);
}

//! `PUBLISH` across Cluster nodes. A classic `PUBLISH` reaches every node over the
//! cluster bus, but its reply counts only the subscribers of the node that took it, and
//! fred sends it to the primary owning the channel's slot. With the refresher subscribed
//! on another primary, that reply is 0: "is a refresher listening" must then come from
//! `PUBSUB NUMSUB` summed over the primaries (`shared::redis::publish`). The refresher is
//! restarted until it is subscribed away from that primary, so this path is taken every
//! run, not only when fred happens to pick two different nodes.

use shared::events::RefreshStatus;
use system_tests::servers::Topology;
use system_tests::stack::{Events, REPLICAS, Stack};

use crate::blocking;
use crate::contract::trigger_answers;

/// Puts the refresher's subscription on a primary other than the one owning `P:refresh`'s
/// slot, and shows every way of asking for a refresh answered across the nodes.
pub async fn requests_reach_a_refresher_on_another_node(stack: &mut Stack, events: &Events) {
    let Topology::Cluster(cluster) = &stack.redis else {
        unreachable!("a cluster test")
    };
    let channel = stack.store.keys().refresh_channel();
    let owner = blocking(|| cluster.primary_for(&channel).port);
    let listening = stack.refresher_subscribed_where(|port| port != owner).await;
    let by_port = stack.subscribers_by_port().await;
    assert!(
        by_port.contains(&(owner, 0)) && by_port.contains(&(listening, 1)),
        "subscribers by primary: {by_port:?}; the channel's slot is on {owner}"
    );

    // redis-cli on the owner: the reply counts nobody, yet the refresher gets it.
    let Topology::Cluster(cluster) = &stack.redis else {
        unreachable!("a cluster test")
    };
    let request = r#"{"request_id":"cross-node-cli"}"#;
    let reply = blocking(|| {
        let owner = cluster.primaries().into_iter().find(|p| p.port == owner);
        owner
            .expect("the owner is a primary")
            .cli(&["PUBLISH", &channel, request])
    });
    assert_eq!(
        reply.trim(),
        "0",
        "PUBLISH on the slot's owner counts its own subscribers"
    );
    let outcome = events.wait_outcome("cross-node-cli").await;
    assert_eq!(outcome.status, RefreshStatus::Unchanged, "{outcome:?}");

    // The API and `trigger` publish through fred (to the owner) and count the refresher
    // on the other node: answered, never 503 `no_refresher`.
    for replica in 0..REPLICAS {
        let (status, body) = stack.refresh_via_api(replica, "").await;
        assert_eq!(status, 200, "replica {replica}: {body}");
    }
    trigger_answers(stack).await;
}

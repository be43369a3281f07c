//! The refresher's wait for a replica, seen from outside. After switching `current` it
//! waits (`WAIT 1`, up to `REPLICA_WAIT`) for the replica of the primary holding the
//! snapshot before it announces the snapshot: `snapshot.updated` never comes while that
//! replica lacks the new `current`, and when no replica confirms in time the snapshot is
//! announced anyway, labelled and counted `unconfirmed`.
//!
//! The replica is stopped with SIGSTOP while the refresh runs: a stopped replica reads no
//! replication stream and acknowledges nothing until it is continued.

use std::time::{Duration, Instant};

use shared::events::{Event, RefreshStatus};
use shared::snapshot::SnapshotMeta;
use shared::store::REPLICA_WAIT;
use system_tests::servers::RedisServer;
use system_tests::stack::{Events, FIVE_SECONDS, SETUP, Stack};
use system_tests::{eventually, until};

use crate::blocking;
use crate::contract::replication_of;

/// How long the replica stays stopped once the primary has switched, in the test that
/// resumes it in time. A window in which something must NOT happen (`snapshot.updated`),
/// not a wait for something to arrive: a refresher that did not wait would announce the
/// snapshot within milliseconds of the switch. Short enough that the switch is still
/// waiting when the replica resumes (seeing the switch takes a poll or two).
const HELD: Duration = Duration::from_millis(200);
/// The refresher's count of switches a replica acknowledged before they were announced.
const ACKNOWLEDGED: &str = r#"ofertasws_refresh_switch_replication_total{result="acknowledged"}"#;
/// The refresher's count of switches announced without a replica's acknowledgement.
const UNCONFIRMED: &str = r#"ofertasws_refresh_switch_replication_total{result="unconfirmed"}"#;
/// What the refresher logs when no replica confirmed a switch.
const UNCONFIRMED_WARNING: &str =
    "no replica confirmed the switch; a failover now could take it back";

/// With the replica stopped past the switch, nothing is announced; resumed well within
/// `REPLICA_WAIT`, it acknowledges, and `snapshot.updated` comes with the replica holding
/// the new `current`.
pub async fn the_switch_waits_for_a_replica(stack: &Stack, events: &Events) {
    let acknowledged = stack.refresher_metric(ACKNOWLEDGED).await;
    let (replica, switched) = switch_with_the_replica_stopped(stack, 4, "replica-held").await;
    tokio::time::sleep(HELD).await;
    let early = announced(events, &switched.version);
    blocking(|| replica.signal("CONT"));
    assert!(
        !early,
        "snapshot.updated for {} came while the replica was stopped",
        switched.version
    );
    let what = format!("snapshot.updated for {}", switched.version);
    eventually(REPLICA_WAIT, &what, || {
        std::future::ready(announced(events, &switched.version))
    })
    .await;
    let key = stack.store.keys().current();
    let held = blocking(|| replica.read_own_copy(&key));
    assert_eq!(
        held.as_deref().map(version_of),
        Some(switched.version.clone()),
        "the replica's current when snapshot.updated arrived"
    );
    let outcome = events.wait_outcome("replica-held").await;
    assert_eq!(outcome.status, RefreshStatus::Success, "{outcome:?}");
    assert_eq!(replication_of(stack, &switched.version), "acknowledged");
    assert_eq!(
        stack.refresher_metric(ACKNOWLEDGED).await,
        acknowledged + 1.0
    );
}

/// With the replica stopped until the snapshot is announced, the refresher gives up
/// waiting after `REPLICA_WAIT`, announces it anyway, and says so: log label, warning and
/// metric `unconfirmed`. Resumed, the replica catches up.
pub async fn an_unconfirmed_switch_is_still_announced(stack: &Stack, events: &Events) {
    let unconfirmed = stack.refresher_metric(UNCONFIRMED).await;
    let (replica, switched) = switch_with_the_replica_stopped(stack, 5, "replica-stopped").await;
    let seen = Instant::now();
    let what = format!(
        "snapshot.updated for {} without the replica",
        switched.version
    );
    eventually(FIVE_SECONDS, &what, || {
        std::future::ready(announced(events, &switched.version))
    })
    .await;
    blocking(|| replica.signal("CONT"));
    println!(
        "announced {:?} after the switch was seen, the replica stopped",
        seen.elapsed()
    );
    let outcome = events.wait_outcome("replica-stopped").await;
    assert_eq!(outcome.status, RefreshStatus::Success, "{outcome:?}");
    assert_eq!(replication_of(stack, &switched.version), "unconfirmed");
    assert_eq!(stack.refresher_metric(UNCONFIRMED).await, unconfirmed + 1.0);
    let warned = stack.refresher().logged(UNCONFIRMED_WARNING);
    assert!(
        warned
            .iter()
            .any(|line| line["fields"]["snapshot.version"] == switched.version.as_str()),
        "no warning for {}: {warned:?}",
        switched.version
    );
    let key = stack.store.keys().current();
    let what = format!("the resumed replica to hold {}", switched.version);
    eventually(FIVE_SECONDS, &what, || {
        let held = blocking(|| replica.read_own_copy(&key));
        std::future::ready(held.as_deref().map(version_of).as_ref() == Some(&switched.version))
    })
    .await;
}

/// Asks for a refresh of changed offers (`request_id`), holds it in its query, stops the
/// replica of the primary holding the snapshot and lets the refresh go. Returns the
/// stopped replica and the snapshot once the primary has switched to it (read on the
/// primary: a stopped replica answers nothing).
async fn switch_with_the_replica_stopped<'s>(
    stack: &'s Stack,
    offer: i64,
    request_id: &str,
) -> (&'s RedisServer, SnapshotMeta) {
    let before = stack.current().await.expect("a current snapshot").version;
    let key = stack.store.keys().current();
    let replica = blocking(|| stack.redis.primary_and_replica_for(&key).1);
    stack.change_offer(offer).await;
    let blocker = stack.block_offers_table().await;
    let request = format!(r#"{{"request_id":"{request_id}"}}"#);
    assert_eq!(stack.publish(&request).await, 1, "one refresher listens");
    stack.wait_for_lock().await;
    blocking(|| replica.signal("STOP"));
    drop(blocker);
    let switched = until(SETUP, "the primary to switch", || async {
        stack.current().await.filter(|meta| meta.version != before)
    })
    .await;
    (replica, switched)
}

/// Whether `snapshot.updated` for `version` has been recorded.
fn announced(events: &Events, version: &str) -> bool {
    events
        .seen()
        .iter()
        .any(|event| matches!(event, Event::SnapshotUpdated(u) if u.version == version))
}

/// The version named by the metadata JSON of a `current` key.
fn version_of(meta: &str) -> String {
    serde_json::from_str::<SnapshotMeta>(meta)
        .expect("snapshot metadata")
        .version
}

//! The daemon: start-up refresh, ops messages, coalescing.

use std::collections::BTreeSet;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use shared::events::{Event, RefreshStatus};

use crate::helpers::*;

const WAIT: Duration = Duration::from_secs(15);

struct Daemon {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Daemon {
    async fn start(env: &TestEnv) -> Self {
        let stop = CancellationToken::new();
        let (ctx, settings, token) = (env.ctx.clone(), env.settings.clone(), stop.clone());
        let task = tokio::spawn(async move {
            refresh_service::commands::daemon::run(ctx, &settings, Default::default(), token).await
        });
        Self { stop, task }
    }

    async fn stop(self) {
        self.stop.cancel();
        self.task.await.unwrap().unwrap();
    }
}

/// A daemon over ten offers, past its start-up refresh, and the events it publishes.
async fn started_with_ten_offers() -> (TestEnv, Daemon, Events) {
    let env = TestEnv::new().await;
    seed(&env.db.pool, 1, 10).await;
    let mut events = Events::subscribe(&env.prefix.0).await;
    let daemon = Daemon::start(&env).await;
    events
        .next_matching(
            WAIT,
            |e| matches!(e, Event::RefreshCompleted(o) if o.trigger == "startup"),
        )
        .await;
    (env, daemon, events)
}

fn outcome_for<'a>(event: &'a Event, id: &str) -> Option<&'a shared::events::RefreshOutcome> {
    event
        .outcome()
        .filter(|o| o.request_id.as_deref() == Some(id))
}

#[tokio::test]
async fn the_daemon_refreshes_at_start_when_redis_has_no_snapshot() {
    let (env, daemon, _events) = started_with_ten_offers().await;
    let current = env.ctx.store.current_meta().await.unwrap().unwrap();
    assert_eq!(current.count, 10);
    daemon.stop().await;
    let rows = log_rows(&env.db.pool).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].0.as_str(), rows[0].1.as_str()),
        ("success", "startup")
    );
}

#[tokio::test]
async fn ops_messages_are_accepted_or_rejected_and_the_daemon_lives_on() {
    let (env, daemon, mut events) = started_with_ten_offers().await;

    // JSON with a request id: answered under that id.
    change(&env.db.pool, 1).await;
    let receivers = publish_request(
        &env.prefix.0,
        r#"{"request_id":"abc","reason":"promo","requested_by":"ops"}"#,
    )
    .await;
    assert_eq!(receivers, 1);
    let done = events
        .next_matching(WAIT, |e| outcome_for(e, "abc").is_some())
        .await;
    assert!(
        matches!(&done, Event::RefreshCompleted(o) if o.status == RefreshStatus::Success && o.trigger == "ops"),
        "{done:?}"
    );

    // Malformed JSON and oversize messages: rejected with an event.
    publish_request(&env.prefix.0, "{not json").await;
    let rejected = events
        .next_matching(WAIT, |e| matches!(e, Event::RefreshRejected(_)))
        .await;
    assert!(
        rejected
            .outcome()
            .unwrap()
            .error
            .as_deref()
            .unwrap()
            .contains("not valid JSON")
    );
    publish_request(&env.prefix.0, "x".repeat(64 * 1024 + 1)).await;
    let rejected = events
        .next_matching(WAIT, |e| matches!(e, Event::RefreshRejected(_)))
        .await;
    assert!(
        rejected
            .outcome()
            .unwrap()
            .error
            .as_deref()
            .unwrap()
            .contains("over the")
    );

    // Plain text and empty messages are requests; the daemon is still serving.
    publish_request(&env.prefix.0, "promo de navidad").await;
    let plain = events
        .next_matching(WAIT, |e| matches!(e, Event::RefreshCompleted(_)))
        .await;
    assert_eq!(plain.outcome().unwrap().status, RefreshStatus::Unchanged);
    publish_request(&env.prefix.0, "").await;
    events
        .next_matching(WAIT, |e| matches!(e, Event::RefreshCompleted(_)))
        .await;
    daemon.stop().await;

    let rows = log_rows(&env.db.pool).await;
    assert_eq!(rows.iter().filter(|r| r.1 == "ops").count(), 3, "{rows:?}");
    assert!(rows.iter().any(|r| r.2.as_deref() == Some("abc")));
}

#[tokio::test]
async fn a_burst_during_a_refresh_is_coalesced_into_one_more_refresh() {
    let (env, daemon, mut events) = started_with_ten_offers().await;
    let rows_before = log_rows(&env.db.pool).await.len();

    let blocker = block_offers_table(&env.db.url).await;
    publish_request(&env.prefix.0, r#"{"request_id":"burst-0"}"#).await;
    eventually(WAIT, "the first refresh to start", || {
        lock_held(&env.ctx.store)
    })
    .await;
    for i in 1..20 {
        publish_request(&env.prefix.0, format!(r#"{{"request_id":"burst-{i}"}}"#)).await;
    }
    // All 20 taken by the daemon while the first refresh still waits for the table.
    eventually(WAIT, "the daemon to take all 20 requests", || async {
        env.ctx
            .metrics
            .render()
            .contains("ofertasws_refresh_requests_total 20\n")
    })
    .await;
    assert!(
        lock_held(&env.ctx.store).await,
        "the first refresh still runs"
    );
    drop(blocker);

    let mut answered = BTreeSet::new();
    while answered.len() < 20 {
        let event = events
            .next_matching(WAIT, |e| {
                e.outcome().is_some_and(|o| {
                    o.request_id
                        .as_deref()
                        .is_some_and(|id| id.starts_with("burst-"))
                })
            })
            .await;
        answered.insert(event.outcome().unwrap().request_id.clone().unwrap());
    }
    daemon.stop().await;
    let refreshes = log_rows(&env.db.pool).await.len() - rows_before;
    assert!(
        (1..=2).contains(&refreshes),
        "20 requests ran {refreshes} refreshes"
    );
    assert_eq!(
        refreshes, 2,
        "one refresh for the first request, one for the 19 coalesced"
    );
}

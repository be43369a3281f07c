//! Driving the services as an operator does: the connections to PostgreSQL and Redis, the
//! subscription to `P:events`, and one refresh round trip, which both probes repeat:
//! change an offer, publish a request, await `snapshot.updated` and the outcome.

use std::time::Instant;

use anyhow::{Context as _, bail, ensure};
use fred::clients::{Client, SubscriberClient};
use fred::prelude::{EventInterface, PubsubInterface};
use sqlx::Connection as _;
use tokio::sync::broadcast;

use shared::events::{Event, RefreshRequest, RefreshStatus, SnapshotUpdated};
use shared::keys::Keys;

use crate::{Args, RUN_TIMEOUT};

/// Changes one live offer, a different one each run, so the next refresh publishes.
const CHANGE_OFFER: &str = "update ofertas set title = title || '.', updated_at = now() \
    where id = (select id from ofertas \
                where active and starts_at <= now() and (ends_at is null or ends_at > now()) \
                order by id offset ($1 * 37) % 5000 limit 1)";

/// Connections to PostgreSQL and Redis, and the events seen so far.
pub(crate) struct Bench {
    pub(crate) keys: Keys,
    db: sqlx::PgConnection,
    redis: Client,
    events: broadcast::Receiver<fred::types::Message>,
    _subscriber: SubscriberClient,
}

/// What one refresh request produced.
pub(crate) struct Refreshed {
    /// When the request was about to be published.
    pub(crate) requested: Instant,
    /// When `snapshot.updated` was received.
    pub(crate) updated_at: Instant,
    pub(crate) updated: SnapshotUpdated,
    pub(crate) execution_time_ms: u64,
}

impl Bench {
    pub(crate) async fn connect(args: &Args) -> anyhow::Result<Self> {
        let keys = Keys::new(&args.redis.prefix);
        let db = sqlx::PgConnection::connect(&args.database_url)
            .await
            .context("cannot connect to DATABASE_URL")?;
        let redis = shared::redis::client(&args.redis, shared::redis::Start::FailFast)?;
        shared::redis::connect(&redis)
            .await
            .context("cannot connect to Redis")?;
        let subscriber = shared::redis::subscriber(&args.redis, shared::redis::Start::FailFast)?;
        shared::redis::connect(&subscriber)
            .await
            .context("cannot connect to Redis")?;
        let events = subscriber.message_rx();
        subscriber
            .subscribe(keys.events_channel())
            .await
            .context("cannot subscribe to the events channel")?;
        Ok(Self {
            keys,
            db,
            redis,
            events,
            _subscriber: subscriber,
        })
    }

    /// Waits until the delta index of `version` is written (the refresher's delta build
    /// after that refresh is done), for at most `within`; returns how long it took, or
    /// `None` when it was not written in time (a refresher that builds no deltas).
    pub(crate) async fn deltas_ready(
        &self,
        version: &str,
        within: std::time::Duration,
    ) -> anyhow::Result<Option<std::time::Duration>> {
        let store = shared::store::SnapshotStore::new(self.redis.clone(), self.keys.clone());
        let started = Instant::now();
        while started.elapsed() < within {
            if store.deltas(version).await?.is_some() {
                return Ok(Some(started.elapsed()));
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        Ok(None)
    }

    /// Changes an offer, publishes a refresh request and waits for both the new snapshot's
    /// `snapshot.updated` and the request's outcome, which must be `success`.
    pub(crate) async fn refresh(&mut self, run: usize) -> anyhow::Result<Refreshed> {
        let changed = sqlx::query(CHANGE_OFFER)
            .bind(i64::try_from(run)?)
            .execute(&mut self.db)
            .await
            .context("cannot change an offer")?;
        ensure!(changed.rows_affected() == 1, "no live offer to change");
        let request_id = format!("bench-{run}-{}", uuid::Uuid::new_v4());
        let request = serde_json::to_string(&RefreshRequest {
            request_id: Some(request_id.clone()),
            reason: Some("latency benchmark".into()),
            requested_by: Some("bench/studies latency".into()),
            trigger: Some("bench".into()),
            traceparent: None,
        })?;
        let requested = Instant::now();
        let receivers: i64 = self
            .redis
            .publish(self.keys.refresh_channel(), request)
            .await
            .context("cannot publish the refresh request")?;
        ensure!(
            receivers > 0,
            "no refresh-service subscribed to the refresh channel"
        );

        let (mut updated, mut outcome) = (None, None);
        tokio::time::timeout(RUN_TIMEOUT, async {
            while updated.is_none() || outcome.is_none() {
                let message = match self.events.recv().await {
                    Ok(message) => message,
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => bail!("Redis connection closed"),
                };
                let received = Instant::now();
                let Ok(event) =
                    serde_json::from_slice::<Event>(message.value.as_bytes().unwrap_or_default())
                else {
                    continue;
                };
                match &event {
                    Event::SnapshotUpdated(snapshot) => {
                        updated = Some((received, snapshot.clone()));
                    }
                    _ => {
                        if let Some(o) = event
                            .outcome()
                            .filter(|o| o.request_id.as_deref() == Some(&request_id))
                        {
                            ensure!(
                                o.status == RefreshStatus::Success,
                                "run {run}: refresh ended {:?} ({})",
                                o.status,
                                o.error.as_deref().unwrap_or("no error")
                            );
                            outcome = Some(o.execution_time_ms.unwrap_or_default());
                        }
                    }
                }
            }
            Ok::<(), anyhow::Error>(())
        })
        .await
        .with_context(|| format!("run {run}: no outcome within {RUN_TIMEOUT:?}"))??;
        let ((updated_at, updated), Some(execution_time_ms)) =
            (updated.context("no snapshot.updated")?, outcome)
        else {
            bail!("run {run}: no outcome");
        };
        Ok(Refreshed {
            requested,
            updated_at,
            updated,
            execution_time_ms,
        })
    }
}

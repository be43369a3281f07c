//! Keeping the served snapshot current from Redis.
//!
//! [`SnapshotSync::run`] listens on `P:events` (pinging the subscriber as a heartbeat),
//! resynchronises after every reconnect or lagged read, and polls the small `current` key
//! every [`POLL_EVERY`], so a missed event is noticed within seconds. Every event it
//! reads is also broadcast to the process (refresh waiters listen for their outcome).

use std::sync::Arc;
use std::time::Duration;

use fred::clients::SubscriberClient;
use fred::prelude::{ClientLike, EventInterface, PubsubInterface};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use shared::events::Event;
use shared::store::{SnapshotStore, StoreError};

use crate::http::sealed::BodyFiles;
use crate::metrics::Metrics;
use crate::snapshot::current::CurrentSnapshot;
use crate::snapshot::jitter::FetchJitter;
use crate::snapshot::load::{LoadError, load, load_deltas};
use crate::snapshot::prepared::Snapshot;

/// How often the current-snapshot key is polled.
pub const POLL_EVERY: Duration = Duration::from_secs(2);

/// Everything the synchronisation reads from and writes to.
pub struct SnapshotSync {
    /// Where snapshots are read.
    pub store: SnapshotStore,
    /// What is served.
    pub current: Arc<CurrentSnapshot>,
    /// Where bodies are held.
    pub files: Arc<BodyFiles>,
    /// Reload and refusal counts.
    pub metrics: Arc<Metrics>,
    /// Every event read from `P:events`, for whoever in the process listens.
    pub events: broadcast::Sender<Arc<Event>>,
    /// Largest identity document held decompressed (`API_IDENTITY_HOLD_MB`).
    pub hold_identity: u64,
    /// When a new version may be fetched (`API_FETCH_JITTER_MS`).
    pub jitter: FetchJitter,
}

impl SnapshotSync {
    /// Loads the current snapshot from Redis if its version differs from the one served,
    /// and its deltas once their index is written. Returns whether something new is now
    /// served.
    ///
    /// # Errors
    /// [`LoadError`]; the snapshot held keeps being served.
    pub async fn resync(&self) -> Result<bool, LoadError> {
        let meta = self.store.current_meta().await;
        self.current
            .set_redis_up(!matches!(meta, Err(StoreError::Redis(_))));
        let Some(meta) = meta? else { return Ok(false) };
        let served = self.current.get();
        if let Some(served) = served.filter(|s| s.meta.version == meta.version) {
            if served.deltas_listed {
                return Ok(false);
            }
            let Some(snapshot) = self.with_deltas(&served).await else {
                return Ok(false);
            };
            self.current.replace(snapshot);
            return Ok(true);
        }
        let holding = self.current.load().is_some();
        if self.current.is_refused(&meta.version) || self.jitter.must_wait(&meta.version, holding) {
            return Ok(false);
        }
        let version = meta.version.clone();
        let loaded = match load(&self.store, meta, &self.files, self.hold_identity).await {
            Ok(snapshot) => Ok(self.with_deltas(&snapshot).await.unwrap_or(snapshot)),
            Err(e) => Err(e),
        };
        match loaded {
            Ok(snapshot) => {
                tracing::info!(snapshot.version = %snapshot.meta.version, snapshot.count = snapshot.meta.count, "serving new snapshot");
                self.metrics.snapshot_loaded(&snapshot.meta);
                self.current.replace(snapshot);
                Ok(true)
            }
            Err(e) => {
                if e.is_corrupt() {
                    tracing::error!(error = %e, "refusing corrupt snapshot; still serving the previous one");
                    self.metrics.snapshot_rejected();
                    self.current.refuse(&version);
                }
                Err(e)
            }
        }
    }

    /// `snapshot` with its deltas, once the index of its version is written (`None`
    /// before, and when Redis fails: the next poll tries again). Deltas that do not check
    /// out are refused, logged and counted; the others are served.
    async fn with_deltas(&self, snapshot: &Snapshot) -> Option<Snapshot> {
        let version = &snapshot.meta.version;
        let deltas = match load_deltas(&self.store, version, &self.files).await {
            Ok(deltas) => deltas?,
            Err(e) => {
                tracing::warn!(snapshot.version = %version, error = %e, "cannot read the deltas yet");
                return None;
            }
        };
        for (base, why) in &deltas.refused {
            tracing::error!(snapshot.version = %version, delta.base = %base, error = %why, "refusing a corrupt delta; the whole encodings still serve");
            self.metrics.delta_rejected();
        }
        tracing::info!(snapshot.version = %version, deltas = deltas.held.len(), "deltas ready");
        snapshot
            .with_deltas(deltas.held)
            .inspect_err(|e| tracing::error!(error = %e, "deltas not served"))
            .ok()
    }

    async fn resync_logged(&self, why: &str) {
        match self.resync().await {
            Ok(_) => {}
            Err(LoadError::Store(StoreError::Redis(e))) => {
                tracing::warn!(error = %e, why, "cannot reach Redis; serving the snapshot held")
            }
            Err(e) => tracing::warn!(error = %e, why, "snapshot not loaded"),
        }
    }

    /// Connects to Redis (its clients retry until it answers), then keeps the snapshot
    /// current until `shutdown`: events, reconnects and polling.
    pub async fn run(self, subscriber: SubscriberClient, shutdown: CancellationToken) {
        let channel = self.store.keys().events_channel();
        let connected = async {
            shared::redis::connect(self.store.client()).await?;
            shared::redis::connect(&subscriber).await?;
            let _resubscribe = subscriber.manage_subscriptions();
            subscriber.subscribe(channel.as_str()).await
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            result = connected => if let Err(e) = result {
                tracing::error!(error = %e, "cannot subscribe to snapshot events; relying on polling");
            },
        }
        let mut messages = subscriber.message_rx();
        let mut reconnects = subscriber.reconnect_rx();
        let mut poll = tokio::time::interval(POLL_EVERY);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                () = self.jitter.turn() => self.resync_logged("jitter").await,
                _ = poll.tick() => {
                    // Heartbeat: a subscriber connection that stopped answering is replaced.
                    let (heartbeat, ()) = tokio::join!(subscriber.ping::<fred::types::Value>(None), self.resync_logged("poll"));
                    if let Err(e) = heartbeat {
                        tracing::debug!(error = %e, "event subscriber heartbeat failed");
                    }
                }
                reconnect = reconnects.recv() => {
                    if reconnect.is_ok() {
                        self.metrics.redis_reconnected();
                        tracing::info!("reconnected to Redis; resynchronising");
                        self.resync_logged("reconnect").await;
                    }
                }
                message = messages.recv() => match message {
                    Ok(message) => {
                        let event = match Event::from_message(&message) {
                            Ok(event) => event,
                            Err(e) => {
                                tracing::debug!(error = %e, "ignoring an unknown event");
                                continue;
                            }
                        };
                        if let Event::SnapshotUpdated(updated) = &event {
                            tracing::debug!(version = %updated.version, "snapshot.updated received");
                            let span = tracing::info_span!("snapshot.reload", snapshot.version = %updated.version);
                            shared::telemetry::continue_trace(&span, updated.traceparent.as_deref());
                            self.resync_logged("event").instrument(span).await;
                        }
                        let _ = self.events.send(Arc::new(event));
                    }
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "event stream lagged; resynchronising");
                        self.resync_logged("lagged").await;
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                },
            }
        }
        let _ = subscriber.quit().await;
    }
}

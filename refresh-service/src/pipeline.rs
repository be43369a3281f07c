//! The refresh itself: one function every trigger calls.
//!
//! lock → read current → stream offers → (unchanged? stop) → rank → serialise and
//! compress → write version → switch → `snapshot.updated`. Transient failures (Postgres
//! or Redis) are retried with exponential backoff and jitter; until the switch nothing
//! the API reads is touched, so a failure never damages the current snapshot.

use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use bytes::Bytes;
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use thiserror::Error;
use tracing::{Instrument, Span, field::Empty};

use shared::events::{Event, RefreshOutcome, RefreshStatus, SnapshotUpdated};
use shared::snapshot::SnapshotMeta;
use shared::store::{Bodies, StoreError, Switch};

use crate::context::{RefreshContext, instance_name};
use crate::encode::{DocumentHeader, DocumentWriter, Encoded, Ranking};
use crate::lock::{LOCK_TTL, RefreshLock};
use crate::log::LogEntry;
use crate::metrics::Stage;
use crate::rank::RankError;
use crate::source;

/// A refresh failure.
#[derive(Debug, Error)]
pub enum RefreshError {
    /// Postgres failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// Reading or writing the snapshot store failed.
    #[error("snapshot store: {0}")]
    Store(#[from] StoreError),
    /// Redis failed outside the store (the lock).
    #[error("redis: {0}")]
    Redis(#[from] fred::error::Error),
    /// Ranking failed.
    #[error(transparent)]
    Rank(#[from] RankError),
    /// Serialising or compressing failed.
    #[error("encoding: {0}")]
    Encode(#[from] std::io::Error),
    /// The ranking/encoding task panicked.
    #[error("encoding task failed: {0}")]
    Task(String),
}

impl RefreshError {
    /// Whether the same refresh may succeed if tried again shortly.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Database(e) => {
                !matches!(e, sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_))
            }
            Self::Store(e) => e.is_transient(),
            Self::Redis(_) => true,
            Self::Rank(_) | Self::Encode(_) | Self::Task(_) => false,
        }
    }
}

/// How a refresh ended, when it did not fail.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// A new snapshot is current.
    Published(SnapshotMeta),
    /// The offers are unchanged; this snapshot stays current.
    Unchanged(SnapshotMeta),
    /// Nothing was done: another refresh held the lock or a newer snapshot was current.
    Skipped {
        /// Why.
        reason: String,
        /// The current snapshot, when known.
        current: Option<SnapshotMeta>,
    },
}

impl Outcome {
    /// The status recorded for this outcome.
    pub fn status(&self) -> RefreshStatus {
        match self {
            Self::Published(_) => RefreshStatus::Success,
            Self::Unchanged(_) => RefreshStatus::Unchanged,
            Self::Skipped { .. } => RefreshStatus::Skipped,
        }
    }

    /// The snapshot current after this outcome, when known.
    pub fn snapshot(&self) -> Option<&SnapshotMeta> {
        match self {
            Self::Published(meta) | Self::Unchanged(meta) => Some(meta),
            Self::Skipped { current, .. } => current.as_ref(),
        }
    }
}

/// Retry policy for transient failures: 4 retries, 250 ms doubling to 4 s, with jitter.
fn backoff() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(250))
        .with_max_delay(Duration::from_secs(4))
        .with_max_times(4)
        .with_jitter()
}

/// Runs one refresh under the lock, retrying transient failures.
///
/// # Errors
/// The last [`RefreshError`] once retries are exhausted (or at once for one that is not
/// transient). The current snapshot is untouched.
pub async fn refresh(ctx: &RefreshContext) -> Result<Outcome, RefreshError> {
    refresh_under_lock(ctx).await.0
}

/// When a refresh held the lock: from just after acquiring it to just before releasing
/// it, so the windows of two refreshes (any process) never overlap.
struct LockWindow {
    since: DateTime<Utc>,
    took: Duration,
}

/// [`refresh`], plus the window it held the lock in (none when it did not get it).
async fn refresh_under_lock(
    ctx: &RefreshContext,
) -> (Result<Outcome, RefreshError>, Option<LockWindow>) {
    let lock_key = ctx.store.keys().refresh_lock();
    let client = ctx.store.client();
    let lock = (|| RefreshLock::acquire(client, lock_key.clone(), LOCK_TTL))
        .retry(backoff())
        .notify(|e, wait| tracing::warn!(error = %e, retry_in = ?wait, "cannot reach Redis for the refresh lock"))
        .await;
    let lock = match lock {
        Ok(lock) => lock,
        Err(e) => return (Err(e.into()), None),
    };
    let Some(lock) = lock else {
        ctx.metrics.lock_skipped();
        let holder = RefreshLock::holder(client, &lock_key).await.ok().flatten();
        let current = ctx.store.current_meta().await.ok().flatten();
        let skipped = Outcome::Skipped {
            reason: format!(
                "another refresh holds the lock ({})",
                holder.as_deref().unwrap_or("holder unknown")
            ),
            current,
        };
        return (Ok(skipped), None);
    };
    let (since, started) = (Utc::now(), Instant::now());
    let result = (|| build_and_publish(ctx))
        .retry(backoff())
        .when(RefreshError::is_transient)
        .notify(|e, wait| tracing::warn!(error = %e, retry_in = ?wait, "refresh failed; retrying"))
        .await;
    let window = LockWindow {
        since,
        took: started.elapsed(),
    };
    if let Err(e) = lock.release().await {
        tracing::warn!(error = %e, "cannot release the refresh lock; it will expire");
    }
    (result, Some(window))
}

fn millis(since: Instant) -> u64 {
    since.elapsed().as_millis() as u64
}

#[tracing::instrument(name = "attempt", skip_all, fields(snapshot.version = Empty))]
async fn build_and_publish(ctx: &RefreshContext) -> Result<Outcome, RefreshError> {
    let started = Instant::now();
    let current = ctx.store.current_meta().await?;
    let seq = ctx.store.next_seq().await?;
    let now = (ctx.clock)();
    let generated_at = now
        .duration_trunc(TimeDelta::milliseconds(1))
        .unwrap_or(now);

    let span = tracing::info_span!("query", offers.count = Empty, offers.json_held = Empty);
    let offers = source::load_active(&ctx.db, now, ctx.held_json_limit)
        .instrument(span.clone())
        .await?;
    span.record("offers.count", offers.len());
    span.record("offers.json_held", offers.holds_json());
    let query_ms = millis(started);
    ctx.metrics.stage(Stage::Query, started.elapsed());
    if let Some(current) = current.filter(|c| c.content_hash == offers.content_hash()) {
        tracing::info!(offers.count = offers.len(), snapshot.version = %current.version, "offers unchanged");
        return Ok(Outcome::Unchanged(current));
    }

    let version = SnapshotMeta::version_for(seq, offers.content_hash());
    Span::current().record("snapshot.version", version.as_str());

    let rank_started = Instant::now();
    let (mut offers, ranking) = rank(ctx, offers).await?;
    let rank_ms = millis(rank_started);
    ctx.metrics.stage(Stage::Rank, rank_started.elapsed());

    let compress_started = Instant::now();
    let generated = shared::snapshot::format_millis(&generated_at);
    let header = DocumentHeader {
        version: &version,
        generated_at: &generated,
        count: offers.len(),
    };
    let span = tracing::info_span!(
        "compress",
        snapshot.json_bytes = Empty,
        snapshot.gzip_bytes = Empty,
        snapshot.zstd_bytes = Empty
    );
    let encoded = async {
        let mut document = DocumentWriter::start(&header, offers.json_bytes())?;
        offers.write_ranked(&ranking, &mut document).await?;
        Ok::<_, RefreshError>(document.finish().await?)
    }
    .instrument(span.clone())
    .await?;
    span.record("snapshot.json_bytes", encoded.json_bytes);
    span.record("snapshot.gzip_bytes", encoded.gzip.len());
    span.record("snapshot.zstd_bytes", encoded.zstd.len());
    let encode_ms = millis(compress_started);
    ctx.metrics
        .stage(Stage::Compress, compress_started.elapsed());
    let (meta, bodies) = snapshot(&offers, encoded, seq, version, generated_at);

    let write_started = Instant::now();
    let span = tracing::info_span!(
        "write",
        snapshot.gzip_bytes = meta.gzip_bytes,
        snapshot.zstd_bytes = meta.zstd_bytes
    );
    let switch = ctx.store.publish(&meta, &bodies).instrument(span).await?;
    let write_ms = millis(write_started);
    ctx.metrics.stage(Stage::Write, write_started.elapsed());
    let replication = match switch {
        Switch::Switched(replication) => replication,
        Switch::Superseded(newer) => {
            return Ok(Outcome::Skipped {
                reason: format!(
                    "a newer snapshot (seq {newer}) became current while this one was built"
                ),
                current: ctx.store.current_meta().await.ok().flatten(),
            });
        }
    };
    ctx.metrics.switch_replicated(replication);
    tracing::info!(
        snapshot.version = %meta.version,
        offers.count = meta.count,
        snapshot.json_bytes = meta.json_bytes,
        snapshot.gzip_bytes = meta.gzip_bytes,
        snapshot.zstd_bytes = meta.zstd_bytes,
        refresh.query_ms = query_ms,
        refresh.rank_ms = rank_ms,
        refresh.encode_ms = encode_ms,
        refresh.write_ms = write_ms,
        refresh.duration_ms = millis(started),
        snapshot.replication = replication.as_str(),
        "snapshot published"
    );
    let publish_started = Instant::now();
    let span = tracing::info_span!("publish", snapshot.version = %meta.version);
    async {
        publish_event(
            ctx,
            &Event::SnapshotUpdated(SnapshotUpdated::announcing(&meta)),
        )
        .await;
    }
    .instrument(span)
    .await;
    ctx.metrics.stage(Stage::Publish, publish_started.elapsed());
    Ok(Outcome::Published(meta))
}

/// Scores and orders `offers`; CPU-bound, so it runs on a blocking thread.
async fn rank(
    ctx: &RefreshContext,
    offers: source::OfferSet,
) -> Result<(source::OfferSet, Ranking), RefreshError> {
    let ranker = ctx.ranker.clone();
    let span = tracing::info_span!("rank", offers.count = offers.len());
    let (offers, ranking) = tokio::task::spawn_blocking(move || {
        let _entered = span.enter();
        let ranking = ranker
            .score(offers.features())
            .map(|scores| Ranking::new(&offers, &scores));
        (offers, ranking)
    })
    .await
    .map_err(|e| RefreshError::Task(e.to_string()))?;
    Ok((offers, ranking?))
}

/// The metadata and bodies of the snapshot `encoded` from `offers`.
fn snapshot(
    offers: &source::OfferSet,
    encoded: Encoded,
    seq: u64,
    version: String,
    generated_at: DateTime<Utc>,
) -> (SnapshotMeta, Bodies) {
    let meta = SnapshotMeta {
        etag: SnapshotMeta::etag_for(&version),
        seq,
        count: offers.len() as u64,
        generated_at,
        content_hash: offers.content_hash().to_owned(),
        json_bytes: encoded.json_bytes,
        gzip_bytes: encoded.gzip.len() as u64,
        zstd_bytes: encoded.zstd.len() as u64,
        json_hash: encoded.json_hash,
        gzip_hash: shared::snapshot::hash_hex(&encoded.gzip),
        zstd_hash: shared::snapshot::hash_hex(&encoded.zstd),
        version,
    };
    let bodies = Bodies {
        gzip: Bytes::from(encoded.gzip),
        zstd: Bytes::from(encoded.zstd),
    };
    (meta, bodies)
}

/// Publishes `event` on `P:events`; a failure is logged (API replicas also poll).
pub async fn publish_event(ctx: &RefreshContext, event: &Event) {
    let channel = ctx.store.keys().events_channel();
    if let Err(e) = shared::redis::publish(ctx.store.client(), &channel, event.to_json()).await {
        tracing::warn!(error = %e, "cannot publish event");
    }
}

/// What asked for a refresh: a trigger name and the request ids it answers.
#[derive(Clone, Debug)]
pub struct RefreshRun {
    /// Recorded trigger (`schedule`, `startup`, `ops`, `api`, `cronjob`, …).
    pub trigger: String,
    /// Requests answered by this run (several when coalesced); never empty.
    pub request_ids: Vec<String>,
    /// Trace context of the request that started the run, so its trace continues.
    pub traceparent: Option<String>,
}

impl RefreshRun {
    /// A run for `trigger` with a fresh request id.
    pub fn new(trigger: impl Into<String>) -> Self {
        Self {
            trigger: trigger.into(),
            request_ids: vec![uuid::Uuid::new_v4().to_string()],
            traceparent: None,
        }
    }
}

/// Runs a refresh, records it in the refresh log and publishes its outcome event for
/// every request it answers. Never fails: a failure is the `failed` outcome.
pub async fn run_recorded(ctx: &RefreshContext, run: &RefreshRun) -> RefreshOutcome {
    let span = tracing::info_span!(
        "refresh",
        refresh.trigger = %run.trigger,
        refresh.request_id = run.request_ids.first().map(String::as_str),
        refresh.coalesced = run.request_ids.len(),
        refresh.status = Empty,
    );
    shared::telemetry::continue_trace(&span, run.traceparent.as_deref());
    record(ctx, run).instrument(span).await
}

async fn record(ctx: &RefreshContext, run: &RefreshRun) -> RefreshOutcome {
    let (attempted_at, started) = (Utc::now(), Instant::now());
    let rss_before = shared::memory::rss_mib();
    let (result, window) = refresh_under_lock(ctx).await;
    // A refresh that ran is logged with its lock window; one that did not, when it tried.
    let (executed_at, execution_time_ms) = match window {
        Some(window) => (window.since, window.took.as_millis() as u64),
        None => (attempted_at, millis(started)),
    };
    let rss_after = shared::memory::rss_mib();
    let (status, snapshot, error) = match &result {
        Ok(outcome) => {
            let reason = match outcome {
                Outcome::Skipped { reason, .. } => Some(reason.clone()),
                _ => None,
            };
            (outcome.status(), outcome.snapshot(), reason)
        }
        Err(e) => (RefreshStatus::Failed, None, Some(e.to_string())),
    };
    match &result {
        Ok(_) => tracing::info!(
            refresh.status = status.as_str(),
            refresh.duration_ms = execution_time_ms,
            memory.rss_before_mib = rss_before,
            memory.rss_after_mib = rss_after,
            coalesced = run.request_ids.len(),
            "refresh finished"
        ),
        Err(e) => tracing::error!(
            error = %e,
            refresh.duration_ms = execution_time_ms,
            memory.rss_before_mib = rss_before,
            memory.rss_after_mib = rss_after,
            "refresh failed"
        ),
    }
    let published = matches!(result, Ok(Outcome::Published(_)));
    Span::current().record("refresh.status", status.as_str());
    ctx.metrics.stage(Stage::Total, started.elapsed());
    let succeeded = matches!(status, RefreshStatus::Success | RefreshStatus::Unchanged);
    ctx.metrics.outcome(status, snapshot.filter(|_| succeeded));
    ctx.log
        .record(LogEntry {
            executed_at,
            trigger: run.trigger.clone(),
            status,
            records_count: snapshot.map(|m| m.count as i32),
            execution_time_ms: execution_time_ms as i32,
            request_size_kb: snapshot
                .filter(|_| published)
                .map(|m| m.gzip_bytes.div_ceil(1024) as i32),
            json_bytes: snapshot.filter(|_| published).map(|m| m.json_bytes as i64),
            gzip_bytes: snapshot.filter(|_| published).map(|m| m.gzip_bytes as i64),
            zstd_bytes: snapshot.filter(|_| published).map(|m| m.zstd_bytes as i64),
            etag: snapshot.map(|m| m.etag.clone()),
            request_id: run.request_ids.first().cloned(),
            instance: instance_name().to_owned(),
            error: error.clone(),
        })
        .await;
    let outcome = RefreshOutcome {
        request_id: None,
        trigger: run.trigger.clone(),
        status,
        count: snapshot.map(|m| m.count),
        version: snapshot.map(|m| m.version.clone()),
        etag: snapshot.map(|m| m.etag.clone()),
        execution_time_ms: Some(execution_time_ms),
        error,
        traceparent: shared::telemetry::traceparent(),
    };
    for id in &run.request_ids {
        let event = Event::for_outcome(RefreshOutcome {
            request_id: Some(id.clone()),
            ..outcome.clone()
        });
        // Kept too, for a waiter whose event subscription was reconnecting.
        if let Err(e) = ctx.store.remember_outcome(id, &event).await {
            tracing::warn!(error = %e, request_id = %id, "cannot keep the refresh outcome");
        }
        publish_event(ctx, &event).await;
    }
    RefreshOutcome {
        request_id: run.request_ids.first().cloned(),
        ..outcome
    }
}

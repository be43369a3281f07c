//! Running one refresh, and nothing else (reporting on it is
//! [`crate::pipeline::recorded`]'s job).
//!
//! lock → read current → stream offers → (unchanged? stop) → rank → serialise and
//! compress → write version → switch → `snapshot.updated`. Transient failures (Postgres
//! or Redis unreachable, timeouts) are retried with exponential backoff and jitter; until
//! the switch nothing the API reads is touched, so a failure never damages the current
//! snapshot.

use std::fmt;
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use bytes::Bytes;
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use thiserror::Error;
use tracing::{Span, field::Empty};

use shared::document::{SnapshotDocument, Text};
use shared::events::{Event, RefreshStatus, SnapshotUpdated};
use shared::snapshot::SnapshotMeta;
use shared::store::{Bodies, StoreError, Switch};

use crate::pipeline::context::RefreshContext;
use crate::pipeline::encode::{DocumentWriter, Encoded, Ranking};
use crate::pipeline::lock::{LOCK_TTL, RefreshLock};
use crate::pipeline::rank::RankError;
use crate::pipeline::source::{self, OfferSet, SourceError};
use crate::pipeline::stage::Stages;
use crate::report::metrics::Stage;

/// A refresh failure.
#[derive(Debug, Error)]
pub enum RefreshError {
    /// Reading the offers (or writing them into the document) failed.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// Reading or writing the snapshot store failed.
    #[error("snapshot store: {0}")]
    Store(#[from] StoreError),
    /// Redis failed outside the store (the lock).
    #[error("redis: {0}")]
    Redis(#[from] fred::error::Error),
    /// Ranking failed.
    #[error(transparent)]
    Rank(#[from] RankError),
    /// Starting or finishing the compression failed.
    #[error("encoding: {0}")]
    Encode(#[from] std::io::Error),
    /// The ranking task panicked.
    #[error("ranking task failed: {0}")]
    Task(#[source] tokio::task::JoinError),
}

impl RefreshError {
    /// Whether the same refresh may succeed if tried again shortly: only for Postgres or
    /// Redis being unreachable or timing out.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Source(e) => e.is_transient(),
            Self::Store(e) => e.is_transient(),
            Self::Redis(e) => shared::redis::is_transient(e),
            Self::Rank(_) | Self::Encode(_) | Self::Task(_) => false,
        }
    }
}

/// Why a refresh did nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Skip {
    /// Another refresh (this process or another) holds the lock.
    Locked {
        /// The lock's owner token, when it could be read.
        holder: Option<String>,
    },
    /// A snapshot with this (newer or equal) sequence number became current meanwhile.
    Superseded(u64),
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Locked { holder } => write!(
                f,
                "another refresh holds the lock ({})",
                holder.as_deref().unwrap_or("holder unknown")
            ),
            Self::Superseded(seq) => write!(
                f,
                "a newer snapshot (seq {seq}) became current while this one was built"
            ),
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
    /// Nothing was done.
    Skipped {
        /// Why.
        reason: Skip,
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

/// When a refresh held the lock: from just after acquiring it to just before releasing
/// it, so the windows of two refreshes (any process) never overlap.
#[derive(Clone, Copy, Debug)]
pub struct LockWindow {
    /// When the lock was taken.
    pub since: DateTime<Utc>,
    /// How long it was held.
    pub took: Duration,
}

/// One refresh attempt: how it ended, and when it held the lock (never, when it did not
/// get it).
#[derive(Debug)]
pub struct Attempt {
    /// How it ended.
    pub result: Result<Outcome, RefreshError>,
    /// When it held the lock.
    pub held: Option<LockWindow>,
}

/// Retry policy for transient failures: 4 retries, 250 ms doubling to 4 s, with jitter.
fn backoff() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(250))
        .with_max_delay(Duration::from_secs(4))
        .with_max_times(4)
        .with_jitter()
}

/// Runs one refresh under the lock, retrying transient failures, without reporting on it
/// (tests and tools; triggers call [`crate::pipeline::recorded::run_recorded`]).
///
/// # Errors
/// The last [`RefreshError`] once retries are exhausted (or at once for one that is not
/// transient). The current snapshot is untouched.
pub async fn refresh(ctx: &RefreshContext) -> Result<Outcome, RefreshError> {
    attempt(ctx).await.result
}

/// [`refresh`], plus the window it held the lock in.
pub async fn attempt(ctx: &RefreshContext) -> Attempt {
    let lock_key = ctx.store.keys().refresh_lock();
    let client = ctx.store.client();
    let lock = (|| RefreshLock::acquire(client, lock_key.clone(), LOCK_TTL))
        .retry(backoff())
        .notify(|e, wait| tracing::warn!(error = %e, retry_in = ?wait, "cannot reach Redis for the refresh lock"))
        .await;
    let lock = match lock {
        Ok(Some(lock)) => lock,
        Ok(None) => {
            let holder = RefreshLock::holder(client, &lock_key).await.ok().flatten();
            let current = ctx.store.current_meta().await.ok().flatten();
            let reason = Skip::Locked { holder };
            let result = Ok(Outcome::Skipped { reason, current });
            return Attempt { result, held: None };
        }
        Err(e) => {
            let result = Err(e.into());
            return Attempt { result, held: None };
        }
    };
    let (since, started) = (Utc::now(), Instant::now());
    let result = (|| build_and_publish(ctx))
        .retry(backoff())
        .when(RefreshError::is_transient)
        .notify(|e, wait| tracing::warn!(error = %e, retry_in = ?wait, "refresh failed; retrying"))
        .await;
    let took = started.elapsed();
    if let Err(e) = lock.release().await {
        tracing::warn!(error = %e, "cannot release the refresh lock; it will expire");
    }
    let held = Some(LockWindow { since, took });
    Attempt { result, held }
}

#[tracing::instrument(name = "attempt", skip_all, fields(snapshot.version = Empty))]
async fn build_and_publish(ctx: &RefreshContext) -> Result<Outcome, RefreshError> {
    let started = Instant::now();
    let mut stages = Stages::new(&ctx.metrics);
    let current = ctx.store.current_meta().await?;
    let seq = ctx.store.next_seq().await?;
    let now = (ctx.clock)();
    let generated_at = now
        .duration_trunc(TimeDelta::milliseconds(1))
        .unwrap_or(now);

    let span = tracing::info_span!("query", offers.count = Empty, offers.json_held = Empty);
    let offers = stages
        .run(Stage::Query, span, async {
            let ranked_at = crate::pipeline::rank::ranking_time(now, ctx.timezone);
            let offers = source::load_active(&ctx.db, now, ranked_at, ctx.held_json_limit).await?;
            let span = Span::current();
            span.record("offers.count", offers.len());
            span.record("offers.json_held", offers.holds_json());
            Ok::<_, RefreshError>(offers)
        })
        .await?;
    if let Some(current) = current.filter(|c| c.content_hash == offers.content_hash()) {
        tracing::info!(offers.count = offers.len(), snapshot.version = %current.version, "offers unchanged");
        return Ok(Outcome::Unchanged(current));
    }
    let version = SnapshotMeta::version_for(seq, offers.content_hash());
    Span::current().record("snapshot.version", version.as_str());

    let span = tracing::info_span!("rank", offers.count = offers.len());
    let (mut offers, ranking) = stages.run(Stage::Rank, span, rank(ctx, offers)).await?;

    let span = tracing::info_span!(
        "compress",
        snapshot.json_bytes = Empty,
        snapshot.gzip_bytes = Empty,
        snapshot.zstd_bytes = Empty
    );
    let header = SnapshotDocument {
        version: Text::from(version.as_str()),
        generated_at,
        count: offers.len() as u64,
        ofertas: Vec::new(),
    };
    let encoded = stages
        .run(Stage::Compress, span, async {
            let mut document = DocumentWriter::start(&header, offers.json_bytes())?;
            offers.write_ranked(&ranking, &mut document).await?;
            let encoded = document.finish().await?;
            let span = Span::current();
            span.record("snapshot.json_bytes", encoded.json.bytes);
            span.record("snapshot.gzip_bytes", encoded.gzip.len());
            span.record("snapshot.zstd_bytes", encoded.zstd.len());
            Ok::<_, RefreshError>(encoded)
        })
        .await?;
    let (meta, bodies) = snapshot(&offers, encoded, seq, generated_at);

    let span = tracing::info_span!(
        "write",
        snapshot.gzip_bytes = meta.gzip_bytes,
        snapshot.zstd_bytes = meta.zstd_bytes
    );
    let switch = stages
        .run(Stage::Write, span, ctx.store.publish(&meta, &bodies))
        .await?;
    let replication = match switch {
        Switch::Switched(replication) => replication,
        Switch::Superseded(newer) => {
            return Ok(Outcome::Skipped {
                reason: Skip::Superseded(newer),
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
        refresh.query_ms = stages.millis(Stage::Query),
        refresh.rank_ms = stages.millis(Stage::Rank),
        refresh.encode_ms = stages.millis(Stage::Compress),
        refresh.write_ms = stages.millis(Stage::Write),
        refresh.duration_ms = started.elapsed().as_millis() as u64,
        snapshot.replication = replication.as_str(),
        "snapshot published"
    );
    let span = tracing::info_span!("publish", snapshot.version = %meta.version);
    let updated = Event::SnapshotUpdated(SnapshotUpdated::announcing(&meta));
    stages
        .run(Stage::Publish, span, async {
            ctx.publish_event(&updated).await;
            Ok::<_, RefreshError>(())
        })
        .await?;
    Ok(Outcome::Published(meta))
}

/// Scores and orders `offers`; CPU-bound, so it runs on a blocking thread (in the
/// caller's span).
async fn rank(ctx: &RefreshContext, offers: OfferSet) -> Result<(OfferSet, Ranking), RefreshError> {
    let ranker = ctx.ranker.clone();
    let span = Span::current();
    let (offers, ranking) = tokio::task::spawn_blocking(move || {
        let _entered = span.enter();
        let ranking = ranker
            .score(offers.features())
            .map(|scores| Ranking::new(offers.ids(), &scores));
        (offers, ranking)
    })
    .await
    .map_err(RefreshError::Task)?;
    Ok((offers, ranking?))
}

/// The metadata and bodies of the snapshot `encoded` from `offers` (its version, which the
/// document names, is derived again from `seq` and the offers' content hash).
fn snapshot(
    offers: &OfferSet,
    encoded: Encoded,
    seq: u64,
    generated_at: DateTime<Utc>,
) -> (SnapshotMeta, Bodies) {
    let meta = SnapshotMeta::describing(
        seq,
        offers.len() as u64,
        generated_at,
        offers.content_hash().to_owned(),
        encoded.json,
        &encoded.gzip,
        &encoded.zstd,
    );
    let bodies = Bodies {
        gzip: Bytes::from(encoded.gzip),
        zstd: Bytes::from(encoded.zstd),
    };
    (meta, bodies)
}

//! The `ofertasws_cache_refresh_log` table: one row per refresh attempt.
//!
//! A row that cannot be written (Postgres down: often the very reason the refresh
//! failed) is kept in memory and written on the next attempt or flush, so a failure is
//! recorded once Postgres is back.

use std::collections::VecDeque;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio::sync::Mutex;

use shared::events::{RefreshStatus, Trigger};

/// At most this many unwritten rows are kept; older ones are dropped with a warning.
const MAX_PENDING: usize = 1_000;

/// One refresh attempt as recorded.
#[derive(Clone, Debug, PartialEq)]
pub struct LogEntry {
    /// When the attempt started.
    pub executed_at: DateTime<Utc>,
    /// What asked for it.
    pub trigger: Trigger,
    /// How it ended.
    pub status: RefreshStatus,
    /// Offers in the resulting (or unchanged) snapshot.
    pub records_count: Option<i32>,
    /// Wall time of the attempt.
    pub execution_time_ms: i32,
    /// Compressed (gzip) size in KiB.
    pub request_size_kb: Option<i32>,
    /// Identity document size.
    pub json_bytes: Option<i64>,
    /// gzip body size.
    pub gzip_bytes: Option<i64>,
    /// zstd body size.
    pub zstd_bytes: Option<i64>,
    /// ETag of the resulting snapshot.
    pub etag: Option<String>,
    /// Request id (the first one when several requests were coalesced).
    pub request_id: Option<String>,
    /// Process that ran it.
    pub instance: String,
    /// Failure or skip reason.
    pub error: Option<String>,
}

/// Writer of refresh log rows with a queue for rows Postgres could not take yet.
pub struct RefreshLog {
    pool: PgPool,
    pending: Mutex<VecDeque<LogEntry>>,
}

impl RefreshLog {
    /// A log writing through `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            pending: Mutex::new(VecDeque::new()),
        }
    }

    /// Records `entry`, writing it and any earlier unwritten rows now if Postgres allows.
    pub async fn record(&self, entry: LogEntry) {
        let mut pending = self.pending.lock().await;
        if pending.len() >= MAX_PENDING {
            tracing::warn!("refresh log backlog full; dropping the oldest unwritten row");
            pending.pop_front();
        }
        pending.push_back(entry);
        self.write_pending(&mut pending).await;
    }

    /// Writes waiting rows in order; stops at the first failure and keeps the rest.
    /// Returns how many rows are still waiting.
    pub async fn flush(&self) -> usize {
        let mut pending = self.pending.lock().await;
        self.write_pending(&mut pending).await
    }

    /// Number of rows waiting for Postgres.
    pub fn pending(&self) -> usize {
        self.pending.try_lock().map_or(1, |p| p.len())
    }

    async fn write_pending(&self, pending: &mut VecDeque<LogEntry>) -> usize {
        while let Some(entry) = pending.front() {
            if let Err(e) = insert(&self.pool, entry).await {
                tracing::warn!(error = %e, log.pending = pending.len(), "cannot write the refresh log yet; will retry");
                break;
            }
            pending.pop_front();
        }
        pending.len()
    }

    /// Start time of the last attempt that left a current snapshot (success or unchanged).
    ///
    /// # Errors
    /// The database error.
    pub async fn last_success(&self) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
        let current = [RefreshStatus::Success, RefreshStatus::Unchanged].map(RefreshStatus::as_str);
        sqlx::query_scalar(
            "select max(executed_at) from ofertasws_cache_refresh_log where status = any($1)",
        )
        .bind(&current[..])
        .fetch_one(&self.pool)
        .await
    }
}

async fn insert(pool: &PgPool, e: &LogEntry) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into ofertasws_cache_refresh_log
           (executed_at, trigger, status, records_count, execution_time_ms, request_size_kb,
            json_bytes, gzip_bytes, zstd_bytes, etag, request_id, instance, error)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(e.executed_at)
    .bind(e.trigger.as_str())
    .bind(e.status.as_str())
    .bind(e.records_count)
    .bind(e.execution_time_ms)
    .bind(e.request_size_kb)
    .bind(e.json_bytes)
    .bind(e.gzip_bytes)
    .bind(e.zstd_bytes)
    .bind(&e.etag)
    .bind(&e.request_id)
    .bind(&e.instance)
    .bind(&e.error)
    .execute(pool)
    .await
    .map(drop)
}

//! Reporting on a refresh: its refresh-log row, its metrics, its process log line, and
//! the `refresh.*` outcome event (published, and kept in Redis for a waiter that missed
//! it) of every request it answers.
//!
//! [`run_recorded`] is the one function every trigger calls: the daemon's schedule,
//! start-up catch-up and ops channel, and the `once` command. It runs
//! [`crate::pipeline::attempt::attempt`] and reports on it.

use std::time::Instant;

use chrono::Utc;
use tracing::{Instrument, Span, field::Empty};

use shared::events::{Event, RefreshOutcome, RefreshStatus, Trigger};
use shared::snapshot::SnapshotMeta;

use crate::pipeline::attempt::{self, Attempt, Outcome, Skip};
use crate::pipeline::context::{RefreshContext, instance_name};
use crate::report::log::LogEntry;
use crate::report::metrics::Stage;

/// What asked for a refresh: a trigger and the request ids it answers.
#[derive(Clone, Debug)]
pub struct RefreshRun {
    /// Recorded trigger.
    pub trigger: Trigger,
    /// Requests answered by this run (several when coalesced); never empty.
    pub request_ids: Vec<String>,
    /// Trace context of the request that started the run, so its trace continues.
    pub traceparent: Option<String>,
}

impl RefreshRun {
    /// A run for `trigger` with a fresh request id.
    pub fn new(trigger: Trigger) -> Self {
        Self {
            trigger,
            request_ids: vec![uuid::Uuid::new_v4().to_string()],
            traceparent: None,
        }
    }
}

/// Runs a refresh, records it in the refresh log and metrics and publishes its outcome
/// event for every request it answers. Never fails: a failure is the `failed` outcome.
pub async fn run_recorded(ctx: &RefreshContext, run: &RefreshRun) -> RefreshOutcome {
    let span = tracing::info_span!(
        "refresh",
        refresh.trigger = %run.trigger,
        refresh.request_id = run.request_ids.first().map(String::as_str),
        refresh.coalesced = run.request_ids.len(),
        refresh.status = Empty,
    );
    shared::telemetry::continue_trace(&span, run.traceparent.as_deref());
    async {
        let (attempted_at, started) = (Utc::now(), Instant::now());
        let rss_before = shared::memory::rss_mib();
        let attempt = attempt::attempt(ctx).await;
        // A refresh that ran is reported with its lock window; one that did not, when it tried.
        let (executed_at, took) = match attempt.held {
            Some(window) => (window.since, window.took),
            None => (attempted_at, started.elapsed()),
        };
        let report = Report {
            run,
            attempt: &attempt,
            executed_at,
            execution_time_ms: took.as_millis() as u64,
        };
        report.log_line(rss_before);
        ctx.metrics.stage(Stage::Total, started.elapsed());
        report.metrics(ctx);
        ctx.log.record(report.log_entry()).await;
        report.publish(ctx).await
    }
    .instrument(span)
    .await
}

/// One attempt, seen as what is reported.
struct Report<'a> {
    run: &'a RefreshRun,
    attempt: &'a Attempt,
    executed_at: chrono::DateTime<Utc>,
    execution_time_ms: u64,
}

impl Report<'_> {
    fn status(&self) -> RefreshStatus {
        self.attempt
            .result
            .as_ref()
            .map_or(RefreshStatus::Failed, Outcome::status)
    }

    /// The snapshot current after the attempt, when known.
    fn snapshot(&self) -> Option<&SnapshotMeta> {
        self.attempt
            .result
            .as_ref()
            .ok()
            .and_then(Outcome::snapshot)
    }

    /// The snapshot the attempt published, if it published one.
    fn published(&self) -> Option<&SnapshotMeta> {
        match &self.attempt.result {
            Ok(Outcome::Published(meta)) => Some(meta),
            _ => None,
        }
    }

    /// Why it failed or was skipped.
    fn error(&self) -> Option<String> {
        match &self.attempt.result {
            Ok(Outcome::Skipped { reason, .. }) => Some(reason.to_string()),
            Ok(_) => None,
            Err(e) => Some(e.to_string()),
        }
    }

    fn log_line(&self, rss_before: u64) {
        let rss_after = shared::memory::rss_mib();
        match &self.attempt.result {
            Ok(_) => tracing::info!(
                refresh.status = self.status().as_str(),
                refresh.duration_ms = self.execution_time_ms,
                memory.rss_before_mib = rss_before,
                memory.rss_after_mib = rss_after,
                coalesced = self.run.request_ids.len(),
                "refresh finished"
            ),
            Err(e) => tracing::error!(
                error = %e,
                refresh.duration_ms = self.execution_time_ms,
                memory.rss_before_mib = rss_before,
                memory.rss_after_mib = rss_after,
                "refresh failed"
            ),
        }
        Span::current().record("refresh.status", self.status().as_str());
    }

    fn metrics(&self, ctx: &RefreshContext) {
        if let Ok(Outcome::Skipped {
            reason: Skip::Locked { .. },
            ..
        }) = &self.attempt.result
        {
            ctx.metrics.lock_skipped();
        }
        let status = self.status();
        let succeeded = matches!(status, RefreshStatus::Success | RefreshStatus::Unchanged);
        ctx.metrics
            .outcome(status, self.snapshot().filter(|_| succeeded));
    }

    fn log_entry(&self) -> LogEntry {
        let (snapshot, published) = (self.snapshot(), self.published());
        LogEntry {
            executed_at: self.executed_at,
            trigger: self.run.trigger.clone(),
            status: self.status(),
            records_count: snapshot.map(|m| m.count as i32),
            execution_time_ms: self.execution_time_ms as i32,
            request_size_kb: published.map(|m| m.gzip_bytes.div_ceil(1024) as i32),
            json_bytes: published.map(|m| m.json_bytes as i64),
            gzip_bytes: published.map(|m| m.gzip_bytes as i64),
            zstd_bytes: published.map(|m| m.zstd_bytes as i64),
            etag: snapshot.map(|m| m.etag.clone()),
            request_id: self.run.request_ids.first().cloned(),
            instance: instance_name().to_owned(),
            error: self.error(),
        }
    }

    /// Keeps and publishes the outcome event of every request answered; returns the
    /// outcome of the first.
    async fn publish(&self, ctx: &RefreshContext) -> RefreshOutcome {
        let snapshot = self.snapshot();
        let outcome = RefreshOutcome {
            count: snapshot.map(|m| m.count),
            version: snapshot.map(|m| m.version.clone()),
            etag: snapshot.map(|m| m.etag.clone()),
            execution_time_ms: Some(self.execution_time_ms),
            error: self.error(),
            traceparent: shared::telemetry::traceparent(),
            ..RefreshOutcome::new(self.run.trigger.clone(), self.status())
        };
        for id in &self.run.request_ids {
            let event = Event::for_outcome(RefreshOutcome {
                request_id: Some(id.clone()),
                ..outcome.clone()
            });
            // Kept too, for a waiter whose event subscription was reconnecting.
            if let Err(e) = ctx.store.remember_outcome(id, &event).await {
                tracing::warn!(error = %e, request_id = %id, "cannot keep the refresh outcome");
            }
            ctx.publish_event(&event).await;
        }
        RefreshOutcome {
            request_id: self.run.request_ids.first().cloned(),
            ..outcome
        }
    }
}

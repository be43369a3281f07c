//! Prometheus metrics of the refresher: outcomes, stage durations, snapshot sizes, lock
//! skips and memory. Served by [`crate::commands::status`] under `run`.

use std::sync::atomic::AtomicI64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::{
    counter::Counter, family::Family, gauge::Gauge, histogram::Histogram,
};
use prometheus_client::registry::Registry;

use shared::events::RefreshStatus;
use shared::snapshot::SnapshotMeta;

/// A timed part of a refresh (rows are serialised as they stream, inside `Query`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Streaming the live offers out of Postgres and serialising each row.
    Query,
    /// Scoring with the ONNX model and sorting.
    Rank,
    /// Writing the ranked document into the gzip and zstd encoders.
    Compress,
    /// Writing the version to Redis and switching `current`.
    Write,
    /// Publishing `snapshot.updated`.
    Publish,
    /// The whole refresh, including the lock and retries.
    Total,
}

impl Stage {
    /// The `stage` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Query => "query",
            Self::Rank => "rank",
            Self::Compress => "compress",
            Self::Write => "write",
            Self::Publish => "publish",
            Self::Total => "total",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabels {
    stage: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EncodingLabels {
    encoding: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReplicationLabels {
    result: &'static str,
}

/// Every metric the refresher exports.
pub struct RefreshMetrics {
    registry: Registry,
    last_success: Gauge<i64, AtomicI64>,
    durations: Family<StageLabels, Histogram>,
    outcomes: Family<OutcomeLabels, Counter>,
    consecutive_failures: Gauge,
    snapshot_bytes: Family<EncodingLabels, Gauge>,
    snapshot_offers: Gauge,
    lock_skips: Counter,
    requests: Counter,
    delta_build: Histogram,
    delta_bytes: Family<DeltaLabels, Gauge>,
    delta_failures: Counter,
    switch_replication: Family<ReplicationLabels, Counter>,
    rss: Gauge<i64, AtomicI64>,
}

/// Labels of a delta: how many versions back its dictionary is (1 = the previous one).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeltaLabels {
    versions_back: u8,
}

impl Default for RefreshMetrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("ofertasws");
        let metrics = Self {
            last_success: Gauge::default(),
            durations: Family::new_with_constructor(|| {
                Histogram::new([
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                    30.0,
                ])
            }),
            outcomes: Family::default(),
            consecutive_failures: Gauge::default(),
            snapshot_bytes: Family::default(),
            snapshot_offers: Gauge::default(),
            lock_skips: Counter::default(),
            requests: Counter::default(),
            delta_build: Histogram::new([
                0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
            ]),
            delta_bytes: Family::default(),
            delta_failures: Counter::default(),
            switch_replication: Family::default(),
            rss: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "refresh_last_success_timestamp_seconds",
            "Unix time of the last successful or unchanged refresh",
            metrics.last_success.clone(),
        );
        registry.register(
            "refresh_duration_seconds",
            "Time spent per refresh stage",
            metrics.durations.clone(),
        );
        registry.register(
            "refresh_outcomes",
            "Refresh attempts by outcome",
            metrics.outcomes.clone(),
        );
        registry.register(
            "refresh_consecutive_failures",
            "Failed refreshes since the last one that did not fail",
            metrics.consecutive_failures.clone(),
        );
        registry.register(
            "refresh_snapshot_bytes",
            "Size of the current snapshot by encoding, as of the last refresh that did not fail",
            metrics.snapshot_bytes.clone(),
        );
        registry.register(
            "refresh_snapshot_offers",
            "Offers in the current snapshot, as of the last refresh that did not fail",
            metrics.snapshot_offers.clone(),
        );
        registry.register(
            "refresh_lock_skips",
            "Refreshes skipped because another one held the lock",
            metrics.lock_skips.clone(),
        );
        registry.register(
            "refresh_requests",
            "Refresh requests taken from the refresh channel (a burst taken during a refresh is answered by one more)",
            metrics.requests.clone(),
        );
        registry.register(
            "refresh_delta_build_seconds",
            "Time to build one dcz delta (decompress its dictionary, compress against it)",
            metrics.delta_build.clone(),
        );
        registry.register(
            "refresh_delta_bytes",
            "Size of the current version's dcz delta from the version VERSIONS_BACK before it",
            metrics.delta_bytes.clone(),
        );
        registry.register(
            "refresh_delta_failures",
            "Delta builds that failed (the whole encodings serve meanwhile)",
            metrics.delta_failures.clone(),
        );
        registry.register(
            "refresh_switch_replication",
            "Switches to a new snapshot by whether a replica had it before it was announced",
            metrics.switch_replication.clone(),
        );
        registry.register(
            "process_resident_memory_bytes",
            "Resident set size",
            metrics.rss.clone(),
        );
        Self {
            registry,
            ..metrics
        }
    }
}

impl RefreshMetrics {
    /// Records how long `stage` took.
    pub fn stage(&self, stage: Stage, took: Duration) {
        self.durations
            .get_or_create(&StageLabels {
                stage: stage.as_str(),
            })
            .observe(took.as_secs_f64());
    }

    /// Records a refresh that ended with `status`; `current` is the snapshot current after
    /// it (published or unchanged), if any.
    pub fn outcome(&self, status: RefreshStatus, current: Option<&SnapshotMeta>) {
        self.outcomes
            .get_or_create(&OutcomeLabels {
                outcome: status.as_str(),
            })
            .inc();
        match status {
            RefreshStatus::Success | RefreshStatus::Unchanged => {
                self.consecutive_failures.set(0);
                self.last_success.set(chrono::Utc::now().timestamp());
            }
            RefreshStatus::Failed => {
                self.consecutive_failures.inc();
            }
            RefreshStatus::Skipped | RefreshStatus::Rejected => {}
        }
        if let Some(meta) = current {
            for (encoding, bytes) in [
                ("json", meta.json_bytes),
                ("gzip", meta.gzip_bytes),
                ("zstd", meta.zstd_bytes),
            ] {
                self.snapshot_bytes
                    .get_or_create(&EncodingLabels { encoding })
                    .set(bytes as i64);
            }
            self.snapshot_offers.set(meta.count as i64);
        }
    }

    /// Records a delta built in `took` from the version `versions_back` before the current
    /// one, `bytes` long.
    pub fn delta_built(&self, versions_back: usize, bytes: u64, took: Duration) {
        self.delta_build.observe(took.as_secs_f64());
        let labels = DeltaLabels {
            versions_back: u8::try_from(versions_back).unwrap_or(u8::MAX),
        };
        self.delta_bytes.get_or_create(&labels).set(bytes as i64);
    }

    /// Records a delta build that failed.
    pub fn delta_failed(&self) {
        self.delta_failures.inc();
    }

    /// Records a refresh request taken from the refresh channel.
    pub fn request_taken(&self) {
        self.requests.inc();
    }

    /// Records a refresh skipped because the lock was held elsewhere.
    pub fn lock_skipped(&self) {
        self.lock_skips.inc();
    }

    /// Records whether a replica had a switch before it was announced.
    pub fn switch_replicated(&self, replication: shared::redis::Replication) {
        self.switch_replication
            .get_or_create(&ReplicationLabels {
                result: replication.as_str(),
            })
            .inc();
    }

    /// Refreshes the point-in-time gauges and renders the text exposition.
    pub fn render(&self) -> String {
        self.rss
            .set(shared::memory::rss_bytes().unwrap_or(0) as i64);
        let mut out = String::with_capacity(4 * 1024);
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_in_a_row_reset_on_success_and_sizes_follow_the_snapshot() {
        let metrics = RefreshMetrics::default();
        metrics.outcome(RefreshStatus::Failed, None);
        metrics.outcome(RefreshStatus::Failed, None);
        assert!(
            metrics
                .render()
                .contains("ofertasws_refresh_consecutive_failures 2\n")
        );
        metrics.stage(Stage::Query, Duration::from_millis(3));
        metrics.lock_skipped();
        metrics.request_taken();
        metrics.switch_replicated(shared::redis::Replication::NoReplica);
        let meta = SnapshotMeta {
            version: "1-a".into(),
            etag: "\"1-a\"".into(),
            seq: 1,
            count: 7,
            generated_at: chrono::Utc::now(),
            content_hash: "h".into(),
            json_bytes: 100,
            gzip_bytes: 30,
            zstd_bytes: 20,
            json_hash: "j".into(),
            json_sha256: None,
            gzip_hash: "g".into(),
            zstd_hash: "z".into(),
        };
        metrics.outcome(RefreshStatus::Success, Some(&meta));
        let text = metrics.render();
        for line in [
            "ofertasws_refresh_consecutive_failures 0\n",
            "ofertasws_refresh_outcomes_total{outcome=\"failed\"} 2\n",
            "ofertasws_refresh_outcomes_total{outcome=\"success\"} 1\n",
            "ofertasws_refresh_snapshot_bytes{encoding=\"zstd\"} 20\n",
            "ofertasws_refresh_snapshot_offers 7\n",
            "ofertasws_refresh_lock_skips_total 1\n",
            "ofertasws_refresh_requests_total 1\n",
            "ofertasws_refresh_switch_replication_total{result=\"no_replica\"} 1\n",
            "ofertasws_refresh_duration_seconds_count{stage=\"query\"} 1\n",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        assert!(!text.contains("ofertasws_refresh_last_success_timestamp_seconds 0\n"));
    }
}

//! Prometheus metrics of the API: requests, latency, bytes, snapshot and Redis state.

use std::sync::atomic::{AtomicI64, AtomicU64};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::{
    counter::Counter, family::Family, gauge::Gauge, histogram::Histogram,
};
use prometheus_client::registry::Registry;

use shared::snapshot::SnapshotMeta;

use crate::http::connections::ConnectionMetrics;
use crate::request::route_table::Route;

/// Labels of a served request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// Route template.
    pub route: &'static str,
    /// Status code.
    pub status: u16,
    /// Content encoding sent (`identity` when none).
    pub encoding: &'static str,
}

/// Labels of per-route metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// Route template.
    pub route: &'static str,
}

/// Labels naming the snapshot being served.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VersionLabels {
    /// Snapshot version.
    pub version: String,
}

/// Every metric the API exports.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    duration: Family<RouteLabels, Histogram>,
    bytes_sent: Family<RequestLabels, Counter>,
    sent_from_file: Counter,
    not_modified: Counter,
    snapshot_info: Family<VersionLabels, Gauge>,
    snapshot_generated: Gauge<i64, AtomicI64>,
    snapshot_age: Gauge<f64, AtomicU64>,
    snapshot_offers: Gauge,
    reloads: Counter,
    rejected: Counter,
    deltas_rejected: Counter,
    dictionary_unmatched: Counter,
    delta_bytes_saved: Counter,
    reconnects: Counter,
    redis_up: Gauge,
    rss: Gauge,
    memory: Gauge,
    connections: ConnectionMetrics,
    snapshot: PreparedRoute,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("ofertasws");
        let requests = Family::default();
        let bytes_sent = Family::default();
        let duration: Family<RouteLabels, Histogram> = Family::new_with_constructor(|| {
            Histogram::new([
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
            ])
        });
        let snapshot = PreparedRoute::new(Route::Snapshot, &requests, &bytes_sent, &duration);
        let metrics = Self {
            requests,
            duration,
            bytes_sent,
            sent_from_file: Counter::default(),
            not_modified: Counter::default(),
            snapshot_info: Family::default(),
            snapshot_generated: Gauge::default(),
            snapshot_age: Gauge::default(),
            snapshot_offers: Gauge::default(),
            reloads: Counter::default(),
            rejected: Counter::default(),
            deltas_rejected: Counter::default(),
            dictionary_unmatched: Counter::default(),
            delta_bytes_saved: Counter::default(),
            reconnects: Counter::default(),
            redis_up: Gauge::default(),
            rss: Gauge::default(),
            memory: Gauge::default(),
            connections: ConnectionMetrics::default(),
            registry: Registry::default(),
            snapshot,
        };
        metrics.connections.register(&mut registry);
        registry.register(
            "http_requests",
            "HTTP requests served",
            metrics.requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to produce a response",
            metrics.duration.clone(),
        );
        registry.register(
            "http_response_body_bytes",
            "Response body bytes sent",
            metrics.bytes_sent.clone(),
        );
        registry.register(
            "http_sendfile_bytes",
            "Snapshot body bytes sent from memory files with sendfile instead of copied",
            metrics.sent_from_file.clone(),
        );
        registry.register(
            "http_not_modified",
            "304 Not Modified responses",
            metrics.not_modified.clone(),
        );
        registry.register(
            "snapshot_info",
            "Snapshot version being served (value 1)",
            metrics.snapshot_info.clone(),
        );
        registry.register(
            "snapshot_generated_timestamp_seconds",
            "generated_at of the snapshot served",
            metrics.snapshot_generated.clone(),
        );
        registry.register(
            "snapshot_age_seconds",
            "Age of the snapshot served",
            metrics.snapshot_age.clone(),
        );
        registry.register(
            "snapshot_offers",
            "Offers in the snapshot served",
            metrics.snapshot_offers.clone(),
        );
        registry.register(
            "snapshot_reloads",
            "New snapshots loaded",
            metrics.reloads.clone(),
        );
        registry.register(
            "snapshot_rejected",
            "Snapshots refused because a body did not match its metadata",
            metrics.rejected.clone(),
        );
        registry.register(
            "snapshot_deltas_rejected",
            "dcz deltas refused because a body did not match its index or named another dictionary",
            metrics.deltas_rejected.clone(),
        );
        registry.register(
            "http_dictionary_unmatched",
            "Available-Dictionary values naming no held delta (the current document aside)",
            metrics.dictionary_unmatched.clone(),
        );
        registry.register(
            "http_delta_bytes_saved",
            "Bytes dcz responses saved against the zstd body of the same snapshot",
            metrics.delta_bytes_saved.clone(),
        );
        registry.register(
            "redis_reconnects",
            "Reconnections to Redis",
            metrics.reconnects.clone(),
        );
        registry.register(
            "redis_up",
            "1 when the last Redis read succeeded",
            metrics.redis_up.clone(),
        );
        registry.register(
            "process_resident_memory_bytes",
            "Resident set size",
            metrics.rss.clone(),
        );
        registry.register(
            "process_memory_bytes",
            "Memory the kernel charges the process: resident memory without shared pages, plus the snapshot bodies held in memfds",
            metrics.memory.clone(),
        );
        Self {
            registry,
            ..metrics
        }
    }
}

/// The request and body-byte counters of one route, status and encoding.
struct ResponseCounters {
    requests: Counter,
    bytes: Counter,
}

/// The snapshot route's metric handles, taken from the label maps once. Counting a
/// response through them skips the map lookups (a lock that every request thread takes,
/// and a hash, per metric), which matters on a route served a hundred thousand times a
/// second.
struct PreparedRoute {
    duration: Histogram,
    /// The counters of the (status, encoding) pairs the route answers most.
    common: Vec<(u16, &'static str, ResponseCounters)>,
}

/// The (status, encoding label) pairs of nearly every snapshot response: 200 in each
/// encoding, and 304 (no body, so no encoding). Their series are exported from the start,
/// at zero until used.
const SNAPSHOT_RESPONSES: [(u16, &str); 5] = [
    (200, "zstd"),
    (200, "dcz"),
    (200, "gzip"),
    (200, "identity"),
    (304, "identity"),
];

impl PreparedRoute {
    /// Handles for `route`'s [`SNAPSHOT_RESPONSES`] in the label maps given.
    fn new(
        route: Route,
        requests: &Family<RequestLabels, Counter>,
        bytes_sent: &Family<RequestLabels, Counter>,
        duration: &Family<RouteLabels, Histogram>,
    ) -> Self {
        let route = route.label();
        let common = SNAPSHOT_RESPONSES
            .iter()
            .map(|&(status, encoding)| {
                let labels = RequestLabels {
                    route,
                    status,
                    encoding,
                };
                let counters = ResponseCounters {
                    requests: requests.get_or_create(&labels).clone(),
                    bytes: bytes_sent.get_or_create(&labels).clone(),
                };
                (status, encoding, counters)
            })
            .collect();
        Self {
            duration: duration.get_or_create(&RouteLabels { route }).clone(),
            common,
        }
    }
}

impl Metrics {
    /// Counts one response of `route`: requests and body bytes by status and encoding
    /// (`identity` when none), latency by route, 304s.
    pub fn observe(
        &self,
        route: Route,
        status: u16,
        encoding: &'static str,
        body_bytes: u64,
        seconds: f64,
    ) {
        if route == Route::Snapshot
            && let Some((_, _, counters)) = self
                .snapshot
                .common
                .iter()
                .find(|(s, e, _)| *s == status && *e == encoding)
        {
            let duration = &self.snapshot.duration;
            return self.count(
                &counters.requests,
                &counters.bytes,
                duration,
                status,
                body_bytes,
                seconds,
            );
        }
        let labels = RequestLabels {
            route: route.label(),
            status,
            encoding,
        };
        let requests = self.requests.get_or_create(&labels);
        let bytes = self.bytes_sent.get_or_create(&labels);
        let duration = self.duration.get_or_create(&RouteLabels {
            route: route.label(),
        });
        self.count(&requests, &bytes, &duration, status, body_bytes, seconds);
    }

    fn count(
        &self,
        requests: &Counter,
        bytes: &Counter,
        duration: &Histogram,
        status: u16,
        body_bytes: u64,
        seconds: f64,
    ) {
        requests.inc();
        if body_bytes > 0 {
            bytes.inc_by(body_bytes);
        }
        duration.observe(seconds);
        if status == 304 {
            self.not_modified.inc();
        }
    }

    /// The counter of body bytes sent with `sendfile`, for the connections'
    /// [`crate::http::zero_copy::ZeroCopyStream`].
    pub fn sent_from_file(&self) -> Counter {
        self.sent_from_file.clone()
    }

    /// Records that `meta` is now served.
    pub fn snapshot_loaded(&self, meta: &SnapshotMeta) {
        self.snapshot_info.clear();
        self.snapshot_info
            .get_or_create(&VersionLabels {
                version: meta.version.clone(),
            })
            .set(1);
        self.snapshot_generated.set(meta.generated_at.timestamp());
        self.snapshot_offers.set(meta.count as i64);
        self.reloads.inc();
    }

    /// Records a refused snapshot.
    pub fn snapshot_rejected(&self) {
        self.rejected.inc();
    }

    /// Records a refused delta.
    pub fn delta_rejected(&self) {
        self.deltas_rejected.inc();
    }

    /// Records a request whose dictionary matched no delta held.
    pub fn dictionary_unmatched(&self) {
        self.dictionary_unmatched.inc();
    }

    /// Records a dcz body sent, `saved` bytes smaller than the zstd body.
    pub fn delta_sent(&self, saved: u64) {
        self.delta_bytes_saved.inc_by(saved);
    }

    /// The connection gauges and counters, for [`crate::http::connections::Connections`].
    pub fn connections(&self) -> ConnectionMetrics {
        self.connections.clone()
    }

    /// Records a reconnection to Redis.
    pub fn redis_reconnected(&self) {
        self.reconnects.inc();
    }

    /// Refreshes the point-in-time gauges and renders the text exposition.
    pub fn render(
        &self,
        snapshot_age_seconds: Option<f64>,
        redis_up: bool,
        memory_bytes: Option<u64>,
    ) -> String {
        self.snapshot_age.set(snapshot_age_seconds.unwrap_or(0.0));
        self.redis_up.set(i64::from(redis_up));
        self.rss
            .set(shared::memory::rss_bytes().unwrap_or(0) as i64);
        self.memory.set(memory_bytes.unwrap_or(0) as i64);
        let mut out = String::with_capacity(8 * 1024);
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

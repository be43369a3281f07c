//! What the connection layer counts: connections open and refused, and connections closed
//! by each of its deadlines.

use prometheus_client::metrics::{counter::Counter, gauge::Gauge};
use prometheus_client::registry::Registry;

/// The connection metrics, registered by [`crate::metrics::Metrics`].
#[derive(Clone, Debug, Default)]
pub struct ConnectionMetrics {
    pub(super) open: Gauge,
    pub(super) refused: Counter,
    pub(super) header_timeouts: Counter,
    pub(super) idle_closes: Counter,
    pub(super) send_timeouts: Counter,
}

impl ConnectionMetrics {
    /// Registers the metrics in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "http_connections_open",
            "HTTP connections being served",
            self.open.clone(),
        );
        registry.register(
            "http_connections_refused",
            "Connections closed as soon as accepted because API_MAX_CONNECTIONS were open",
            self.refused.clone(),
        );
        registry.register(
            "http_header_timeouts",
            "Connections closed because a request head did not arrive within API_HEADER_TIMEOUT_SECS",
            self.header_timeouts.clone(),
        );
        registry.register(
            "http_idle_closes",
            "Connections closed after API_IDLE_TIMEOUT_SECS with no request pending",
            self.idle_closes.clone(),
        );
        registry.register(
            "http_send_timeouts",
            "Connections closed because the client accepted no byte of a response within API_SEND_TIMEOUT_SECS",
            self.send_timeouts.clone(),
        );
    }
}

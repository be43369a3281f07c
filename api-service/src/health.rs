//! Liveness, readiness and metrics endpoints.

use std::sync::Arc;

use poem::http::StatusCode;
use poem_openapi::payload::{Json, PlainText};
use poem_openapi::{ApiResponse, Object, OpenApi};

use crate::errors::{ApiError, ErrorBody};
use crate::metrics::Metrics;
use crate::snapshot_cache::SnapshotCache;

/// Liveness report.
#[derive(Object)]
pub struct Health {
    /// `ok` while the process serves.
    pub status: String,
    /// `up` or `down`: whether the last Redis read succeeded (the API serves its
    /// snapshot either way).
    pub redis: String,
    /// Version served, if any.
    #[oai(nullable)]
    pub snapshot_version: Option<String>,
    /// Seconds since that snapshot was generated.
    #[oai(nullable)]
    pub snapshot_age_seconds: Option<f64>,
    /// Resident memory of the process.
    #[oai(nullable)]
    pub rss_bytes: Option<u64>,
}

/// Readiness report.
#[derive(Object)]
pub struct Ready {
    /// `ready`.
    pub status: String,
    /// Version served.
    pub version: String,
}

/// Responses of `/ready`.
#[derive(ApiResponse)]
pub enum ReadyResponse {
    /// A snapshot is held.
    #[oai(status = 200)]
    Ready(Json<Ready>),
    /// No snapshot yet.
    #[oai(status = 503)]
    NotReady(Json<ErrorBody>),
}

/// Operational endpoints.
pub struct HealthApi {
    /// The snapshot served.
    pub cache: Arc<SnapshotCache>,
    /// Metrics registry.
    pub metrics: Arc<Metrics>,
}

impl HealthApi {
    fn snapshot_age(&self) -> Option<f64> {
        self.cache.current().map(|s| {
            ((chrono::Utc::now() - s.meta.generated_at).num_milliseconds() as f64 / 1000.0).max(0.0)
        })
    }
}

#[OpenApi]
impl HealthApi {
    /// Liveness: 200 while the process serves; reports Redis and snapshot state.
    #[oai(path = "/health", method = "get")]
    async fn health(&self) -> Json<Health> {
        Json(Health {
            status: "ok".to_owned(),
            redis: if self.cache.redis_up() { "up" } else { "down" }.to_owned(),
            snapshot_version: self.cache.current().map(|s| s.meta.version.clone()),
            snapshot_age_seconds: self.snapshot_age(),
            rss_bytes: shared::memory::rss_bytes(),
        })
    }

    /// Readiness: 200 once a snapshot is held, else 503.
    #[oai(path = "/ready", method = "get")]
    async fn ready(&self) -> ReadyResponse {
        match self.cache.current() {
            Some(snapshot) => ReadyResponse::Ready(Json(Ready {
                status: "ready".to_owned(),
                version: snapshot.meta.version.clone(),
            })),
            None => ReadyResponse::NotReady(Json(
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "not_ready",
                    "no snapshot loaded yet",
                )
                .body(),
            )),
        }
    }

    /// Prometheus metrics (text exposition format).
    #[oai(path = "/metrics", method = "get")]
    async fn metrics(&self) -> PlainText<String> {
        PlainText(
            self.metrics
                .render(self.snapshot_age(), self.cache.redis_up()),
        )
    }
}

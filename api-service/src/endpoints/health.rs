//! Liveness, readiness and metrics endpoints, and the statuses they report.

use std::sync::Arc;

use poem::http::StatusCode;
use poem_openapi::payload::{Json, PlainText};
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};

use crate::http::sealed::BodyFiles;
use crate::metrics::Metrics;
use crate::request::errors::{ApiError, ErrorBody};
use crate::snapshot::CurrentSnapshot;

/// Liveness: the process serves.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[oai(rename_all = "lowercase")]
pub enum HealthStatus {
    /// The process serves (the only status it can report).
    Ok,
}

/// Whether the last Redis read succeeded.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[oai(rename_all = "lowercase")]
pub enum RedisState {
    /// It did.
    Up,
    /// It failed; the API serves its snapshot anyway.
    Down,
}

/// Readiness: a snapshot is held.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[oai(rename_all = "lowercase")]
pub enum ReadyStatus {
    /// A snapshot is held (a replica without one answers 503 instead).
    Ready,
}

/// Liveness report.
#[derive(Object)]
pub struct Health {
    /// `ok` while the process serves.
    pub status: HealthStatus,
    /// `up` or `down`: whether the last Redis read succeeded (the API serves its
    /// snapshot either way).
    pub redis: RedisState,
    /// Version served, if any.
    #[oai(nullable)]
    pub snapshot_version: Option<String>,
    /// Seconds since that snapshot was generated.
    #[oai(nullable)]
    pub snapshot_age_seconds: Option<f64>,
    /// Resident memory of the process.
    #[oai(nullable)]
    pub rss_bytes: Option<u64>,
    /// Memory the kernel charges the process: resident memory without shared pages plus
    /// the snapshot bodies, held in memfds (which `rss_bytes` counts only where touched).
    #[oai(nullable)]
    pub memory_bytes: Option<u64>,
}

/// Readiness report.
#[derive(Object)]
pub struct Ready {
    /// `ready`.
    pub status: ReadyStatus,
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
    pub current: Arc<CurrentSnapshot>,
    /// Where its bodies are held.
    pub files: Arc<BodyFiles>,
    /// Metrics registry.
    pub metrics: Arc<Metrics>,
}

#[OpenApi]
impl HealthApi {
    /// Liveness: 200 while the process serves; reports Redis and snapshot state.
    #[oai(path = "/health", method = "get")]
    async fn health(&self) -> Json<Health> {
        Json(Health {
            status: HealthStatus::Ok,
            redis: if self.current.redis_up() {
                RedisState::Up
            } else {
                RedisState::Down
            },
            snapshot_version: self.current.version(),
            snapshot_age_seconds: self.current.age_seconds(),
            rss_bytes: shared::memory::rss_bytes(),
            memory_bytes: self.files.charged_memory(),
        })
    }

    /// Readiness: 200 once a snapshot is held, else 503.
    #[oai(path = "/ready", method = "get")]
    async fn ready(&self) -> ReadyResponse {
        match self.current.version() {
            Some(version) => ReadyResponse::Ready(Json(Ready {
                status: ReadyStatus::Ready,
                version,
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
        PlainText(self.metrics.render(
            self.current.age_seconds(),
            self.current.redis_up(),
            self.files.charged_memory(),
        ))
    }
}

//! The daemon's small HTTP port (`REFRESH_METRICS_BIND`): `/health`, `/ready` and
//! `/metrics`, for Kubernetes probes and Prometheus.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;
use fred::prelude::ClientLike;
use poem::http::StatusCode;
use poem::listener::{Acceptor, Listener, TcpAcceptor, TcpListener};
use poem::web::{Data, Json};
use poem::{EndpointExt, IntoResponse, Route, Server, get, handler};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::pipeline::context::RefreshContext;

/// Whether the daemon listens on the refresh channel (set by
/// [`crate::commands::daemon::run`]).
#[derive(Debug, Default)]
pub struct Readiness(AtomicBool);

impl Readiness {
    /// Marks the daemon as listening (or not).
    pub fn set(&self, listening: bool) {
        self.0.store(listening, Ordering::Relaxed);
    }

    fn listening(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

struct State {
    ctx: Arc<RefreshContext>,
    readiness: Arc<Readiness>,
}

/// Binds `addr` (port 0 picks one).
///
/// # Errors
/// When the address cannot be bound; the message names `REFRESH_METRICS_BIND`.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<(TcpAcceptor, SocketAddr)> {
    let acceptor = TcpListener::bind(addr)
        .into_acceptor()
        .await
        .with_context(|| format!("cannot listen on REFRESH_METRICS_BIND={addr}"))?;
    let bound = acceptor
        .local_addr()
        .first()
        .and_then(|a| a.as_socket_addr().copied())
        .context("listener has no address")?;
    Ok((acceptor, bound))
}

/// Serves the status endpoints on `acceptor` until `shutdown` is cancelled.
pub async fn serve(
    acceptor: TcpAcceptor,
    ctx: Arc<RefreshContext>,
    readiness: Arc<Readiness>,
    shutdown: CancellationToken,
) {
    let app = Route::new()
        .at("/health", get(health))
        .at("/ready", get(ready))
        .at("/metrics", get(metrics))
        .data(Arc::new(State { ctx, readiness }));
    if let Err(e) = Server::new_with_acceptor(acceptor)
        .run_with_graceful_shutdown(app, shutdown.cancelled_owned(), None)
        .await
    {
        tracing::error!(error = %e, "status server failed");
    }
}

#[handler]
fn health() -> Json<serde_json::Value> {
    Json(json!({
        "status": "ok",
        "rss_bytes": shared::memory::rss_bytes(),
    }))
}

#[handler]
fn ready(state: Data<&Arc<State>>) -> poem::Response {
    let listening = state.readiness.listening();
    let redis = state.ctx.store.client().is_connected();
    let (status, body) = match (listening, redis) {
        (true, true) => (StatusCode::OK, json!({"status": "ready"})),
        (false, _) => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"error": "not_ready", "message": "not listening on the refresh channel yet"}),
        ),
        (true, false) => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"error": "not_ready", "message": "Redis is unreachable"}),
        ),
    };
    Json(body).with_status(status).into_response()
}

#[handler]
fn metrics(state: Data<&Arc<State>>) -> poem::Response {
    state
        .ctx
        .metrics
        .render()
        .with_content_type("text/plain; version=0.0.4; charset=utf-8")
        .into_response()
}

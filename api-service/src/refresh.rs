//! `POST /api/v4/ofertasws/refresh`: publish a request on `P:refresh` and, by default,
//! wait for its outcome event.

use std::time::Duration;

use poem::http::StatusCode;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object};
use tokio::sync::broadcast::error::RecvError;

use shared::events::{RefreshOutcome, RefreshRequest, RefreshStatus};

use crate::errors::{ApiError, ErrorBody};
use crate::snapshot_cache::SnapshotCache;

/// How often a waiting refresh request also looks for its kept outcome in Redis.
const RECALL_EVERY: Duration = Duration::from_secs(1);

/// Outcome of a refresh the API asked for.
#[derive(Object)]
pub struct RefreshResult {
    /// `success`, `unchanged`, `skipped` or `failed`.
    pub status: String,
    /// The request's id.
    pub request_id: String,
    /// Offers in the current snapshot.
    #[oai(nullable)]
    pub count: Option<u64>,
    /// Current version.
    #[oai(nullable)]
    pub version: Option<String>,
    /// Current ETag.
    #[oai(nullable)]
    pub etag: Option<String>,
    /// Duration of the refresh.
    #[oai(nullable)]
    pub execution_time_ms: Option<u64>,
    /// Why it failed or was skipped.
    #[oai(nullable)]
    pub error: Option<String>,
}

/// A request accepted without waiting.
#[derive(Object)]
pub struct Accepted {
    /// Always `accepted`.
    pub status: String,
    /// The request's id, found again in the refresh log and events.
    pub request_id: String,
}

/// Responses of the refresh endpoint.
#[derive(ApiResponse)]
pub enum RefreshReply {
    /// The refresh finished (`success`, `unchanged` or `skipped`).
    #[oai(status = 200)]
    Done(Json<RefreshResult>),
    /// Published; not waited for (`wait=false`).
    #[oai(status = 202)]
    Accepted(Json<Accepted>),
    /// Missing or invalid token.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>, #[oai(header = "WWW-Authenticate")] String),
    /// A malformed query parameter (`wait`, `timeout`).
    // Declared only: poem-openapi refuses the parameter and `errors::render` answers.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// The token may not request refreshes.
    #[oai(status = 403)]
    Forbidden(Json<ErrorBody>),
    /// The refresh failed; the current snapshot is unchanged.
    #[oai(status = 502)]
    Failed(Json<RefreshResult>),
    /// No refresh service is listening, or Redis is unreachable.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>),
    /// No outcome within the timeout; the refresh may still complete.
    #[oai(status = 504)]
    Timeout(Json<ErrorBody>),
}

fn unavailable(code: &'static str, message: impl Into<String>) -> RefreshReply {
    RefreshReply::Unavailable(Json(
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code, message).body(),
    ))
}

fn result(request_id: String, outcome: &RefreshOutcome) -> RefreshResult {
    RefreshResult {
        status: outcome.status.as_str().to_owned(),
        request_id,
        count: outcome.count,
        version: outcome.version.clone(),
        etag: outcome.etag.clone(),
        execution_time_ms: outcome.execution_time_ms,
        error: outcome.error.clone(),
    }
}

/// Publishes a refresh request from `requested_by` and, with `wait`, waits up to
/// `timeout` for its outcome (subscribing before publishing, so it cannot be missed).
pub async fn request_refresh(
    cache: &SnapshotCache,
    requested_by: Option<&str>,
    wait: bool,
    timeout: Duration,
) -> RefreshReply {
    let mut events = cache.subscribe_events();
    let request_id = uuid::Uuid::new_v4().to_string();
    let request = RefreshRequest {
        request_id: Some(request_id.clone()),
        reason: Some("requested through the API".to_owned()),
        requested_by: requested_by.map(str::to_owned),
        trigger: Some("api".to_owned()),
        traceparent: shared::telemetry::traceparent(),
    };
    let payload = serde_json::to_string(&request).unwrap_or_default();
    let channel = cache.store().keys().refresh_channel();
    let receivers = match shared::redis::publish(cache.store().client(), &channel, payload).await {
        Ok(receivers) => receivers,
        Err(e) => {
            tracing::warn!(error = %e, "cannot publish a refresh request");
            return unavailable(
                "redis_unavailable",
                "cannot reach Redis to request a refresh",
            );
        }
    };
    if receivers == 0 {
        return unavailable(
            "no_refresher",
            "no refresh service is subscribed to the refresh channel",
        );
    }
    tracing::info!(%request_id, requested_by, "refresh requested");
    if !wait {
        return RefreshReply::Accepted(Json(Accepted {
            status: "accepted".to_owned(),
            request_id,
        }));
    }
    // The event normally answers; the kept outcome covers an event missed while the
    // subscription was reconnecting.
    let mut recall = tokio::time::interval(RECALL_EVERY);
    recall.reset();
    let outcome = tokio::time::timeout(timeout, async {
        loop {
            tokio::select! {
                event = events.recv() => match event {
                    Ok(event) => {
                        if let Some(outcome) = event
                            .outcome()
                            .filter(|o| o.request_id.as_deref() == Some(request_id.as_str()))
                        {
                            return Some(outcome.clone());
                        }
                    }
                    Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => return None,
                },
                _ = recall.tick() => {
                    if let Ok(Some(event)) = cache.store().recall_outcome(&request_id).await
                        && let Some(outcome) = event.outcome()
                    {
                        return Some(outcome.clone());
                    }
                }
            }
        }
    })
    .await;
    match outcome {
        Ok(Some(outcome)) if outcome.status == RefreshStatus::Failed => {
            RefreshReply::Failed(Json(result(request_id, &outcome)))
        }
        Ok(Some(outcome)) => RefreshReply::Done(Json(result(request_id, &outcome))),
        Ok(None) => unavailable("redis_unavailable", "lost the event stream while waiting"),
        Err(_) => RefreshReply::Timeout(Json(
            ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "timeout",
                format!(
                    "no outcome for request {request_id} within {}s; it may still complete",
                    timeout.as_secs()
                ),
            )
            .body(),
        )),
    }
}

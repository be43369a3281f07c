//! `POST /api/v4/ofertasws/refresh`: publish a request on `P:refresh` and, by default,
//! wait for its outcome, through the protocol in [`shared::refresh`]. It reaches Redis
//! with a client of its own and reads the events the replica's one event subscriber
//! broadcasts; the snapshot cache is not involved.

use std::sync::Arc;
use std::time::Duration;

use poem::http::StatusCode;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object};
use tokio::sync::broadcast;

use shared::events::{Event, RefreshOutcome, RefreshRequest, RefreshStatus, Trigger};
use shared::refresh::{RefreshRequester, RequestError};

use crate::request::errors::{ApiError, ErrorBody};

/// Outcome of a refresh the API asked for.
#[derive(Object)]
pub struct RefreshResult {
    /// `success`, `unchanged`, `skipped` or `failed`.
    pub status: RefreshStatus,
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

/// The status of a request published without waiting for it.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[oai(rename_all = "lowercase")]
pub enum AcceptedStatus {
    /// Published; its outcome comes as an event.
    Accepted,
}

/// A request accepted without waiting.
#[derive(Object)]
pub struct Accepted {
    /// Always `accepted`.
    pub status: AcceptedStatus,
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

fn unavailable(code: &'static str, message: &'static str) -> RefreshReply {
    RefreshReply::Unavailable(Json(
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code, message).body(),
    ))
}

/// The result of the request `request_id`, whose outcome `outcome` is.
fn result(request_id: String, outcome: RefreshOutcome) -> RefreshResult {
    RefreshResult {
        status: outcome.status,
        request_id,
        count: outcome.count,
        version: outcome.version,
        etag: outcome.etag,
        execution_time_ms: outcome.execution_time_ms,
        error: outcome.error,
    }
}

/// What the refresh endpoint needs: a requester on its own Redis client, and the
/// replica's broadcast of parsed `P:events` events (each waiter subscribes to it before
/// its request goes out).
pub struct RefreshEndpoint {
    requester: RefreshRequester,
    events: broadcast::Sender<Arc<Event>>,
}

impl RefreshEndpoint {
    /// An endpoint publishing through `requester` and waiting on `events`.
    pub fn new(requester: RefreshRequester, events: broadcast::Sender<Arc<Event>>) -> Self {
        Self { requester, events }
    }

    /// Publishes a refresh request from `requested_by` and, with `wait`, waits up to
    /// `timeout` for its outcome.
    pub async fn request(
        &self,
        requested_by: Option<&str>,
        wait: bool,
        timeout: Duration,
    ) -> RefreshReply {
        // The id is ours, so the result names it whatever the outcome carries.
        let request_id = uuid::Uuid::new_v4().to_string();
        let request = RefreshRequest {
            request_id: Some(request_id.clone()),
            reason: Some("requested through the API".to_owned()),
            requested_by: requested_by.map(str::to_owned),
            trigger: Some(Trigger::Api),
            ..RefreshRequest::default()
        };
        let answered = if wait {
            let events = self.events.subscribe();
            self.requester
                .request_and_wait(request, events, timeout)
                .await
                .map(|outcome| {
                    let failed = outcome.status == RefreshStatus::Failed;
                    let result = Json(result(request_id, outcome));
                    if failed {
                        RefreshReply::Failed(result)
                    } else {
                        RefreshReply::Done(result)
                    }
                })
        } else {
            self.requester.request(request).await.map(|request_id| {
                RefreshReply::Accepted(Json(Accepted {
                    status: AcceptedStatus::Accepted,
                    request_id,
                }))
            })
        };
        match answered {
            Ok(reply) => reply,
            Err(RequestError::NoRefresher { .. }) => unavailable(
                "no_refresher",
                "no refresh service is subscribed to the refresh channel",
            ),
            Err(RequestError::Redis(e)) => {
                tracing::warn!(error = %e, "cannot publish a refresh request");
                unavailable(
                    "redis_unavailable",
                    "cannot reach Redis to request a refresh",
                )
            }
            Err(e @ RequestError::TimedOut { .. }) => RefreshReply::Timeout(Json(
                ApiError::new(StatusCode::GATEWAY_TIMEOUT, "timeout", e.to_string()).body(),
            )),
        }
    }
}

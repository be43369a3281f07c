//! `GET`/`HEAD /api/v4/ofertasws`, the request every app client repeats, answered from the
//! request head alone.
//!
//! [`crate::server`] hands such requests to [`SnapshotRoute::serve`] before poem's router
//! and middleware, which cost more per request than everything this route does.
//! [`reply`] is the whole response logic; the poem-openapi operations in [`crate::routes`]
//! declare the route in the OpenAPI document and answer through the same [`reply`] when
//! a request reaches poem instead.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use headers::authorization::Bearer;
use headers::{Authorization, HeaderMapExt};
use poem::http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};
use tokio::net::TcpStream;

use crate::auth::{AuthError, Authenticator};
use crate::errors::ApiError;
use crate::metrics::{Metrics, RouteMetrics};
use crate::negotiate::{Precondition, negotiate, precondition};
use crate::observe;
use crate::snapshot_cache::SnapshotCache;
use crate::zero_copy::ZeroCopyStream;

/// The route's path.
pub const PATH: &str = "/api/v4/ofertasws";

/// The (status, encoding label) pairs of nearly every response of the route: 200 in each
/// encoding, and 304 (no body, so no encoding).
const COMMON_RESPONSES: [(u16, &str); 4] = [
    (200, "zstd"),
    (200, "gzip"),
    (200, "identity"),
    (304, "identity"),
];

/// Seconds a client is told to wait when no snapshot is loaded yet.
pub const RETRY_AFTER_SECS: u32 = 5;

/// The snapshot route with what it needs to answer on its own.
pub struct SnapshotRoute {
    cache: Arc<SnapshotCache>,
    auth: Arc<Authenticator>,
    metrics: Arc<Metrics>,
    route_metrics: RouteMetrics,
}

impl SnapshotRoute {
    /// The route over `cache`, checking tokens with `auth` and counting in `metrics`.
    pub fn new(cache: Arc<SnapshotCache>, auth: Arc<Authenticator>, metrics: Arc<Metrics>) -> Self {
        Self {
            route_metrics: metrics.route(PATH, &COMMON_RESPONSES),
            cache,
            auth,
            metrics,
        }
    }

    /// The IO to serve an accepted connection on: it sends this route's bodies from the
    /// snapshot's files (see [`crate::zero_copy`]).
    pub fn stream(&self, connection: TcpStream) -> ZeroCopyStream {
        ZeroCopyStream::new(connection, self.cache.clone(), self.metrics.clone())
    }

    /// Whether a request for `method` and `path` is this route's.
    pub fn handles(method: &Method, path: &str) -> bool {
        path == PATH && (method == Method::GET || method == Method::HEAD)
    }

    /// Answers one request: the bearer token first, then [`reply`]. The request is
    /// counted in the metrics and, when traces are exported, gets a span.
    pub fn serve(&self, method: &Method, headers: &HeaderMap) -> Response<Bytes> {
        let started = Instant::now();
        let span = observe::request_span(method, headers, PATH);
        let _entered = span.enter();
        let response = match self.authorize(headers) {
            Ok(()) => reply(&self.cache, headers),
            Err(error) => ApiError::unauthorized(error.to_string()).response(),
        };
        let status = response.status().as_u16();
        span.record("http.response.status_code", status);
        let body_bytes = if method == Method::HEAD {
            0
        } else {
            response.body().len() as u64
        };
        self.metrics.observe_route(
            &self.route_metrics,
            status,
            observe::encoding_label(response.headers()),
            body_bytes,
            started.elapsed().as_secs_f64(),
        );
        response
    }

    fn authorize(&self, headers: &HeaderMap) -> Result<(), AuthError> {
        let Some(Authorization(bearer)) = headers.typed_get::<Authorization<Bearer>>() else {
            return Err(AuthError::Missing);
        };
        self.auth.verify(bearer.token()).map(drop)
    }
}

/// The response to an authorised request: the snapshot in the best encoding the request
/// accepts (200), 304 when the client's copy is current, 406 when it accepts none of
/// ours, 503 before the first snapshot. Bodies and headers are the snapshot's own, so
/// this copies no body and formats nothing.
pub fn reply(cache: &SnapshotCache, headers: &HeaderMap) -> Response<Bytes> {
    let snapshot = cache.load();
    let Some(snapshot) = snapshot.as_deref() else {
        let mut response = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_snapshot",
            "no snapshot has been published yet",
        )
        .response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
        return response;
    };
    let accept = headers
        .get(header::ACCEPT_ENCODING)
        .map(|v| v.to_str().unwrap_or(""));
    let Some(encoding) = negotiate(accept) else {
        return ApiError::new(
            StatusCode::NOT_ACCEPTABLE,
            "not_acceptable",
            "the request accepts none of zstd, gzip or identity",
        )
        .response();
    };
    let variant = snapshot.variant(encoding);
    let (status, headers, body) = match precondition(headers, &snapshot.tags, snapshot.modified) {
        Precondition::NotModified => (
            StatusCode::NOT_MODIFIED,
            variant.not_modified_headers.clone(),
            Bytes::new(),
        ),
        Precondition::Send => (
            StatusCode::OK,
            variant.ok_headers.clone(),
            variant.body.clone(),
        ),
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

//! What every request leaves behind, written once for the snapshot route and the poem
//! endpoints alike: its span when traces are exported, and its metrics (route, status,
//! encoding, body bytes, latency). [`Observed`] is started when a request arrives and
//! finished with its response; [`counted`] wraps the poem endpoints in it.

use std::sync::Arc;
use std::time::Instant;

use poem::http::{HeaderMap, Method, StatusCode, header};
use poem::{Endpoint, Request, Response};
use tracing::{Instrument, Span, field::Empty};

use crate::metrics::Metrics;
use crate::request::errors::{ApiError, poem_response};
use crate::request::route_table::Route;

/// A request being answered: its route, when it arrived, its span, whether its body is
/// left out (`HEAD`).
pub struct Observed {
    route: Route,
    started: Instant,
    span: Span,
    head: bool,
}

impl Observed {
    /// Starts observing a `method` request for `route`; its span continues the caller's
    /// `traceparent`, and is none (free) when traces are not exported, so the hot path
    /// pays nothing for tracing.
    pub fn start(method: &Method, headers: &HeaderMap, route: Route) -> Self {
        Self {
            route,
            started: Instant::now(),
            span: request_span(method, headers, route),
            head: method == Method::HEAD,
        }
    }

    /// The request's span: the work of answering runs inside it.
    pub fn span(&self) -> &Span {
        &self.span
    }

    /// Records the response (`status`, `headers`, a body of `body_bytes`) in the span
    /// and in `metrics`.
    pub fn finish(
        self,
        metrics: &Metrics,
        status: StatusCode,
        headers: &HeaderMap,
        body_bytes: u64,
    ) {
        let status = status.as_u16();
        self.span.record("http.response.status_code", status);
        let sent = if self.head { 0 } else { body_bytes };
        metrics.observe(
            self.route,
            status,
            encoding_label(headers),
            sent,
            self.started.elapsed().as_secs_f64(),
        );
    }
}

/// The span of one request (none when traces are not exported).
fn request_span(method: &Method, headers: &HeaderMap, route: Route) -> Span {
    if !shared::telemetry::exporting() {
        return Span::none();
    }
    let span = tracing::info_span!(
        "http.request",
        otel.name = format!("{method} {}", route.label()),
        http.request.method = %method,
        http.route = route.label(),
        http.response.status_code = Empty,
    );
    let traceparent = headers.get("traceparent").and_then(|v| v.to_str().ok());
    shared::telemetry::continue_trace(&span, traceparent);
    span
}

/// The metrics label of a response's `Content-Encoding` (`identity` when none).
fn encoding_label(headers: &HeaderMap) -> &'static str {
    match headers.get(header::CONTENT_ENCODING).map(|v| v.as_bytes()) {
        Some(b"zstd") => "zstd",
        Some(b"dcz") => "dcz",
        Some(b"gzip") => "gzip",
        _ => "identity",
    }
}

/// Answers `req` with `endpoint` inside the request's span (a 405 as every route sends
/// it), and counts the response in `metrics`.
///
/// # Errors
/// Never: errors were already rendered by the endpoint's error handler.
pub async fn counted<E: Endpoint>(
    metrics: Arc<Metrics>,
    endpoint: Arc<E>,
    req: Request,
) -> poem::Result<Response> {
    let route = Route::of(req.uri().path());
    let observed = Observed::start(req.method(), req.headers(), route);
    let span = observed.span().clone();
    let mut response = endpoint.get_response(req).instrument(span).await;
    if response.status() == StatusCode::METHOD_NOT_ALLOWED {
        // poem's router decides which methods its routes answer; the 405 itself (body and
        // `Allow`) is the one every route sends.
        response = poem_response(ApiError::method_not_allowed(route).response());
    }
    let bytes = response
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    observed.finish(&metrics, response.status(), response.headers(), bytes);
    Ok(response)
}

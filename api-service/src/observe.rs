//! What every request leaves behind: its metrics, its span when traces are exported, and
//! the `Allow` header of a 405. [`counted`] does it for the routes poem serves;
//! [`crate::snapshot_route`] uses the same pieces for the snapshot route.

use std::sync::Arc;
use std::time::Instant;

use poem::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use poem::{Endpoint, Request, Response};
use tracing::{Instrument, Span, field::Empty};

use crate::metrics::Metrics;
use crate::route_table::Route;

/// The span of one request, continuing the caller's `traceparent`; none (free) when
/// traces are not exported, so the hot path pays nothing for tracing.
pub fn request_span(method: &Method, headers: &HeaderMap, route: Route) -> Span {
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
pub fn encoding_label(headers: &HeaderMap) -> &'static str {
    match headers.get(header::CONTENT_ENCODING).map(|v| v.as_bytes()) {
        Some(b"zstd") => "zstd",
        Some(b"dcz") => "dcz",
        Some(b"gzip") => "gzip",
        _ => "identity",
    }
}

/// Runs `endpoint` for `req` inside its span, adds `Allow` to a 405, and counts the
/// response in `metrics`.
///
/// # Errors
/// Never: errors were already rendered by the endpoint's error handler.
pub async fn counted<E: Endpoint>(
    metrics: Arc<Metrics>,
    endpoint: Arc<E>,
    req: Request,
) -> poem::Result<Response> {
    let started = Instant::now();
    let route = Route::of(req.uri().path());
    let head = req.method() == Method::HEAD;
    let span = request_span(req.method(), req.headers(), route);
    let mut response = endpoint.get_response(req).instrument(span.clone()).await;
    span.record("http.response.status_code", response.status().as_u16());
    if response.status() == StatusCode::METHOD_NOT_ALLOWED
        && let Some(allow) = route.allow()
    {
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static(allow));
    }
    let bytes = if head {
        0
    } else {
        response
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    metrics.observe(
        route.label(),
        response.status().as_u16(),
        encoding_label(response.headers()),
        bytes,
        started.elapsed().as_secs_f64(),
    );
    Ok(response)
}

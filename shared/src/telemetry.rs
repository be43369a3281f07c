//! Logs and traces shared by both binaries.
//!
//! Logs: `RUST_LOG` filters (default `info`); `LOG_FORMAT` is `json` or `text`, defaulting
//! to text on a terminal and JSON otherwise. Logs go to stderr so stdout stays free for
//! command output.
//!
//! Traces: when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, every `info`-level span (whatever
//! `RUST_LOG` says about logs) is exported over OTLP/HTTP — protobuf, or JSON with
//! `OTEL_EXPORTER_OTLP_PROTOCOL=http/json` — by a background batch exporter; when it is
//! unset nothing is exported and nothing waits for a collector. The W3C `traceparent` of a
//! span travels in refresh requests and events ([`traceparent`], [`continue_trace`]), so
//! an API-triggered refresh is one trace across both services.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::{EnvFilter, Layer, fmt, layer::SubscriberExt, util::SubscriberInitExt};

/// Variable that turns trace export on.
pub const OTLP_ENDPOINT_VAR: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";

/// Whether spans are being exported (set once by [`init`]).
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Keeps trace export running; dropping it flushes the spans not yet sent.
#[must_use = "dropping the guard stops trace export"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown()
        {
            eprintln!("cannot flush traces: {e}");
        }
    }
}

/// Whether spans are exported; hot paths skip creating spans when they are not.
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// Installs the global subscriber for `service` (logs, plus OTLP trace export when
/// `OTEL_EXPORTER_OTLP_ENDPOINT` is set). Call it before starting the async runtime.
///
/// Calling it twice is harmless (the second call changes nothing), which keeps tests
/// that start several services in one process simple. An exporter that cannot be built
/// is reported on stderr and the service runs without trace export.
pub fn init(service: &'static str) -> Telemetry {
    let provider = std::env::var(OTLP_ENDPOINT_VAR)
        .ok()
        .filter(|endpoint| !endpoint.trim().is_empty())
        .and_then(|endpoint| match tracer_provider(service) {
            Ok(provider) => Some(provider),
            Err(e) => {
                eprintln!("{service}: {OTLP_ENDPOINT_VAR}={endpoint}: trace export disabled: {e}");
                None
            }
        });
    let traces = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer(service))
            .with_filter(LevelFilter::INFO)
            .boxed()
    });
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match std::env::var("LOG_FORMAT").ok().as_deref() {
        Some("json") => true,
        Some("text") => false,
        _ => !std::io::stderr().is_terminal(),
    };
    let logs = if json {
        fmt::layer()
            .json()
            .with_current_span(false)
            .with_writer(std::io::stderr)
            .with_filter(filter)
            .boxed()
    } else {
        fmt::layer()
            .with_writer(std::io::stderr)
            .with_filter(filter)
            .boxed()
    };
    let installed = tracing_subscriber::registry()
        .with(logs)
        .with(traces)
        .try_init()
        .is_ok();
    if !installed {
        return Telemetry { provider: None };
    }
    EXPORTING.store(provider.is_some(), Ordering::Relaxed);
    tracing::debug!(
        service,
        traces = provider.is_some(),
        "telemetry initialised"
    );
    Telemetry { provider }
}

fn tracer_provider(service: &'static str) -> anyhow::Result<SdkTracerProvider> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service)
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

/// The W3C `traceparent` of the current span, when spans are exported.
pub fn traceparent() -> Option<String> {
    if !exporting() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&tracing::Span::current().context(), &mut carrier);
    carrier.remove("traceparent")
}

/// Makes `span` a child of the remote span `traceparent` (from a request, an event or an
/// HTTP header). A missing or malformed value leaves `span` a root; it never fails.
pub fn continue_trace(span: &tracing::Span, traceparent: Option<&str>) {
    let Some(traceparent) = traceparent.filter(|_| exporting()) else {
        return;
    };
    let carrier = HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
    let parent = TraceContextPropagator::new().extract(&carrier);
    if let Err(e) = span.set_parent(parent) {
        tracing::debug!(error = %e, "cannot continue the remote trace");
    }
}

/// Initialises logging for tests only when `TEST_LOG` is set, so test output stays quiet.
pub fn init_for_tests() {
    if std::env::var_os("TEST_LOG").is_some() {
        std::mem::forget(init("test"));
    }
}

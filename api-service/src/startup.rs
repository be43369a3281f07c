//! Building and running the HTTP application: the same code `main` and the tests call.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use poem::http::{HeaderValue, StatusCode, header};
use poem::listener::{Acceptor, Listener, TcpAcceptor, TcpListener};
use poem::{Endpoint, EndpointExt, IntoEndpoint, Route, Server};
use poem_openapi::OpenApiService;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, Span, field::Empty};

use shared::config::ApiSettings;
use shared::keys::Keys;
use shared::redis::Start;
use shared::store::SnapshotStore;

use crate::auth::Authenticator;
use crate::health::HealthApi;
use crate::metrics::Metrics;
use crate::routes::OfertasApi;
use crate::snapshot_cache::{self, SnapshotCache};

/// How often resident memory is compared with `API_RSS_WARN_MB`.
const RSS_CHECK_EVERY: Duration = Duration::from_secs(30);

/// The OpenAPI service describing every endpoint.
pub fn openapi(
    cache: Arc<SnapshotCache>,
    metrics: Arc<Metrics>,
) -> OpenApiService<(OfertasApi, HealthApi), ()> {
    OpenApiService::new(
        (
            OfertasApi {
                cache: cache.clone(),
            },
            HealthApi { cache, metrics },
        ),
        "ofertasws",
        env!("CARGO_PKG_VERSION"),
    )
    .description("Ranked snapshot of live merchant offers, served from memory.")
}

/// Route template used as the metrics label for `path`.
fn route_label(path: &str) -> &'static str {
    match path {
        "/api/v4/ofertasws" => "/api/v4/ofertasws",
        "/api/v4/ofertasws/meta" => "/api/v4/ofertasws/meta",
        "/api/v4/ofertasws/refresh" => "/api/v4/ofertasws/refresh",
        "/health" => "/health",
        "/ready" => "/ready",
        "/metrics" => "/metrics",
        "/openapi.json" => "/openapi.json",
        p if p.starts_with("/docs") => "/docs",
        _ => "other",
    }
}

/// Methods a route answers, for the `Allow` header of a 405.
fn allowed_methods(route: &'static str) -> Option<&'static str> {
    match route {
        "/api/v4/ofertasws/refresh" => Some("POST"),
        "other" => None,
        _ => Some("GET, HEAD"),
    }
}

/// The span of one request, continuing the caller's `traceparent`; none (free) when
/// traces are not exported, so the hot path pays nothing for tracing.
fn request_span(req: &poem::Request, route: &'static str) -> Span {
    if !shared::telemetry::exporting() {
        return Span::none();
    }
    let span = tracing::info_span!(
        "http.request",
        otel.name = format!("{} {route}", req.method()),
        http.request.method = %req.method(),
        http.route = route,
        http.response.status_code = Empty,
    );
    let traceparent = req
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok());
    shared::telemetry::continue_trace(&span, traceparent);
    span
}

/// The whole HTTP application over `cache`.
pub fn app(
    cache: Arc<SnapshotCache>,
    metrics: Arc<Metrics>,
    auth: Arc<Authenticator>,
) -> impl Endpoint {
    let api = openapi(cache, metrics.clone());
    let spec = api.spec_endpoint();
    let docs = api.swagger_ui();
    let observed = metrics;
    Route::new()
        .nest("/", api)
        .at("/openapi.json", spec)
        .nest("/docs", docs)
        .data(auth)
        .catch_all_error(crate::errors::render)
        .around(move |ep, req| {
            let metrics = observed.clone();
            async move {
                let started = Instant::now();
                let route = route_label(req.uri().path());
                let head = req.method() == poem::http::Method::HEAD;
                let span = request_span(&req, route);
                let mut response = ep.get_response(req).instrument(span.clone()).await;
                span.record("http.response.status_code", response.status().as_u16());
                if response.status() == StatusCode::METHOD_NOT_ALLOWED
                    && let Some(allow) = allowed_methods(route)
                {
                    response
                        .headers_mut()
                        .insert(header::ALLOW, HeaderValue::from_static(allow));
                }
                let encoding = match response
                    .headers()
                    .get(header::CONTENT_ENCODING)
                    .map(|v| v.as_bytes())
                {
                    Some(b"zstd") => "zstd",
                    Some(b"gzip") => "gzip",
                    _ => "identity",
                };
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
                    route,
                    response.status().as_u16(),
                    encoding,
                    bytes,
                    started.elapsed().as_secs_f64(),
                );
                Ok(response)
            }
        })
        .into_endpoint()
}

/// A bound, not yet serving, API.
pub struct Application {
    acceptor: TcpAcceptor,
    addr: SocketAddr,
    cache: Arc<SnapshotCache>,
    metrics: Arc<Metrics>,
    auth: Arc<Authenticator>,
    settings: ApiSettings,
}

impl Application {
    /// Validates `settings`, builds the keys and binds the listener (port 0 picks one).
    /// Redis is connected in the background, so the API starts (not ready) while Redis
    /// is down.
    ///
    /// # Errors
    /// A configuration error naming the variable, or the address cannot be bound.
    pub async fn build(settings: ApiSettings) -> anyhow::Result<Self> {
        settings.validate()?;
        let auth = Arc::new(Authenticator::from_settings(&settings)?);
        let bind = settings.bind_addr()?;
        let acceptor = TcpListener::bind(bind)
            .into_acceptor()
            .await
            .with_context(|| format!("cannot listen on API_BIND={bind}"))?;
        let addr = acceptor
            .local_addr()
            .first()
            .and_then(|a| a.as_socket_addr().copied())
            .context("listener has no address")?;
        let metrics = Arc::new(Metrics::default());
        let client = shared::redis::client(&settings.redis, Start::WaitForRedis)?;
        let store = SnapshotStore::new(client, Keys::new(&settings.redis.prefix));
        let cache = Arc::new(SnapshotCache::new(store, metrics.clone()));
        Ok(Self {
            acceptor,
            addr,
            cache,
            metrics,
            auth,
            settings,
        })
    }

    /// The address actually bound.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The snapshot cache (tests inspect it).
    pub fn cache(&self) -> Arc<SnapshotCache> {
        self.cache.clone()
    }

    /// Serves until `shutdown` is cancelled, then stops accepting, lets in-flight
    /// requests finish (up to `API_SHUTDOWN_GRACE_SECS`) and stops the background tasks.
    ///
    /// # Errors
    /// When the server fails.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let background = CancellationToken::new();
        let tasks = TaskTracker::new();
        let subscriber = shared::redis::subscriber(&self.settings.redis, Start::WaitForRedis)?;
        tasks.spawn(snapshot_cache::sync(
            self.cache.clone(),
            subscriber,
            background.clone(),
        ));
        tasks.spawn(watch_memory(self.settings.rss_warn_mb, background.clone()));
        let app = app(self.cache.clone(), self.metrics.clone(), self.auth.clone());
        tracing::info!(addr = %self.addr, "api-service listening");
        let grace = Duration::from_secs(self.settings.shutdown_grace_secs);
        let served = Server::new_with_acceptor(self.acceptor)
            .run_with_graceful_shutdown(app, shutdown.cancelled_owned(), Some(grace))
            .await;
        background.cancel();
        tasks.close();
        tasks.wait().await;
        tracing::info!("api-service stopped");
        served.context("HTTP server failed")
    }
}

async fn watch_memory(warn_mib: u64, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(RSS_CHECK_EVERY);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = every.tick() => {
                let rss = shared::memory::rss_mib();
                if rss > warn_mib {
                    tracing::warn!(memory.rss_mib = rss, memory.warn_mib = warn_mib, "resident memory above API_RSS_WARN_MB");
                }
            }
        }
    }
}

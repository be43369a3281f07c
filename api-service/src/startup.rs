//! Building and running the HTTP application: the same code `main` and the tests call.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use poem::{Endpoint, EndpointExt, IntoEndpoint, Route};
use poem_openapi::OpenApiService;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use shared::keys::Keys;
use shared::redis::Start;
use shared::refresh::RefreshRequester;
use shared::store::SnapshotStore;

use crate::endpoints::health::HealthApi;
use crate::endpoints::ofertas::OfertasApi;
use crate::endpoints::refresh::RefreshEndpoint;
use crate::endpoints::snapshot_doc::SnapshotRouteDoc;
use crate::endpoints::snapshot_route::SnapshotRoute;
use crate::http::connections::{Connections, Limits};
use crate::http::sealed::BodyFiles;
use crate::metrics::Metrics;
use crate::request::auth::Authenticator;
use crate::settings::ApiSettings;
use crate::snapshot::CurrentSnapshot;
use crate::snapshot::jitter::FetchJitter;
use crate::snapshot::sync::SnapshotSync;

/// How often the memory charged to the process is compared with `API_RSS_WARN_MB`.
const RSS_CHECK_EVERY: Duration = Duration::from_secs(30);

/// Capacity of the in-process broadcast of events read from `P:events`.
const EVENTS_CAPACITY: usize = 1024;

/// What the endpoints share: the snapshot served and where its bodies are, the metrics,
/// the token checks, and where refresh requests go.
#[derive(Clone)]
pub struct Parts {
    /// The snapshot served.
    pub current: Arc<CurrentSnapshot>,
    /// Where its bodies are held.
    pub files: Arc<BodyFiles>,
    /// Metrics registry.
    pub metrics: Arc<Metrics>,
    /// Token checks.
    pub auth: Arc<Authenticator>,
    /// Where refresh requests go.
    pub refresh: Arc<RefreshEndpoint>,
}

/// The OpenAPI service describing every endpoint; the snapshot route is declared by
/// [`SnapshotRouteDoc`] and served by [`SnapshotRoute`], outside poem.
pub fn openapi(parts: &Parts) -> OpenApiService<(SnapshotRouteDoc, OfertasApi, HealthApi), ()> {
    OpenApiService::new(
        (
            SnapshotRouteDoc,
            OfertasApi {
                current: parts.current.clone(),
                refresh: parts.refresh.clone(),
            },
            HealthApi {
                current: parts.current.clone(),
                files: parts.files.clone(),
                metrics: parts.metrics.clone(),
            },
        ),
        "ofertasws",
        env!("CARGO_PKG_VERSION"),
    )
    .description("Ranked snapshot of live merchant offers, served from memory.")
}

/// Every route but the snapshot's, as one poem endpoint.
pub fn app(parts: &Parts) -> impl Endpoint + use<> {
    let api = openapi(parts);
    let spec = api.spec_endpoint();
    let docs = api.swagger_ui();
    let observed = parts.metrics.clone();
    Route::new()
        .nest("/", api)
        .at("/openapi.json", spec)
        .nest("/docs", docs)
        .data(parts.auth.clone())
        .catch_all_error(crate::request::errors::render)
        .around(move |ep, req| crate::endpoints::observe::counted(observed.clone(), ep, req))
        .into_endpoint()
}

/// A bound, not yet serving, API.
pub struct Application {
    listener: tokio::net::TcpListener,
    addr: SocketAddr,
    parts: Parts,
    sync: SnapshotSync,
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
        let listener = tokio::net::TcpListener::bind(bind)
            .await
            .with_context(|| format!("cannot listen on API_BIND={bind}"))?;
        let addr = listener.local_addr().context("listener has no address")?;
        let metrics = Arc::new(Metrics::default());
        let client = shared::redis::client(&settings.redis, Start::WaitForRedis)?;
        let store = SnapshotStore::new(client, Keys::new(&settings.redis.prefix));
        let events = tokio::sync::broadcast::channel(EVENTS_CAPACITY).0;
        let parts = Parts {
            current: Arc::default(),
            files: Arc::default(),
            metrics,
            auth,
            refresh: Arc::new(RefreshEndpoint::new(
                RefreshRequester::new(store.client().clone(), store.keys().clone()),
                events.clone(),
            )),
        };
        let sync = SnapshotSync {
            store,
            current: parts.current.clone(),
            files: parts.files.clone(),
            metrics: parts.metrics.clone(),
            events,
            hold_identity: settings.identity_hold_mb.saturating_mul(1024 * 1024),
            jitter: FetchJitter::new(settings.fetch_jitter()),
        };
        Ok(Self {
            listener,
            addr,
            parts,
            sync,
            settings,
        })
    }

    /// The address actually bound.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What the endpoints share (tests inspect the snapshot served).
    pub fn parts(&self) -> &Parts {
        &self.parts
    }

    /// Serves until `shutdown` is cancelled, then stops accepting, lets in-flight
    /// requests finish (up to `API_SHUTDOWN_GRACE_SECS`) and stops the background tasks.
    ///
    /// # Errors
    /// When the Redis subscriber cannot be configured.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let background = CancellationToken::new();
        let tasks = TaskTracker::new();
        let subscriber = shared::redis::subscriber(&self.settings.redis, Start::WaitForRedis)?;
        tasks.spawn(self.sync.run(subscriber, background.clone()));
        let files = self.parts.files.clone();
        tasks.spawn(watch_memory(
            files,
            self.settings.rss_warn_mb,
            background.clone(),
        ));
        let app = app(&self.parts);
        tracing::info!(addr = %self.addr, "api-service listening");
        let grace = Duration::from_secs(self.settings.shutdown_grace_secs);
        let connections = Connections::new(
            Limits::from_settings(&self.settings),
            self.parts.metrics.connections(),
        );
        let Parts {
            current,
            files,
            metrics,
            auth,
            ..
        } = self.parts;
        let route = SnapshotRoute::new(current, files, auth, metrics);
        crate::http::server::serve(self.listener, route, app, connections, shutdown, grace).await;
        background.cancel();
        tasks.close();
        tasks.wait().await;
        tracing::info!("api-service stopped");
        Ok(())
    }
}

/// Logs a warning whenever the memory charged to the process (resident memory plus the
/// snapshot bodies' memfds) exceeds `API_RSS_WARN_MB`.
async fn watch_memory(files: Arc<BodyFiles>, warn_mib: u64, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(RSS_CHECK_EVERY);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = every.tick() => {
                let mib = files.charged_memory().unwrap_or(0) / (1024 * 1024);
                if mib > warn_mib {
                    tracing::warn!(memory.charged_mib = mib, memory.warn_mib = warn_mib, "memory above API_RSS_WARN_MB");
                }
            }
        }
    }
}

//! Building and running the HTTP application: the same code `main` and the tests call.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use poem::{Endpoint, EndpointExt, IntoEndpoint, Route};
use poem_openapi::OpenApiService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use shared::config::ApiSettings;
use shared::keys::Keys;
use shared::redis::Start;
use shared::store::SnapshotStore;

use crate::auth::Authenticator;
use crate::health::HealthApi;
use crate::metrics::Metrics;
use crate::routes::OfertasApi;
use crate::snapshot_cache::{self, SnapshotCache};
use crate::snapshot_route::SnapshotRoute;

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
        .around(move |ep, req| crate::observe::counted(observed.clone(), ep, req))
        .into_endpoint()
}

/// A bound, not yet serving, API.
pub struct Application {
    listener: TcpListener,
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
        let listener = TcpListener::bind(bind)
            .await
            .with_context(|| format!("cannot listen on API_BIND={bind}"))?;
        let addr = listener.local_addr().context("listener has no address")?;
        let metrics = Arc::new(Metrics::default());
        let client = shared::redis::client(&settings.redis, Start::WaitForRedis)?;
        let store = SnapshotStore::new(client, Keys::new(&settings.redis.prefix));
        let cache = Arc::new(
            SnapshotCache::new(store, metrics.clone()).with_fetch_jitter(settings.fetch_jitter()),
        );
        Ok(Self {
            listener,
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
    /// When the Redis subscriber cannot be configured.
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
        let route = SnapshotRoute::new(self.cache.clone(), self.auth.clone(), self.metrics.clone());
        crate::server::serve(self.listener, route, app, shutdown, grace).await;
        background.cancel();
        tasks.close();
        tasks.wait().await;
        tracing::info!("api-service stopped");
        Ok(())
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

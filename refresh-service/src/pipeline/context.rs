//! Everything a refresh needs, connected once per process.

use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use sqlx::{
    PgPool,
    postgres::{PgConnectOptions, PgPoolOptions},
};

use shared::config::{ConfigError, RedisSettings, redact_url};
use shared::events::Event;
use shared::keys::Keys;
use shared::store::SnapshotStore;

use crate::pipeline::rank::Ranker;
use crate::report::log::RefreshLog;
use crate::report::metrics::RefreshMetrics;
use crate::settings::RefreshSettings;

/// Default [`RefreshContext::held_json_limit`]: 64 MiB, about 170,000 offers — ample for a
/// catalogue of thousands, while a million offers stream twice in flat memory instead.
pub const HELD_JSON_LIMIT: usize = 64 * 1024 * 1024;

/// Source of "now"; tests pin it to test the active-offer rule at its edges.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// Connections, the loaded model and the refresh log.
pub struct RefreshContext {
    /// Offers database.
    pub db: PgPool,
    /// Snapshot store in Redis.
    pub store: SnapshotStore,
    /// Loaded ranking model.
    pub ranker: Arc<Ranker>,
    /// Refresh log writer.
    pub log: RefreshLog,
    /// Prometheus metrics.
    pub metrics: Arc<RefreshMetrics>,
    /// Bytes of offer JSON held in memory between reading and writing the document; past
    /// it the offers are read a second time, in ranked order (see
    /// [`crate::pipeline::source`]).
    pub held_json_limit: usize,
    /// Current time.
    pub clock: Clock,
    /// Time zone of the day the ranking's clock-dependent features are read at
    /// (`REFRESH_TIMEZONE`; see [`crate::pipeline::rank::ranking_time`]).
    pub timezone: chrono_tz::Tz,
}

impl RefreshContext {
    /// Validates `settings`, loads the model and connects to Redis; Postgres is connected
    /// lazily, so a daemon starts (and serves its schedule) while Postgres is down.
    ///
    /// # Errors
    /// A configuration error naming the variable, or Redis unreachable.
    pub async fn connect(settings: &RefreshSettings) -> anyhow::Result<Self> {
        settings.validate()?;
        let ranker = Ranker::load(&settings.ranker_model, &settings.ort_dylib_path)?;
        let db = pg_pool(settings)?;
        let store = connect_store(&settings.redis).await?;
        Ok(Self {
            timezone: settings.timezone()?,
            ..Self::new(db, store, ranker)
        })
    }

    /// A context from parts already built (tests and tools).
    pub fn new(db: PgPool, store: SnapshotStore, ranker: Ranker) -> Self {
        Self {
            log: RefreshLog::new(db.clone()),
            db,
            store,
            ranker: Arc::new(ranker),
            metrics: Arc::default(),
            held_json_limit: HELD_JSON_LIMIT,
            clock: Arc::new(Utc::now),
            timezone: chrono_tz::America::Panama,
        }
    }

    /// Publishes `event` on `P:events`; a failure is logged, not returned (API replicas
    /// also poll, and a waiter also finds the kept outcome).
    pub async fn publish_event(&self, event: &Event) {
        let channel = self.store.keys().events_channel();
        let client = self.store.client();
        if let Err(e) = shared::redis::publish(client, &channel, event.to_json()).await {
            tracing::warn!(error = %e, "cannot publish event");
        }
    }
}

/// A lazily connecting pool for `DATABASE_URL`.
///
/// # Errors
/// [`ConfigError`] naming `DATABASE_URL` when the URL does not parse.
pub fn pg_pool(settings: &RefreshSettings) -> Result<PgPool, ConfigError> {
    let url = settings.database_url.expose_secret();
    let options = PgConnectOptions::from_str(url)
        .map_err(|e| ConfigError::new("DATABASE_URL", redact_url(url), e))?;
    Ok(PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(3))
        .connect_lazy_with(options.application_name("ofertasws-refresh")))
}

/// Connects to Redis and returns the snapshot store for the configured prefix.
///
/// # Errors
/// A configuration error, or Redis unreachable.
pub async fn connect_store(settings: &RedisSettings) -> anyhow::Result<SnapshotStore> {
    let client = shared::redis::client(settings, shared::redis::Start::FailFast)?;
    shared::redis::connect(&client).await.with_context(|| {
        format!(
            "cannot connect to Redis at REDIS_URL={}",
            redact_url(&settings.redis_url)
        )
    })?;
    Ok(SnapshotStore::new(client, Keys::new(&settings.prefix)))
}

/// `host:pid`, identifying this process in logs, lock tokens and the refresh log.
pub fn instance_name() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| {
        let host = std::env::var("HOSTNAME")
            .ok()
            .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "unknown".to_owned());
        format!("{host}:{}", std::process::id())
    })
}

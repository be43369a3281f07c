//! Test harness of refresh-service: refresh settings and a refresh context over a fresh
//! database and Redis prefix per test (those, the waits and the cuttable proxy come from
//! the `system-tests` harness), offer fixtures, an event listener, and an `api-service`
//! process over the same prefix.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use fred::prelude::{ClientLike, EventInterface, KeysInterface, PubsubInterface};
use secrecy::SecretString;
use sqlx::{Connection, Executor, PgConnection, PgPool};

use refresh_service::pipeline::context::{RefreshContext, connect_store, pg_pool};
use refresh_service::pipeline::rank::Ranker;
use refresh_service::settings::RefreshSettings;
use shared::config::RedisSettings;
use shared::events::Event;
use system_tests::commands::{api_service, mint_token};
pub use system_tests::database::{TestDb, admin_url, postgres_host_port};
pub use system_tests::{Proxy, TestPrefix, eventually, free_port, redis_url};

/// Refresh settings pointing at `database_url` and `prefix`, schedule off.
pub fn settings(database_url: &str, prefix: &str) -> RefreshSettings {
    RefreshSettings {
        database_url: SecretString::from(database_url.to_owned()),
        redis: RedisSettings::new(redis_url(), prefix),
        refresh_schedule: "off".into(),
        refresh_timezone: "America/Panama".into(),
        ranker_model: concat!(env!("CARGO_MANIFEST_DIR"), "/models/offer_ranker.onnx").into(),
        ort_dylib_path: concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../.local/onnxruntime/libonnxruntime.so"
        )
        .into(),
    }
}

/// A database, a prefix and a refresh context over them.
pub struct TestEnv {
    pub db: TestDb,
    pub prefix: TestPrefix,
    pub settings: RefreshSettings,
    pub ctx: Arc<RefreshContext>,
}

impl TestEnv {
    pub async fn new() -> Self {
        shared::telemetry::init_for_tests();
        let db = TestDb::new().await;
        let prefix = TestPrefix::new();
        let settings = settings(&db.url, &prefix.0);
        let ctx = Arc::new(context_for(&settings).await);
        Self {
            db,
            prefix,
            settings,
            ctx,
        }
    }

    /// Same environment, but with a pinned clock.
    pub async fn with_clock(settings: &RefreshSettings, now: DateTime<Utc>) -> RefreshContext {
        let mut ctx = context_for(settings).await;
        ctx.clock = Arc::new(move || now);
        ctx
    }

    /// Runs the compiled `refresh-service` binary with this environment's settings.
    pub fn command(&self, args: &[&str]) -> tokio::process::Command {
        command(&self.settings, args)
    }
}

pub async fn context_for(settings: &RefreshSettings) -> RefreshContext {
    let ranker = Ranker::load(&settings.ranker_model, &settings.ort_dylib_path).unwrap();
    let store = connect_store(&settings.redis).await.unwrap();
    RefreshContext::new(pg_pool(settings).unwrap(), store, ranker)
}

/// The `refresh-service` binary with `settings` in its environment.
pub fn command(settings: &RefreshSettings, args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_refresh-service"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env(
            "DATABASE_URL",
            secrecy::ExposeSecret::expose_secret(&settings.database_url),
        )
        .env("REDIS_URL", &settings.redis.redis_url)
        .env("OFERTASWS_PREFIX", &settings.redis.prefix)
        .env("REFRESH_SCHEDULE", &settings.refresh_schedule)
        .env("REFRESH_TIMEZONE", &settings.refresh_timezone)
        .env("RANKER_MODEL", &settings.ranker_model)
        .env("ORT_DYLIB_PATH", &settings.ort_dylib_path)
        .env("REFRESH_METRICS_BIND", "127.0.0.1:0")
        .env("LOG_FORMAT", "text")
        .env("RUST_LOG", "warn")
        .kill_on_drop(true);
    cmd
}

/// One offer row; `Offer::live(id)` is active, started a day ago, open-ended.
#[derive(Clone, Debug)]
pub struct Offer {
    pub id: i64,
    pub merchant_id: i64,
    pub title: String,
    pub category: String,
    pub price: &'static str,
    pub original_price: Option<&'static str>,
    pub image_url: Option<String>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: Option<DateTime<Utc>>,
    pub active: bool,
    pub updated_at: DateTime<Utc>,
}

impl Offer {
    pub fn live(id: i64) -> Self {
        let now = Utc::now();
        Self {
            id,
            merchant_id: 100 + id % 7,
            title: format!("Oferta {id}"),
            category: ["Restaurantes", "Moda", "Tecnología", "Hogar"][(id % 4) as usize].into(),
            price: ["12.50", "3.99", "149.00", "25.00", "7.25"][(id % 5) as usize],
            original_price: [
                Some("20.00"),
                None,
                Some("199.99"),
                Some("25.00"),
                Some("9.00"),
            ][(id % 5) as usize],
            image_url: (id % 3 != 0).then(|| format!("https://img.example.pa/{id}.jpg")),
            starts_at: now - chrono::Duration::days(1),
            ends_at: (id % 2 == 0).then(|| now + chrono::Duration::days(id % 30 + 1)),
            active: true,
            updated_at: now - chrono::Duration::hours(id % 48),
        }
    }

    pub async fn insert(&self, pool: &PgPool) {
        sqlx::query(
            "insert into ofertas (id, merchant_id, merchant_name, title, description, category, price,
               original_price, currency, image_url, starts_at, ends_at, active, updated_at)
             values ($1, $2, $3, $4, $5, $6, $7::numeric, $8::numeric, 'USD', $9, $10, $11, $12, $13)",
        )
        .bind(self.id)
        .bind(self.merchant_id)
        .bind(format!("Comercio {} \"Panamá\"", self.merchant_id))
        .bind(&self.title)
        .bind((self.id % 2 == 0).then(|| format!("Descripción de la oferta {}", self.id)))
        .bind(&self.category)
        .bind(self.price)
        .bind(self.original_price)
        .bind(&self.image_url)
        .bind(self.starts_at)
        .bind(self.ends_at)
        .bind(self.active)
        .bind(self.updated_at)
        .execute(pool)
        .await
        .unwrap();
    }
}

/// Inserts `count` live offers with ids `first..first+count`.
pub async fn seed(pool: &PgPool, first: i64, count: i64) {
    for id in first..first + count {
        Offer::live(id).insert(pool).await;
    }
}

/// Touches one offer so the next refresh sees changed content.
pub async fn change(pool: &PgPool, id: i64) {
    sqlx::query("update ofertas set title = title || '!', updated_at = now() where id = $1")
        .bind(id)
        .execute(pool)
        .await
        .unwrap();
}

/// Everything published on `P:events` from the moment it was created.
pub struct Events {
    _subscriber: fred::clients::SubscriberClient,
    rx: tokio::sync::broadcast::Receiver<fred::types::Message>,
}

impl Events {
    pub async fn subscribe(prefix: &str) -> Self {
        let settings = RedisSettings::new(redis_url(), prefix);
        let subscriber =
            shared::redis::subscriber(&settings, shared::redis::Start::FailFast).unwrap();
        shared::redis::connect(&subscriber).await.unwrap();
        let rx = subscriber.message_rx();
        subscriber
            .subscribe(shared::keys::Keys::new(prefix).events_channel())
            .await
            .unwrap();
        Self {
            _subscriber: subscriber,
            rx,
        }
    }

    /// The next event matching `wanted`, failing the test after `within`.
    pub async fn next_matching(
        &mut self,
        within: Duration,
        mut wanted: impl FnMut(&Event) -> bool,
    ) -> Event {
        tokio::time::timeout(within, async {
            loop {
                let message = self.rx.recv().await.expect("event stream open");
                let event: Event =
                    serde_json::from_slice(message.value.as_bytes().unwrap_or_default())
                        .expect("valid event");
                if wanted(&event) {
                    return event;
                }
            }
        })
        .await
        .expect("expected event did not arrive in time")
    }

    /// Every event up to and including the first one matching `wanted`, failing the test
    /// when none arrives within `within`.
    pub async fn up_to(&mut self, within: Duration, wanted: impl Fn(&Event) -> bool) -> Vec<Event> {
        let mut events = Vec::new();
        self.next_matching(within, |event| {
            events.push(event.clone());
            wanted(event)
        })
        .await;
        events
    }
}

/// Publishes `payload` on the refresh channel of `prefix`; returns the receiver count.
pub async fn publish_request(prefix: &str, payload: impl Into<fred::types::Value> + Send) -> i64 {
    let client = shared::redis::client(
        &RedisSettings::new(redis_url(), prefix),
        shared::redis::Start::FailFast,
    )
    .unwrap();
    shared::redis::connect(&client).await.unwrap();
    let receivers: i64 = client
        .publish(
            shared::keys::Keys::new(prefix).refresh_channel(),
            payload.into(),
        )
        .await
        .unwrap();
    let _ = client.quit().await;
    receivers
}

/// Whether the refresh lock of `prefix` is held.
pub async fn lock_held(store: &shared::store::SnapshotStore) -> bool {
    let held: Option<String> = store
        .client()
        .get(store.keys().refresh_lock())
        .await
        .unwrap();
    held.is_some()
}

/// Holds an exclusive lock on `ofertas` until dropped or committed, so a refresh blocks
/// inside its query: a refresh "in progress" for as long as the test needs.
pub async fn block_offers_table(url: &str) -> PgConnection {
    let mut conn = PgConnection::connect(url).await.unwrap();
    conn.execute("begin; lock table ofertas in access exclusive mode")
        .await
        .unwrap();
    conn
}

/// Rows of the refresh log as (status, trigger, request_id, error).
pub async fn log_rows(pool: &PgPool) -> Vec<(String, String, Option<String>, Option<String>)> {
    sqlx::query_as(
        "select status, trigger, request_id, error from ofertasws_cache_refresh_log order by id",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

/// A running `api-service` binary over `env`'s prefix, with an admin token for it.
pub struct ApiProcess {
    pub base: String,
    pub token: String,
    _child: tokio::process::Child,
}

impl ApiProcess {
    /// Starts the binary and waits until it serves a snapshot.
    pub async fn start(env: &TestEnv) -> Self {
        Self::start_with(env, |_| {}).await
    }

    /// As [`Self::start`], with `configure` applied to the command first.
    pub async fn start_with(
        env: &TestEnv,
        configure: impl FnOnce(&mut tokio::process::Command),
    ) -> Self {
        let token = mint_token(&["--role", "admin"]).await;
        let port = free_port();
        let mut command = api_service(&["serve"], &env.settings.redis.redis_url, &env.prefix.0);
        command
            .env("API_BIND", format!("127.0.0.1:{port}"))
            .env("LOG_FORMAT", "text")
            .env("RUST_LOG", "warn");
        configure(&mut command);
        let api = Self {
            base: format!("http://127.0.0.1:{port}"),
            token,
            _child: command.spawn().unwrap(),
        };
        let http = reqwest::Client::new();
        eventually(Duration::from_secs(30), "the API holds a snapshot", || {
            let ready = http.get(format!("{}/ready", api.base)).send();
            async move { ready.await.is_ok_and(|r| r.status() == 200) }
        })
        .await;
        api
    }
}

/// Runs `cmd` to completion (bounded): exit code, stdout, stderr.
pub async fn output(cmd: &mut tokio::process::Command) -> (i32, String, String) {
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("command finished")
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

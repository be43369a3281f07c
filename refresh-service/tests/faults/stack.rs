//! One deployment under test, as real processes: a database of its own (in a shared or
//! private cluster), its own redis-server and prefix, the `refresh-service run` daemon
//! and two `api-service` replicas, each logging JSON to a file the scenario can read.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use fred::prelude::{ClientLike, EventInterface, KeysInterface, PubsubInterface};
use serde_json::Value;
use sqlx::{Connection, Executor, PgConnection, PgPool};
use tokio::io::AsyncWriteExt;

use shared::config::RedisSettings;
use shared::events::{Event, RefreshOutcome};
use shared::keys::Keys;
use shared::snapshot::SnapshotMeta;
use shared::store::SnapshotStore;

use crate::servers::{PgCluster, RedisServer, Scratch, free_port, signal};

/// `JWT_SECRET` of every replica.
const SECRET: &str = "ofertasws-faults-secret";
/// Live offers seeded into every deployment (a document of about 100 KB).
pub const OFFERS: i64 = 300;
/// API replicas per deployment.
pub const REPLICAS: usize = 2;
/// Bound for set-up steps (process start, first snapshot) on a busy machine; not a
/// behaviour under test.
pub const SETUP: Duration = Duration::from_secs(60);
/// The contract's deadline for every replica to serve a new snapshot.
pub const FIVE_SECONDS: Duration = Duration::from_secs(5);

/// The `api-service` binary next to `refresh-service` in the same target folder, built
/// first (once per test binary) when it is missing or older than its sources: only
/// `cargo test --workspace` builds other packages' binaries before the tests run.
fn api_binary() -> &'static Path {
    static API: OnceLock<PathBuf> = OnceLock::new();
    API.get_or_init(|| {
        shared::testing::workspace_binary(env!("CARGO_BIN_EXE_refresh-service"), "api-service")
    })
}

/// A process of the deployment, its stderr (JSON logs) in a file.
pub struct Service {
    child: tokio::process::Child,
    pub log: PathBuf,
}

impl Service {
    fn spawn(mut cmd: tokio::process::Command, log: PathBuf) -> Self {
        let file = std::fs::File::create(&log).expect("log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .kill_on_drop(true)
            .spawn()
            .expect("service starts");
        Self { child, log }
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("still running")
    }

    pub fn signal(&self, name: &str) {
        signal(self.pid(), name);
    }

    /// SIGKILL, and waits until the process is gone.
    pub async fn kill(&mut self) -> ExitStatus {
        self.signal("KILL");
        self.child.wait().await.expect("wait")
    }

    /// Fails the test, with the end of the log, when the process has exited.
    fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            panic!(
                "{} exited ({status}):\n{}",
                self.log.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
    }

    /// Every JSON log line written so far.
    pub fn log_lines(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    /// Log lines whose message is `message`.
    pub fn logged(&self, message: &str) -> Vec<Value> {
        self.log_lines()
            .into_iter()
            .filter(|line| line["fields"]["message"] == message)
            .collect()
    }
}

/// One API replica.
pub struct Api {
    pub service: Service,
    pub base: String,
}

/// A row of `ofertasws_cache_refresh_log`.
#[derive(Clone, Debug)]
pub struct LogRow {
    pub executed_at: DateTime<Utc>,
    pub trigger: String,
    pub status: String,
    pub execution_time_ms: i32,
    pub request_id: Option<String>,
    pub error: Option<String>,
}

/// What `refresh-service once` printed and how it exited.
pub struct OnceRun {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl OnceRun {
    /// The outcome line it printed.
    pub fn outcome(&self) -> RefreshOutcome {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("once printed no outcome ({e}): {}", self.stdout))
    }
}

/// A whole deployment. Fields drop in order: processes first, servers last.
pub struct Stack {
    pub apis: Vec<Api>,
    pub refresher: Option<Service>,
    pub store: SnapshotStore,
    pub pool: PgPool,
    pub db_url: String,
    pub prefix: String,
    pub redis: RedisServer,
    pub pg: Arc<PgCluster>,
    pub user_token: String,
    pub admin_token: String,
    http: reqwest::Client,
    pub scratch: Scratch,
}

impl Stack {
    /// A migrated database with [`OFFERS`] live offers, Redis, the daemon (past its
    /// start-up refresh) and [`REPLICAS`] API replicas, all ready.
    pub async fn start(pg: Arc<PgCluster>) -> Self {
        shared::telemetry::init_for_tests();
        let api_bin = tokio::task::spawn_blocking(api_binary)
            .await
            .expect("api-service binary");
        let scratch = Scratch::new("stack");
        let redis = RedisServer::start(&scratch);
        let id = uuid::Uuid::new_v4().simple().to_string();
        let prefix = format!("faults_{}", &id[..12]);
        let db_url = pg.url(&format!("faults_{id}"));
        let client = shared::redis::client(
            &RedisSettings::new(redis.url(), &prefix),
            shared::redis::Start::FailFast,
        )
        .expect("redis client");
        shared::redis::connect(&client).await.expect("redis up");
        let mut stack = Self {
            apis: Vec::new(),
            refresher: None,
            store: SnapshotStore::new(client, Keys::new(&prefix)),
            pool: PgPool::connect_lazy(&db_url).expect("database url"),
            db_url,
            prefix,
            redis,
            pg,
            user_token: String::new(),
            admin_token: String::new(),
            http: reqwest::Client::builder()
                .timeout(SETUP)
                .build()
                .expect("http client"),
            scratch,
        };
        let migrated = stack.once_with(&["migrate"]).await;
        assert_eq!(migrated.code, Some(0), "migrate: {}", migrated.stderr);
        seed(&stack.pool, OFFERS).await;

        stack.start_refresher().await;
        let deadline = Instant::now() + SETUP;
        while stack.current().await.is_none() {
            assert!(Instant::now() < deadline, "no start-up snapshot");
            if let Some(refresher) = stack.refresher.as_mut() {
                refresher.assert_running();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        stack.user_token = mint(api_bin, &[]).await;
        stack.admin_token = mint(api_bin, &["--role", "admin"]).await;
        for replica in 0..REPLICAS {
            let port = free_port();
            let mut cmd = tokio::process::Command::new(api_bin);
            cmd.arg("serve")
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .env("REDIS_URL", stack.redis.url())
                .env("OFERTASWS_PREFIX", &stack.prefix)
                .env("API_BIND", format!("127.0.0.1:{port}"))
                .env("JWT_SECRET", SECRET)
                .env("API_SHUTDOWN_GRACE_SECS", "1")
                .env("LOG_FORMAT", "json")
                .env("RUST_LOG", "info")
                .current_dir(&stack.scratch.path);
            let log = stack.scratch.join(&format!("api-{replica}.log"));
            stack.apis.push(Api {
                service: Service::spawn(cmd, log),
                base: format!("http://127.0.0.1:{port}"),
            });
        }
        for replica in 0..REPLICAS {
            let deadline = Instant::now() + SETUP;
            loop {
                let ready = stack
                    .http
                    .get(format!("{}/ready", stack.apis[replica].base))
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 200);
                if ready {
                    break;
                }
                stack.apis[replica].service.assert_running();
                assert!(Instant::now() < deadline, "replica {replica} never ready");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        stack
    }

    /// `refresh-service` with this deployment's environment (as tests/it `command()`
    /// sets it), logging JSON.
    pub fn refresh_command(&self, args: &[&str]) -> tokio::process::Command {
        let manifest = env!("CARGO_MANIFEST_DIR");
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_refresh-service"));
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", &self.db_url)
            .env("REDIS_URL", self.redis.url())
            .env("OFERTASWS_PREFIX", &self.prefix)
            .env("REFRESH_SCHEDULE", "off")
            .env("REFRESH_TIMEZONE", "America/Panama")
            .env("REFRESH_METRICS_BIND", "off")
            .env(
                "RANKER_MODEL",
                format!("{manifest}/models/offer_ranker.onnx"),
            )
            .env(
                "ORT_DYLIB_PATH",
                format!("{manifest}/../.local/onnxruntime/libonnxruntime.so"),
            )
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .current_dir(&self.scratch.path)
            .kill_on_drop(true);
        cmd
    }

    /// Starts a `refresh-service run` daemon (replacing, and killing, any earlier one).
    pub async fn start_refresher(&mut self) {
        let n = std::fs::read_dir(&self.scratch.path)
            .map(|d| d.count())
            .unwrap_or(0);
        let log = self.scratch.join(&format!("refresher-{n}.log"));
        self.refresher = Some(Service::spawn(self.refresh_command(&["run"]), log));
    }

    pub fn refresher(&self) -> &Service {
        self.refresher.as_ref().expect("a refresher runs")
    }

    /// Runs `refresh-service ARGS` to completion.
    pub async fn once_with(&self, args: &[&str]) -> OnceRun {
        let out = tokio::time::timeout(SETUP, self.refresh_command(args).output())
            .await
            .expect("refresh-service finished")
            .expect("refresh-service runs");
        OnceRun {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `refresh-service once --trigger TRIGGER`.
    pub async fn once(&self, trigger: &str) -> OnceRun {
        self.once_with(&["once", "--trigger", trigger]).await
    }

    /// The current snapshot's metadata in Redis.
    pub async fn current(&self) -> Option<SnapshotMeta> {
        self.store.current_meta().await.expect("current metadata")
    }

    /// Who holds the refresh lock, if anyone.
    pub async fn lock_holder(&self) -> Option<String> {
        self.store
            .client()
            .get(self.store.keys().refresh_lock())
            .await
            .expect("lock readable")
    }

    /// Waits until the refresh lock is held (a refresh is under way) and returns its holder.
    pub async fn wait_for_lock(&self) -> String {
        let deadline = Instant::now() + SETUP;
        loop {
            if let Some(holder) = self.lock_holder().await {
                return holder;
            }
            assert!(Instant::now() < deadline, "no refresh took the lock");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Publishes `payload` on `P:refresh`; returns how many subscribers got it.
    pub async fn publish(&self, payload: &str) -> i64 {
        self.store
            .client()
            .publish(self.store.keys().refresh_channel(), payload)
            .await
            .expect("publish")
    }

    /// Runs redis-cli against this deployment's Redis with `commands` on its stdin.
    pub async fn redis_cli(&self, commands: String) -> String {
        let mut child = tokio::process::Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.redis.port.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-cli runs");
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(commands.as_bytes())
            .await
            .expect("write to redis-cli");
        drop(stdin);
        let out = child.wait_with_output().await.expect("redis-cli finished");
        assert!(
            out.status.success(),
            "redis-cli: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Touches offer `id` so the next refresh sees changed content.
    pub async fn change_offer(&self, id: i64) {
        sqlx::query("update ofertas set title = title || '!', updated_at = now() where id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .expect("offer updated");
    }

    /// Holds an exclusive lock on `ofertas` until the connection is dropped, so a
    /// refresh blocks inside its query for as long as the scenario needs.
    pub async fn block_offers_table(&self) -> PgConnection {
        let mut conn = PgConnection::connect(&self.db_url)
            .await
            .expect("blocker connects");
        conn.execute("begin; lock table ofertas in access exclusive mode")
            .await
            .expect("table locked");
        conn
    }

    /// Every refresh log row, oldest first.
    pub async fn log_rows(&self) -> Vec<LogRow> {
        type Row = (
            DateTime<Utc>,
            String,
            String,
            Option<i32>,
            Option<String>,
            Option<String>,
        );
        let rows: Vec<Row> = sqlx::query_as(
            "select executed_at, trigger, status, execution_time_ms, request_id, error
             from ofertasws_cache_refresh_log order by executed_at, id",
        )
        .fetch_all(&self.pool)
        .await
        .expect("refresh log readable");
        rows.into_iter()
            .map(
                |(executed_at, trigger, status, ms, request_id, error)| LogRow {
                    executed_at,
                    trigger,
                    status,
                    execution_time_ms: ms.unwrap_or_default(),
                    request_id,
                    error,
                },
            )
            .collect()
    }

    pub fn url(&self, replica: usize, path: &str) -> String {
        format!("{}{path}", self.apis[replica].base)
    }

    /// The version `/api/v4/ofertasws/meta` of `replica` names.
    pub async fn served_version(&self, replica: usize) -> Option<String> {
        let response = self
            .http
            .get(self.url(replica, "/api/v4/ofertasws/meta"))
            .bearer_auth(&self.user_token)
            .send()
            .await
            .ok()?;
        let meta: Value = response.json().await.ok()?;
        meta["version"].as_str().map(str::to_owned)
    }

    /// Waits until `replica` serves `version`, failing after `deadline`.
    pub async fn wait_replica_serves(
        &self,
        replica: usize,
        version: &str,
        deadline: Instant,
        why: &str,
    ) {
        loop {
            let served = self.served_version(replica).await;
            if served.as_deref() == Some(version) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "replica {replica} still serves {served:?}, not {version}: {why}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Waits until every replica serves `version`, failing after `deadline`.
    pub async fn wait_served(&self, version: &str, deadline: Instant, why: &str) {
        for replica in 0..REPLICAS {
            self.wait_replica_serves(replica, version, deadline, why)
                .await;
        }
    }

    /// `GET /health` of `replica`.
    pub async fn health(&self, replica: usize) -> Value {
        self.http
            .get(self.url(replica, "/health"))
            .send()
            .await
            .expect("health answers")
            .json()
            .await
            .expect("health is JSON")
    }

    /// The value of the un-labelled Prometheus sample `name` on `replica`.
    pub async fn metric(&self, replica: usize, name: &str) -> f64 {
        let text = self
            .http
            .get(self.url(replica, "/metrics"))
            .send()
            .await
            .expect("metrics answer")
            .text()
            .await
            .expect("metrics text");
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or_else(|| panic!("no sample {name} in:\n{text}"))
    }

    /// `POST /api/v4/ofertasws/refresh{query}` on `replica` as an admin.
    pub async fn refresh_via_api(&self, replica: usize, query: &str) -> (u16, Value) {
        let response = self
            .http
            .post(self.url(replica, &format!("/api/v4/ofertasws/refresh{query}")))
            .bearer_auth(&self.admin_token)
            .send()
            .await
            .expect("refresh endpoint answers");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Starts recording every event on `P:events`.
    pub async fn events(&self) -> Events {
        Events::subscribe(&self.redis.url(), &self.prefix).await
    }
}

async fn mint(api_bin: &Path, args: &[&str]) -> String {
    let out = tokio::process::Command::new(api_bin)
        .args(["token", "--ttl", "1h"])
        .args(args)
        .env_clear()
        .env("JWT_SECRET", SECRET)
        .output()
        .await
        .expect("api-service token runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Inserts `count` live offers (ids 1..=count) in four categories.
async fn seed(pool: &PgPool, count: i64) {
    sqlx::query(
        "insert into ofertas (id, merchant_id, merchant_name, title, description, category, price,
           original_price, currency, image_url, starts_at, ends_at, active, updated_at)
         select g, 100 + g % 7, 'Comercio ' || (g % 7), 'Oferta ' || g,
                case when g % 2 = 0 then 'Descripción de la oferta ' || g end,
                (array['Restaurantes', 'Moda', 'Tecnología', 'Hogar'])[1 + g % 4],
                (1 + g % 90) + 0.99, case when g % 3 = 0 then 120.00 end, 'USD',
                case when g % 3 <> 0 then 'https://img.example.pa/' || g || '.jpg' end,
                now() - interval '1 day',
                case when g % 2 = 0 then now() + (1 + g % 30) * interval '1 day' end,
                true, now() - (g % 48) * interval '1 hour'
         from generate_series(1, $1) g",
    )
    .bind(count)
    .execute(pool)
    .await
    .expect("offers seeded");
}

/// Every event published on `P:events` from the moment it was created.
pub struct Events {
    seen: Arc<Mutex<Vec<Event>>>,
    reader: tokio::task::JoinHandle<()>,
    subscriber: fred::clients::SubscriberClient,
}

impl Events {
    async fn subscribe(url: &str, prefix: &str) -> Self {
        let subscriber = shared::redis::subscriber(
            &RedisSettings::new(url, prefix),
            shared::redis::Start::FailFast,
        )
        .expect("subscriber");
        shared::redis::connect(&subscriber)
            .await
            .expect("subscriber connects");
        let mut rx = subscriber.message_rx();
        subscriber
            .subscribe(Keys::new(prefix).events_channel())
            .await
            .expect("subscribed to events");
        let seen: Arc<Mutex<Vec<Event>>> = Arc::default();
        let sink = seen.clone();
        let reader = tokio::spawn(async move {
            while let Ok(message) = rx.recv().await {
                if let Ok(event) =
                    serde_json::from_slice(message.value.as_bytes().unwrap_or_default())
                {
                    sink.lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(event);
                }
            }
        });
        Self {
            seen,
            reader,
            subscriber,
        }
    }

    /// The outcomes published so far, by request id.
    pub fn outcomes(&self) -> HashMap<String, RefreshOutcome> {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter_map(Event::outcome)
            .filter_map(|o| Some((o.request_id.clone()?, o.clone())))
            .collect()
    }

    /// Waits for the outcome of every request in `ids`.
    pub async fn wait_outcomes(&self, ids: &[String]) -> HashMap<String, RefreshOutcome> {
        let deadline = Instant::now() + SETUP;
        loop {
            let outcomes = self.outcomes();
            let missing: Vec<&String> = ids
                .iter()
                .filter(|id| !outcomes.contains_key(*id))
                .collect();
            if missing.is_empty() {
                return outcomes;
            }
            assert!(
                Instant::now() < deadline,
                "no outcome for {} requests, e.g. {:?}",
                missing.len(),
                &missing[..missing.len().min(3)]
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Waits for the outcome of one request.
    pub async fn wait_outcome(&self, id: &str) -> RefreshOutcome {
        self.wait_outcomes(&[id.to_owned()])
            .await
            .remove(id)
            .expect("outcome present")
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        self.reader.abort();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let subscriber = self.subscriber.clone();
            runtime.spawn(async move {
                let _ = subscriber.quit().await;
            });
        }
    }
}

//! One deployment under test, as real processes: a database of its own (in a shared or
//! private cluster), its own Redis (a single server, a Cluster or a Sentinel group) and
//! prefix, the `refresh-service run` daemon and two `api-service` replicas, each logging
//! JSON to a file the scenario can read.
//!
//! Shared by the fault and topology suites (each test binary uses part of it).
#![allow(dead_code)]

#[path = "database.rs"]
mod database;
#[path = "processes.rs"]
mod processes;

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fred::prelude::KeysInterface;
use serde_json::Value;
use sqlx::PgPool;
use tokio::io::AsyncWriteExt;

use shared::config::RedisSettings;
use shared::keys::Keys;
use shared::snapshot::SnapshotMeta;
use shared::store::SnapshotStore;

pub use database::LogRow;
pub use processes::{Api, Events, OnceRun, Service};

use crate::servers::{PgCluster, RedisServer, Scratch, Topology, free_port};

/// Live offers seeded into every deployment (a document of about 100 KB).
pub const OFFERS: i64 = 300;
/// API replicas per deployment.
pub const REPLICAS: usize = 2;
/// Bound for set-up steps (process start, first snapshot) on a busy machine; not a
/// behaviour under test.
pub const SETUP: Duration = Duration::from_secs(60);
/// The contract's deadline for every replica to serve a new snapshot.
pub const FIVE_SECONDS: Duration = Duration::from_secs(5);

/// A whole deployment. Fields drop in order: processes first, servers last.
pub struct Stack {
    pub apis: Vec<Api>,
    pub refresher: Option<Service>,
    pub store: SnapshotStore,
    pub pool: PgPool,
    pub db_url: String,
    pub prefix: String,
    pub redis: Topology,
    pub pg: Arc<PgCluster>,
    pub user_token: String,
    pub admin_token: String,
    http: reqwest::Client,
    pub scratch: Scratch,
}

impl Stack {
    /// A migrated database with [`OFFERS`] live offers, a Redis server, the daemon
    /// (past its start-up refresh) and [`REPLICAS`] API replicas, all ready.
    pub async fn start(pg: Arc<PgCluster>) -> Self {
        Self::start_on(pg, |scratch| Topology::Single(RedisServer::start(scratch))).await
    }

    /// As [`Self::start`], on the Redis `topology` makes (in the deployment's folder).
    pub async fn start_on(
        pg: Arc<PgCluster>,
        topology: impl FnOnce(&Scratch) -> Topology + Send + 'static,
    ) -> Self {
        shared::telemetry::init_for_tests();
        let api_bin = tokio::task::spawn_blocking(processes::api_binary)
            .await
            .expect("api-service binary");
        let scratch = Scratch::new("stack");
        let (scratch, redis) = tokio::task::spawn_blocking(move || {
            let redis = topology(&scratch);
            (scratch, redis)
        })
        .await
        .expect("Redis started");
        let id = uuid::Uuid::new_v4().simple().to_string();
        let prefix = format!("stack_{}", &id[..12]);
        let db_url = pg.url(&format!("stack_{id}"));
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
        database::seed(&stack.pool, OFFERS).await;

        stack.start_refresher().await;
        let deadline = Instant::now() + SETUP;
        while stack.current().await.is_none() {
            assert!(Instant::now() < deadline, "no start-up snapshot");
            if let Some(refresher) = stack.refresher.as_mut() {
                refresher.assert_running();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        stack.user_token = processes::mint(api_bin, &[]).await;
        stack.admin_token = processes::mint(api_bin, &["--role", "admin"]).await;
        for replica in 0..REPLICAS {
            let port = free_port();
            let mut cmd = tokio::process::Command::new(api_bin);
            cmd.arg("serve")
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .env("REDIS_URL", stack.redis.url())
                .env("OFERTASWS_PREFIX", &stack.prefix)
                .env("API_BIND", format!("127.0.0.1:{port}"))
                .env("JWT_SECRET", processes::SECRET)
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
    pub async fn publish(&self, payload: &str) -> u64 {
        let channel = self.store.keys().refresh_channel();
        shared::redis::publish(self.store.client(), &channel, payload.to_owned())
            .await
            .expect("publish")
    }

    /// Runs redis-cli against this deployment's Redis with `commands` on its stdin (on a
    /// Cluster, from a node of its own choosing, following redirections).
    pub async fn redis_cli(&self, commands: String) -> String {
        let target = self.redis.cli_args();
        let mut child = tokio::process::Command::new("redis-cli")
            .args(target)
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

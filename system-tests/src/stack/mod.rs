//! One deployment under test, as real processes: a database of its own (in a shared or
//! private PostgreSQL cluster), its own Redis (a single server, a Cluster or a Sentinel
//! group) and prefix, the `refresh-service run` daemon and two `api-service` replicas, each
//! logging JSON to a file the scenario can read. What the scenario asks of the replicas
//! over HTTP is in `requests.rs`, of the daemon in `refresher.rs`, of the offers and the
//! refresh log in `offers.rs`.

mod events;
mod offers;
mod refresher;
mod requests;

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use fred::prelude::KeysInterface;
use sqlx::PgPool;
use tokio::io::AsyncWriteExt;

use shared::config::RedisSettings;
use shared::keys::Keys;
use shared::snapshot::SnapshotMeta;
use shared::store::SnapshotStore;

pub use events::Events;
pub use offers::{LogRow, seed};

use crate::commands::{api_service, mint_token, refresh_service};
use crate::ports::free_port;
use crate::process::Process;
use crate::scratch::Scratch;
use crate::servers::redis_server::RedisServer;
use crate::servers::{PgCluster, Topology};
use crate::wait::until;

/// Live offers seeded into every deployment (a document of about 100 KB).
pub const OFFERS: i64 = 300;
/// API replicas per deployment.
pub const REPLICAS: usize = 2;
/// Bound for set-up steps (process start, first snapshot) on a busy machine; not a
/// behaviour under test.
pub const SETUP: Duration = Duration::from_secs(60);
/// The contract's deadline for every replica to serve a new snapshot.
pub const FIVE_SECONDS: Duration = Duration::from_secs(5);

/// One API replica.
pub struct Api {
    /// The `api-service serve` process.
    pub service: Process,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
}

/// What `refresh-service` printed and how it exited.
pub struct OnceRun {
    /// Exit code (none when killed by a signal).
    pub code: Option<i32>,
    /// Standard output: the outcome line of `once`, the listing of `versions`, …
    pub stdout: String,
    /// Standard error: its JSON log.
    pub stderr: String,
}

impl OnceRun {
    /// The outcome line it printed.
    pub fn outcome(&self) -> shared::events::RefreshOutcome {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("once printed no outcome ({e}): {}", self.stdout))
    }
}

/// A whole deployment. Fields drop in order: processes first, servers last.
pub struct Stack {
    /// The API replicas.
    pub apis: Vec<Api>,
    /// The `refresh-service run` daemon, when one runs.
    pub refresher: Option<Process>,
    /// `http://127.0.0.1:PORT` of the daemon's status port (`REFRESH_METRICS_BIND`).
    refresher_status: String,
    /// The snapshot store, as the services see it.
    pub store: SnapshotStore,
    /// The deployment's database.
    pub pool: PgPool,
    /// Its URL (`DATABASE_URL`).
    pub db_url: String,
    /// `OFERTASWS_PREFIX`.
    pub prefix: String,
    /// The Redis it runs on.
    pub redis: Topology,
    /// The PostgreSQL cluster holding its database.
    pub pg: Arc<PgCluster>,
    /// A token of the app's users.
    pub user_token: String,
    /// A token with the `admin` role.
    pub admin_token: String,
    http: reqwest::Client,
    /// The folder of its logs and servers.
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
            refresher_status: String::new(),
            store: SnapshotStore::new(client, Keys::new(&prefix)),
            pool: PgPool::connect_lazy(&db_url).expect("database url"),
            db_url,
            prefix,
            redis,
            pg,
            user_token: mint_token(&[]).await,
            admin_token: mint_token(&["--role", "admin"]).await,
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
        let (refresher, store) = (stack.refresher.as_mut().expect("started"), &stack.store);
        until(SETUP, "the start-up snapshot", || {
            refresher.assert_running();
            async { store.current_meta().await.expect("current metadata") }
        })
        .await;

        for replica in 0..REPLICAS {
            let port = free_port();
            let mut cmd = api_service(&["serve"], &stack.redis.url(), &stack.prefix);
            cmd.env("API_BIND", format!("127.0.0.1:{port}"))
                .current_dir(&stack.scratch.path);
            let log = stack.scratch.join(&format!("api-{replica}.log"));
            stack.apis.push(Api {
                service: Process::spawn(cmd, log),
                base: format!("http://127.0.0.1:{port}"),
            });
        }
        let http = &stack.http;
        for (replica, api) in stack.apis.iter_mut().enumerate() {
            let ready = format!("{}/ready", api.base);
            until(SETUP, &format!("replica {replica} ready"), || {
                api.service.assert_running();
                let answer = http.get(&ready).send();
                async { answer.await.is_ok_and(|r| r.status() == 200).then_some(()) }
            })
            .await;
        }
        stack
    }

    /// `refresh-service ARGS` with this deployment's environment.
    pub fn refresh_command(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = refresh_service(args, &self.db_url, &self.redis.url(), &self.prefix);
        cmd.current_dir(&self.scratch.path);
        cmd
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
        until(SETUP, "a refresh to take the lock", || self.lock_holder()).await
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

    /// Starts recording every event on `P:events`.
    pub async fn events(&self) -> Events {
        Events::subscribe(&self.redis.url(), &self.prefix).await
    }
}

//! The real back end the browser talks to: a PostgreSQL database of the test's own,
//! migrated and seeded by the project's own binary and scripts, a Redis prefix of its own,
//! `refresh-service once` (the real binary) publishing versions, and two real
//! `api-service` replicas on free ports. Every process runs in a process group of its
//! own, logs into the test's scratch folder and is killed with its group when dropped.

use std::fs;
use std::net::TcpListener;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde::Deserialize;
use sqlx::{Connection, PgConnection};

use shared::testing::TestPrefix;

/// Signs the test's tokens; the replicas verify with it.
const JWT_SECRET: &str = "browser-test-secret-not-for-production";

/// How long a step may take before the test fails: generous for a loaded CI machine,
/// short enough to keep the whole test around a minute at worst.
pub const STEP_DEADLINE: Duration = Duration::from_secs(30);

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// A folder for the test's logs and files: removed after a pass, kept (and named on
/// stderr) after a failure.
pub struct Scratch {
    pub path: PathBuf,
}

impl Scratch {
    pub fn new() -> Self {
        let path = std::env::temp_dir().join(format!(
            "ofertasws-browser-{}",
            uuid::Uuid::new_v4().simple()
        ));
        fs::create_dir_all(&path).expect("scratch folder");
        Self { path }
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "browser test: logs kept in {} (nginx access.log, *.log, chromium.log, netlog.json)",
                self.path.display()
            );
        } else {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free local port")
        .port()
}

/// A long-running child process, leader of its own process group; dropping it kills the
/// whole group (nginx workers, Chromium's helpers) and reaps the leader.
pub struct Running {
    child: Child,
}

impl Running {
    /// Starts `cmd` with its stdout and stderr appended to `log`.
    pub fn spawn(cmd: &mut Command, log: &Path) -> Self {
        let out = fs::File::create(log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {:?}: {e}", cmd.get_program()));
        Self { child }
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-s", "KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `probe` every 50 ms until it yields a value; fails the test after `within`.
pub async fn until<T, F, Fut>(within: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The Postgres server tests create their databases on (`TEST_DATABASE_URL`).
fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A database of the test's own, dropped with the value.
pub struct Database {
    name: String,
    pub url: String,
}

impl Database {
    pub fn new() -> Self {
        let name = format!("ofertasws_test_browser_{}", uuid::Uuid::new_v4().simple());
        let admin = admin_url();
        let base = admin
            .rsplit_once('/')
            .map_or(admin.as_str(), |(base, _)| base);
        let url = format!("{base}/{name}");
        Self { name, url }
    }

    /// Runs `psql -f FILE` (a path in the workspace) with `vars` against the database,
    /// output to `log`.
    pub async fn psql(&self, file: &str, vars: &[(&str, &str)], log: &Path) {
        let mut cmd = tokio::process::Command::new("psql");
        cmd.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", &self.url]);
        for (name, value) in vars {
            cmd.arg("-v").arg(format!("{name}={value}"));
        }
        cmd.arg("-f").arg(root().join(file));
        let out = cmd
            .output()
            .await
            .expect("psql runs (PostgreSQL's client, installed with the server)");
        let text = [out.stdout, out.stderr].concat();
        fs::write(log, &text).expect("psql log");
        assert!(
            out.status.success(),
            "psql -f {file} failed: {}",
            String::from_utf8_lossy(&text)
        );
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let name = self.name.clone();
        std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(mut admin) = PgConnection::connect(&admin_url()).await {
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                        r#"drop database if exists "{name}" with (force)"#
                    )))
                    .execute(&mut admin)
                    .await;
                }
            });
        })
        .join()
        .ok();
    }
}

/// `/api/v4/ofertasws/meta` as a replica answers it.
#[derive(Clone, Debug, Deserialize)]
pub struct Meta {
    pub version: String,
    pub count: u64,
    pub json_sha256: String,
    pub deltas: Vec<MetaDelta>,
}

/// One entry of `deltas`.
#[derive(Clone, Debug, Deserialize)]
pub struct MetaDelta {
    pub version: String,
    pub json_sha256: String,
    pub dcz_bytes: u64,
}

/// The back end: database, prefix, two API replicas; everything goes when dropped.
pub struct Backend {
    pub db: Database,
    prefix: TestPrefix,
    pub token: String,
    pub replicas: Vec<u16>,
    processes: Vec<Running>,
    http: reqwest::Client,
}

impl Backend {
    /// A migrated database seeded with `live` live offers (scripts/seed.sql).
    pub async fn seeded(scratch: &Scratch, live: u32) -> Self {
        let backend = Self {
            db: Database::new(),
            prefix: TestPrefix::new(),
            token: String::new(),
            replicas: Vec::new(),
            processes: Vec::new(),
            http: reqwest::Client::new(),
        };
        let migrate = backend
            .refresher(&["migrate"])
            .output()
            .await
            .expect("refresh-service migrate runs");
        assert!(
            migrate.status.success(),
            "refresh-service migrate failed: {}",
            String::from_utf8_lossy(&migrate.stderr)
        );
        let live = live.to_string();
        backend
            .db
            .psql(
                "scripts/seed.sql",
                &[("live", &live)],
                &scratch.join("seed.log"),
            )
            .await;
        backend
    }

    /// The `refresh-service` binary with this back end's settings, schedule off.
    pub fn refresher(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_refresh-service"));
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", &self.db.url)
            .env("REDIS_URL", shared::testing::redis_url())
            .env("OFERTASWS_PREFIX", &self.prefix.0)
            .env("REFRESH_SCHEDULE", "off")
            .env(
                "RANKER_MODEL",
                root().join("refresh-service/models/offer_ranker.onnx"),
            )
            .env(
                "ORT_DYLIB_PATH",
                root().join(".local/onnxruntime/libonnxruntime.so"),
            )
            .env("REFRESH_METRICS_BIND", "127.0.0.1:0")
            .env("LOG_FORMAT", "text")
            .env("RUST_LOG", "info")
            .kill_on_drop(true);
        cmd
    }

    /// `refresh-service once`, its output kept in `log`; fails the test unless it exits 0.
    pub async fn refresh_once(&self, log: &Path) {
        let out = self
            .refresher(&["once", "--trigger", "browser-test"])
            .output()
            .await
            .expect("refresh-service once runs");
        let text = [out.stdout, out.stderr].concat();
        fs::write(log, &text).expect("refresh log");
        assert!(
            out.status.success(),
            "refresh-service once failed: {}",
            String::from_utf8_lossy(&text)
        );
    }

    fn api(&self) -> Command {
        let binary =
            shared::testing::workspace_binary(env!("CARGO_BIN_EXE_refresh-service"), "api-service");
        let mut cmd = Command::new(binary);
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("REDIS_URL", shared::testing::redis_url())
            .env("OFERTASWS_PREFIX", &self.prefix.0)
            .env("JWT_SECRET", JWT_SECRET)
            .env("LOG_FORMAT", "text")
            .env("RUST_LOG", "info");
        cmd
    }

    /// Mints a token (`api-service token`) and starts `count` replicas on free ports,
    /// waiting until each is ready (holds a snapshot).
    pub async fn start_replicas(&mut self, scratch: &Scratch, count: usize) {
        let token = self
            .api()
            .args(["token", "--ttl", "15m"])
            .output()
            .expect("api-service token runs");
        assert!(token.status.success(), "api-service token failed");
        self.token = String::from_utf8(token.stdout)
            .expect("token")
            .trim()
            .to_owned();
        for n in 1..=count {
            let port = free_port();
            let process = Running::spawn(
                self.api().env("API_BIND", format!("127.0.0.1:{port}")),
                &scratch.join(&format!("api-{n}.log")),
            );
            self.processes.push(process);
            self.replicas.push(port);
        }
        let http = &self.http;
        for port in &self.replicas {
            let url = &format!("http://127.0.0.1:{port}/ready");
            until(
                STEP_DEADLINE,
                &format!("replica {port} ready"),
                || async move {
                    let ready = http.get(url).send().await.ok()?;
                    ready.status().is_success().then_some(())
                },
            )
            .await;
        }
    }

    /// The metadata replica `port` serves right now.
    pub async fn meta(&self, port: u16) -> Option<Meta> {
        let url = format!("http://127.0.0.1:{port}/api/v4/ofertasws/meta");
        let response = self
            .http
            .get(url)
            .bearer_auth(&self.token)
            .send()
            .await
            .ok()?;
        response.error_for_status().ok()?.json().await.ok()
    }

    /// Waits until every replica serves metadata that `wanted` accepts; returns the first
    /// replica's.
    pub async fn meta_everywhere(&self, what: &str, wanted: impl Fn(&Meta) -> bool) -> Meta {
        let wanted = &wanted;
        until(STEP_DEADLINE, what, || async move {
            let mut first = None;
            for &port in &self.replicas {
                let meta = self.meta(port).await.filter(wanted)?;
                first.get_or_insert(meta);
            }
            first
        })
        .await
    }

    /// Whether every replica process is still running.
    pub fn replicas_alive(&mut self) -> bool {
        self.processes.iter_mut().all(Running::alive)
    }
}

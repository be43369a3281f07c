//! The real back end the browser talks to: a PostgreSQL database of the test's own
//! (the `it` suite's `TestDb`: created, migrated, dropped afterwards) seeded by
//! `scripts/seed.sql`, a Redis prefix of its own, `refresh-service once` (the real binary,
//! as the `it` suite runs it) publishing versions, and two real
//! `api-service` replicas on free ports. Every process runs in a process group of its
//! own, logs into the test's scratch folder and is killed with its group when dropped.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde::Deserialize;

use shared::config::RefreshSettings;

use crate::helpers::{self, TestDb, TestPrefix, free_port};

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

pub use shared::testing::Scratch;

/// Creates `path` readable by everyone: nginx's workers run as `nobody` when the tests
/// run as root, and must read the page and its control file.
pub fn public_folder(path: &Path) {
    fs::create_dir_all(path).expect("folder");
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).expect("chmod folder");
}

/// Writes `path` readable by everyone (see [`public_folder`]).
pub fn write_public(path: &Path, contents: &[u8]) {
    fs::write(path, contents).expect("file written");
    fs::set_permissions(path, fs::Permissions::from_mode(0o644)).expect("chmod file");
}

/// An HTTP client for the test's own servers on 127.0.0.1, whatever proxy the
/// environment names.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("HTTP client")
}

/// A long-running child process, leader of its own process group. Dropping it asks the
/// leader to stop (SIGTERM: nginx and Chromium then stop their own workers and helpers),
/// kills the whole group after a few seconds, whatever is left of it, and reaps the
/// leader. (Chromium's helpers are reparented to init, which reaps them; Chromium leaves
/// its net-log without the closing `]}` either way.)
pub struct Running {
    child: Child,
}

impl Running {
    /// Starts `cmd` with its stdout and stderr written to `log`.
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

impl Running {
    /// Sends `signal` to the leader (`group` false) or to its whole process group.
    fn signal(&self, signal: &str, group: bool) {
        let target = if group {
            format!("-{}", self.child.id())
        } else {
            self.child.id().to_string()
        };
        let _ = Command::new("kill")
            .args(["-s", signal, "--", &target])
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.signal("TERM", false);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while self.alive() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.signal("KILL", true);
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

/// Runs `psql -f FILE` (a path in the workspace) with `vars` against the database at
/// `url`, output to `log`.
pub async fn psql(url: &str, file: &str, vars: &[(&str, &str)], log: &Path) {
    let mut cmd = tokio::process::Command::new("psql");
    cmd.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url]);
    for (name, value) in vars {
        cmd.arg("-v").arg(format!("{name}={value}"));
    }
    cmd.arg("-f").arg(root().join(file));
    run_logged(&mut cmd, log, &format!("psql -f {file}")).await;
}

/// Runs `cmd` to its end with its output kept in `log`; fails the test unless it exits 0.
async fn run_logged(cmd: &mut tokio::process::Command, log: &Path, what: &str) {
    let out = cmd
        .output()
        .await
        .unwrap_or_else(|e| panic!("{what} did not start: {e}"));
    let text = [out.stdout, out.stderr].concat();
    fs::write(log, &text).expect("command log");
    assert!(
        out.status.success(),
        "{what} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&text)
    );
}

/// The program `name`: on `PATH`, else in `usual_dir` (where Debian installs it, which
/// may be off a non-root `PATH`).
pub fn program(name: &str, usual_dir: &str) -> PathBuf {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .chain([PathBuf::from(usual_dir)])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!("{name} not found: scripts/browser.sh installs it (Debian package {name})")
        })
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
    pub db: TestDb,
    /// The refresher's settings: this database, this prefix, schedule off.
    settings: RefreshSettings,
    _prefix: TestPrefix,
    pub token: String,
    pub replicas: Vec<u16>,
    processes: Vec<Running>,
    http: reqwest::Client,
}

impl Backend {
    /// A migrated database seeded with `live` live offers (scripts/seed.sql).
    pub async fn seeded(scratch: &Scratch, live: u32) -> Self {
        let db = TestDb::new().await;
        let live = live.to_string();
        psql(
            &db.url,
            "scripts/seed.sql",
            &[("live", &live)],
            &scratch.join("seed.log"),
        )
        .await;
        let prefix = TestPrefix::new();
        Self {
            settings: helpers::settings(&db.url, &prefix.0),
            db,
            _prefix: prefix,
            token: String::new(),
            replicas: Vec::new(),
            processes: Vec::new(),
            http: http_client(),
        }
    }

    /// `refresh-service once`, its output kept in `log`; fails the test unless it exits 0.
    pub async fn refresh_once(&self, log: &Path) {
        let mut once = helpers::command(&self.settings, &["once", "--trigger", "browser-test"]);
        run_logged(&mut once, log, "refresh-service once").await;
    }

    fn api(&self) -> Command {
        let binary =
            shared::testing::workspace_binary(env!("CARGO_BIN_EXE_refresh-service"), "api-service");
        let mut cmd = Command::new(binary);
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("REDIS_URL", &self.settings.redis.redis_url)
            .env("OFERTASWS_PREFIX", &self.settings.redis.prefix)
            .env("JWT_SECRET", JWT_SECRET)
            .env("LOG_FORMAT", "text")
            .env("NO_COLOR", "1")
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

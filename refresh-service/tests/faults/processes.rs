//! The processes of a deployment under test: the real binaries, each logging JSON to a
//! file the scenario reads, the tokens its requests carry, and a recorder of `P:events`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use fred::prelude::{ClientLike, EventInterface, PubsubInterface};
use serde_json::Value;

use shared::config::RedisSettings;
use shared::events::{Event, RefreshOutcome};
use shared::keys::Keys;

use crate::servers::signal;
use crate::stack::SETUP;

/// `JWT_SECRET` of every replica.
pub const SECRET: &str = "ofertasws-faults-secret";

/// The `api-service` binary next to `refresh-service` in the same target folder, built
/// first (once per test binary) when it is missing or older than its sources: only
/// `cargo test --workspace` builds other packages' binaries before the tests run.
pub fn api_binary() -> &'static Path {
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
    pub fn spawn(mut cmd: tokio::process::Command, log: PathBuf) -> Self {
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
    pub fn assert_running(&mut self) {
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

pub async fn mint(api_bin: &Path, args: &[&str]) -> String {
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

/// Every event published on `P:events` from the moment it was created.
pub struct Events {
    seen: Arc<Mutex<Vec<Event>>>,
    reader: tokio::task::JoinHandle<()>,
    subscriber: fred::clients::SubscriberClient,
}

impl Events {
    pub async fn subscribe(url: &str, prefix: &str) -> Self {
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

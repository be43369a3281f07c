//! The `api-service` binary as a child process, for the connection tests that measure
//! what the server holds (its own memory, not the test's) or change its file limits.

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use super::raw::exchange;
use crate::helpers::*;

/// The longest the process may take to start or stop.
const DEADLINE: Duration = Duration::from_secs(30);

/// A running `api-service serve`, its JSON log lines collected as they come.
pub struct ApiProcess {
    child: Child,
    pub addr: SocketAddr,
    logs: Arc<Mutex<Vec<serde_json::Value>>>,
}

impl ApiProcess {
    /// Starts the binary on the Redis `prefix` with `env` (e.g. `API_SEND_TIMEOUT_SECS`),
    /// under `ulimit -n files` when given, and waits until it listens.
    pub async fn start(prefix: &str, env: &[(&str, &str)], files: Option<u32>) -> Self {
        let limit = files.map_or(String::new(), |n| format!("ulimit -n {n} && "));
        let mut command = Command::new("sh");
        command
            .args(["-c", &format!(r#"{limit}exec "$0" serve"#)])
            .arg(env!("CARGO_BIN_EXE_api-service"))
            .env_clear()
            .env("REDIS_URL", redis_url())
            .env("OFERTASWS_PREFIX", prefix)
            .env("API_BIND", "127.0.0.1:0")
            .env("JWT_SECRET", SECRET)
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().unwrap();
        let logs = Arc::new(Mutex::new(Vec::<serde_json::Value>::new()));
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let kept = logs.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Ok(entry) = serde_json::from_str(&line) {
                    kept.lock().unwrap().push(entry);
                }
            }
        });
        let listening = |logs: &[serde_json::Value]| {
            logs.iter()
                .find(|e| e["fields"]["message"] == "api-service listening")
                .and_then(|e| e["fields"]["addr"].as_str()?.parse().ok())
        };
        let mut process = Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            logs,
        };
        eventually(DEADLINE, "the API to listen", || async {
            listening(&process.logs.lock().unwrap()).is_some()
        })
        .await;
        process.addr = listening(&process.logs.lock().unwrap()).unwrap();
        process
    }

    /// Whether the process has logged `message`.
    pub fn logged(&self, message: &str) -> bool {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .any(|e| e["fields"]["message"] == message)
    }

    /// Every line it has logged, for a failure's message.
    pub fn log_lines(&self) -> String {
        let logs = self.logs.lock().unwrap();
        logs.iter().map(|e| format!("{e}\n")).collect()
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// A line of `/proc/PID/status`, in KiB (`VmRSS`, `VmHWM`).
    pub fn memory_kib(&self, field: &str) -> u64 {
        let pid = self.child.id().expect("running");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        status
            .lines()
            .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|value| value.trim().trim_end_matches(" kB").parse().ok())
            .unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"))
    }

    /// Its `/metrics`, over a new connection.
    pub async fn metrics(&self) -> String {
        let mut stream = TcpStream::connect(self.addr).await.unwrap();
        let (status, body) = exchange(&mut stream, &super::raw::get("/metrics", &[]))
            .await
            .unwrap();
        assert_eq!(status, 200);
        body
    }

    /// SIGTERM, and the exit it leads to: success.
    pub async fn stop(mut self) {
        let pid = self.child.id().unwrap().to_string();
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        let exit = tokio::time::timeout(DEADLINE, self.child.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(exit.success(), "{exit:?}");
    }
}

//! Child processes of a test: each started with its output in a log file of the test's
//! scratch folder, signalled by the scenario (STOP, CONT, KILL), and stopped when dropped:
//! asked with SIGTERM first, then killed (with its whole process group when it leads one),
//! so nothing a test started outlives it.

use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long a process asked to stop (SIGTERM) has before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Sends `signal` (`STOP`, `CONT`, `KILL`, …) to `pid` with kill(1).
pub fn signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .args(["-s", signal, &pid.to_string()])
        .status()
        .expect("kill(1) runs");
    assert!(status.success(), "kill -s {signal} {pid} failed");
}

/// A process the test started.
pub struct Process {
    child: tokio::process::Child,
    /// Its stdout and stderr.
    pub log: PathBuf,
    /// Whether it leads a process group of its own, stopped with it.
    group: bool,
}

impl Process {
    /// Starts `cmd` with stdin closed and stdout and stderr written to `log`, in the
    /// test's process group (an interrupted test run stops it too).
    pub fn spawn(cmd: tokio::process::Command, log: PathBuf) -> Self {
        Self::start(cmd, log, false)
    }

    /// As [`Process::spawn`], as the leader of a process group of its own, for programs
    /// that start helpers of their own (nginx's workers, Chromium's renderers): they are
    /// all killed with it.
    pub fn spawn_group(cmd: tokio::process::Command, log: PathBuf) -> Self {
        Self::start(cmd, log, true)
    }

    fn start(mut cmd: tokio::process::Command, log: PathBuf, group: bool) -> Self {
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        if group {
            cmd.process_group(0);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {:?}: {e}", cmd.as_std().get_program()));
        Self { child, log, group }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id().expect("still running")
    }

    /// Sends `name` (`STOP`, `CONT`, …) to the process.
    pub fn signal(&self, name: &str) {
        signal(self.pid(), name);
    }

    /// SIGKILL, and waits until the process is gone.
    pub async fn kill(&mut self) -> ExitStatus {
        self.signal("KILL");
        self.child.wait().await.expect("wait")
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
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

    /// Every JSON line of its log so far.
    pub fn log_lines(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    /// The JSON log lines whose message is `message`.
    pub fn logged(&self, message: &str) -> Vec<Value> {
        self.log_lines()
            .into_iter()
            .filter(|line| line["fields"]["message"] == message)
            .collect()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let Some(pid) = self.child.id() else {
            return;
        };
        // SIGTERM: nginx and Chromium then stop their own workers and helpers, the
        // services shut down as they would in a deployment.
        let _ = std::process::Command::new("kill")
            .args(["-s", "TERM", &pid.to_string()])
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + STOP_GRACE;
        while self.alive() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if self.group {
            let _ = std::process::Command::new("kill")
                .args(["-s", "KILL", "--", &format!("-{pid}")])
                .stderr(Stdio::null())
                .status();
        }
        // `kill_on_drop` kills the leader if it is still there; tokio reaps it.
    }
}

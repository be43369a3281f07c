//! One redis-server process on a free port, killed and restarted at will, and what the
//! Cluster and Sentinel groups made of them share: the data nodes' options and how to
//! tell a primary from a replica in sync.
//!
//! Replicas of the groups authenticate to their primary as the ACL user `replicator`;
//! switching that user off on a primary ([`cut_replication`]) leaves its replica
//! connected to nothing, still eligible for promotion, so a test can make a failover lose
//! the last writes.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::ports::free_port;
use crate::scratch::Scratch;
use crate::wait::poll_until;

/// A redis-server process on a free port, logging into a folder of its own: killed and
/// restarted, it comes back on the same port with the same arguments.
pub struct RedisServer {
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    dir: PathBuf,
    /// A config file read first (a sentinel's, which Sentinel rewrites as it learns).
    config: Option<PathBuf>,
    /// Options after the common ones (port, bind, folder, log).
    args: Vec<String>,
    child: Mutex<Option<Child>>,
}

impl RedisServer {
    /// A plain server without persistence: killed and restarted, it comes back empty.
    pub fn start(scratch: &Scratch) -> Self {
        Self::launch(scratch, "redis", None, no_persistence())
    }

    /// A server called `name` (its folder under `scratch`), started from `config` when
    /// given, with `args` after the common options; waits until it answers PING.
    pub fn launch(
        scratch: &Scratch,
        name: &str,
        config: Option<PathBuf>,
        args: Vec<String>,
    ) -> Self {
        let dir = scratch.join(name);
        fs::create_dir_all(&dir).expect("redis folder");
        let mut server = Self {
            port: free_port(),
            dir,
            config,
            args,
            child: Mutex::new(None),
        };
        // Another process may take the port before the server binds it (an outgoing
        // connection's ephemeral port): the server exits then, and gets another port.
        for _ in 0..5 {
            if server.start_process() {
                return server;
            }
            server.port = free_port();
        }
        panic!(
            "redis-server {name} could not bind a port; see {}",
            server.dir.display()
        );
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The server's folder (data, config, log).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Starts redis-server on the port again and waits until it answers PING.
    pub fn restart(&self) {
        assert!(
            self.start_process(),
            "redis-server exited on restart on port {}; see {}",
            self.port,
            self.dir.display()
        );
    }

    /// Starts redis-server on the port and waits until it answers PING: true, or false
    /// when it exited instead (the port was taken).
    fn start_process(&self) -> bool {
        let log = self.dir.join("redis.log");
        let child = Command::new("redis-server")
            .args(self.config.iter())
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--daemonize", "no", "--dir"])
            .arg(&self.dir)
            .arg("--logfile")
            .arg(&log)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs (scripts/services.sh installs it)");
        let pid = child.id().to_string();
        let mut slot = self.child.lock().unwrap_or_else(PoisonError::into_inner);
        *slot = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(child) = slot.as_mut()
                && matches!(child.try_wait(), Ok(Some(_)))
            {
                *slot = None;
                return false;
            }
            // The server answering must be this one, not another that holds the port.
            if self.answers() && self.info("server", "process_id").as_deref() == Some(&pid) {
                return true;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer on port {}; see {}",
                self.port,
                log.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, and waits until it is gone.
    pub fn kill(&self) {
        if let Some(mut child) = self
            .child
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends `name` (`STOP`, `CONT`) to the server process: a stopped replica takes no
    /// replication stream and acknowledges nothing until it is continued.
    pub fn signal(&self, name: &str) {
        let pid = self
            .child
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(Child::id)
            .expect("the server runs");
        crate::process::signal(pid, name);
    }

    /// `key` as this node has it, read as a client may read a replica (`READONLY` first,
    /// which a Cluster replica needs to answer instead of redirecting); `None` when the
    /// node does not have it. Blocking.
    pub fn read_own_copy(&self, key: &str) -> Option<String> {
        let mut child = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-cli runs");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(format!("READONLY\nGET {key}\n").as_bytes())
            .expect("write to redis-cli");
        let out = child.wait_with_output().expect("redis-cli finished");
        let text = String::from_utf8_lossy(&out.stdout);
        // The answer to READONLY (OK, or an error and a blank line outside a Cluster),
        // then the value: the last line (blank when the key is missing).
        let value = text.lines().last()?.trim();
        (!value.is_empty()).then(|| value.to_owned())
    }

    /// Whether the process still runs (it was not killed).
    pub fn is_running(&self) -> bool {
        self.child
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    /// `redis-cli ARGS` against this server; its output (server errors included, as
    /// redis-cli prints them). Blocking: call it from `spawn_blocking` in async code.
    pub fn cli(&self, args: &[&str]) -> String {
        self.try_cli(args)
            .unwrap_or_else(|error| panic!("redis-cli {args:?} on {}: {error}", self.port))
    }

    /// [`cli`](Self::cli) for polls: redis-cli's complaint when it could not get an
    /// answer. A sentinel closes every client of a node it reconfigures (`CLIENT KILL
    /// TYPE normal` as part of a promotion), so a poll must read that as "not yet".
    pub fn try_cli(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli runs");
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// The value of `field` in this server's `INFO section`; `None` when it has no
    /// such field or did not answer.
    pub fn info(&self, section: &str, field: &str) -> Option<String> {
        self.try_cli(&["INFO", section])
            .ok()?
            .lines()
            .find_map(|line| {
                let (name, value) = line.trim().split_once(':')?;
                (name == field).then(|| value.to_owned())
            })
    }

    fn answers(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
        let mut reply = [0u8; 7];
        stream.write_all(b"PING\r\n").is_ok()
            && stream.read_exact(&mut reply).is_ok()
            && &reply == b"+PONG\r\n"
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Options of a data node that keeps nothing on disk.
pub fn no_persistence() -> Vec<String> {
    ["--save", "", "--appendonly", "no"]
        .map(str::to_owned)
        .into()
}

/// Bound for a topology to form or fail over: a set-up step, not a behaviour under test.
pub const FORM: Duration = Duration::from_secs(60);
/// How long a primary may stay silent before it is failed over (Cluster node timeout,
/// Sentinel `down-after-milliseconds`). Short, so failovers take seconds; not shorter,
/// so a machine busy compiling does not fail a primary over by itself.
pub const SILENCE_MS: &str = "2000";
const REPLICATION_USER: &str = "replicator";
const REPLICATION_PASSWORD: &str = "ofertasws-replication";

/// Every data node has the replication user, and replicates as it: after a failover the
/// promoted node serves replicas the same way.
pub fn data_node_args() -> Vec<String> {
    let mut args = no_persistence();
    args.extend(
        [
            "--user",
            REPLICATION_USER,
            "on",
            &format!(">{REPLICATION_PASSWORD}"),
            "~*",
            "&*",
            "+@all",
            "--masteruser",
            REPLICATION_USER,
            "--masterauth",
            REPLICATION_PASSWORD,
        ]
        .map(str::to_owned),
    );
    args
}

/// Stops `primary` from replicating: its replication user is switched off and its
/// replicas' connections closed, so they cannot reconnect. Returns once no replica is
/// connected.
pub fn cut_replication(primary: &RedisServer) {
    primary.cli(&["ACL", "SETUSER", REPLICATION_USER, "off"]);
    primary.cli(&["CLIENT", "KILL", "USER", REPLICATION_USER]);
    poll_until(FORM, "replicas disconnected", || {
        primary.info("replication", "connected_slaves").as_deref() == Some("0")
    });
}

/// Whether `node` is a replica whose link to its primary is up.
pub fn replica_in_sync(node: &RedisServer) -> bool {
    node.info("replication", "role").as_deref() == Some("slave")
        && node.info("replication", "master_link_status").as_deref() == Some("up")
}

/// Whether `node` says it is a primary.
pub fn is_primary(node: &RedisServer) -> bool {
    node.is_running() && node.info("replication", "role").as_deref() == Some("master")
}

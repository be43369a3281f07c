//! PostgreSQL clusters of a scenario's own (initdb + pg_ctl, on a free port, data and log
//! in a scratch folder), so a scenario can stop and restart the server under the
//! refresher. Run as the `postgres` user when the tests run as root, because initdb
//! refuses root.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use crate::ports::free_port;
use crate::scratch::Scratch;

fn running_as_root() -> bool {
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Runs `program` as the owner of the PostgreSQL cluster: the `postgres` user when we
/// are root (as scripts/lib.sh `as_pg_owner` does), ourselves otherwise.
fn as_pg_owner(program: &Path) -> Command {
    if running_as_root() {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program);
        cmd.current_dir("/");
        cmd
    } else {
        Command::new(program)
    }
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The directory holding initdb and pg_ctl: the newest `/usr/lib/postgresql/N/bin`,
/// else `pg_config --bindir` (as scripts/lib.sh `pg_bindir` looks for them).
fn pg_bindir() -> PathBuf {
    let newest = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let major: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            (bin.join("initdb").exists() && bin.join("pg_ctl").exists()).then_some((major, bin))
        })
        .max();
    if let Some((_, bin)) = newest {
        return bin;
    }
    let from_pg_config = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    from_pg_config
        .filter(|bin| bin.join("initdb").exists())
        .expect("PostgreSQL server binaries (initdb, pg_ctl) not found; scripts/services.sh installs them")
}

/// A PostgreSQL cluster of the test's own: trust authentication, TCP on 127.0.0.1 only.
pub struct PgCluster {
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    bin: PathBuf,
    data: PathBuf,
    log: PathBuf,
    /// Holds the data folder and the server log.
    _scratch: Scratch,
}

impl PgCluster {
    /// initdb and start (blocking; about a second or two).
    pub fn start() -> Self {
        let scratch = Scratch::new("pg");
        let (data, log) = (scratch.join("data"), scratch.join("postgres.log"));
        if running_as_root() {
            run(
                Command::new("install")
                    .args(["-d", "-o", "postgres", "-m", "0700"])
                    .arg(&data),
                "creating the data folder",
            );
            run(
                Command::new("install")
                    .args(["-o", "postgres", "-m", "0644", "/dev/null"])
                    .arg(&log),
                "creating the server log",
            );
        } else {
            fs::create_dir_all(&data).expect("data folder");
            fs::set_permissions(&data, fs::Permissions::from_mode(0o700)).expect("chmod data");
        }
        let bin = pg_bindir();
        run(
            as_pg_owner(&bin.join("initdb")).arg("-D").arg(&data).args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ]),
            "initdb",
        );
        let port = free_port();
        // A throw-away cluster: no Unix socket (nothing can collide with another server),
        // durability traded for speed. Appending keeps the file's owner.
        let mut conf = fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .expect("postgresql.conf");
        writeln!(
            conf,
            "\nlisten_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = ''\n\
             max_connections = 100\nfsync = off\nsynchronous_commit = off\nfull_page_writes = off"
        )
        .expect("write postgresql.conf");
        let cluster = Self {
            port,
            bin,
            data,
            log,
            _scratch: scratch,
        };
        cluster.start_again();
        cluster
    }

    /// `postgres://postgres@127.0.0.1:PORT/DATABASE`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    fn pg_ctl(&self, args: &[&str], what: &str) {
        run(
            as_pg_owner(&self.bin.join("pg_ctl"))
                .arg("-D")
                .arg(&self.data)
                .arg("-l")
                .arg(&self.log)
                .args(args)
                .stdin(Stdio::null()),
            what,
        );
    }

    /// `pg_ctl start` on the same port, waiting until it accepts connections.
    pub fn start_again(&self) {
        self.pg_ctl(&["-w", "-t", "60", "start"], "pg_ctl start");
    }

    /// `pg_ctl stop -m fast`: every session is terminated; waits until the server is down.
    pub fn stop(&self) {
        self.pg_ctl(&["-w", "-t", "60", "-m", "fast", "stop"], "pg_ctl stop");
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = as_pg_owner(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .args(["-w", "-t", "30", "-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        // The data folder goes even when the test failed; the server log stays with it.
        let _ = fs::remove_dir_all(&self.data);
    }
}

static SHARED_CLUSTER: Mutex<Weak<PgCluster>> = Mutex::new(Weak::new());

/// The cluster the scenarios that never stop PostgreSQL share (each with a database of
/// its own): started by the first scenario that asks, stopped when the last one using
/// it ends.
pub async fn shared_cluster() -> Arc<PgCluster> {
    tokio::task::spawn_blocking(|| {
        let mut slot = SHARED_CLUSTER
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(cluster) = slot.upgrade() {
            return cluster;
        }
        let cluster = Arc::new(PgCluster::start());
        *slot = Arc::downgrade(&cluster);
        cluster
    })
    .await
    .expect("starting PostgreSQL")
}

/// A cluster for one scenario alone (one that stops and restarts it).
pub async fn own_cluster() -> Arc<PgCluster> {
    Arc::new(
        tokio::task::spawn_blocking(PgCluster::start)
            .await
            .expect("starting PostgreSQL"),
    )
}

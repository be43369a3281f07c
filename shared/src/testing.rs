//! Test support shared by both services' integration tests (feature `test-support`):
//! a Redis prefix per test, a cuttable TCP proxy to simulate outages, and polling.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fred::prelude::{ClientLike, LuaInterface};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

use crate::config::RedisSettings;

/// Redis tests use (each with its own prefix).
pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A Redis prefix of the test's own; its keys are deleted when dropped.
pub struct TestPrefix(pub String);

impl Default for TestPrefix {
    fn default() -> Self {
        Self::new()
    }
}

impl TestPrefix {
    /// A fresh, unique prefix.
    pub fn new() -> Self {
        Self(format!(
            "ofertasws_test_p_{}",
            uuid::Uuid::new_v4().simple()
        ))
    }
}

impl Drop for TestPrefix {
    fn drop(&mut self) {
        let pattern = format!("{}:*", self.0);
        std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            rt.block_on(async move {
                let client = crate::redis::client(&RedisSettings::new(redis_url(), "cleanup"), crate::redis::Start::FailFast).unwrap();
                if crate::redis::connect(&client).await.is_ok() {
                    let _: Result<i64, _> = client
                        .eval(
                            "local n = 0 for _, k in ipairs(redis.call('KEYS', ARGV[1])) do n = n + redis.call('DEL', k) end return n",
                            Vec::<String>::new(),
                            vec![pattern],
                        )
                        .await;
                    let _ = client.quit().await;
                }
            });
        })
        .join()
        .ok();
    }
}

/// Waits until `condition` holds, polling every 20 ms, failing after `within`.
pub async fn eventually<F, Fut>(within: Duration, what: &str, condition: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A TCP proxy to `upstream` that can be cut (every connection dropped, new ones
/// refused) and restored, like a network failure between a service and its server.
pub struct Proxy {
    pub addr: SocketAddr,
    up: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<AbortHandle>>>,
    accept: AbortHandle,
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let connections: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let (up2, conns2) = (up.clone(), connections.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !up2.load(Ordering::SeqCst) {
                    continue;
                }
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                conns2.lock().unwrap().push(task.abort_handle());
            }
        })
        .abort_handle();
        Self {
            addr,
            up,
            connections,
            accept,
        }
    }

    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for conn in self.connections.lock().unwrap().drain(..) {
            conn.abort();
        }
    }

    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

/// The workspace root (tests build and find binaries relative to it).
fn workspace_root() -> &'static std::path::Path {
    std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn newest_mtime(path: &std::path::Path) -> std::time::SystemTime {
    use std::time::SystemTime;
    let Ok(meta) = std::fs::metadata(path) else {
        return SystemTime::UNIX_EPOCH;
    };
    let own = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
    if !meta.is_dir() {
        return own;
    }
    std::fs::read_dir(path)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| newest_mtime(&entry.path()))
        .fold(own, SystemTime::max)
}

/// The binary of workspace `package`, in the same target folder as `next_to` (a binary
/// of the crate under test, e.g. `env!("CARGO_BIN_EXE_refresh-service")`).
///
/// `cargo test --workspace` builds every binary before any test runs; a test binary run
/// on its own (`cargo test -p refresh-service`) only gets its own package's, so when the
/// sibling is missing or older than its sources (or `shared`'s) it is built here with the
/// cargo running the tests, for the same profile.
pub fn workspace_binary(next_to: &str, package: &str) -> std::path::PathBuf {
    use std::time::SystemTime;
    let next_to = std::path::Path::new(next_to);
    let binary = next_to.with_file_name(format!("{package}{}", std::env::consts::EXE_SUFFIX));
    let root = workspace_root();
    let sources = [
        root.join(package).join("src"),
        root.join(package).join("Cargo.toml"),
        root.join("shared/src"),
        root.join("shared/Cargo.toml"),
    ]
    .iter()
    .map(|p| newest_mtime(p))
    .fold(SystemTime::UNIX_EPOCH, SystemTime::max);
    let built = std::fs::metadata(&binary).and_then(|m| m.modified()).ok();
    if built.is_none_or(|built| built < sources) {
        let profile_dir = next_to.parent().expect("binary folder");
        let target_dir = profile_dir.parent().expect("target folder");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = std::process::Command::new(cargo);
        cmd.args(["build", "-p", package, "--bin", package])
            .arg("--target-dir")
            .arg(target_dir)
            .current_dir(root);
        match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") | None => {}
            Some("release") => {
                cmd.arg("--release");
            }
            Some(profile) => {
                cmd.args(["--profile", profile]);
            }
        }
        eprintln!("building {package} (missing or older than its sources)");
        let status = cmd.status().expect("cargo runs");
        assert!(status.success(), "cargo build -p {package} failed");
    }
    assert!(
        binary.exists(),
        "{} is missing: run `cargo build -p {package}`",
        binary.display()
    );
    binary
}

/// A folder under the system temp dir for one test's servers, files and logs, open to
/// every user (PostgreSQL and nginx workers run as other users when the tests run as
/// root): removed after a pass, kept and named on stderr after a failure.
pub struct Scratch {
    /// The folder.
    pub path: std::path::PathBuf,
}

impl Scratch {
    /// A new folder named after `kind`.
    ///
    /// # Panics
    /// When the folder cannot be made (a test set-up failure).
    #[allow(clippy::expect_used)]
    pub fn new(kind: &str) -> Self {
        use std::os::unix::fs::PermissionsExt;
        let path = std::env::temp_dir().join(format!(
            "ofertasws-{kind}-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&path).expect("scratch folder");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .expect("chmod scratch folder");
        Self { path }
    }

    /// `name` inside the folder.
    pub fn join(&self, name: &str) -> std::path::PathBuf {
        self.path.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("logs kept in {}", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Metadata of a one-offer snapshot whose bodies are `document`, `gzip` and `zstd`, with
/// the sizes and hashes they really have: for tests and tools that need a plausible
/// snapshot without building one.
pub fn sample_meta(document: &[u8], gzip: &[u8], zstd: &[u8]) -> crate::snapshot::SnapshotMeta {
    use crate::sha256::Sha256;
    use crate::snapshot::{SnapshotMeta, hash_hex};
    let content_hash = hash_hex(document);
    let version = SnapshotMeta::version_for(1, &content_hash);
    SnapshotMeta {
        etag: SnapshotMeta::etag_for(&version),
        version,
        seq: 1,
        count: 1,
        // 2026-11-22T15:00:00.123Z: a time with milliseconds, as refreshes write them.
        generated_at: chrono::DateTime::from_timestamp_millis(1_795_359_600_123)
            .unwrap_or_default(),
        content_hash,
        json_bytes: document.len() as u64,
        gzip_bytes: gzip.len() as u64,
        zstd_bytes: zstd.len() as u64,
        json_hash: hash_hex(document),
        json_sha256: Some(Sha256::of(document)),
        gzip_hash: hash_hex(gzip),
        zstd_hash: hash_hex(zstd),
    }
}

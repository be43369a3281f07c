//! The workspace's two binaries as commands, each with a clean environment holding only
//! what a deployment would set: the test's own database, Redis and key prefix, the
//! repository's ranking model and ONNX Runtime library, and JSON logs a scenario can read.

use std::path::Path;

use crate::binaries::{onnxruntime_library, ranker_model, workspace_binary};

/// `JWT_SECRET` of every API replica the harness starts; [`mint_token`] signs with it.
pub const JWT_SECRET: &str = "ofertasws-system-tests-secret";

/// A command of `binary` with nothing in its environment but `PATH`, JSON logs at `info`.
fn clean(binary: &str) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(workspace_binary(binary));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .kill_on_drop(true);
    cmd
}

/// `refresh-service ARGS` against `database_url`, `redis_url` and `prefix`, with the
/// in-process schedule and the status port off (a scenario turns them on).
pub fn refresh_service(
    args: &[&str],
    database_url: &str,
    redis_url: &str,
    prefix: &str,
) -> tokio::process::Command {
    let mut cmd = clean("refresh-service");
    cmd.args(args)
        .env("DATABASE_URL", database_url)
        .env("REDIS_URL", redis_url)
        .env("OFERTASWS_PREFIX", prefix)
        .env("REFRESH_SCHEDULE", "off")
        .env("REFRESH_TIMEZONE", "America/Panama")
        .env("REFRESH_METRICS_BIND", "off")
        .env("RANKER_MODEL", ranker_model())
        .env("ORT_DYLIB_PATH", onnxruntime_library());
    cmd
}

/// `api-service ARGS` against `redis_url` and `prefix`, verifying tokens signed with
/// [`JWT_SECRET`] and shutting down within a second of SIGTERM.
pub fn api_service(args: &[&str], redis_url: &str, prefix: &str) -> tokio::process::Command {
    let mut cmd = clean("api-service");
    cmd.args(args)
        .env("REDIS_URL", redis_url)
        .env("OFERTASWS_PREFIX", prefix)
        .env("JWT_SECRET", JWT_SECRET)
        .env("API_SHUTDOWN_GRACE_SECS", "1");
    cmd
}

/// A bearer token from `api-service token --ttl 1h ARGS` (`--role admin` for an admin),
/// signed with [`JWT_SECRET`].
pub async fn mint_token(args: &[&str]) -> String {
    let mut token = clean("api-service");
    let out = token
        .args(["token", "--ttl", "1h"])
        .args(args)
        .env("JWT_SECRET", JWT_SECRET)
        .output()
        .await
        .expect("api-service token runs");
    assert!(
        out.status.success(),
        "api-service token: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Runs `cmd` to its end with its output kept in `log`; fails the test unless it exits 0.
pub async fn run_logged(cmd: &mut tokio::process::Command, log: &Path, what: &str) {
    let out = cmd
        .output()
        .await
        .unwrap_or_else(|e| panic!("{what} did not start: {e}"));
    let text = [out.stdout, out.stderr].concat();
    std::fs::write(log, &text).expect("command log");
    assert!(
        out.status.success(),
        "{what} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&text)
    );
}

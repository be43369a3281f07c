//! Issue 17: the three clients on the same versions, through the same nginx — Chromium,
//! the Android client (`clients/android`, on a real JVM: its `FetchOnce` command, one app
//! call per run, its document kept in a folder between runs as between app launches) and
//! the Rust reference client (`api-service/examples/delta_client.rs`). Each downloads the
//! first version whole, revalidates it unchanged, and after the churn model and a refresh
//! gets the refresher's own delta, decoded to exactly the second version. The bytes of
//! each call are printed as one table.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use system_tests::{Scratch, workspace_root};

use crate::backend::Meta;
use crate::delta_download;

#[allow(dead_code, unreachable_pub)]
#[path = "../../../api-service/examples/delta_client.rs"]
mod reference;

/// The demo's live offers, as app clients see them.
const LIVE_OFFERS: u32 = 7_000;
const JARS: &str = "/usr/share/java";

/// One client call: the status the server sent, its content coding, the body bytes.
#[derive(Debug)]
struct Call {
    status: u16,
    coding: String,
    body_bytes: u64,
    sha256: String,
}

/// The app clients' kept documents, and what each call of theirs transferred.
pub struct SideBySide {
    rust_dir: PathBuf,
    android_dir: PathBuf,
    rust: Vec<Call>,
    android: Vec<Call>,
    chromium: [u64; 3],
}

impl SideBySide {
    fn new(scratch: &Scratch) -> Self {
        Self {
            rust_dir: scratch.join("rust-client"),
            android_dir: scratch.join("android-client"),
            rust: Vec::new(),
            android: Vec::new(),
            chromium: [0; 3],
        }
    }

    /// The first version, through nginx at `port`: a whole download, then a revalidation.
    pub async fn at_first_version(
        &mut self,
        scratch: &Scratch,
        token: &str,
        port: u16,
        first: &Meta,
    ) {
        for _ in 0..2 {
            let rust = rust_fetch(&self.rust_dir, token, port).await;
            let android = android_fetch(scratch, &self.android_dir, token, port).await;
            for call in [&rust, &android] {
                assert_eq!(call.sha256, first.json_sha256, "{call:?}");
            }
            self.rust.push(rust);
            self.android.push(android);
        }
        for calls in [&self.rust, &self.android] {
            assert_eq!(
                (calls[0].status, calls[0].coding.as_str()),
                (200, "zstd"),
                "{calls:?}"
            );
            assert_eq!(
                (calls[1].status, calls[1].body_bytes),
                (304, 0),
                "{calls:?}"
            );
        }
    }

    /// The second version: each client holds the first, so each gets the delta.
    pub async fn at_second_version(
        &mut self,
        scratch: &Scratch,
        token: &str,
        port: u16,
        second: &Meta,
        chromium: [u64; 3],
    ) {
        self.chromium = chromium;
        let rust = rust_fetch(&self.rust_dir, token, port).await;
        let android = android_fetch(scratch, &self.android_dir, token, port).await;
        for call in [&rust, &android] {
            assert_eq!(
                (call.status, call.coding.as_str()),
                (200, "dcz"),
                "{call:?}"
            );
            assert_eq!(
                call.sha256, second.json_sha256,
                "the decoded document is the server's"
            );
            assert_eq!(
                call.body_bytes, chromium[2],
                "the same delta as Chromium's: {call:?}"
            );
        }
        self.rust.push(rust);
        self.android.push(android);
    }

    /// The table of body bytes per call.
    fn table(&self) -> String {
        let row = |name: &str, bytes: [u64; 3]| {
            format!("| {name} | {} | {} | {} |\n", bytes[0], bytes[1], bytes[2])
        };
        let of = |calls: &[Call]| {
            [
                calls[0].body_bytes,
                calls[1].body_bytes,
                calls[2].body_bytes,
            ]
        };
        let mut table = String::from(
            "| client | first (zstd) | unchanged (304) | after the churn (dcz) |\n|---|---|---|---|\n",
        );
        table.push_str(&row("Chromium", self.chromium));
        table.push_str(&row("Android (OkHttp interceptor)", of(&self.android)));
        table.push_str(&row("Rust reference client", of(&self.rust)));
        table
    }
}

/// One call of the Rust reference client, keeping its document in `dir`.
async fn rust_fetch(dir: &Path, token: &str, port: u16) -> Call {
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("HTTP client");
    let url = format!("http://127.0.0.1:{port}/api/v4/ofertasws");
    let fetched = reference::fetch(&http, &url, token, dir)
        .await
        .expect("the Rust client");
    Call {
        status: fetched.status,
        coding: fetched.encoding,
        body_bytes: fetched.transferred_bytes as u64,
        sha256: fetched.sha256,
    }
}

/// One app call of the Android client (`FetchOnce`), keeping its document in `dir`.
async fn android_fetch(scratch: &Scratch, dir: &Path, token: &str, port: u16) -> Call {
    let build = workspace_root().join("clients/android/build");
    let classpath = [
        build.join("system-test").display().to_string(),
        build.join("main").display().to_string(),
        format!("{JARS}/okhttp.jar"),
        format!("{JARS}/okio.jar"),
        format!("{JARS}/zstd-jni.jar"),
    ]
    .join(":");
    let out = tokio::process::Command::new("java")
        .args(["-cp", &classpath, "com.ofertasws.client.system.FetchOnce"])
        .arg(format!("http://127.0.0.1:{port}/api/v4/ofertasws"))
        .arg(token)
        .arg(dir)
        .stdin(Stdio::null())
        .output()
        .await
        .expect("java runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    std::fs::write(
        scratch.join("android-fetch.log"),
        [&out.stdout[..], &out.stderr[..]].concat(),
    )
    .expect("log");
    assert!(
        out.status.success(),
        "FetchOnce failed: {text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let field = |name: &str| {
        text.split_whitespace()
            .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))
            .unwrap_or_else(|| panic!("FetchOnce printed no {name}: {text}"))
            .to_owned()
    };
    Call {
        status: field("server").parse().expect("a status"),
        coding: field("coding"),
        body_bytes: field("body").parse().expect("a byte count"),
        sha256: field("sha256"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_android_and_rust_clients_get_the_same_delta() {
    let built = tokio::process::Command::new("bash")
        .arg(workspace_root().join("clients/android/test.sh"))
        .arg("--build")
        .stdin(Stdio::null())
        .output()
        .await
        .expect("clients/android/test.sh runs");
    assert!(
        built.status.success(),
        "clients/android/test.sh --build failed: {}",
        String::from_utf8_lossy(&built.stderr)
    );
    let scratch = Scratch::new("side-by-side");
    let mut clients = SideBySide::new(&scratch);
    let (_backend, first, second) = delta_download(&scratch, LIVE_OFFERS, Some(&mut clients)).await;
    eprintln!(
        "bytes per call, {LIVE_OFFERS} offers, versions {} then {} (body bytes):\n{}",
        first.version,
        second.version,
        clients.table()
    );
}

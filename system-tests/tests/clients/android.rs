//! The Android client (`clients/android`) on a real JVM against the real services: its
//! JUnit system tests (`com.ofertasws.client.system.DeltaSystemTest`) get a full zstd
//! download, a 304 handed to the app as the document, a delta after the churn model and a
//! refresh decoded to the server's exact document, a full download for a version past its
//! last delta and for a damaged kept document (which is never offered as a dictionary),
//! one plain retry after a `dcz` body that does not decode, and two clients that share
//! nothing — each with the bytes counted on the client's sockets. This test builds the
//! classes, names the stack in the environment, runs JUnit, and repeats the churn step's
//! `full=<bytes> delta=<bytes>` as its last line.

use std::process::Stdio;

use system_tests::{Scratch, workspace_root};

use crate::stack::{CHURN, ClientStack, DEMO_OFFERS};

const JARS: &str = "/usr/share/java";

/// The churn step's bytes on the wire, from the line the JUnit class prints.
fn churn_bytes(output: &str) -> Option<(u64, u64)> {
    output.lines().rev().find_map(|line| {
        let (full, delta) = line.trim().strip_prefix("full=")?.split_once(" delta=")?;
        Some((full.parse().ok()?, delta.parse().ok()?))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_android_client_gets_deltas_from_the_real_services() {
    let scratch = Scratch::new("android");
    let root = workspace_root();
    let built = tokio::process::Command::new("bash")
        .arg(root.join("clients/android/test.sh"))
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
    let stack = ClientStack::start(&scratch, DEMO_OFFERS).await;

    let build = root.join("clients/android/build");
    let classpath = [
        build.join("system-test").display().to_string(),
        build.join("main").display().to_string(),
        format!("{JARS}/okhttp.jar"),
        format!("{JARS}/okio.jar"),
        format!("{JARS}/zstd-jni.jar"),
    ]
    .join(":");
    let junit = tokio::process::Command::new("java")
        .args([
            "-jar",
            &format!("{JARS}/junit-platform-console-standalone.jar"),
        ])
        .args([
            "--disable-banner",
            "--details=tree",
            "--disable-ansi-colors",
        ])
        .args(["--class-path", &classpath])
        .args([
            "--select-class",
            "com.ofertasws.client.system.DeltaSystemTest",
        ])
        .arg("--fail-if-no-tests")
        .env("OFERTASWS_URL", &stack.base)
        .env("OFERTASWS_TOKEN", &stack.token)
        .env("OFERTASWS_ADMIN_TOKEN", &stack.admin_token)
        .env("OFERTASWS_DATABASE_URL", &stack.db.url)
        .env("OFERTASWS_CHURN_SQL", root.join(CHURN))
        .stdin(Stdio::null())
        .output()
        .await
        .expect("java runs");
    let output = String::from_utf8_lossy(&junit.stdout);
    std::fs::write(
        scratch.join("junit.log"),
        [&junit.stdout[..], &junit.stderr[..]].concat(),
    )
    .expect("JUnit log");
    eprintln!("{output}");
    assert!(
        junit.status.success(),
        "the Android client's system tests failed ({}); JUnit's output is above and in {}",
        junit.status,
        scratch.join("junit.log").display()
    );
    let (full, delta) = churn_bytes(&output).expect("the churn step's full=… delta=… line");
    assert!(
        delta * 10 <= full,
        "the delta ({delta} B) is more than a tenth of the full download ({full} B)"
    );
    println!("full={full} delta={delta}");
}

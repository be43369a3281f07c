//! The workspace's own binaries and files as the tests need them: where the workspace and
//! the cargo target folder are, `api-service` and `refresh-service` built when missing or
//! older than their sources, the ranking model and the ONNX Runtime library the refresher
//! loads, and other programs (nginx, Chromium) found where Debian installs them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

/// The workspace root.
pub fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("system-tests is a folder of the workspace")
}

/// The ranking model the refresher loads (`RANKER_MODEL`).
pub fn ranker_model() -> PathBuf {
    workspace_root().join("refresh-service/models/offer_ranker.onnx")
}

/// The ONNX Runtime library `scripts/onnxruntime.sh` installs (`ORT_DYLIB_PATH`); without
/// it a refresher exits at start, and a test would only see no snapshot arrive.
pub fn onnxruntime_library() -> PathBuf {
    let library = workspace_root().join(".local/onnxruntime/libonnxruntime.so");
    assert!(
        library.exists(),
        "{} is missing: run scripts/onnxruntime.sh (scripts/test.sh runs it)",
        library.display()
    );
    library
}

/// The newest modification time of `path` and, for a folder, of anything inside it.
fn newest_mtime(path: &Path) -> SystemTime {
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

/// The profile folder (`target/debug`, `target/release`, …) the running test or example
/// was built into: a test binary lies in its `deps/`, an example in its `examples/`.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let dir = exe.parent().expect("the test binary's folder");
    match dir.file_name().and_then(|n| n.to_str()) {
        Some("deps" | "examples") => dir.parent().expect("profile folder").to_path_buf(),
        _ => dir.to_path_buf(),
    }
}

/// The binary of workspace package `package` (`api-service`, `refresh-service`), in the
/// target folder the running test was built into.
///
/// `cargo test --workspace` builds every package's binaries before any test runs; a test
/// binary run on its own (`cargo test -p system-tests`) gets none, so when the binary is
/// missing or older than its sources (or `shared`'s, or the migrations) it is built here
/// with the cargo running the tests, for the same profile. Once per package and process.
pub fn workspace_binary(package: &str) -> PathBuf {
    static CHECKED: Mutex<Option<HashMap<String, PathBuf>>> = Mutex::new(None);
    let mut checked = CHECKED.lock().unwrap_or_else(PoisonError::into_inner);
    let checked = checked.get_or_insert_with(HashMap::new);
    if let Some(binary) = checked.get(package) {
        return binary.clone();
    }
    let profile_dir = profile_dir();
    let binary = profile_dir.join(format!("{package}{}", std::env::consts::EXE_SUFFIX));
    let root = workspace_root();
    let sources = [
        root.join(package).join("src"),
        root.join(package).join("Cargo.toml"),
        root.join(package).join("build.rs"),
        root.join("shared/src"),
        root.join("shared/Cargo.toml"),
        root.join("migrations"),
        root.join("Cargo.lock"),
    ]
    .iter()
    .map(|p| newest_mtime(p))
    .fold(SystemTime::UNIX_EPOCH, SystemTime::max);
    let built = std::fs::metadata(&binary).and_then(|m| m.modified()).ok();
    if built.is_none_or(|built| built < sources) {
        build(package, &profile_dir);
    }
    assert!(
        binary.exists(),
        "{} is missing: run `cargo build -p {package}`",
        binary.display()
    );
    checked.insert(package.to_owned(), binary.clone());
    binary
}

/// `cargo build -p PACKAGE --bin PACKAGE` into `profile_dir`'s target folder and profile.
fn build(package: &str, profile_dir: &Path) {
    let target_dir = profile_dir.parent().expect("target folder");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "-p", package, "--bin", package])
        .arg("--target-dir")
        .arg(target_dir)
        .current_dir(workspace_root());
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

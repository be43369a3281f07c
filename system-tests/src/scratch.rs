//! A folder of one test's own for its servers, files and logs: removed after a pass, kept
//! and named on stderr after a failure, so the logs that explain it are still there.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// A folder under the system temp dir, open to every user: PostgreSQL and nginx workers
/// run as other users when the tests run as root.
pub struct Scratch {
    /// The folder.
    pub path: PathBuf,
}

impl Scratch {
    /// A new folder named after `kind`.
    pub fn new(kind: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "ofertasws-{kind}-{}",
            uuid::Uuid::new_v4().simple()
        ));
        public_folder(&path);
        Self { path }
    }

    /// `name` inside the folder.
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("logs kept in {}", self.path.display());
        } else {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// Creates `path` (and its parents) readable by everyone.
pub fn public_folder(path: &Path) {
    fs::create_dir_all(path).expect("folder");
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).expect("chmod folder");
}

/// Writes `path` readable by everyone.
pub fn write_public(path: &Path, contents: &[u8]) {
    fs::write(path, contents).expect("file written");
    fs::set_permissions(path, fs::Permissions::from_mode(0o644)).expect("chmod file");
}

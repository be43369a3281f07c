//! Headless Chromium (Debian's `chromium-headless-shell`) on the test page, the control
//! file through which the test tells the page what to do next, and the page's reports,
//! read from nginx's access log.
//!
//! Chromium runs as these machines run it (`--no-sandbox` because tests run as root, no
//! background networking, a fresh profile), with its log on stderr and a net-log (every
//! request's headers, the dictionary it chose, the decoder's errors) in the scratch folder,
//! so a failure can be explained from what Chromium itself did.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use system_tests::binaries::program;
use system_tests::nginx::{Access, Nginx};
use system_tests::process::Process;
use system_tests::scratch::{public_folder, write_public};
use system_tests::{Scratch, until};

use crate::backend::STEP_DEADLINE;

/// The snapshot route, as the page requests it.
pub const SNAPSHOT_PATH: &str = "/api/v4/ofertasws";

/// The page, as committed beside this file.
const PAGE: &str = include_str!("page/index.html");

/// Starts Chromium on `url`.
pub fn start(scratch: &Scratch, url: &str) -> Process {
    let mut cmd = tokio::process::Command::new(program("chromium-headless-shell", "/usr/bin"));
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-proxy-server",
        "--enable-logging=stderr",
    ])
    .arg(format!(
        "--user-data-dir={}",
        scratch.join("chromium-profile").display()
    ))
    .arg(format!(
        "--log-net-log={}",
        scratch.join("netlog.json").display()
    ))
    .arg(url);
    Process::spawn_group(cmd, scratch.join("chromium.log"))
}

/// The folder nginx serves: the page and its control file.
pub struct Page {
    www: PathBuf,
    token: String,
    step: u32,
}

impl Page {
    /// Writes the page and a control file with nothing to do yet.
    pub fn new(scratch: &Scratch, token: &str) -> Self {
        let www = scratch.join("www");
        public_folder(&www);
        write_public(&www.join("index.html"), PAGE.as_bytes());
        let page = Self {
            www,
            token: token.to_owned(),
            step: 0,
        };
        page.write_control("default");
        page
    }

    pub fn www(&self) -> &Path {
        &self.www
    }

    /// How many steps the page was given.
    pub fn steps(&self) -> u32 {
        self.step
    }

    /// Replaces control.json by a rename, so nginx never serves half of it.
    fn write_control(&self, cache: &str) {
        let control = serde_json::json!({"step": self.step, "cache": cache, "token": self.token});
        let partial = self.www.join("control.json.partial");
        write_public(&partial, control.to_string().as_bytes());
        fs::rename(&partial, self.www.join("control.json")).expect("control file");
    }

    /// Tells the page to fetch the snapshot once with `fetch`'s `cache` mode, and waits
    /// for its report: the snapshot request as nginx logged it, and what the page read.
    pub async fn fetch(&mut self, nginx: &Nginx, cache: &str) -> (Access, HashMap<String, String>) {
        self.step += 1;
        self.write_control(cache);
        let step = self.step;
        until(
            STEP_DEADLINE,
            &format!("the page to report step {step} (fetch with cache: '{cache}')"),
            || async move { reported(nginx, step) },
        )
        .await
    }
}

/// The query of a `/report?…` beacon, decoded.
fn report(access: &Access) -> Option<HashMap<String, String>> {
    access.uri.strip_prefix("/report?")?;
    let url = reqwest::Url::parse(&format!("http://page{}", access.uri)).ok()?;
    Some(url.query_pairs().into_owned().collect())
}

/// The page's report of `step` and the snapshot request it made for it: the page works
/// one step at a time and reports only after reading the whole body, so that request is
/// the one logged between the previous report and this one.
fn reported(nginx: &Nginx, step: u32) -> Option<(Access, HashMap<String, String>)> {
    let entries = nginx.entries();
    let wanted = step.to_string();
    let at = entries
        .iter()
        .position(|access| report(access).is_some_and(|r| r.get("step") == Some(&wanted)))?;
    let report_of_step = report(&entries[at])?;
    let since_last_report = entries[..at]
        .iter()
        .rposition(|access| report(access).is_some())
        .map_or(0, |previous| previous + 1);
    let request = entries[since_last_report..at]
        .iter()
        .rfind(|access| access.uri == SNAPSHOT_PATH)
        .unwrap_or_else(|| {
            panic!("step {step} made no snapshot request that reached nginx: {report_of_step:?}")
        })
        .clone();
    Some((request, report_of_step))
}

//! Headless Chromium (Debian's `chromium-headless-shell`) on the test page, and the
//! control file through which the test tells the page what to do next.
//!
//! Chromium runs as these machines run it (`--no-sandbox` because tests run as root, no
//! background networking, a fresh profile), with its log on stderr and a net-log (every
//! request's headers, the dictionary it chose, the decoder's errors) in the scratch folder,
//! so a failure can be explained from what Chromium itself did.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::nginx::{Access, Nginx};
use crate::stack::{Running, STEP_DEADLINE, Scratch, program, public_folder, until, write_public};

/// The page, as committed beside this file.
const PAGE: &str = include_str!("page/index.html");

/// Starts Chromium on `url`.
pub fn start(scratch: &Scratch, url: &str) -> Running {
    let mut cmd = Command::new(program("chromium-headless-shell", "/usr/bin"));
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
    Running::spawn(&mut cmd, &scratch.join("chromium.log"))
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
            || async move { nginx.step(step) },
        )
        .await
    }
}

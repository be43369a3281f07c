//! Debian's nginx in front of the replicas, configured by the documented load balancer
//! itself (`deploy/nginx.conf`, with only the lines it marks as a deployment's replaced):
//! it proxies `/api/` round-robin to the API replicas with request headers
//! (`Accept-Encoding`, `Available-Dictionary`, `If-None-Match`) passed on untouched and
//! response bodies neither gzipped, gunzipped nor buffered, and serves the test page, its
//! control file and the `/report` beacon. Every request is logged as one JSON line (the
//! deployed log format) carrying what the browser sent and what it got back; the test reads
//! that log.
//!
//! Needs Debian's `nginx` (`scripts/browser.sh` installs it).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::binaries::{program, workspace_root};
use crate::ports::free_port;
use crate::process::Process;
use crate::scratch::Scratch;
use crate::wait::until;

/// Bound for nginx to answer once started.
const START: Duration = Duration::from_secs(30);

/// One access log line.
#[derive(Clone, Debug, Deserialize)]
pub struct Access {
    /// `$request_uri`.
    pub uri: String,
    /// `$status`.
    pub status: String,
    /// `$http_available_dictionary`: empty when the browser sent none.
    pub available_dictionary: String,
    /// `$http_accept_encoding`.
    pub accept_encoding: String,
    /// `$http_if_none_match`.
    pub if_none_match: String,
    /// `$sent_http_content_encoding`: what nginx sent the browser.
    pub content_encoding: String,
    /// `$upstream_http_content_encoding`: what the replica sent nginx.
    pub upstream_content_encoding: String,
    /// `$upstream_addr`: the replica that answered.
    pub upstream: String,
    /// `$body_bytes_sent`.
    pub bytes: String,
}

/// The documented load balancer, loaded by the test as deployments load it.
const DEPLOYED: &str = "deploy/nginx.conf";

/// `text` with its one occurrence of `from` replaced by `to`; a `deploy/nginx.conf` that
/// no longer has `from` fails the test, naming it.
fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "{DEPLOYED} should have `{from}` once (the lines a test replaces)"
    );
    text.replacen(from, to, 1)
}

/// `text` with what lies between the marker lines `start` and `end` replaced by `with`.
fn replace_between(text: &str, start: &str, end: &str, with: &str) -> String {
    let from = text
        .find(start)
        .unwrap_or_else(|| panic!("{DEPLOYED} should have the marker `{start}`"));
    let to = text[from..]
        .find(end)
        .map(|at| from + at)
        .unwrap_or_else(|| panic!("{DEPLOYED} should have the marker `{end}`"));
    format!("{}{start}\n{with}{}", &text[..from], &text[to..])
}

/// `deploy/nginx.conf`, with only the lines it marks as a deployment's replaced: its paths
/// in the test's scratch folder, the replicas as the upstream servers, a free port, and the
/// locations of the test page next to the proxied `/api/` (which inherits the server's
/// proxy settings unchanged).
fn config(scratch: &Scratch, www: &Path, port: u16, replicas: &[u16]) -> String {
    let deployed = fs::read_to_string(workspace_root().join(DEPLOYED))
        .unwrap_or_else(|e| panic!("{DEPLOYED}: {e}"));
    let dir = scratch.path.display();
    let servers: String = replicas
        .iter()
        .map(|p| format!("        server 127.0.0.1:{p};\n"))
        .collect();
    let mut text = replace_once(
        &deployed,
        "pid /tmp/nginx.pid;",
        &format!("pid {dir}/nginx.pid;"),
    );
    text = replace_once(
        &text,
        "error_log /dev/stderr warn;",
        &format!("error_log {dir}/nginx-error.log info;"),
    );
    text = replace_once(
        &text,
        "access_log /dev/stdout main;",
        &format!("access_log {dir}/access.log main;"),
    );
    // No Docker DNS here; and temporary files and the page's types in the scratch folder.
    text = replace_once(
        &text,
        "    resolver 127.0.0.11 valid=5s ipv6=off;\n",
        &format!(
            "    client_body_temp_path {dir}/nginx-tmp/body;\n    \
             proxy_temp_path {dir}/nginx-tmp/proxy;\n    \
             fastcgi_temp_path {dir}/nginx-tmp/fastcgi;\n    \
             uwsgi_temp_path {dir}/nginx-tmp/uwsgi;\n    \
             scgi_temp_path {dir}/nginx-tmp/scgi;\n    \
             types {{ text/html html; application/json json; }}\n"
        ),
    );
    text = replace_between(
        &text,
        "    upstream api {",
        "    }\n    # ---- end of upstream",
        &format!("{servers}        keepalive 8;\n"),
    );
    text = replace_once(&text, "listen 8000;", &format!("listen 127.0.0.1:{port};"));
    replace_between(
        &text,
        "        # ---- locations",
        "        # ---- end of locations",
        &format!(
            "        location /api/ {{\n            proxy_pass http://api;\n        }}\n\
             \n        location = /report {{\n            return 204;\n        }}\n\
             \n        location / {{\n            root {www};\n            etag off;\n            \
             if_modified_since off;\n            add_header Cache-Control \"no-store\" always;\n        }}\n",
            www = www.display()
        ),
    )
}

/// A running nginx and its access log.
pub struct Nginx {
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    access_log: PathBuf,
    process: Process,
}

impl Nginx {
    /// Starts nginx serving `www` and proxying `/api/` to `replicas`; returns once it
    /// answers.
    pub async fn start(scratch: &Scratch, www: &Path, replicas: &[u16]) -> Self {
        let port = free_port();
        fs::create_dir_all(scratch.join("nginx-tmp")).expect("nginx temp folder");
        let conf = scratch.join("nginx.conf");
        fs::write(&conf, config(scratch, www, port, replicas)).expect("nginx.conf");
        let mut cmd = tokio::process::Command::new(program("nginx", "/usr/sbin"));
        cmd.arg("-p")
            .arg(&scratch.path)
            .args(["-g", "daemon off;"])
            .arg("-e")
            .arg(scratch.join("nginx-error.log"))
            .arg("-c")
            .arg(&conf);
        let mut nginx = Self {
            port,
            access_log: scratch.join("access.log"),
            process: Process::spawn_group(cmd, scratch.join("nginx.log")),
        };
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("HTTP client");
        let url = &format!("http://127.0.0.1:{port}/");
        let process = &mut nginx.process;
        until(START, "nginx to answer", || {
            assert!(
                process.alive(),
                "nginx exited at start: see nginx.log and nginx-error.log"
            );
            let answer = http.get(url).send();
            async { answer.await.ok().map(drop) }
        })
        .await;
        nginx
    }

    /// Every complete line of the access log so far, in the order nginx wrote them.
    pub fn entries(&self) -> Vec<Access> {
        let text = fs::read_to_string(&self.access_log).unwrap_or_default();
        text.split_inclusive('\n')
            .filter(|line| line.ends_with('\n'))
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("access log line {line:?}: {e}"))
            })
            .collect()
    }
}

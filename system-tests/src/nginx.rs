//! Debian's nginx in front of the replicas, as the Compose load balancer
//! (`deploy/nginx.conf`) is: it proxies `/api/` round-robin to the API replicas with
//! request headers (`Accept-Encoding`, `Available-Dictionary`, `If-None-Match`) passed on
//! untouched and response bodies neither gzipped, gunzipped nor buffered, and serves the
//! test page, its control file and the `/report` beacon. Every request is logged as one
//! JSON line carrying what the browser sent and what it got back; the test reads that log.
//!
//! Needs Debian's `nginx` (`scripts/browser.sh` installs it).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::binaries::program;
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

const LOG_FORMAT: &str = r#"'{"uri":"$request_uri","status":"$status",'
        '"available_dictionary":"$http_available_dictionary",'
        '"accept_encoding":"$http_accept_encoding","if_none_match":"$http_if_none_match",'
        '"content_encoding":"$sent_http_content_encoding",'
        '"upstream_content_encoding":"$upstream_http_content_encoding",'
        '"upstream":"$upstream_addr","bytes":"$body_bytes_sent"}'"#;

fn config(scratch: &Scratch, www: &Path, port: u16, replicas: &[u16]) -> String {
    let dir = scratch.path.display();
    let servers: String = replicas
        .iter()
        .map(|p| format!("        server 127.0.0.1:{p};\n"))
        .collect();
    format!(
        r#"daemon off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log info;
events {{ worker_connections 128; }}
http {{
    client_body_temp_path {dir}/nginx-tmp/body;
    proxy_temp_path {dir}/nginx-tmp/proxy;
    fastcgi_temp_path {dir}/nginx-tmp/fastcgi;
    uwsgi_temp_path {dir}/nginx-tmp/uwsgi;
    scgi_temp_path {dir}/nginx-tmp/scgi;
    types {{ text/html html; application/json json; }}
    log_format browser escape=json {LOG_FORMAT};
    access_log {dir}/access.log browser;

    upstream api {{
{servers}        keepalive 8;
    }}

    server {{
        listen 127.0.0.1:{port};
        root {www};
        # The API encodes the bodies itself (zstd, gzip, dcz): pass them through as sent.
        gzip off;
        gunzip off;

        location /api/ {{
            proxy_pass http://api;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_buffering off;
        }}

        location = /report {{
            return 204;
        }}

        location / {{
            etag off;
            if_modified_since off;
            add_header Cache-Control "no-store" always;
        }}
    }}
}}
"#,
        www = www.display(),
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

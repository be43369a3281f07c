//! The real back end the browser talks to: a PostgreSQL database of the test's own
//! ([`TestDb`]: created, migrated, dropped afterwards) seeded by `scripts/seed.sql`, a
//! Redis prefix of its own, `refresh-service once` (the real binary) publishing versions,
//! and two real `api-service` replicas on free ports, each logging into the test's scratch
//! folder and stopped when dropped.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use system_tests::commands::{api_service, mint_token, refresh_service, run_logged};
use system_tests::database::{TestDb, psql};
use system_tests::process::Process;
use system_tests::{Scratch, TestPrefix, free_port, redis_url, until};

/// How long a step may take before the test fails: generous for a loaded CI machine,
/// short enough to keep the whole test around a minute at worst.
pub const STEP_DEADLINE: Duration = Duration::from_secs(30);

/// `/api/v4/ofertasws/meta` as a replica answers it.
#[derive(Clone, Debug, Deserialize)]
pub struct Meta {
    pub version: String,
    pub count: u64,
    pub json_sha256: String,
    pub deltas: Vec<MetaDelta>,
}

/// One entry of `deltas`.
#[derive(Clone, Debug, Deserialize)]
pub struct MetaDelta {
    pub version: String,
    pub json_sha256: String,
    pub dcz_bytes: u64,
}

/// The back end: database, prefix, two API replicas; everything goes when dropped.
pub struct Backend {
    pub db: TestDb,
    prefix: TestPrefix,
    pub token: String,
    pub replicas: Vec<u16>,
    processes: Vec<Process>,
    http: reqwest::Client,
}

impl Backend {
    /// A migrated database seeded with `live` live offers (scripts/seed.sql).
    pub async fn seeded(scratch: &Scratch, live: u32) -> Self {
        let db = TestDb::new().await;
        let live = live.to_string();
        psql(
            &db.url,
            "scripts/seed.sql",
            &[("live", &live)],
            &scratch.join("seed.log"),
        )
        .await;
        Self {
            db,
            prefix: TestPrefix::new(),
            token: String::new(),
            replicas: Vec::new(),
            processes: Vec::new(),
            http: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("HTTP client"),
        }
    }

    /// `refresh-service once`, its output kept in `log`; fails the test unless it exits 0.
    pub async fn refresh_once(&self, log: &Path) {
        let args = ["once", "--trigger", "browser-test"];
        let mut once = refresh_service(&args, &self.db.url, &redis_url(), &self.prefix.0);
        run_logged(&mut once, log, "refresh-service once").await;
    }

    /// Mints a token and starts `count` replicas on free ports, waiting until each is
    /// ready (holds a snapshot).
    pub async fn start_replicas(&mut self, scratch: &Scratch, count: usize) {
        self.token = mint_token(&[]).await;
        for n in 1..=count {
            let port = free_port();
            let mut api = api_service(&["serve"], &redis_url(), &self.prefix.0);
            api.env("API_BIND", format!("127.0.0.1:{port}"));
            let log = scratch.join(&format!("api-{n}.log"));
            self.processes.push(Process::spawn(api, log));
            self.replicas.push(port);
        }
        let http = &self.http;
        for port in &self.replicas {
            let url = &format!("http://127.0.0.1:{port}/ready");
            until(
                STEP_DEADLINE,
                &format!("replica {port} ready"),
                || async move {
                    let ready = http.get(url).send().await.ok()?;
                    ready.status().is_success().then_some(())
                },
            )
            .await;
        }
    }

    /// The metadata replica `port` serves right now.
    pub async fn meta(&self, port: u16) -> Option<Meta> {
        let url = format!("http://127.0.0.1:{port}/api/v4/ofertasws/meta");
        let response = self
            .http
            .get(url)
            .bearer_auth(&self.token)
            .send()
            .await
            .ok()?;
        response.error_for_status().ok()?.json().await.ok()
    }

    /// Waits until every replica serves metadata that `wanted` accepts; returns the first
    /// replica's.
    pub async fn meta_everywhere(&self, what: &str, wanted: impl Fn(&Meta) -> bool) -> Meta {
        let wanted = &wanted;
        until(STEP_DEADLINE, what, || async move {
            let mut first = None;
            for &port in &self.replicas {
                let meta = self.meta(port).await.filter(wanted)?;
                first.get_or_insert(meta);
            }
            first
        })
        .await
    }

    /// Whether every replica process is still running.
    pub fn replicas_alive(&mut self) -> bool {
        self.processes.iter_mut().all(Process::alive)
    }
}

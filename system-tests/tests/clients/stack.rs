//! The back end a client test talks to: a database of the test's own seeded with the
//! demo offers, a Redis prefix of its own, `refresh-service run` with the schedule off
//! (it refreshes at start, as a new deployment does, and on every `POST …/refresh`), and
//! one `api-service`. Everything is stopped and removed when it is dropped.

use std::time::Duration;

use serde::Deserialize;

use system_tests::commands::{api_service, mint_token, refresh_service};
use system_tests::database::{TestDb, psql};
use system_tests::process::Process;
use system_tests::{Scratch, TestPrefix, free_port, redis_url, until};

/// How long a step may take: a refresh of the demo offers and its deltas, in a debug build
/// on a loaded 2-core machine, take seconds.
pub const STEP_DEADLINE: Duration = Duration::from_secs(90);

/// The demo's live offers (`scripts/seed.sql`'s default).
pub const DEMO_OFFERS: u32 = 7_000;

/// Half a day of changes to the offers (the churn model).
pub const CHURN: &str = "scripts/churn.sql";

/// `/api/v4/ofertasws/meta`, the fields the tests read.
#[derive(Clone, Debug, Deserialize)]
pub struct Meta {
    pub version: String,
    pub json_sha256: String,
    pub zstd_bytes: u64,
    pub deltas: Vec<MetaDelta>,
}

/// One entry of `deltas`.
#[derive(Clone, Debug, Deserialize)]
pub struct MetaDelta {
    pub version: String,
    pub dcz_bytes: u64,
}

/// A running back end.
pub struct ClientStack {
    pub db: TestDb,
    _prefix: TestPrefix,
    /// `http://127.0.0.1:PORT`, the API.
    pub base: String,
    /// A user's bearer token, and an admin's (it may ask for refreshes).
    pub token: String,
    pub admin_token: String,
    http: reqwest::Client,
    _processes: Vec<Process>,
}

impl ClientStack {
    /// Seeds `live` offers, starts the refresher and the API, and waits until the API
    /// serves the refresher's first snapshot.
    pub async fn start(scratch: &Scratch, live: u32) -> Self {
        let db = TestDb::new().await;
        let live = live.to_string();
        psql(
            &db.url,
            "scripts/seed.sql",
            &[("live", &live)],
            &scratch.join("seed.log"),
        )
        .await;
        let prefix = TestPrefix::new();
        let refresher = refresh_service(&["run"], &db.url, &redis_url(), &prefix.0);
        let refresher = Process::spawn(refresher, scratch.join("refresh-service.log"));
        let port = free_port();
        let mut api = api_service(&["serve"], &redis_url(), &prefix.0);
        api.env("API_BIND", format!("127.0.0.1:{port}"));
        let api = Process::spawn(api, scratch.join("api-service.log"));
        let stack = Self {
            db,
            _prefix: prefix,
            base: format!("http://127.0.0.1:{port}"),
            token: mint_token(&[]).await,
            admin_token: mint_token(&["--role", "admin"]).await,
            http: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("HTTP client"),
            _processes: vec![refresher, api],
        };
        until(
            STEP_DEADLINE,
            "the API to serve the first snapshot",
            || async {
                let ready = stack
                    .http
                    .get(format!("{}/ready", stack.base))
                    .send()
                    .await
                    .ok()?;
                ready.status().is_success().then_some(())
            },
        )
        .await;
        stack
    }

    /// `/meta` now.
    pub async fn meta(&self) -> Meta {
        let response = self
            .http
            .get(format!("{}/api/v4/ofertasws/meta", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("/meta answers");
        assert_eq!(response.status(), 200, "/meta");
        response.json().await.expect("/meta is JSON")
    }

    /// The churn model, then a refresh through `POST …/refresh` (waiting for its outcome),
    /// then the deltas of the new version from `from`: returns the new `/meta`.
    pub async fn churn_and_refresh(&self, scratch: &Scratch, from: &str) -> Meta {
        psql(&self.db.url, CHURN, &[], &scratch.join("churn.log")).await;
        let refreshed = self
            .http
            .post(format!("{}/api/v4/ofertasws/refresh", self.base))
            .bearer_auth(&self.admin_token)
            .send()
            .await
            .expect("POST …/refresh answers");
        assert_eq!(refreshed.status(), 200, "{:?}", refreshed.text().await);
        until(STEP_DEADLINE, "the delta from the kept version", || async {
            let meta = self.meta().await;
            let ready = meta.version != from && meta.deltas.iter().any(|d| d.version == from);
            ready.then_some(meta)
        })
        .await
    }
}

//! What a scenario asks of the deployment's API replicas over HTTP, as a client or an
//! operator would: the version each serves, health, metrics, refreshes.

use std::time::Instant;

use serde_json::Value;

use super::{REPLICAS, Stack};
use crate::wait::eventually;

impl Stack {
    /// The URL of `path` on `replica`.
    pub fn url(&self, replica: usize, path: &str) -> String {
        format!("{}{path}", self.apis[replica].base)
    }

    /// The version `/api/v4/ofertasws/meta` of `replica` names.
    pub async fn served_version(&self, replica: usize) -> Option<String> {
        let response = self
            .http
            .get(self.url(replica, "/api/v4/ofertasws/meta"))
            .bearer_auth(&self.user_token)
            .send()
            .await
            .ok()?;
        let meta: Value = response.json().await.ok()?;
        meta["version"].as_str().map(str::to_owned)
    }

    /// Waits until `replica` serves `version`, failing after `deadline`.
    pub async fn wait_replica_serves(
        &self,
        replica: usize,
        version: &str,
        deadline: Instant,
        why: &str,
    ) {
        let within = deadline.saturating_duration_since(Instant::now());
        let what = format!("replica {replica} to serve {version}: {why}");
        eventually(within, &what, || async {
            self.served_version(replica).await.as_deref() == Some(version)
        })
        .await;
    }

    /// Waits until every replica serves `version`, failing after `deadline`.
    pub async fn wait_served(&self, version: &str, deadline: Instant, why: &str) {
        for replica in 0..REPLICAS {
            self.wait_replica_serves(replica, version, deadline, why)
                .await;
        }
    }

    /// `GET /health` of `replica`.
    pub async fn health(&self, replica: usize) -> Value {
        self.http
            .get(self.url(replica, "/health"))
            .send()
            .await
            .expect("health answers")
            .json()
            .await
            .expect("health is JSON")
    }

    /// The value of the Prometheus sample `name` (with its labels, if any, as rendered:
    /// `family{label="value"}`) on `replica`.
    pub async fn metric(&self, replica: usize, name: &str) -> f64 {
        metric(&self.http, &self.url(replica, "/metrics"), name).await
    }

    /// A refresh through `replica` (`POST /api/v4/ofertasws/refresh` as an admin), which
    /// must answer 200 `success`; the version it published.
    pub async fn refreshed(&self, replica: usize) -> String {
        let (status, body) = self.refresh_via_api(replica, "").await;
        assert_eq!(
            (status, body["status"].as_str()),
            (200, Some("success")),
            "{body}"
        );
        body["version"].as_str().expect("a version").to_owned()
    }

    /// `POST /api/v4/ofertasws/refresh{query}` on `replica` as an admin.
    pub async fn refresh_via_api(&self, replica: usize, query: &str) -> (u16, Value) {
        let response = self
            .http
            .post(self.url(replica, &format!("/api/v4/ofertasws/refresh{query}")))
            .bearer_auth(&self.admin_token)
            .send()
            .await
            .expect("refresh endpoint answers");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

/// The value of the sample `name` in the Prometheus text at `url`.
pub async fn metric(http: &reqwest::Client, url: &str, name: &str) -> f64 {
    let text = http
        .get(url)
        .send()
        .await
        .expect("metrics answer")
        .text()
        .await
        .expect("metrics text");
    sample(&text, name).unwrap_or_else(|| panic!("no sample {name} in:\n{text}"))
}

/// The value of the sample `name` (labels included, as rendered) in Prometheus `text`.
pub fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

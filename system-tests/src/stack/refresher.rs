//! The deployment's `refresh-service run` daemon: started (and restarted) with its status
//! port open, its metrics, and whether it listens on `P:refresh` as the API and `trigger`
//! count listeners: `PUBSUB NUMSUB` summed over the primaries.

use std::time::Duration;

use super::requests::sample;
use super::{SETUP, Stack};
use crate::ports::free_port;
use crate::process::Process;
use crate::wait::{eventually, until};

impl Stack {
    /// Starts a `refresh-service run` daemon (replacing, and killing, any earlier one),
    /// its status port on a free port.
    pub async fn start_refresher(&mut self) {
        let n = std::fs::read_dir(&self.scratch.path)
            .map(|d| d.count())
            .unwrap_or(0);
        let log = self.scratch.join(&format!("refresher-{n}.log"));
        let status = format!("127.0.0.1:{}", free_port());
        let mut cmd = self.refresh_command(&["run"]);
        cmd.env("REFRESH_METRICS_BIND", &status);
        self.refresher_status = format!("http://{status}");
        self.refresher = Some(Process::spawn(cmd, log));
    }

    /// The running daemon.
    pub fn refresher(&self) -> &Process {
        self.refresher.as_ref().expect("a refresher runs")
    }

    /// The value of the Prometheus sample `name` (labels included, as rendered) on the
    /// daemon's status port; 0 when it has no such sample yet (a labelled family shows a
    /// sample only once it has counted one).
    pub async fn refresher_metric(&self, name: &str) -> f64 {
        let url = format!("{}/metrics", self.refresher_status);
        let text = until(SETUP, "the refresher's /metrics", || async {
            let response = self.http.get(&url).send().await.ok()?;
            response.text().await.ok()
        })
        .await;
        sample(&text, name).unwrap_or(0.0)
    }

    /// Subscribers of `P:refresh`, on every primary together.
    pub async fn refresh_subscribers(&self) -> u64 {
        self.subscribers_by_port()
            .await
            .iter()
            .map(|(_, n)| n)
            .sum()
    }

    /// Subscribers of `P:refresh` on each primary, by port.
    pub async fn subscribers_by_port(&self) -> Vec<(u16, u64)> {
        let channel = self.store.keys().refresh_channel();
        tokio::task::block_in_place(|| self.redis.subscribers(&channel))
    }

    /// Waits until a refresher listens on `P:refresh` (the API then takes requests), for
    /// at most `within`.
    pub async fn wait_refresher_listening(&self, within: Duration, why: &str) {
        let what = format!("a refresher to listen on the refresh channel: {why}");
        eventually(within, &what, || async {
            self.refresh_subscribers().await > 0
        })
        .await;
    }

    /// Restarts the daemon until its subscription to `P:refresh` is on a primary whose
    /// port `wanted` accepts (fred subscribes on a node derived from its random client
    /// id), and returns that port.
    pub async fn refresher_subscribed_where(&mut self, wanted: impl Fn(u16) -> bool) -> u16 {
        for restarts in 0..30 {
            let by_port = until(SETUP, "the refresher to subscribe", || async {
                let by_port = self.subscribers_by_port().await;
                let listening: u64 = by_port.iter().map(|(_, n)| n).sum();
                (listening == 1).then_some(by_port)
            })
            .await;
            let (port, _) = *by_port
                .iter()
                .find(|(_, n)| *n == 1)
                .expect("one primary has the subscription");
            if wanted(port) {
                println!("the refresher subscribed on port {port} after {restarts} restarts");
                return port;
            }
            if let Some(mut old) = self.refresher.take() {
                old.kill().await;
            }
            self.start_refresher().await;
        }
        panic!("the refresher never subscribed where wanted in 30 starts");
    }
}

//! Prints the Prometheus text exposition of refresh-service's metric registry with one
//! sample in every labelled family (a family without a sample is not rendered at all).
//! `scripts/check-deploy.sh` reads the metric names from here to check the dashboard and
//! the alerts against what the service really exports.

use std::time::Duration;

use refresh_service::metrics::{RefreshMetrics, Stage};
use shared::events::RefreshStatus;

fn main() -> anyhow::Result<()> {
    let metrics = RefreshMetrics::default();
    metrics.stage(Stage::Total, Duration::from_millis(1));
    let meta = serde_json::from_str(
        r#"{"version": "1-abc", "seq": 1, "etag": "\"1-abc\"", "count": 1,
            "generated_at": "2026-11-30T15:00:00.000Z", "content_hash": "abc",
            "json_bytes": 2, "gzip_bytes": 1, "zstd_bytes": 1,
            "json_hash": "", "gzip_hash": "", "zstd_hash": ""}"#,
    )?;
    metrics.outcome(RefreshStatus::Success, Some(&meta));
    metrics.delta_built(1, 1, Duration::from_millis(1));
    print!("{}", metrics.render());
    Ok(())
}

//! Prints the Prometheus text exposition of refresh-service's metric registry with one
//! sample in every labelled family (a family without a sample is not rendered at all).
//! `scripts/check-deploy.sh` reads the metric names from here to check the dashboard and
//! the alerts against what the service really exports.

use std::time::Duration;

use refresh_service::report::metrics::{RefreshMetrics, Stage};
use shared::events::RefreshStatus;

fn main() {
    let metrics = RefreshMetrics::default();
    metrics.stage(Stage::Total, Duration::from_millis(1));
    let meta = system_tests::fixtures::sample_meta(b"{}", b"gz", b"zs");
    metrics.outcome(RefreshStatus::Success, Some(&meta));
    metrics.delta_built(1, 1, Duration::from_millis(1));
    print!("{}", metrics.render());
}

//! Prints the Prometheus text exposition of api-service's metric registry with one
//! sample in every labelled family (a family without a sample is not rendered at all).
//! `scripts/check-deploy.sh` reads the metric names from here to check the dashboard and
//! the alerts against what the service really exports.

use api_service::metrics::Metrics;
use api_service::request::route_table::Route;

fn main() {
    let metrics = Metrics::default();
    metrics.observe(Route::Snapshot, 200, "zstd", 1, 0.001);
    let meta = system_tests::fixtures::sample_meta(b"{}", b"gz", b"zs");
    metrics.snapshot_loaded(&meta);
    print!("{}", metrics.render(None, false, None));
}

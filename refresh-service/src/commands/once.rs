//! `refresh-service once`: one refresh now (what a Kubernetes CronJob runs), recorded and
//! reported as the daemon's are, then the deltas to the new version; the outcome is
//! printed as JSON.

use std::process::ExitCode;
use std::time::Duration;

use shared::events::{RefreshStatus, Trigger};

use crate::pipeline::context::RefreshContext;
use crate::pipeline::recorded::{RefreshRun, run_recorded};
use crate::settings::RefreshSettings;

/// Runs one refresh recorded as `trigger`. Exit 0 on success, unchanged, or when skipped
/// because another refresh holds the lock; non-zero on failure.
///
/// # Errors
/// Configuration errors (naming the variable), Redis unreachable at start.
pub async fn execute(settings: &RefreshSettings, trigger: Trigger) -> anyhow::Result<ExitCode> {
    let ctx = RefreshContext::connect(settings).await?;
    let outcome = run_recorded(&ctx, &RefreshRun::new(trigger)).await;
    // After the outcome is published; a CronJob's pod waits for its deltas.
    if matches!(
        outcome.status,
        RefreshStatus::Success | RefreshStatus::Unchanged
    ) {
        crate::pipeline::deltas::build_logged(&ctx).await;
    }
    flush_log(&ctx).await;
    println!("{}", serde_json::to_string(&outcome)?);
    Ok(match outcome.status {
        RefreshStatus::Skipped => {
            eprintln!(
                "skipped: {}",
                outcome
                    .error
                    .as_deref()
                    .unwrap_or("another refresh is running")
            );
            ExitCode::SUCCESS
        }
        RefreshStatus::Failed | RefreshStatus::Rejected => ExitCode::FAILURE,
        RefreshStatus::Success | RefreshStatus::Unchanged => ExitCode::SUCCESS,
    })
}

/// Gives Postgres a moment to come back so a `once` run's log row is not lost; after
/// that the row is only in this process's log (the outcome line on stdout).
async fn flush_log(ctx: &RefreshContext) {
    if ctx.log.pending() == 0 {
        return;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    if ctx.log.flush().await > 0 {
        tracing::error!(
            "could not write the refresh log row; it is recorded in this process log only"
        );
    }
}

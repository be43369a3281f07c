//! The `refresh-service` command line.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use shared::events::Trigger;

use crate::commands::{daemon, migrate, once, rollback, trigger};
use crate::settings::RefreshSettings;

/// Builds ranked, compressed, versioned ofertas snapshots from PostgreSQL into Redis.
#[derive(Debug, Parser)]
#[command(name = "refresh-service", version, about)]
pub struct Cli {
    /// Settings (each also read from the environment variable shown).
    #[command(flatten)]
    pub settings: RefreshSettings,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Daemon: in-process schedule plus the refresh channel; refreshes at start when
    /// Redis has no snapshot or a scheduled refresh was missed.
    Run {
        /// Address of the `/health`, `/ready` and `/metrics` port, or `off`.
        #[arg(long, env = "REFRESH_METRICS_BIND", default_value = "0.0.0.0:9100")]
        metrics_bind: String,
    },
    /// One refresh (Kubernetes CronJob override). Exit 0 on success, unchanged, or when
    /// skipped because another refresh holds the lock; non-zero on failure.
    Once {
        /// Trigger name recorded in the refresh log.
        #[arg(long, default_value_t = Trigger::Cronjob)]
        trigger: Trigger,
    },
    /// Applies the database migrations (creating the database if missing) and exits.
    Migrate,
    /// Lists the retained snapshot versions (`*` marks the current one).
    Versions,
    /// Makes the previous retained version (or `--to VERSION`) current again.
    Rollback {
        /// Version to restore; default: the newest one that is not current.
        #[arg(long)]
        to: Option<String>,
    },
    /// Publishes an ops refresh request.
    Trigger {
        /// Wait for the outcome event and print it.
        #[arg(long)]
        wait: bool,
        /// Seconds to wait with --wait.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
        /// Reason recorded with the request.
        #[arg(long)]
        reason: Option<String>,
    },
}

/// Entry point of the binary: parses, runs, and turns any error into one line on stderr.
pub fn main() -> ExitCode {
    let _ = dotenvy::dotenv();
    let cli = Cli::parse();
    let _telemetry = shared::telemetry::init("refresh-service");
    shared::shutdown::run_main("refresh-service", cli.execute())
}

impl Cli {
    /// Runs the chosen subcommand.
    ///
    /// # Errors
    /// Configuration errors (naming the variable) and start-up failures.
    pub async fn execute(self) -> anyhow::Result<ExitCode> {
        match self.command {
            Command::Run { metrics_bind } => daemon::execute(&self.settings, &metrics_bind).await,
            Command::Once { trigger } => once::execute(&self.settings, trigger).await,
            Command::Migrate => migrate::execute(&self.settings).await,
            Command::Versions => rollback::versions(&self.settings).await,
            Command::Rollback { to } => rollback::execute(&self.settings, to.as_deref()).await,
            Command::Trigger {
                wait,
                timeout,
                reason,
            } => {
                trigger::trigger(
                    &self.settings.redis,
                    wait,
                    Duration::from_secs(timeout),
                    reason,
                )
                .await
            }
        }
    }
}

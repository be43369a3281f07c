//! The `refresh-service` command line.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use sqlx::migrate::MigrateDatabase;
use tokio_util::sync::CancellationToken;

use shared::config::ConfigError;
use shared::events::{RefreshStatus, Trigger};

use crate::context::{RefreshContext, migrate, pg_pool};
use crate::report::{RefreshRun, run_recorded};
use crate::settings::RefreshSettings;
use crate::status::{self, Readiness};

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
            Command::Run { metrics_bind } => {
                let status_addr = status_addr(&metrics_bind)?;
                let ctx = Arc::new(RefreshContext::connect(&self.settings).await?);
                let shutdown = CancellationToken::new();
                tokio::spawn(shared::shutdown::cancel_on_signal(shutdown.clone()));
                let readiness = Arc::new(Readiness::default());
                let status = match status_addr {
                    Some(addr) => {
                        let (acceptor, bound) = status::bind(addr).await?;
                        tracing::info!(addr = %bound, "status port listening");
                        Some(tokio::spawn(status::serve(
                            acceptor,
                            ctx.clone(),
                            readiness.clone(),
                            shutdown.clone(),
                        )))
                    }
                    None => None,
                };
                let result =
                    crate::daemon::run(ctx, &self.settings, readiness, shutdown.clone()).await;
                shutdown.cancel();
                if let Some(status) = status {
                    let _ = status.await;
                }
                result?;
                Ok(ExitCode::SUCCESS)
            }
            Command::Once { trigger } => {
                let ctx = RefreshContext::connect(&self.settings).await?;
                let outcome = run_recorded(&ctx, &RefreshRun::new(trigger)).await;
                // After the outcome is published; a CronJob's pod waits for its deltas.
                if matches!(
                    outcome.status,
                    RefreshStatus::Success | RefreshStatus::Unchanged
                ) {
                    crate::deltas::build_logged(&ctx).await;
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
            Command::Migrate => {
                let url =
                    secrecy::ExposeSecret::expose_secret(&self.settings.database_url).to_owned();
                let pool = pg_pool(&self.settings)?;
                if !sqlx::Postgres::database_exists(&url)
                    .await
                    .context("cannot reach PostgreSQL (DATABASE_URL)")?
                {
                    sqlx::Postgres::create_database(&url)
                        .await
                        .context("cannot create the database")?;
                    eprintln!("created the database");
                }
                migrate(&pool).await.context("migrations failed")?;
                eprintln!("migrations applied");
                Ok(ExitCode::SUCCESS)
            }
            Command::Versions => {
                let store = crate::context::connect_store(&self.settings.redis).await?;
                crate::rollback::print_versions(&store).await?;
                Ok(ExitCode::SUCCESS)
            }
            Command::Rollback { to } => {
                let ctx = RefreshContext::connect(&self.settings).await?;
                let meta = crate::rollback::rollback(&ctx, to.as_deref()).await?;
                ctx.log.flush().await;
                println!("{}", serde_json::to_string(&meta)?);
                Ok(ExitCode::SUCCESS)
            }
            Command::Trigger {
                wait,
                timeout,
                reason,
            } => {
                crate::trigger::trigger(
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

/// The status port address from `REFRESH_METRICS_BIND`, or `None` for `off`.
fn status_addr(value: &str) -> Result<Option<std::net::SocketAddr>, ConfigError> {
    let value = value.trim();
    if value.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    value
        .parse()
        .map(Some)
        .map_err(|e| ConfigError::new("REFRESH_METRICS_BIND", value, e))
}

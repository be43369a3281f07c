//! `refresh-service migrate`: creates the offers database when it is missing and applies
//! the embedded migrations, a step of its own (a compose one-shot, a Kubernetes Job), not
//! something every replica does at start.

use std::process::ExitCode;

use anyhow::Context as _;
use sqlx::PgPool;
use sqlx::migrate::MigrateDatabase;

use crate::pipeline::context::pg_pool;
use crate::settings::RefreshSettings;

/// Creates the database if missing, then applies the migrations.
///
/// # Errors
/// PostgreSQL unreachable, the database not created, a migration failing.
pub async fn execute(settings: &RefreshSettings) -> anyhow::Result<ExitCode> {
    let url = secrecy::ExposeSecret::expose_secret(&settings.database_url).to_owned();
    let pool = pg_pool(settings)?;
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

/// Applies the embedded migrations.
///
/// # Errors
/// The migration error.
async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    sqlx::migrate!("../migrations").run(pool).await
}

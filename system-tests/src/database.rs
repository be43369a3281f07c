//! PostgreSQL databases of a test's own on the server `TEST_DATABASE_URL` names: created,
//! migrated from the workspace's `migrations/` (as `refresh-service migrate` does), and
//! dropped with every connection to them when the test ends.

use std::path::Path;

use sqlx::migrate::Migrator;
use sqlx::{Connection, PgConnection, PgPool};

use crate::binaries::workspace_root;
use crate::cleanup::run_to_end;

/// The PostgreSQL server (any database) tests create their databases on.
pub fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// `host:port` of the test PostgreSQL server, as written in [`admin_url`].
pub fn postgres_host_port() -> String {
    let url = admin_url();
    let after_scheme = url.split_once("://").map_or(url.as_str(), |(_, rest)| rest);
    let authority = after_scheme.split('/').next().unwrap_or_default();
    authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host)
        .to_owned()
}

/// `url` with its database replaced by `database`.
pub fn with_database(url: &str, database: &str) -> String {
    let base = url.rsplit_once('/').map_or(url, |(base, _)| base);
    format!("{base}/{database}")
}

/// Applies the workspace's migrations to `pool`, read from `migrations/` now (the
/// refresher embeds the same files when it is built).
pub async fn migrate(pool: &PgPool) {
    let migrator = Migrator::new(workspace_root().join("migrations"))
        .await
        .expect("migrations/ readable");
    migrator.run(pool).await.expect("migrations applied");
}

/// Runs `psql -f FILE` (a path in the workspace) with `vars` against the database at
/// `url`, output to `log`.
pub async fn psql(url: &str, file: &str, vars: &[(&str, &str)], log: &Path) {
    let mut cmd = tokio::process::Command::new("psql");
    cmd.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url]);
    for (name, value) in vars {
        cmd.arg("-v").arg(format!("{name}={value}"));
    }
    cmd.arg("-f").arg(workspace_root().join(file));
    crate::commands::run_logged(&mut cmd, log, &format!("psql -f {file}")).await;
}

/// A database of the test's own, migrated, dropped when the value is dropped.
pub struct TestDb {
    /// Database name.
    pub name: String,
    /// URL of the database.
    pub url: String,
    /// Pool connected to it.
    pub pool: PgPool,
}

impl TestDb {
    /// Creates and migrates a database with a unique name.
    pub async fn new() -> Self {
        let name = format!("ofertasws_test_db_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&admin_url())
            .await
            .expect("postgres reachable");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(r#"create database "{name}""#)))
            .execute(&mut admin)
            .await
            .expect("database created");
        admin.close().await.ok();
        let url = with_database(&admin_url(), &name);
        let pool = PgPool::connect(&url).await.expect("database reachable");
        migrate(&pool).await;
        Self { name, url, pool }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // `with (force)` ends the pool's connections; the pool itself belongs to the test's
        // runtime, so it is not closed first.
        let name = self.name.clone();
        run_to_end(move || async move {
            if let Ok(mut admin) = PgConnection::connect(&admin_url()).await {
                let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                    r#"drop database if exists "{name}" with (force)"#
                )))
                .execute(&mut admin)
                .await;
            }
        });
    }
}

//! `refresh-service versions` and `rollback`: list the retained versions and make an
//! earlier one current again.

use std::process::ExitCode;

use anyhow::{Context as _, bail};
use chrono::Utc;

use shared::events::{Event, RefreshStatus, SnapshotUpdated, Trigger};
use shared::snapshot::SnapshotMeta;
use shared::store::SnapshotStore;

use crate::pipeline::context::{RefreshContext, connect_store, instance_name};
use crate::report::log::LogEntry;
use crate::settings::RefreshSettings;

/// `refresh-service versions`: prints the retained versions ([`print_versions`]).
///
/// # Errors
/// Configuration errors, Redis unreachable or unreadable.
pub async fn versions(settings: &RefreshSettings) -> anyhow::Result<ExitCode> {
    let store = connect_store(&settings.redis).await?;
    print_versions(&store).await?;
    Ok(ExitCode::SUCCESS)
}

/// `refresh-service rollback [--to VERSION]`: makes that version current again
/// ([`rollback`]) and prints its metadata.
///
/// # Errors
/// Configuration errors, Redis unreachable, no version to go back to.
pub async fn execute(settings: &RefreshSettings, to: Option<&str>) -> anyhow::Result<ExitCode> {
    let ctx = RefreshContext::connect(settings).await?;
    let meta = rollback(&ctx, to).await?;
    ctx.log.flush().await;
    println!("{}", serde_json::to_string(&meta)?);
    Ok(ExitCode::SUCCESS)
}

/// Retained versions, newest first, with the current one marked.
///
/// # Errors
/// When Redis cannot be read.
pub async fn list(store: &SnapshotStore) -> anyhow::Result<Vec<(bool, SnapshotMeta)>> {
    let current = store.current_meta().await?.map(|m| m.version);
    let versions = store.versions().await?;
    Ok(versions
        .into_iter()
        .map(|meta| (current.as_deref() == Some(meta.version.as_str()), meta))
        .collect())
}

/// Prints [`list`] as a table; `json_sha256` shows the first 12 hex digits of the
/// document's SHA-256 (`-` for a version written before it was recorded). Under each
/// version, its dcz deltas: from which earlier version, and their size (`deltas: not yet
/// built` until its index is written).
///
/// # Errors
/// When Redis cannot be read.
pub async fn print_versions(store: &SnapshotStore) -> anyhow::Result<()> {
    println!(
        "{:<2} {:<24} {:>8} {:>10} {:>10} {:>10}  {:<12}  generated_at",
        "", "version", "count", "json", "gzip", "zstd", "json_sha256"
    );
    for (current, meta) in list(store).await? {
        let age = (Utc::now() - meta.generated_at).num_seconds();
        let sha256 = meta
            .json_sha256
            .map_or_else(|| "-".to_owned(), |sha| sha.to_string());
        println!(
            "{:<2} {:<24} {:>8} {:>10} {:>10} {:>10}  {:<12}  {} ({age} s ago)",
            if current { "*" } else { "" },
            meta.version,
            meta.count,
            meta.json_bytes,
            meta.gzip_bytes,
            meta.zstd_bytes,
            sha256.get(..12).unwrap_or(&sha256),
            meta.generated_at_string()
        );
        match store.deltas(&meta.version).await? {
            None => println!("   deltas: not yet built"),
            Some(deltas) if deltas.is_empty() => println!("   deltas: none"),
            Some(deltas) => {
                for delta in deltas {
                    println!(
                        "   dcz from {:<24} {:>10} bytes",
                        delta.version, delta.dcz_bytes
                    );
                }
            }
        }
    }
    Ok(())
}

/// Makes `to` (or, by default, the newest retained version that is not current) the
/// current snapshot again, publishes `snapshot.updated` and records it in the refresh log
/// with trigger `rollback`.
///
/// # Errors
/// When there is no such version, its bodies are gone or Redis fails.
pub async fn rollback(ctx: &RefreshContext, to: Option<&str>) -> anyhow::Result<SnapshotMeta> {
    let versions = list(&ctx.store).await?;
    let target = match to {
        Some(version) => versions.into_iter().find(|(_, m)| m.version == version),
        None => versions.into_iter().find(|(current, _)| !current),
    };
    let Some((current, meta)) = target else {
        bail!(
            "no retained version {}",
            to.unwrap_or("older than the current one")
        );
    };
    if current {
        bail!("version {} is already current", meta.version);
    }
    let started = std::time::Instant::now();
    ctx.store
        .restore(&meta)
        .await
        .context("cannot restore the version")?;
    ctx.publish_event(&Event::SnapshotUpdated(SnapshotUpdated::announcing(&meta)))
        .await;
    tracing::info!(snapshot.version = %meta.version, "rolled back");
    ctx.log
        .record(LogEntry {
            executed_at: Utc::now(),
            trigger: Trigger::Rollback,
            status: RefreshStatus::Success,
            records_count: Some(meta.count as i32),
            execution_time_ms: started.elapsed().as_millis() as i32,
            request_size_kb: Some(meta.gzip_bytes.div_ceil(1024) as i32),
            json_bytes: Some(meta.json_bytes as i64),
            gzip_bytes: Some(meta.gzip_bytes as i64),
            zstd_bytes: Some(meta.zstd_bytes as i64),
            etag: Some(meta.etag.clone()),
            request_id: None,
            instance: instance_name().to_owned(),
            error: None,
        })
        .await;
    Ok(meta)
}

//! Process memory readings for logs, health and metrics.

/// Resident set size of this process in bytes, when the platform reports it.
pub fn rss_bytes() -> Option<u64> {
    memory_stats::memory_stats().map(|stats| stats.physical_mem as u64)
}

/// Resident set size in whole MiB (0 when unknown), for log fields.
pub fn rss_mib() -> u64 {
    rss_bytes().unwrap_or(0) / (1024 * 1024)
}

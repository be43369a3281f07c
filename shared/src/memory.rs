//! Process memory readings for logs, health and metrics.

/// Resident set size of this process in bytes, when the platform reports it.
pub fn rss_bytes() -> Option<u64> {
    memory_stats::memory_stats().map(|stats| stats.physical_mem as u64)
}

/// Resident set size in whole MiB (0 when unknown), for log fields.
pub fn rss_mib() -> u64 {
    rss_bytes().unwrap_or(0) / (1024 * 1024)
}

/// Resident memory of this process without its shared-memory pages (`RssAnon` plus
/// `RssFile` of `/proc/self/status`), for a process that adds the sizes of its memfds
/// itself: their pages are charged whether mapped in or not, and counting `RssShmem` too
/// would count the touched ones twice.
pub fn rss_private_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|line| line.starts_with(name))?;
        let kib: u64 = line[name.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kib * 1024)
    };
    Some(field("RssAnon:")? + field("RssFile:")?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn private_rss_is_read_and_within_the_whole_rss() {
        let private = super::rss_private_bytes().unwrap_or(0);
        assert!(private > 0);
        assert!(private <= super::rss_bytes().unwrap_or(0) + 4096 * 1024);
    }
}

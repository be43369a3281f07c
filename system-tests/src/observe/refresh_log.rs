//! What the refresh log proves about a run of refreshes: they never overlapped (one
//! refresh at a time across every process), and how long the daemon waited between retries.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use crate::stack::LogRow;

/// Time span a log row says its refresh held the lock within: `executed_at` is when the
/// attempt started (before taking the lock) and `execution_time_ms` its whole duration
/// (until after the release), so the lock was held inside this span.
fn span(row: &LogRow) -> (DateTime<Utc>, DateTime<Utc>) {
    (
        row.executed_at,
        row.executed_at + TimeDelta::milliseconds(i64::from(row.execution_time_ms)),
    )
}

/// The refreshes that ran (success or unchanged; skipped and failed ones may not have
/// held the lock) never overlap in time.
pub fn assert_one_refresh_at_a_time(rows: &[LogRow]) {
    let mut ran: Vec<&LogRow> = rows
        .iter()
        .filter(|r| matches!(r.status.as_str(), "success" | "unchanged"))
        .collect();
    ran.sort_by_key(|r| r.executed_at);
    let closest = ran
        .windows(2)
        .map(|pair| span(pair[1]).0 - span(pair[0]).1)
        .min();
    println!(
        "{} refreshes ran; smallest gap between two: {closest:?}",
        ran.len()
    );
    for pair in ran.windows(2) {
        let ((_, first_end), (second_start, _)) = (span(pair[0]), span(pair[1]));
        assert!(
            first_end <= second_start,
            "two refreshes overlap: {:?} ran until {first_end}, {:?} started at {second_start}",
            pair[0],
            pair[1]
        );
    }
}

/// Parses a `Duration` as its `Debug` form prints it in the logs (`312.5ms`, `1.2s`).
pub fn parse_debug_duration(text: &str) -> Option<Duration> {
    [
        ("ns", 1e-9),
        ("µs", 1e-6),
        ("us", 1e-6),
        ("ms", 1e-3),
        ("s", 1.0),
    ]
    .into_iter()
    .find_map(|(unit, scale)| {
        let value: f64 = text.strip_suffix(unit)?.parse().ok()?;
        Some(Duration::from_secs_f64(value * scale))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(start_ms: i64, ms: i32, status: &str) -> LogRow {
        LogRow {
            executed_at: DateTime::<Utc>::UNIX_EPOCH + TimeDelta::milliseconds(start_ms),
            trigger: "test".to_owned(),
            status: status.to_owned(),
            execution_time_ms: ms,
            request_id: None,
            error: None,
        }
    }

    #[test]
    fn refreshes_that_touch_end_to_start_do_not_overlap() {
        assert_one_refresh_at_a_time(&[row(0, 100, "success"), row(100, 50, "unchanged")]);
        // A skipped attempt never held the lock.
        assert_one_refresh_at_a_time(&[row(0, 100, "success"), row(10, 5, "skipped")]);
    }

    #[test]
    #[should_panic(expected = "two refreshes overlap")]
    fn overlapping_refreshes_are_caught() {
        assert_one_refresh_at_a_time(&[row(200, 10, "success"), row(0, 201, "unchanged")]);
    }

    #[test]
    fn retry_waits_are_read_as_logged() {
        assert_eq!(
            parse_debug_duration("312.5ms"),
            Some(Duration::from_micros(312_500))
        );
        assert_eq!(
            parse_debug_duration("1.5s"),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(parse_debug_duration("soon"), None);
    }
}

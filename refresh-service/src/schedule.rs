//! When the daemon refreshes by itself: the cron schedule and the catch-up rule at start.
//!
//! tokio-cron-scheduler fixes the time zone's UTC offset when the job is created, so a
//! zone with daylight saving is followed only until the next restart (upstream issue
//! #107); America/Panama has no DST.

use chrono::{DateTime, Utc};
use tokio::sync::mpsc::UnboundedSender;
use tokio_cron_scheduler::{Job, JobScheduler, JobSchedulerError};

use shared::config::Schedule;

/// The latest scheduled time at or before `now`.
pub fn previous_slot(schedule: &Schedule, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let local = now.with_timezone(&schedule.timezone);
    schedule
        .cron
        .find_previous_occurrence(&local, true)
        .ok()
        .map(|at| at.with_timezone(&Utc))
}

/// The next scheduled time after `now`.
pub fn next_slot(schedule: &Schedule, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let local = now.with_timezone(&schedule.timezone);
    schedule
        .cron
        .find_next_occurrence(&local, false)
        .ok()
        .map(|at| at.with_timezone(&Utc))
}

/// Why the daemon should refresh at start, or `None` when the current snapshot is fresh:
/// there is no current snapshot, or the last successful refresh predates the most
/// recent scheduled slot (the daemon was down when it should have run).
pub fn catch_up_reason(
    schedule: Option<&Schedule>,
    now: DateTime<Utc>,
    has_snapshot: bool,
    last_success: Option<DateTime<Utc>>,
) -> Option<String> {
    if !has_snapshot {
        return Some("Redis holds no current snapshot".to_owned());
    }
    let slot = previous_slot(schedule?, now)?;
    match last_success {
        None => Some("no successful refresh is recorded".to_owned()),
        Some(last) if last < slot => Some(format!(
            "the refresh scheduled for {slot} was missed (last success {last})"
        )),
        Some(_) => None,
    }
}

/// Starts the in-process schedule; each tick sends `()` to `tick`.
///
/// # Errors
/// When the scheduler cannot be created or the expression is rejected.
pub async fn start(
    schedule: &Schedule,
    tick: UnboundedSender<()>,
) -> Result<JobScheduler, JobSchedulerError> {
    let scheduler = JobScheduler::new().await?;
    let job = Job::new_async_tz(
        schedule.expression.as_str(),
        schedule.timezone,
        move |_id, _scheduler| {
            let tick = tick.clone();
            Box::pin(async move {
                if tick.send(()).is_err() {
                    tracing::debug!("schedule tick after shutdown");
                }
            })
        },
    )?;
    scheduler.add(job).await?;
    scheduler.start().await?;
    Ok(scheduler)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use shared::config::parse_cron;

    fn panama(expression: &str) -> Schedule {
        Schedule {
            expression: expression.to_owned(),
            cron: parse_cron(expression).unwrap(),
            timezone: chrono_tz::America::Panama,
        }
    }

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    #[test]
    fn default_slots_are_10_and_15_in_panama() {
        let schedule = panama("0 0 10,15 * * *");
        // 2026-11-24 12:00 in Panama (UTC-5) is 17:00 UTC: last slot 10:00 local = 15:00 UTC.
        assert_eq!(
            previous_slot(&schedule, utc(2026, 11, 24, 17, 0)),
            Some(utc(2026, 11, 24, 15, 0))
        );
        assert_eq!(
            next_slot(&schedule, utc(2026, 11, 24, 17, 0)),
            Some(utc(2026, 11, 24, 20, 0))
        );
        // 08:00 local (13:00 UTC): the last slot was 15:00 local the day before.
        assert_eq!(
            previous_slot(&schedule, utc(2026, 11, 24, 13, 0)),
            Some(utc(2026, 11, 23, 20, 0))
        );
        // Exactly on a slot counts as that slot.
        assert_eq!(
            previous_slot(&schedule, utc(2026, 11, 24, 15, 0)),
            Some(utc(2026, 11, 24, 15, 0))
        );
    }

    #[test]
    fn catch_up_when_no_snapshot_or_a_slot_was_missed() {
        let schedule = panama("0 0 10,15 * * *");
        let now = utc(2026, 11, 24, 17, 0); // 12:00 Panama
        assert!(catch_up_reason(Some(&schedule), now, false, Some(now)).is_some());
        assert!(catch_up_reason(None, now, false, None).is_some());
        assert!(catch_up_reason(Some(&schedule), now, true, None).is_some());
        // Last success 09:59 Panama, before the 10:00 slot: missed.
        let missed = catch_up_reason(Some(&schedule), now, true, Some(utc(2026, 11, 24, 14, 59)));
        assert!(missed.is_some_and(|r| r.contains("missed")));
        // Last success 10:00:30 Panama: fresh.
        let fresh = utc(2026, 11, 24, 15, 0) + chrono::Duration::seconds(30);
        assert_eq!(
            catch_up_reason(Some(&schedule), now, true, Some(fresh)),
            None
        );
        // Schedule off and a snapshot present: nothing to catch up.
        assert_eq!(catch_up_reason(None, now, true, None), None);
    }

    #[test]
    fn day_of_month_and_day_of_week_are_both_required() {
        // The 1st of the month only when it is a Monday (2026-06-01 is a Monday).
        let schedule = panama("0 0 10 1 * MON");
        let slot = previous_slot(&schedule, utc(2026, 11, 24, 17, 0));
        assert_eq!(slot, Some(utc(2026, 6, 1, 15, 0)));
    }

    #[tokio::test]
    async fn the_scheduler_ticks_on_its_expression() {
        let schedule = panama("* * * * * *");
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut scheduler = start(&schedule, tx).await.unwrap();
        let tick = tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv()).await;
        assert_eq!(tick, Ok(Some(())));
        scheduler.shutdown().await.unwrap();
    }
}

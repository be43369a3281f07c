//! When the daemon refreshes by itself: the cron schedule and the catch-up rule at start.
//!
//! One [`Schedule`] answers both questions the daemon asks, "when next" (to tick) and
//! "when last" (to catch up at start), with croner reading the expression in the
//! configured time zone at every slot, so daylight-saving changes are followed: a slot
//! that falls in a spring-forward gap runs when the gap ends, one in a fall-back overlap
//! runs once. [`Schedule::run`] drives the ticks from those answers on the tokio clock.

use std::ops::ControlFlow;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::pipeline::context::Clock;

/// Longest single wait between ticks: the wall clock is read again at least this often,
/// so a slot is met even when the wall clock was adjusted (or the host suspended) while
/// the daemon waited.
const MAX_NAP: Duration = Duration::from_secs(60);

/// The in-process refresh schedule (`REFRESH_SCHEDULE` in `REFRESH_TIMEZONE`).
#[derive(Clone, Debug)]
pub struct Schedule {
    config: crate::settings::Schedule,
}

impl From<crate::settings::Schedule> for Schedule {
    fn from(config: crate::settings::Schedule) -> Self {
        Self { config }
    }
}

impl Schedule {
    /// The expression as configured.
    pub fn expression(&self) -> &str {
        &self.config.expression
    }

    /// The time zone it is read in.
    pub fn timezone(&self) -> chrono_tz::Tz {
        self.config.timezone
    }

    /// The first slot strictly after `at`, or `None` when the expression has no more.
    pub fn next_after(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = at.with_timezone(&self.config.timezone);
        let slot = self.config.cron.find_next_occurrence(&local, false).ok()?;
        Some(slot.with_timezone(&Utc))
    }

    /// The latest slot at or before `at`, or `None` when there was none.
    pub fn last_at_or_before(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = at.with_timezone(&self.config.timezone);
        let slot = self
            .config
            .cron
            .find_previous_occurrence(&local, true)
            .ok()?;
        Some(slot.with_timezone(&Utc))
    }

    /// Calls `tick` with each slot once `clock` has reached it, until `tick` breaks, the
    /// schedule has no more slots or `shutdown` is cancelled. Slots passed while a tick
    /// was handled (or the host was suspended) come as one tick.
    pub async fn run(
        &self,
        clock: &Clock,
        shutdown: &CancellationToken,
        mut tick: impl FnMut(DateTime<Utc>) -> ControlFlow<()>,
    ) {
        let Some(mut slot) = self.next_after(clock()) else {
            return;
        };
        loop {
            let now = clock();
            if now >= slot {
                if tick(slot).is_break() {
                    return;
                }
                match self.next_after(now) {
                    Some(next) => slot = next,
                    None => return,
                }
                continue;
            }
            let nap = (slot - now).to_std().unwrap_or_default().min(MAX_NAP);
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(nap) => {}
            }
        }
    }
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
    let slot = schedule?.last_at_or_before(now)?;
    match last_success {
        None => Some("no successful refresh is recorded".to_owned()),
        Some(last) if last < slot => Some(format!(
            "the refresh scheduled for {slot} was missed (last success {last})"
        )),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use crate::settings::parse_cron;
    use chrono::TimeZone;
    use chrono_tz::Tz;

    use super::*;

    fn schedule(expression: &str, timezone: Tz) -> Schedule {
        Schedule::from(crate::settings::Schedule {
            expression: expression.to_owned(),
            cron: parse_cron(expression).unwrap(),
            timezone,
        })
    }

    fn panama(expression: &str) -> Schedule {
        schedule(expression, chrono_tz::America::Panama)
    }

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    #[test]
    fn default_slots_are_10_and_15_in_panama() {
        let schedule = panama("0 0 10,15 * * *");
        // 2026-11-24 12:00 in Panama (UTC-5) is 17:00 UTC: last slot 10:00 local = 15:00 UTC.
        let noon = utc(2026, 11, 24, 17, 0);
        assert_eq!(
            schedule.last_at_or_before(noon),
            Some(utc(2026, 11, 24, 15, 0))
        );
        assert_eq!(schedule.next_after(noon), Some(utc(2026, 11, 24, 20, 0)));
        // 08:00 local (13:00 UTC): the last slot was 15:00 local the day before.
        let morning = utc(2026, 11, 24, 13, 0);
        assert_eq!(
            schedule.last_at_or_before(morning),
            Some(utc(2026, 11, 23, 20, 0))
        );
        assert_eq!(schedule.next_after(morning), Some(utc(2026, 11, 24, 15, 0)));
        // Exactly on a slot: it is the last slot, and the next one is the one after.
        let slot = utc(2026, 11, 24, 15, 0);
        assert_eq!(schedule.last_at_or_before(slot), Some(slot));
        assert_eq!(schedule.next_after(slot), Some(utc(2026, 11, 24, 20, 0)));
    }

    #[test]
    fn slots_follow_daylight_saving_time() {
        // New York moves from UTC-5 to UTC-4 on 2026-03-08 and back on 2026-11-01.
        let ten = schedule("0 0 10 * * *", chrono_tz::America::New_York);
        let before = utc(2026, 3, 7, 16, 0);
        assert_eq!(ten.next_after(before), Some(utc(2026, 3, 8, 14, 0)));
        assert_eq!(ten.last_at_or_before(before), Some(utc(2026, 3, 7, 15, 0)));
        assert_eq!(
            ten.last_at_or_before(utc(2026, 3, 8, 14, 0)),
            Some(utc(2026, 3, 8, 14, 0))
        );
        assert_eq!(
            ten.next_after(utc(2026, 10, 31, 15, 0)),
            Some(utc(2026, 11, 1, 15, 0))
        );
        // 02:30 does not exist on 2026-03-08: that day's slot is when the gap ends (03:00 EDT).
        let gap = schedule("0 30 2 * * *", chrono_tz::America::New_York);
        assert_eq!(
            gap.next_after(utc(2026, 3, 8, 5, 0)),
            Some(utc(2026, 3, 8, 7, 0))
        );
        // 01:30 happens twice on 2026-11-01: the slot runs once, at the first.
        let twice = schedule("0 30 1 * * *", chrono_tz::America::New_York);
        let first = utc(2026, 11, 1, 5, 30);
        assert_eq!(twice.next_after(utc(2026, 11, 1, 4, 0)), Some(first));
        assert_eq!(twice.next_after(first), Some(utc(2026, 11, 2, 6, 30)));
    }

    #[test]
    fn day_of_month_and_day_of_week_are_both_required() {
        // The 1st of the month only when it is a Monday (2026-06-01 is a Monday).
        let schedule = panama("0 0 10 1 * MON");
        let slot = schedule.last_at_or_before(utc(2026, 11, 24, 17, 0));
        assert_eq!(slot, Some(utc(2026, 6, 1, 15, 0)));
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

    /// A wall clock that starts at `start` and moves with tokio's (paused) clock.
    fn clock_from(start: DateTime<Utc>) -> Clock {
        let origin = tokio::time::Instant::now();
        Arc::new(move || start + (tokio::time::Instant::now() - origin))
    }

    #[tokio::test(start_paused = true)]
    async fn ticks_come_at_each_slot_across_a_dst_change_until_told_to_stop() {
        let schedule = schedule("0 0 10 * * *", chrono_tz::America::New_York);
        let clock = clock_from(utc(2026, 3, 7, 12, 0));
        let ticks = Mutex::new(Vec::new());
        schedule
            .run(&clock, &CancellationToken::new(), |slot| {
                let mut ticks = ticks.lock().unwrap();
                ticks.push((slot, clock()));
                if ticks.len() == 3 {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            })
            .await;
        let ticks = ticks.into_inner().unwrap();
        let slots = [
            utc(2026, 3, 7, 15, 0),
            utc(2026, 3, 8, 14, 0),
            utc(2026, 3, 9, 14, 0),
        ];
        assert_eq!(ticks.iter().map(|t| t.0).collect::<Vec<_>>(), slots);
        for (slot, at) in ticks {
            assert!(
                at >= slot && at - slot < chrono::Duration::seconds(1),
                "{slot} ticked at {at}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_tick_loop_stops_when_the_process_is_cancelled() {
        let schedule = panama("0 0 10,15 * * *");
        let clock = clock_from(utc(2026, 11, 24, 17, 0));
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        let (started, mut ticks) = (tokio::time::Instant::now(), 0);
        let stopper = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            stop.cancel();
        });
        schedule
            .run(&clock, &shutdown, |_| {
                ticks += 1;
                ControlFlow::Continue(())
            })
            .await;
        stopper.await.unwrap();
        assert_eq!(ticks, 0, "the next slot (15:00 Panama) is 3 h away");
        assert_eq!(started.elapsed(), Duration::from_secs(3600));
    }
}

//! Schedule arithmetic, free of clocks and I/O so it can be tested exactly:
//! intervals (at least 30 minutes), retention settings in restic's terms, when
//! a schedule runs next, and how failures back off.
//!
//! Runs sit on a fixed grid `first + k * interval` (no drift, whatever time a
//! run took); after downtime the missed window runs once, then the grid goes
//! on; a failure is retried with exponential backoff, never later than the next
//! regular slot.

use thiserror::Error;

/// Shortest interval allowed.
pub const MIN_INTERVAL_SECS: i64 = 30 * 60;
/// Longest interval allowed.
pub const MAX_INTERVAL_SECS: i64 = 366 * 24 * 60 * 60;
/// First retry delay after a failure; doubles per further failure.
pub const FIRST_RETRY_SECS: i64 = 60;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ScheduleError {
    #[error("interval_unit must be minutes, hours or days")]
    Unit,
    #[error("the interval must be at least 30 minutes and at most a year")]
    Interval,
    #[error("keep_within must look like 1y2m3d4h (years, months, days, hours)")]
    KeepWithin,
}

pub use api::IntervalUnit as Unit;

/// Reads an interval unit (`minutes`, `hours`, `days`).
pub fn parse_unit(raw: &str) -> Result<Unit, ScheduleError> {
    raw.parse().map_err(|_| ScheduleError::Unit)
}

fn unit_seconds(unit: Unit) -> i64 {
    match unit {
        Unit::Minutes => 60,
        Unit::Hours => 3600,
        Unit::Days => 86_400,
    }
}

/// A validated interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval {
    pub value: u32,
    pub unit: Unit,
}

impl Interval {
    pub fn new(value: u32, unit: Unit) -> Result<Self, ScheduleError> {
        let secs = value as i64 * unit_seconds(unit);
        if !(MIN_INTERVAL_SECS..=MAX_INTERVAL_SECS).contains(&secs) {
            return Err(ScheduleError::Interval);
        }
        Ok(Self { value, unit })
    }

    pub fn seconds(self) -> i64 {
        self.value as i64 * unit_seconds(self.unit)
    }
}

/// Whether a valid `keep_within` is zero long (`0h`, `0y0d`): restic reads
/// that as no rule at all.
pub fn is_zero_duration(raw: &str) -> bool {
    raw.chars()
        .all(|c| c.is_ascii_digit() && c == '0' || c.is_ascii_alphabetic())
}

/// Checks a `keep_within` value in restic's duration form (`1y2m3d4h`: each
/// part a number and one of y, m, d, h, each unit at most once, in that order).
pub fn parse_keep_within(raw: &str) -> Result<String, ScheduleError> {
    if raw.is_empty() || raw.len() > 32 {
        return Err(ScheduleError::KeepWithin);
    }
    let order = ['y', 'm', 'd', 'h'];
    let mut next_unit = 0;
    let mut digits = 0;
    for c in raw.chars() {
        if c.is_ascii_digit() {
            digits += 1;
            if digits > 6 {
                return Err(ScheduleError::KeepWithin);
            }
            continue;
        }
        let pos = order[next_unit.min(order.len())..]
            .iter()
            .position(|u| *u == c)
            .ok_or(ScheduleError::KeepWithin)?;
        if digits == 0 {
            return Err(ScheduleError::KeepWithin);
        }
        next_unit += pos + 1;
        digits = 0;
    }
    if digits != 0 {
        return Err(ScheduleError::KeepWithin);
    }
    Ok(raw.to_owned())
}

/// The first run of a schedule saved at `saved_at`: one interval later
/// (saving never runs a backup).
pub fn first_run(saved_at: i64, interval: Interval) -> i64 {
    saved_at + interval.seconds()
}

/// After the run that was due at `scheduled` (and started at `now`), the next
/// slot on the grid that is still in the future: missed slots are skipped,
/// so a long downtime causes one run, not one per missed interval.
pub fn next_after(scheduled: i64, interval: Interval, now: i64) -> i64 {
    let step = interval.seconds();
    if now < scheduled {
        return scheduled + step;
    }
    let missed = (now - scheduled) / step;
    scheduled + (missed + 1) * step
}

/// When to retry after `failures` consecutive failures of the run due at
/// `scheduled`: 1, 2, 4, … minutes after `now`, but never after the next
/// regular slot.
pub fn retry_at(scheduled: i64, interval: Interval, failures: u32, now: i64) -> i64 {
    let delay = FIRST_RETRY_SECS.saturating_mul(1i64 << failures.saturating_sub(1).min(30));
    (now + delay).min(next_after(scheduled, interval, now))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hours(n: u32) -> Interval {
        Interval::new(n, Unit::Hours).unwrap()
    }

    #[test]
    fn intervals_below_thirty_minutes_or_above_a_year_are_refused() {
        assert!(Interval::new(29, Unit::Minutes).is_err());
        assert!(Interval::new(30, Unit::Minutes).is_ok());
        assert!(Interval::new(0, Unit::Days).is_err());
        assert!(Interval::new(367, Unit::Days).is_err());
        assert_eq!(parse_unit("weeks"), Err(ScheduleError::Unit));
        assert_eq!(parse_unit("hours").unwrap().as_str(), "hours");
    }

    #[test]
    fn keep_within_takes_restic_durations_only() {
        for ok in ["1y2m3d4h", "7d", "12h", "1y", "2m5h"] {
            assert!(parse_keep_within(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "d",
            "7",
            "7w",
            "1d1d",
            "1h1d",
            "-1d",
            "1.5d",
            "--password-command=sh",
            "1d ",
            "9999999d",
        ] {
            assert!(parse_keep_within(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn saving_schedules_the_first_run_one_interval_later() {
        assert_eq!(first_run(1_000, hours(6)), 1_000 + 6 * 3600);
    }

    #[test]
    fn runs_stay_on_the_grid_for_a_hundred_intervals() {
        let interval = hours(6);
        let start = 1_700_000_000;
        let mut scheduled = first_run(start, interval);
        for k in 1..=100 {
            // Each run starts a little late and takes a while: no drift.
            let now = scheduled + 37 + k;
            scheduled = next_after(scheduled, interval, now);
        }
        assert_eq!(scheduled, start + 101 * interval.seconds());
    }

    #[test]
    fn a_long_downtime_runs_once_then_returns_to_the_grid() {
        let interval = hours(1);
        let scheduled = 10_000;
        // Down for 5.5 intervals: one run now, next on the grid after now.
        let now = scheduled + 5 * 3600 + 1800;
        let next = next_after(scheduled, interval, now);
        assert_eq!(next, scheduled + 6 * 3600);
        assert!(next > now && next - now <= 3600);
    }

    #[test]
    fn failures_back_off_exponentially_but_not_past_the_next_slot() {
        let interval = hours(6);
        let scheduled = 100_000;
        let now = scheduled + 5;
        assert_eq!(retry_at(scheduled, interval, 1, now), now + 60);
        assert_eq!(retry_at(scheduled, interval, 2, now), now + 120);
        assert_eq!(retry_at(scheduled, interval, 5, now), now + 960);
        assert_eq!(
            retry_at(scheduled, interval, 40, now),
            scheduled + interval.seconds()
        );
    }
}

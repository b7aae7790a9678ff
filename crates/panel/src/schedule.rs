//! Schedule arithmetic, free of clocks and I/O so it can be tested exactly:
//! intervals (at least 30 minutes), times of day in a time zone, retention
//! settings in restic's terms, when a schedule runs next, and how failures
//! back off.
//!
//! Interval runs sit on a fixed grid `first + k * interval` (no drift,
//! whatever time a run took). Calendar runs ("daily at 03:00", "weekly on
//! Mon and Thu at 21:30") are at that wall-clock time in the schedule's
//! time zone: across a DST change the run keeps its local time; a time the
//! change skips (02:30 on a spring-forward night) runs when the clocks
//! have moved on by as much (03:30); a time that happens twice (autumn)
//! runs once, the first time. After downtime the missed run happens once,
//! then the schedule goes on; a failure is retried with exponential
//! backoff, never later than the next regular run.

use api::Weekday;
use jiff::tz::TimeZone;
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
    #[error("at must be a time of day like 03:30 (24-hour, HH:MM)")]
    TimeOfDay,
    #[error("time_zone must be a time zone name like Europe/Berlin or UTC; {0:?} is not known")]
    TimeZone(String),
    #[error("weekdays must list days of mon, tue, wed, thu, fri, sat, sun (at least one)")]
    Weekdays,
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

/// Reads a time of day, `HH:MM` (24-hour; `7:05` too), into minutes after
/// midnight.
pub fn parse_time_of_day(raw: &str) -> Result<u16, ScheduleError> {
    let (h, m) = raw.split_once(':').ok_or(ScheduleError::TimeOfDay)?;
    let digits = |s: &str, max_len| {
        (!s.is_empty() && s.len() <= max_len && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u16>().ok())
            .flatten()
    };
    match (digits(h, 2), digits(m, 2).filter(|_| m.len() == 2)) {
        (Some(h), Some(m)) if h < 24 && m < 60 => Ok(h * 60 + m),
        _ => Err(ScheduleError::TimeOfDay),
    }
}

/// A time of day as the API shows it: `HH:MM`.
pub fn format_time_of_day(minute: u16) -> String {
    format!("{:02}:{:02}", minute / 60, minute % 60)
}

/// Finds a time zone by its IANA name (any case); answers it with its
/// canonical spelling. Only names of the IANA database are zones (not a
/// system's `localtime`, `posixrules` or `Factory`), read from the
/// system's database, else from the copy built in (a name this system's
/// tzdata lacks, e.g. without Debian's `tzdata-legacy`, still works).
pub fn parse_time_zone(raw: &str) -> Result<(TimeZone, String), ScheduleError> {
    let unknown = || ScheduleError::TimeZone(raw.chars().take(64).collect());
    let plain = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'-' | b'+');
    if raw.is_empty() || raw.len() > 64 || !raw.bytes().all(plain) {
        return Err(unknown());
    }
    let bundled = jiff::tz::TimeZoneDatabase::bundled();
    let name = bundled
        .available()
        .map(|n| n.as_str().to_owned())
        .find(|n| n.eq_ignore_ascii_case(raw) && !n.eq_ignore_ascii_case("Factory"))
        .or_else(|| raw.eq_ignore_ascii_case("UTC").then(|| "UTC".to_owned()))
        .ok_or_else(unknown)?;
    let zone = TimeZone::get(&name)
        .or_else(|_| bundled.get(&name))
        .map_err(|_| unknown())?;
    Ok((zone, name))
}

/// The bit of `day` in a weekday set (Monday bit 0 … Sunday bit 6).
pub fn weekday_bit(day: Weekday) -> u8 {
    1 << (day as u8)
}

/// The days of a weekday set, Monday first.
pub fn weekdays_of(mask: u8) -> Vec<Weekday> {
    Weekday::ALL
        .iter()
        .copied()
        .filter(|d| mask & weekday_bit(*d) != 0)
        .collect()
}

/// Every day of the week.
pub const EVERY_DAY: u8 = 0b111_1111;

/// A wall-clock schedule: at `minute` after local midnight on the days of
/// `weekdays`, in `zone`.
#[derive(Debug, Clone, PartialEq)]
pub struct Calendar {
    pub minute: u16,
    /// Monday bit 0 … Sunday bit 6; never empty.
    pub weekdays: u8,
    pub zone: TimeZone,
}

impl Calendar {
    pub fn new(minute: u16, weekdays: u8, zone: TimeZone) -> Result<Self, ScheduleError> {
        if minute >= 24 * 60 {
            return Err(ScheduleError::TimeOfDay);
        }
        if weekdays & EVERY_DAY == 0 {
            return Err(ScheduleError::Weekdays);
        }
        Ok(Self {
            minute,
            weekdays: weekdays & EVERY_DAY,
            zone,
        })
    }

    /// The first run strictly after `after` (unix seconds). `i64::MAX`
    /// (never) for a time past what calendars reach (the year 9999).
    pub fn next_after(&self, after: i64) -> i64 {
        self.try_next_after(after).unwrap_or(i64::MAX)
    }

    fn try_next_after(&self, after: i64) -> Option<i64> {
        let now = jiff::Timestamp::from_second(after).ok()?;
        let mut day = now.to_zoned_datetime(self.zone.clone()).date();
        let (hour, minute) = ((self.minute / 60) as i8, (self.minute % 60) as i8);
        // Every weekday comes round within a week; a day whose time comes
        // before `after` (today's, or the first of a repeated hour) is
        // passed over.
        for _ in 0..=7 {
            let iso = day.weekday().to_monday_zero_offset();
            if self.weekdays & (1 << iso) != 0 {
                let at = self
                    .zone
                    .to_ambiguous_zoned_datetime(day.at(hour, minute, 0, 0))
                    .compatible()
                    .ok()?
                    .timestamp()
                    .as_second();
                if at > after {
                    return Some(at);
                }
            }
            day = day.tomorrow().ok()?;
        }
        None
    }
}

/// When a schedule runs: every interval, or at a time of day.
#[derive(Debug, Clone, PartialEq)]
pub enum Cadence {
    Every(Interval),
    At(Calendar),
}

impl Cadence {
    /// The first run of a schedule saved at `saved_at` (saving never runs
    /// a backup): one interval later, or the calendar's next time.
    pub fn first_run(&self, saved_at: i64) -> i64 {
        match self {
            Cadence::Every(i) => first_run(saved_at, *i),
            Cadence::At(c) => c.next_after(saved_at),
        }
    }

    /// After the run due at `scheduled` (on an interval's grid from
    /// `anchor`) started at `now`: the next regular run still in the
    /// future (missed ones are skipped).
    pub fn next_after(&self, anchor: i64, now: i64) -> i64 {
        match self {
            Cadence::Every(i) => next_after(anchor, *i, now),
            Cadence::At(c) => c.next_after(now),
        }
    }

    /// When to retry after `failures` consecutive failures: 1, 2, 4, …
    /// minutes after `now`, never after the next regular run.
    pub fn retry_at(&self, anchor: i64, failures: u32, now: i64) -> i64 {
        let delay = FIRST_RETRY_SECS.saturating_mul(1i64 << failures.saturating_sub(1).min(30));
        now.saturating_add(delay).min(self.next_after(anchor, now))
    }

    /// Seconds between runs on average (a week over its days for a
    /// calendar), to tell whether a change runs backups more often.
    pub fn mean_gap_secs(&self) -> i64 {
        match self {
            Cadence::Every(i) => i.seconds(),
            Cadence::At(c) => 7 * 86_400 / i64::from(c.weekdays.count_ones().max(1)),
        }
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
    Cadence::Every(interval).retry_at(scheduled, failures, now)
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

    /// Unix seconds of a UTC wall-clock time.
    fn utc(y: i16, mo: i8, d: i8, h: i8, mi: i8) -> i64 {
        jiff::civil::date(y, mo, d)
            .at(h, mi, 0, 0)
            .to_zoned_datetime(TimeZone::UTC)
            .unwrap()
            .timestamp()
            .as_second()
    }

    fn zone(name: &str) -> TimeZone {
        parse_time_zone(name).unwrap().0
    }

    fn daily(at: &str, tz: &str) -> Calendar {
        Calendar::new(parse_time_of_day(at).unwrap(), EVERY_DAY, zone(tz)).unwrap()
    }

    #[test]
    fn times_of_day_are_24_hour_hh_mm() {
        assert_eq!(parse_time_of_day("00:00"), Ok(0));
        assert_eq!(parse_time_of_day("03:30"), Ok(210));
        assert_eq!(parse_time_of_day("7:05"), Ok(425));
        assert_eq!(parse_time_of_day("23:59"), Ok(1439));
        for bad in [
            "",
            "24:00",
            "12:60",
            "12",
            "12:5",
            "-1:00",
            "+1:00",
            "1:2:3",
            "12:00 ",
            "١٢:٠٠",
            "99999999999999999999:00",
            "12:0a",
            ":30",
        ] {
            assert_eq!(
                parse_time_of_day(bad),
                Err(ScheduleError::TimeOfDay),
                "{bad:?}"
            );
        }
        assert_eq!(format_time_of_day(425), "07:05");
    }

    #[test]
    fn time_zones_are_iana_names_only() {
        assert_eq!(parse_time_zone("europe/berlin").unwrap().1, "Europe/Berlin");
        assert_eq!(parse_time_zone("UTC").unwrap().1, "UTC");
        // A link name the system may lack (Debian keeps it in tzdata-legacy).
        assert_eq!(parse_time_zone("US/Eastern").unwrap().1, "US/Eastern");
        for bad in [
            "",
            "localtime",
            "posixrules",
            "Factory",
            "posix/Europe/Berlin",
            "right/UTC",
            "Mars/Olympus_Mons",
            "../../../../etc/passwd",
            "/etc/localtime",
            "Europe/Berlin\0",
            "Europe/Berlin ",
            &"A".repeat(65),
        ] {
            assert!(parse_time_zone(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn weekday_sets_are_monday_first() {
        let mask = weekday_bit(Weekday::Monday) | weekday_bit(Weekday::Sunday);
        assert_eq!(mask, 0b100_0001);
        assert_eq!(weekdays_of(mask), [Weekday::Monday, Weekday::Sunday]);
        assert!(Calendar::new(0, 0, TimeZone::UTC).is_err());
        assert!(Calendar::new(1440, EVERY_DAY, TimeZone::UTC).is_err());
    }

    #[test]
    fn daily_runs_at_local_time_through_both_dst_changes() {
        let c = daily("03:00", "Europe/Berlin");
        // Winter: 03:00 CET is 02:00 UTC.
        let t = c.next_after(utc(2026, 3, 27, 12, 0));
        assert_eq!(t, utc(2026, 3, 28, 2, 0));
        // Spring forward (29 March, 02:00 → 03:00): 03:00 CEST is 01:00 UTC.
        let t = c.next_after(t);
        assert_eq!(t, utc(2026, 3, 29, 1, 0));
        assert_eq!(c.next_after(t), utc(2026, 3, 30, 1, 0));
        // Autumn (25 October, 03:00 → 02:00): the first day back on CET.
        let t = c.next_after(utc(2026, 10, 24, 12, 0));
        assert_eq!(t, utc(2026, 10, 25, 2, 0));
        // Always exactly one run per local day across the change.
        let mut t = utc(2026, 3, 20, 0, 0);
        let mut days = std::collections::BTreeSet::new();
        while t < utc(2026, 11, 5, 0, 0) {
            t = c.next_after(t);
            let local = jiff::Timestamp::from_second(t)
                .unwrap()
                .to_zoned_datetime(c.zone.clone());
            assert_eq!((local.hour(), local.minute()), (3, 0), "{local}");
            assert!(days.insert(local.date()), "two runs on {}", local.date());
        }
    }

    #[test]
    fn a_skipped_time_runs_an_hour_later_and_a_repeated_one_once() {
        let c = daily("02:30", "Europe/Berlin");
        // 29 March 2026 has no 02:30 in Berlin: the run is at 03:30 CEST.
        let t = c.next_after(utc(2026, 3, 28, 12, 0));
        assert_eq!(t, utc(2026, 3, 29, 1, 30));
        // The next day is back to 02:30 (CEST).
        assert_eq!(c.next_after(t), utc(2026, 3, 30, 0, 30));
        // 25 October has 02:30 twice (CEST, then CET): it runs the first
        // time only, then the next day.
        let first = c.next_after(utc(2026, 10, 24, 12, 0));
        assert_eq!(first, utc(2026, 10, 25, 0, 30));
        assert_eq!(c.next_after(first), utc(2026, 10, 26, 1, 30));
        // Even when the scheduler looks again during the second 02:30.
        assert_eq!(
            c.next_after(utc(2026, 10, 25, 1, 30)),
            utc(2026, 10, 26, 1, 30)
        );
    }

    #[test]
    fn weekly_runs_on_its_days_only() {
        // Mondays and Thursdays at 21:30 in New York (EDT, UTC-4, in May).
        let days = weekday_bit(Weekday::Monday) | weekday_bit(Weekday::Thursday);
        let c = Calendar::new(21 * 60 + 30, days, zone("America/New_York")).unwrap();
        // Friday 1 May 2026, noon UTC: next is Monday 4 May, 21:30 EDT.
        let t = c.next_after(utc(2026, 5, 1, 12, 0));
        assert_eq!(t, utc(2026, 5, 5, 1, 30));
        let t = c.next_after(t);
        assert_eq!(t, utc(2026, 5, 8, 1, 30)); // Thursday 7 May, local
        // Exactly at a run's time: that one is not "after".
        assert_eq!(c.next_after(t - 1), t);
        // Sunday only, asked on a Sunday after its time: a week later.
        let sunday = Calendar::new(60, weekday_bit(Weekday::Sunday), TimeZone::UTC).unwrap();
        assert_eq!(
            sunday.next_after(utc(2026, 5, 3, 2, 0)),
            utc(2026, 5, 10, 1, 0)
        );
    }

    #[test]
    fn calendar_schedules_run_missed_times_once_and_retry_before_the_next() {
        let c = Cadence::At(daily("04:00", "UTC"));
        let due = utc(2026, 6, 1, 4, 0);
        // The panel was down for three days: one run now, then 04:00 again.
        let now = due + 3 * 86_400 + 600;
        assert_eq!(c.next_after(due, now), utc(2026, 6, 5, 4, 0));
        // Retries back off but never pass the next regular run.
        assert_eq!(c.retry_at(due, 1, due + 5), due + 65);
        assert_eq!(c.retry_at(due, 40, due + 5), due + 86_400);
        // Saving at 03:59 runs at 04:00 the same day.
        assert_eq!(c.first_run(due - 60), due);
        assert_eq!(c.mean_gap_secs(), 86_400);
        // Far past what calendars reach: never.
        assert_eq!(c.next_after(0, i64::MAX / 2), i64::MAX);
    }
}

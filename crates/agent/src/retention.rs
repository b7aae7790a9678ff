//! Retention by policy, restic's `--keep-*` rules computed over the index:
//! newest first, `keep_last` keeps the n newest, `keep_daily` the newest of
//! each of the n most recent days that have snapshots (likewise weekly by ISO
//! week, monthly, yearly), `keep_within` everything newer than the newest
//! snapshot minus the duration. On top of the policy, locked snapshots and
//! fresh safety snapshots are always kept. Times are UTC.

use api::agent::RetentionPolicy;
use time::{Date, Month, OffsetDateTime};

use crate::AgentError;
use crate::index::Entry;

/// How far back `keep_within` reaches: years, months, days, hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Within {
    years: i32,
    months: i32,
    days: i64,
    hours: i64,
}

fn parse_within(raw: &str) -> Result<Within, AgentError> {
    let bad = || {
        AgentError::bad_request(
            "invalid_keep_within",
            "keep_within must look like 1y2m3d4h (years, months, days, hours)",
        )
    };
    if raw.is_empty() || raw.len() > 32 {
        return Err(bad());
    }
    let mut w = Within::default();
    let mut seen = String::new();
    let mut num = String::new();
    for c in raw.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        if num.is_empty() || num.len() > 6 || seen.contains(c) {
            return Err(bad());
        }
        let n: i64 = num.parse().map_err(|_| bad())?;
        match c {
            'y' => w.years = n as i32,
            'm' => w.months = n as i32,
            'd' => w.days = n,
            'h' => w.hours = n,
            _ => return Err(bad()),
        }
        seen.push(c);
        num.clear();
    }
    if !num.is_empty() {
        return Err(bad());
    }
    Ok(w)
}

/// `t` moved back by whole calendar years and months (the day clamped to
/// the month's length), then days and hours.
fn back(t: OffsetDateTime, w: Within) -> OffsetDateTime {
    let total = t.year() * 12 + (t.month() as i32 - 1) - (w.years * 12 + w.months);
    let (year, month0) = (total.div_euclid(12), total.rem_euclid(12));
    let month = Month::try_from(month0 as u8 + 1).unwrap_or(Month::January);
    let day = t.day().min(time::util::days_in_month(month, year));
    let moved = Date::from_calendar_date(year, month, day)
        .map(|d| t.replace_date(d))
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    moved - time::Duration::days(w.days) - time::Duration::hours(w.hours)
}

/// Checks a policy's syntax (the only part that can be wrong).
pub fn validate(policy: &RetentionPolicy) -> Result<(), AgentError> {
    if let Some(w) = policy.keep_within.as_deref().filter(|w| !w.is_empty()) {
        parse_within(w)?;
    }
    Ok(())
}

/// The entries `policy` does not keep. `entries` are newest first (as the
/// index holds them). An empty policy keeps everything.
pub fn removals(
    entries: &[Entry],
    policy: &RetentionPolicy,
    now: OffsetDateTime,
) -> Result<Vec<Entry>, AgentError> {
    validate(policy)?;
    if policy.is_empty() {
        return Ok(Vec::new());
    }
    let mut sorted: Vec<&Entry> = entries.iter().collect();
    sorted.sort_by_key(|e| std::cmp::Reverse(e.time));
    let cutoff = match policy.keep_within.as_deref().filter(|w| !w.is_empty()) {
        Some(w) => sorted
            .first()
            .map(|newest| back(newest.time, parse_within(w).unwrap_or_default())),
        None => None,
    };

    type BucketFn = fn(&OffsetDateTime) -> i64;
    let day: BucketFn = |t| t.date().to_julian_day() as i64;
    let week: BucketFn = |t| {
        let (y, w, _) = t.date().to_iso_week_date();
        y as i64 * 100 + w as i64
    };
    let month: BucketFn = |t| t.year() as i64 * 100 + t.month() as i64;
    let year: BucketFn = |t| t.year() as i64;
    let mut buckets: Vec<(u32, BucketFn, Option<i64>)> = [
        (policy.keep_daily, day),
        (policy.keep_weekly, week),
        (policy.keep_monthly, month),
        (policy.keep_yearly, year),
    ]
    .into_iter()
    .map(|(n, f)| (n.unwrap_or(0), f, None))
    .collect();
    let mut last_left = policy.keep_last.unwrap_or(0);

    let mut out = Vec::new();
    for e in sorted {
        let mut keep = false;
        if last_left > 0 {
            last_left -= 1;
            keep = true;
        }
        for (left, bucket, last) in buckets.iter_mut() {
            let b = bucket(&e.time);
            if *left > 0 && *last != Some(b) {
                *last = Some(b);
                *left -= 1;
                keep = true;
            }
        }
        if cutoff.is_some_and(|c| e.time > c) {
            keep = true;
        }
        if !(keep || e.locked() || e.is_fresh_safety_snapshot(now)) {
            out.push(e.clone());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::SnapshotId;
    use time::macros::datetime;

    fn entry(n: u8, t: OffsetDateTime, tags: &[&str]) -> Entry {
        let id = SnapshotId::parse(&format!("{n:02x}").repeat(32)).unwrap();
        Entry {
            id: id.clone(),
            current: id,
            time: t,
            tree: format!("t{n}"),
            tags: tags.iter().map(|s| s.to_string()).collect(),
            size: None,
        }
    }

    fn ids(v: &[Entry]) -> Vec<u8> {
        v.iter()
            .map(|e| u8::from_str_radix(&e.id.as_str()[..2], 16).unwrap())
            .collect()
    }

    fn policy(f: impl FnOnce(&mut RetentionPolicy)) -> RetentionPolicy {
        let mut p = RetentionPolicy::default();
        f(&mut p);
        p
    }

    const NOW: OffsetDateTime = datetime!(2026-06-30 12:00 UTC);

    #[test]
    fn keep_last_keeps_the_newest_and_every_locked_one() {
        let es: Vec<Entry> = (1..=6)
            .map(|n| {
                let tags: &[&str] = if n == 1 { &["locked"] } else { &[] };
                entry(
                    n,
                    datetime!(2026-06-01 00:00 UTC) + time::Duration::hours(n as i64),
                    tags,
                )
            })
            .collect();
        let gone = removals(&es, &policy(|p| p.keep_last = Some(3)), NOW).unwrap();
        assert_eq!(ids(&gone), vec![3, 2]);
    }

    #[test]
    fn daily_weekly_monthly_keep_the_newest_of_each_period() {
        // Two a day for ten days in June.
        let mut es = Vec::new();
        for d in 0..10u8 {
            for h in [6u8, 18] {
                let t = datetime!(2026-06-01 00:00 UTC)
                    + time::Duration::days(d as i64)
                    + time::Duration::hours(h as i64);
                es.push(entry(d * 2 + (h / 18) + 1, t, &[]));
            }
        }
        let gone = removals(&es, &policy(|p| p.keep_daily = Some(3)), NOW).unwrap();
        assert_eq!(gone.len(), 20 - 3);
        for kept in [20u8, 18, 16] {
            assert!(!ids(&gone).contains(&kept), "{kept} must stay");
        }
        let gone = removals(&es, &policy(|p| p.keep_monthly = Some(5)), NOW).unwrap();
        assert_eq!(gone.len(), 19, "one month: only its newest stays");
        // June 1-10 2026 spans ISO weeks 23 and 24 (Mon June 8).
        let gone = removals(&es, &policy(|p| p.keep_weekly = Some(2)), NOW).unwrap();
        assert_eq!(gone.len(), 18);
        assert!(
            !ids(&gone).contains(&14),
            "Sunday June 7 18:00 is week 23's newest"
        );
    }

    #[test]
    fn keep_within_counts_back_from_the_newest_snapshot() {
        let es: Vec<Entry> = (0..10u8)
            .map(|d| {
                entry(
                    d + 1,
                    datetime!(2026-01-01 00:00 UTC) + time::Duration::days(d as i64),
                    &[],
                )
            })
            .collect();
        let gone = removals(&es, &policy(|p| p.keep_within = Some("3d".into())), NOW).unwrap();
        // Newest is Jan 10; strictly newer than Jan 7 stays: 8, 9, 10.
        assert_eq!(gone.len(), 7);
        assert!(removals(&es, &policy(|p| p.keep_within = Some("3w".into())), NOW).is_err());
        assert_eq!(
            back(
                datetime!(2026-03-31 10:00 UTC),
                parse_within("1m1h").unwrap()
            ),
            datetime!(2026-02-28 09:00 UTC)
        );
        assert_eq!(
            back(
                datetime!(2026-01-15 00:00 UTC),
                parse_within("1y2m").unwrap()
            ),
            datetime!(2024-11-15 00:00 UTC)
        );
    }

    #[test]
    fn fresh_safety_snapshots_and_empty_policies_keep_everything_they_should() {
        let es = vec![
            entry(2, NOW - time::Duration::hours(1), &[]),
            entry(1, NOW - time::Duration::hours(2), &["pre-restore"]),
            entry(0, NOW - time::Duration::days(3), &["pre-restore"]),
        ];
        let gone = removals(&es, &policy(|p| p.keep_last = Some(1)), NOW).unwrap();
        assert_eq!(
            ids(&gone),
            vec![0],
            "an old safety snapshot is not protected"
        );
        assert!(
            removals(&es, &RetentionPolicy::default(), NOW)
                .unwrap()
                .is_empty()
        );
    }
}

//! Retention by policy: restic's `--keep-*` rules (restic's
//! `ApplyPolicy`) computed over the index, so locked and fresh safety
//! snapshots can be exempted. Newest first, `keep_last` keeps the n newest,
//! `keep_daily` the newest of each of the n most recent days that have
//! snapshots (likewise weekly by ISO week, monthly, yearly; restic 0.16+ also
//! keeps the oldest snapshot while a rule has counts left), `keep_within`
//! everything newer than the newest snapshot (not in the future) minus the
//! duration, moved back like Go's `AddDate`. Periods are read in each
//! snapshot's own time offset, as restic does.
//!
//! A policy without rules keeps everything, and so does one whose only rule
//! is a zero `keep_within` (`0h`): restic calls that "no policy". On top of
//! the policy, locked snapshots, fresh safety snapshots and the request's
//! `keep_snapshot` are always kept.

use api::SnapshotRef;
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

impl Within {
    fn is_zero(self) -> bool {
        self == Within::default()
    }
}

/// Which restic the plan must agree with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Semantics {
    /// restic 0.16+: a rule with counts left also keeps the oldest snapshot.
    pub keep_oldest: bool,
}

impl Semantics {
    pub fn of(version: engine::Version) -> Self {
        Self {
            keep_oldest: version.forget_keeps_oldest(),
        }
    }
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

/// `t.AddDate(-years, -months, -days).Add(-hours)` as Go computes it: the
/// month moves first, then the day is counted from the first of that month,
/// so an overflowing day rolls into the next month (March 31 minus a month
/// is March 3, not February 28).
fn back(t: OffsetDateTime, w: Within) -> OffsetDateTime {
    let total = t.year() * 12 + (t.month() as i32 - 1) - (w.years * 12 + w.months);
    let (year, month0) = (total.div_euclid(12), total.rem_euclid(12));
    let month = Month::try_from(month0 as u8 + 1).unwrap_or(Month::January);
    let moved = Date::from_calendar_date(year, month, 1)
        .ok()
        .and_then(|first| first.checked_add(time::Duration::days(t.day() as i64 - 1 - w.days)))
        .map(|d| t.replace_date(d))
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    moved - time::Duration::hours(w.hours)
}

/// The `keep_within` rule, `None` when absent or zero.
fn within_of(policy: &RetentionPolicy) -> Result<Option<Within>, AgentError> {
    match policy.keep_within.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(w) => Ok(Some(parse_within(w)?).filter(|w| !w.is_zero())),
    }
}

/// Checks a policy's syntax (the only part that can be wrong).
pub fn validate(policy: &RetentionPolicy) -> Result<(), AgentError> {
    within_of(policy)?;
    if let Some(id) = &policy.keep_snapshot {
        SnapshotRef::parse(id).map_err(|_| {
            AgentError::bad_request("invalid_snapshot_id", "keep_snapshot is not a snapshot ID")
        })?;
    }
    Ok(())
}

/// True when the policy has no rule that keeps anything, so it removes
/// nothing (restic: "no policy was specified").
pub fn keeps_everything(policy: &RetentionPolicy) -> Result<bool, AgentError> {
    let counts = [
        policy.keep_last,
        policy.keep_daily,
        policy.keep_weekly,
        policy.keep_monthly,
        policy.keep_yearly,
    ];
    Ok(counts.iter().all(|n| n.unwrap_or(0) == 0) && within_of(policy)?.is_none())
}

/// The entries `policy` does not keep. An empty policy keeps everything.
pub fn removals(
    entries: &[Entry],
    policy: &RetentionPolicy,
    now: OffsetDateTime,
    semantics: Semantics,
) -> Result<Vec<Entry>, AgentError> {
    validate(policy)?;
    if keeps_everything(policy)? || entries.is_empty() {
        return Ok(Vec::new());
    }
    let keep_snapshot = policy
        .keep_snapshot
        .as_deref()
        .and_then(|id| SnapshotRef::parse(id).ok());
    // Newest first; equal times keep their order (restic sorts stably).
    let mut sorted: Vec<&Entry> = entries.iter().collect();
    sorted.sort_by_key(|e| std::cmp::Reverse(e.time));
    // The newest snapshot that is not in the future.
    let latest = sorted
        .iter()
        .map(|e| e.time)
        .filter(|t| *t < now)
        .max()
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let cutoff = within_of(policy)?.map(|w| back(latest, w));

    type BucketFn = fn(&OffsetDateTime, usize) -> i64;
    let always: BucketFn = |_, nr| nr as i64;
    let day: BucketFn = |t, _| t.date().to_julian_day() as i64;
    let week: BucketFn = |t, _| {
        let (y, w, _) = t.date().to_iso_week_date();
        y as i64 * 100 + w as i64
    };
    let month: BucketFn = |t, _| t.year() as i64 * 100 + t.month() as i64;
    let year: BucketFn = |t, _| t.year() as i64;
    let mut buckets: Vec<(u32, BucketFn, Option<i64>)> = [
        (policy.keep_last, always),
        (policy.keep_daily, day),
        (policy.keep_weekly, week),
        (policy.keep_monthly, month),
        (policy.keep_yearly, year),
    ]
    .into_iter()
    .map(|(n, f)| (n.unwrap_or(0), f, None))
    .collect();

    let oldest = sorted.len() - 1;
    let mut out = Vec::new();
    for (nr, e) in sorted.into_iter().enumerate() {
        let mut keep = cutoff.is_some_and(|c| e.time > c);
        for (left, bucket, last) in buckets.iter_mut() {
            if *left == 0 {
                continue;
            }
            let b = bucket(&e.time, nr);
            if *last != Some(b) || (semantics.keep_oldest && nr == oldest) {
                *last = Some(b);
                *left -= 1;
                keep = true;
            }
        }
        let exempt = e.locked()
            || e.is_fresh_safety_snapshot(now)
            || keep_snapshot
                .as_ref()
                .is_some_and(|r| r.matches(&e.id) || r.matches(&e.current));
        if !(keep || exempt) {
            out.push(e.clone());
        }
    }
    Ok(out)
}

#[cfg(test)]
#[path = "retention_vs_restic.rs"]
mod versus_restic;

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
            nested: None,
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
    const OLD: Semantics = Semantics { keep_oldest: false };

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
        let gone = removals(&es, &policy(|p| p.keep_last = Some(3)), NOW, OLD).unwrap();
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
        let gone = removals(&es, &policy(|p| p.keep_daily = Some(3)), NOW, OLD).unwrap();
        assert_eq!(gone.len(), 20 - 3);
        for kept in [20u8, 18, 16] {
            assert!(!ids(&gone).contains(&kept), "{kept} must stay");
        }
        let gone = removals(&es, &policy(|p| p.keep_monthly = Some(5)), NOW, OLD).unwrap();
        assert_eq!(gone.len(), 19, "one month: only its newest stays");
        // June 1-10 2026 spans ISO weeks 23 and 24 (Mon June 8).
        let gone = removals(&es, &policy(|p| p.keep_weekly = Some(2)), NOW, OLD).unwrap();
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
        let gone = removals(
            &es,
            &policy(|p| p.keep_within = Some("3d".into())),
            NOW,
            OLD,
        )
        .unwrap();
        // Newest is Jan 10; strictly newer than Jan 7 stays: 8, 9, 10.
        assert_eq!(gone.len(), 7);
        assert!(
            removals(
                &es,
                &policy(|p| p.keep_within = Some("3w".into())),
                NOW,
                OLD
            )
            .is_err()
        );
        assert_eq!(
            back(
                datetime!(2026-03-31 10:00 UTC),
                parse_within("1m1h").unwrap()
            ),
            datetime!(2026-03-03 09:00 UTC),
            "Go's AddDate rolls February 31 over to March 3"
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
        let gone = removals(&es, &policy(|p| p.keep_last = Some(1)), NOW, OLD).unwrap();
        assert_eq!(
            ids(&gone),
            vec![0],
            "an old safety snapshot is not protected"
        );
        assert!(
            removals(&es, &RetentionPolicy::default(), NOW, OLD)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn a_policy_that_keeps_nothing_removes_nothing() {
        let es: Vec<Entry> = (1..=4)
            .map(|n| entry(n, NOW - time::Duration::days(n as i64), &[]))
            .collect();
        for within in ["0h", "0d", "0y0m0d0h", " "] {
            let p = policy(|p| {
                p.keep_within = Some(within.into());
                p.keep_last = Some(0);
            });
            assert!(
                removals(&es, &p, NOW, OLD).unwrap().is_empty(),
                "{within:?}"
            );
        }
    }

    #[test]
    fn keep_snapshot_is_never_removed() {
        // A clock skew put an older snapshot "after" the run's own one.
        let es = vec![
            entry(9, NOW + time::Duration::hours(5), &[]),
            entry(1, NOW, &[]),
        ];
        let own = es[1].id.as_str().to_owned();
        let p = policy(|p| {
            p.keep_last = Some(1);
            p.keep_snapshot = Some(own[..8].to_owned());
        });
        assert!(removals(&es, &p, NOW, OLD).unwrap().is_empty());
        let p = policy(|p| p.keep_snapshot = Some("not hex".into()));
        assert!(removals(&es, &p, NOW, OLD).is_err());
    }

    #[test]
    fn newer_restic_keeps_the_oldest_while_a_rule_has_counts_left() {
        // Three snapshots on one day; keep_daily 3 has counts left at the end.
        let es: Vec<Entry> = (1..=3)
            .map(|n| {
                entry(
                    n,
                    datetime!(2026-06-01 00:00 UTC) + time::Duration::hours(n as i64),
                    &[],
                )
            })
            .collect();
        let p = policy(|p| p.keep_daily = Some(3));
        assert_eq!(ids(&removals(&es, &p, NOW, OLD).unwrap()), vec![2, 1]);
        let new = Semantics { keep_oldest: true };
        assert_eq!(ids(&removals(&es, &p, NOW, new).unwrap()), vec![2]);
    }
}

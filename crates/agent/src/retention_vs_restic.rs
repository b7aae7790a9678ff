//! Our retention plan against restic's own: random policies over random
//! snapshot sets in a real repository, compared with
//! `restic forget --dry-run --json` for the same policy. The only allowed
//! difference is the documented exemptions (locked snapshots and the
//! request's `keep_snapshot`), which we keep and restic may remove.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use api::SnapshotId;
use api::agent::RetentionPolicy;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{Semantics, keeps_everything, removals};
use crate::index::Entry;

const PASSWORD: &str = "retention-vs-restic";

/// A small deterministic generator (xorshift), so a failure is repeatable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn restic(repo: &Path, args: &[&str]) -> String {
    let out = Command::new("restic")
        .args(["--repo", repo.to_str().unwrap(), "--no-cache"])
        .args(args)
        .env("RESTIC_PASSWORD", PASSWORD)
        .output()
        .expect("restic runs");
    assert!(
        out.status.success(),
        "restic {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn restic_version() -> engine::Version {
    let out = Command::new("restic").arg("version").output().unwrap();
    engine::Version::parse_banner(&String::from_utf8_lossy(&out.stdout)).unwrap()
}

/// A repository with snapshots at `times` (`YYYY-MM-DD HH:MM:SS`, local
/// time as restic reads `--time`); `locked` of them tagged `locked`.
fn repository(dir: &Path, times: &[String], locked: &[usize]) -> Vec<Entry> {
    let repo = dir.join("repo");
    let src = dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    restic(&repo, &["init"]);
    for (n, t) in times.iter().enumerate() {
        std::fs::write(src.join("file"), format!("{n}")).unwrap();
        let mut args = vec!["backup", "--host", "h", "--time", t.as_str()];
        if locked.contains(&n) {
            args.extend(["--tag", "locked"]);
        }
        args.push(src.to_str().unwrap());
        restic(&repo, &args);
    }
    let listed: serde_json::Value =
        serde_json::from_str(&restic(&repo, &["snapshots", "--json"])).unwrap();
    listed
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let id = SnapshotId::parse(s["id"].as_str().unwrap()).unwrap();
            Entry {
                id: id.clone(),
                current: id,
                time: OffsetDateTime::parse(s["time"].as_str().unwrap(), &Rfc3339).unwrap(),
                tree: s["tree"].as_str().unwrap().to_owned(),
                tags: s["tags"]
                    .as_array()
                    .map(|t| t.iter().map(|v| v.as_str().unwrap().to_owned()).collect())
                    .unwrap_or_default(),
                size: None,
                nested: None,
            }
        })
        .collect()
}

fn random_times(rng: &mut Rng, count: usize) -> Vec<String> {
    // Month ends and year ends, where calendar arithmetic goes wrong.
    let mut out: Vec<String> = [
        "2026-03-31 10:00:00",
        "2026-02-28 23:00:00",
        "2025-12-31 23:59:59",
        "2026-01-01 00:00:01",
        "2024-02-29 12:00:00",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let base = time::macros::datetime!(2023-01-01 00:00);
    while out.len() < count {
        // Clustered: a random day, then a few snapshots around it.
        let day = base + time::Duration::minutes(rng.below(3 * 365 * 24 * 60) as i64);
        for _ in 0..=rng.below(3) {
            let t = day + time::Duration::minutes(rng.below(36 * 60) as i64);
            out.push(format!(
                "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
                t.year(),
                t.month() as u8,
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            ));
        }
    }
    out.sort();
    out.dedup();
    out
}

fn random_policy(rng: &mut Rng, entries: &[Entry]) -> RetentionPolicy {
    let mut count = || match rng.below(3) {
        0 => Some(1 + rng.below(6) as u32),
        1 => Some(0),
        _ => None,
    };
    let mut p = RetentionPolicy {
        keep_last: count(),
        keep_daily: count(),
        keep_weekly: count(),
        keep_monthly: count(),
        keep_yearly: count(),
        ..RetentionPolicy::default()
    };
    p.keep_within = match rng.below(8) {
        0 => Some(format!("{}d", rng.below(40))),
        1 => Some(format!("{}m", rng.below(14))),
        2 => Some(format!(
            "{}y{}m{}d",
            rng.below(2),
            rng.below(3),
            rng.below(40)
        )),
        3 => Some(format!("{}h", rng.below(100))),
        4 => Some("0h".into()),
        _ => None,
    };
    if rng.below(3) == 0 {
        let e = &entries[rng.below(entries.len() as u64) as usize];
        p.keep_snapshot = Some(e.id.as_str()[..8].to_owned());
    }
    p
}

fn restic_args(p: &RetentionPolicy) -> Vec<String> {
    let mut args = Vec::new();
    for (flag, v) in [
        ("--keep-last", p.keep_last),
        ("--keep-daily", p.keep_daily),
        ("--keep-weekly", p.keep_weekly),
        ("--keep-monthly", p.keep_monthly),
        ("--keep-yearly", p.keep_yearly),
    ] {
        if let Some(n) = v.filter(|n| *n > 0) {
            args.extend([flag.to_owned(), n.to_string()]);
        }
    }
    if let Some(w) = &p.keep_within {
        args.extend(["--keep-within".to_owned(), w.clone()]);
    }
    args
}

/// The IDs restic's dry run would remove.
fn restic_removes(repo: &Path, p: &RetentionPolicy) -> BTreeSet<String> {
    let mut args = vec!["forget".to_owned(), "--dry-run".into(), "--json".into()];
    args.extend(restic_args(p));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = restic(repo, &args);
    let groups: serde_json::Value = match out.lines().find(|l| l.starts_with('[')) {
        Some(line) => serde_json::from_str(line).unwrap(),
        None => return BTreeSet::new(),
    };
    groups
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["remove"].as_array().cloned().unwrap_or_default())
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn our_plan_is_restics_plan_but_for_the_exemptions() {
    let semantics = Semantics::of(restic_version());
    let now = OffsetDateTime::now_utc();
    let mut compared = 0;
    for seed in [0x5eed_0001_u64, 0xfeed_beef_2026] {
        let mut rng = Rng(seed);
        let t = tempfile::tempdir().unwrap();
        let count = 16 + rng.below(10) as usize;
        let times = random_times(&mut rng, count);
        let locked = [rng.below(times.len() as u64) as usize];
        let entries = repository(t.path(), &times, &locked);
        assert_eq!(entries.len(), times.len());
        for _ in 0..20 {
            let p = random_policy(&mut rng, &entries);
            let ours: BTreeSet<String> = removals(&entries, &p, now, semantics)
                .unwrap()
                .iter()
                .map(|e| e.id.as_str().to_owned())
                .collect();
            if keeps_everything(&p).unwrap() {
                assert!(ours.is_empty(), "{p:?}");
                continue;
            }
            let theirs = restic_removes(&t.path().join("repo"), &p);
            let exempt = |id: &String| {
                let e = entries.iter().find(|e| e.id.as_str() == id).unwrap();
                e.locked()
                    || p.keep_snapshot
                        .as_deref()
                        .is_some_and(|k| id.starts_with(k))
            };
            let expected: BTreeSet<String> = theirs.into_iter().filter(|id| !exempt(id)).collect();
            assert_eq!(
                ours, expected,
                "seed {seed:#x}, policy {p:?}, times {times:?}"
            );
            compared += 1;
        }
    }
    assert!(compared >= 20, "too few policies compared: {compared}");
}

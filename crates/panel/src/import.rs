//! What the PHP/Go extension's rows mean here: keys, key history, schedules
//! and retention (from `restic_policies`, or the legacy `restic_schedules` /
//! `restic_pruning` read by column name), notes and job history. Pure: the
//! rows come from [`crate::storage::extension`], the result goes to the
//! import service, which checks keys with the agents and writes.
//!
//! Nothing here guesses: a value that cannot be read is reported and left
//! out, and a column that means nothing known is named in the report.

use std::collections::{BTreeMap, HashSet};

use api::{Secret, ServerUuid};

use crate::schedule::{self, Interval, Unit};
use crate::storage::extension::{ExtensionSource, SourceRow, SourceTable};
use crate::storage::{ImportedJob, Policy};

/// Longest note kept (longer ones are cut and reported).
pub const MAX_NOTE_CHARS: usize = 2_000;
/// Longest job message kept.
const MAX_MESSAGE_CHARS: usize = 2_000;
/// A retention count above this is refused, as in the schedule form.
const MAX_KEEP: i64 = 100_000;

/// A key the extension held for a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceKey {
    pub key: Secret,
    /// When it was set or recorded (Unix seconds), if known.
    pub at: Option<i64>,
    pub owner_username: Option<String>,
}

/// Where a schedule came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyFrom {
    Policies,
    Legacy,
}

impl PolicyFrom {
    pub fn table(self) -> &'static str {
        match self {
            PolicyFrom::Policies => "restic_policies",
            PolicyFrom::Legacy => "restic_schedules/restic_pruning",
        }
    }
}

/// A schedule and retention in this panel's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappedPolicy {
    pub policy: Policy,
    pub from: PolicyFrom,
}

/// What one server gets from the extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerPlan {
    pub uuid: ServerUuid,
    pub key: Option<SourceKey>,
    /// Earlier keys, oldest first (the current one may be among them).
    pub history: Vec<SourceKey>,
    pub policy: Option<MappedPolicy>,
    /// `(snapshot ID, note)`.
    pub notes: Vec<(String, String)>,
    pub jobs: Vec<ImportedJob>,
    pub problems: Vec<String>,
}

impl ServerPlan {
    fn new(uuid: ServerUuid) -> Self {
        Self {
            uuid,
            key: None,
            history: Vec::new(),
            policy: None,
            notes: Vec::new(),
            jobs: Vec::new(),
            problems: Vec::new(),
        }
    }
}

/// A server the extension knows and this panel does not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownServer {
    pub uuid: String,
    /// Which tables name it (`restic`, `3 notes`, …).
    pub rows: Vec<String>,
}

/// The whole import, before keys are checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub servers: Vec<ServerPlan>,
    pub unknown: Vec<UnknownServer>,
    /// About tables and columns, not one server.
    pub problems: Vec<String>,
    /// Rows read from the legacy tables.
    pub legacy_rows: usize,
    /// Tables found, with their row counts.
    pub tables: Vec<(String, usize)>,
}

/// Builds the plan: `known` tells which server UUIDs this panel has.
pub fn plan(source: &ExtensionSource, known: &HashSet<ServerUuid>, now: i64) -> Plan {
    let mut out = Plan::default();
    for (name, t) in &source.tables {
        out.tables.push((name.clone(), t.rows.len()));
        for odd in &t.odd_columns {
            out.problems.push(format!(
                "{name}: a column named {odd:?} cannot be read; left out"
            ));
        }
    }
    if source.table("restic").is_none() && source.table("restic_policies").is_none() {
        out.problems.push(format!(
            "database {:?} has neither `restic` nor `restic_policies`: is this Pterodactyl's database with the extension installed?",
            source.database
        ));
    }
    let mut servers: BTreeMap<ServerUuid, ServerPlan> = BTreeMap::new();
    let mut unknown: BTreeMap<String, BTreeMap<&'static str, usize>> = BTreeMap::new();
    // Routes a row to its server's plan, or counts it for the unknown list.
    let mut route = |raw: Option<&str>, what: &'static str, problems: &mut Vec<String>| {
        let raw = raw.map(str::trim).unwrap_or_default();
        match ServerUuid::parse(&raw.to_ascii_lowercase()) {
            Ok(uuid) if known.contains(&uuid) => Some(uuid),
            Ok(_) => {
                *unknown
                    .entry(raw.to_ascii_lowercase())
                    .or_default()
                    .entry(what)
                    .or_default() += 1;
                None
            }
            Err(_) => {
                problems.push(format!(
                    "{what}: a row names the server {raw:?}, which is not a UUID; left out"
                ));
                None
            }
        }
    };
    let mut global = Vec::new();

    let mut seen_keys = HashSet::new();
    if let Some(t) = source.table("restic") {
        for row in &t.rows {
            let Some(uuid) = route(get(row, "server_uuid"), "restic", &mut global) else {
                continue;
            };
            let p = servers
                .entry(uuid.clone())
                .or_insert_with(|| ServerPlan::new(uuid.clone()));
            if !seen_keys.insert(uuid) {
                p.key = None;
                p.problems
                    .push("restic: more than one key for this server; none imported".into());
                continue;
            }
            match get(row, "encryption_key").map(|k| Secret::new(k.trim())) {
                Some(Ok(key)) => {
                    let at = time_of(row, "updated_at").or_else(|| time_of(row, "created_at"));
                    p.key = Some(SourceKey {
                        key,
                        at,
                        owner_username: None,
                    });
                }
                Some(Err(e)) => p
                    .problems
                    .push(format!("restic: the key cannot be used ({e}); left out")),
                None => p.problems.push("restic: the key is empty; left out".into()),
            }
        }
    }

    if let Some(t) = source.table("restic_key_history") {
        for row in &t.rows {
            let Some(uuid) = route(get(row, "server_uuid"), "restic_key_history", &mut global)
            else {
                continue;
            };
            let p = servers
                .entry(uuid.clone())
                .or_insert_with(|| ServerPlan::new(uuid));
            match get(row, "encryption_key").map(|k| Secret::new(k.trim())) {
                Some(Ok(key)) => p.history.push(SourceKey {
                    key,
                    at: time_of(row, "created_at"),
                    owner_username: get(row, "owner_username")
                        .map(str::to_owned)
                        .filter(|o| !o.is_empty()),
                }),
                _ => p
                    .problems
                    .push("restic_key_history: a key that cannot be used; left out".into()),
            }
        }
        for p in servers.values_mut() {
            p.history.sort_by_key(|k| k.at.unwrap_or(i64::MAX));
        }
    }

    let mut with_policy = HashSet::new();
    if let Some(t) = source.table("restic_policies") {
        report_columns(t, POLICY_COLUMNS, &mut global);
        for row in &t.rows {
            let Some(uuid) = route(get(row, "server_uuid"), "restic_policies", &mut global) else {
                continue;
            };
            let p = servers
                .entry(uuid.clone())
                .or_insert_with(|| ServerPlan::new(uuid.clone()));
            if !with_policy.insert(uuid) {
                p.policy = None;
                p.problems.push(
                    "restic_policies: more than one row for this server; no schedule imported"
                        .into(),
                );
                continue;
            }
            let fields = Fields::read(row, POLICY_COLUMNS);
            p.policy = Some(MappedPolicy {
                policy: map_policy(&fields, now, &mut p.problems),
                from: PolicyFrom::Policies,
            });
        }
    }

    // The legacy tables count only for servers without a `restic_policies` row.
    let mut legacy: BTreeMap<ServerUuid, Fields> = BTreeMap::new();
    let mut legacy_rows: BTreeMap<(ServerUuid, &str), Vec<(&SourceRow, Columns)>> = BTreeMap::new();
    for (name, columns) in [
        ("restic_schedules", SCHEDULE_COLUMNS),
        ("restic_pruning", PRUNING_COLUMNS),
    ] {
        let Some(t) = source.table(name) else {
            continue;
        };
        report_columns(t, columns, &mut global);
        out.legacy_rows += t.rows.len();
        for row in &t.rows {
            let what = if name == "restic_schedules" {
                "restic_schedules"
            } else {
                "restic_pruning"
            };
            let Some(uuid) = route(get(row, "server_uuid"), what, &mut global) else {
                continue;
            };
            if with_policy.contains(&uuid) {
                continue;
            }
            legacy_rows
                .entry((uuid, name))
                .or_default()
                .push((row, columns));
        }
    }
    for ((uuid, table), rows) in legacy_rows {
        if let [(row, columns)] = rows.as_slice() {
            legacy
                .entry(uuid)
                .or_default()
                .merge(Fields::read(row, columns));
        } else {
            let p = servers
                .entry(uuid.clone())
                .or_insert_with(|| ServerPlan::new(uuid));
            p.problems.push(format!(
                "{table}: {} rows for this server; which one counts is unclear, so none was imported",
                rows.len()
            ));
        }
    }
    for (uuid, fields) in legacy {
        let p = servers
            .entry(uuid.clone())
            .or_insert_with(|| ServerPlan::new(uuid));
        p.policy = Some(MappedPolicy {
            policy: map_policy(&fields, now, &mut p.problems),
            from: PolicyFrom::Legacy,
        });
    }

    if let Some(t) = source.table("restic_backup_notes") {
        for row in &t.rows {
            let Some(uuid) = route(get(row, "server_uuid"), "restic_backup_notes", &mut global)
            else {
                continue;
            };
            let p = servers
                .entry(uuid.clone())
                .or_insert_with(|| ServerPlan::new(uuid));
            let note = get(row, "note").map(str::trim).unwrap_or_default();
            if note.is_empty() {
                continue;
            }
            let id = get(row, "backup_id")
                .map(|s| s.trim().to_ascii_lowercase())
                .unwrap_or_default();
            if !(8..=64).contains(&id.len()) || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
                p.problems.push(format!(
                    "restic_backup_notes: a note on {id:?}, which is not a snapshot ID; left out"
                ));
                continue;
            }
            let mut note: String = note
                .chars()
                .filter(|c| !c.is_control() || *c == '\n')
                .collect();
            if note.chars().count() > MAX_NOTE_CHARS {
                note = note.chars().take(MAX_NOTE_CHARS).collect();
                p.problems.push(format!(
                    "restic_backup_notes: the note on {} was cut to {MAX_NOTE_CHARS} characters",
                    &id[..8]
                ));
            }
            if p.notes.iter().any(|(known, _)| *known == id) {
                p.problems.push(format!(
                    "restic_backup_notes: more than one note on {id}; the first was kept"
                ));
                continue;
            }
            p.notes.push((id, note));
        }
    }

    if let Some(t) = source.table("restic_job_history") {
        for row in &t.rows {
            let Some(uuid) = route(get(row, "server_uuid"), "restic_job_history", &mut global)
            else {
                continue;
            };
            let p = servers
                .entry(uuid.clone())
                .or_insert_with(|| ServerPlan::new(uuid));
            match map_job(row) {
                Ok(j) => p.jobs.push(j),
                Err(e) => p
                    .problems
                    .push(format!("restic_job_history: {e}; left out")),
            }
        }
    }

    out.problems.extend(global);
    out.problems.dedup();
    out.servers = servers.into_values().collect();
    out.unknown = unknown
        .into_iter()
        .map(|(uuid, rows)| UnknownServer {
            uuid,
            rows: rows
                .into_iter()
                .map(|(table, n)| {
                    if n == 1 {
                        table.to_owned()
                    } else {
                        format!("{table} ×{n}")
                    }
                })
                .collect(),
        })
        .collect();
    out
}

fn get<'a>(row: &'a SourceRow, column: &str) -> Option<&'a str> {
    row.get(column).and_then(|v| v.as_deref())
}

fn time_of(row: &SourceRow, column: &str) -> Option<i64> {
    get(row, column).and_then(parse_time)
}

/// MySQL's `YYYY-MM-DD HH:MM:SS[.ffffff]` (read in UTC), or Unix seconds.
/// The zero date and anything else unreadable is `None`.
pub fn parse_time(raw: &str) -> Option<i64> {
    let raw = raw.trim();
    if !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit()) {
        return raw.parse::<i64>().ok().filter(|t| *t > 0);
    }
    let format = time::macros::format_description!(
        "[year]-[month]-[day] [hour]:[minute]:[second][optional [.[subsecond]]]"
    );
    let text = raw.trim_end_matches('Z').replacen('T', " ", 1);
    let t = time::PrimitiveDateTime::parse(&text, format)
        .ok()?
        .assume_utc()
        .unix_timestamp();
    (t > 0).then_some(t)
}

/// What a column of a policy table means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Enabled,
    IntervalValue,
    IntervalUnit,
    IntervalIn(Unit),
    LastRun,
    PruneEnabled,
    KeepLast,
    KeepDaily,
    KeepWeekly,
    KeepMonthly,
    KeepYearly,
    KeepWithin,
    Updated,
    /// Known and without meaning here (ids, creation times, prune times).
    Ignored,
}

type Columns = &'static [(&'static str, Field)];

const POLICY_COLUMNS: Columns = &[
    ("server_uuid", Field::Ignored),
    ("id", Field::Ignored),
    ("created_at", Field::Ignored),
    ("updated_at", Field::Updated),
    ("interval_value", Field::IntervalValue),
    ("interval_unit", Field::IntervalUnit),
    ("schedule_enabled", Field::Enabled),
    ("schedule_last_run_at", Field::LastRun),
    ("keep_last", Field::KeepLast),
    ("keep_daily", Field::KeepDaily),
    ("keep_weekly", Field::KeepWeekly),
    ("keep_monthly", Field::KeepMonthly),
    ("keep_yearly", Field::KeepYearly),
    ("keep_within", Field::KeepWithin),
    ("pruning_enabled", Field::PruneEnabled),
    ("pruning_last_run_at", Field::Ignored),
];

/// `restic_schedules` across the versions that had it.
const SCHEDULE_COLUMNS: Columns = &[
    ("server_uuid", Field::Ignored),
    ("id", Field::Ignored),
    ("created_at", Field::Ignored),
    ("updated_at", Field::Updated),
    ("enabled", Field::Enabled),
    ("is_enabled", Field::Enabled),
    ("schedule_enabled", Field::Enabled),
    ("active", Field::Enabled),
    ("interval_value", Field::IntervalValue),
    ("interval", Field::IntervalValue),
    ("interval_unit", Field::IntervalUnit),
    ("unit", Field::IntervalUnit),
    ("interval_minutes", Field::IntervalIn(Unit::Minutes)),
    ("interval_hours", Field::IntervalIn(Unit::Hours)),
    ("interval_days", Field::IntervalIn(Unit::Days)),
    ("last_run_at", Field::LastRun),
    ("schedule_last_run_at", Field::LastRun),
    ("last_run", Field::LastRun),
    ("last_backup_at", Field::LastRun),
];

/// `restic_pruning` across the versions that had it.
const PRUNING_COLUMNS: Columns = &[
    ("server_uuid", Field::Ignored),
    ("id", Field::Ignored),
    ("created_at", Field::Ignored),
    ("updated_at", Field::Ignored),
    ("enabled", Field::PruneEnabled),
    ("is_enabled", Field::PruneEnabled),
    ("pruning_enabled", Field::PruneEnabled),
    ("active", Field::PruneEnabled),
    ("keep_last", Field::KeepLast),
    ("keep_daily", Field::KeepDaily),
    ("keep_weekly", Field::KeepWeekly),
    ("keep_monthly", Field::KeepMonthly),
    ("keep_yearly", Field::KeepYearly),
    ("keep_within", Field::KeepWithin),
    ("last_run_at", Field::Ignored),
    ("pruning_last_run_at", Field::Ignored),
    ("last_pruned_at", Field::Ignored),
];

fn report_columns(t: &SourceTable, known: Columns, problems: &mut Vec<String>) {
    for c in &t.columns {
        if !known.iter().any(|(name, _)| name == c) {
            problems.push(format!(
                "{}.{c}: not a column this importer understands; its values were left out",
                t.name
            ));
        }
    }
}

/// A policy's columns by meaning (the first non-NULL value of each).
#[derive(Debug, Clone, Default)]
struct Fields(BTreeMap<FieldKey, (String, String)>);

type FieldKey = u8;

fn key_of(f: Field) -> FieldKey {
    match f {
        Field::Enabled => 0,
        Field::IntervalValue => 1,
        Field::IntervalUnit => 2,
        Field::IntervalIn(Unit::Minutes) => 3,
        Field::IntervalIn(Unit::Hours) => 4,
        Field::IntervalIn(Unit::Days) => 5,
        Field::LastRun => 6,
        Field::PruneEnabled => 7,
        Field::KeepLast => 8,
        Field::KeepDaily => 9,
        Field::KeepWeekly => 10,
        Field::KeepMonthly => 11,
        Field::KeepYearly => 12,
        Field::KeepWithin => 13,
        Field::Updated => 14,
        Field::Ignored => 15,
    }
}

impl Fields {
    fn read(row: &SourceRow, columns: Columns) -> Self {
        let mut f = Fields::default();
        for (name, field) in columns {
            if *field == Field::Ignored {
                continue;
            }
            if let Some(v) = get(row, name).map(str::trim).filter(|v| !v.is_empty()) {
                f.0.entry(key_of(*field))
                    .or_insert_with(|| ((*name).to_owned(), v.to_owned()));
            }
        }
        f
    }

    fn merge(&mut self, other: Fields) {
        for (k, v) in other.0 {
            self.0.entry(k).or_insert(v);
        }
    }

    /// `(column, value)`.
    fn get(&self, f: Field) -> Option<(&str, &str)> {
        self.0
            .get(&key_of(f))
            .map(|(c, v)| (c.as_str(), v.as_str()))
    }

    /// A yes/no column: only values that plainly say yes or no count (a
    /// `BIT(1)` arrives as a byte); anything else is reported and read as
    /// no, so nothing is switched on by a guess.
    fn flag(&self, f: Field, problems: &mut Vec<String>) -> bool {
        let Some((column, v)) = self.get(f) else {
            return false;
        };
        match v.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "y" | "on" | "\u{1}" => true,
            "0" | "false" | "no" | "n" | "off" | "\u{0}" => false,
            other => {
                problems.push(format!(
                    "{column} = {other:?} is neither yes nor no; read as no"
                ));
                false
            }
        }
    }
}

/// The interval a policy row names, or why it cannot be used.
fn interval_of(f: &Fields) -> Result<Interval, String> {
    for unit in [Unit::Minutes, Unit::Hours, Unit::Days] {
        if let Some((column, v)) = f.get(Field::IntervalIn(unit)) {
            let value = v
                .parse::<u32>()
                .map_err(|_| format!("{column} = {v:?} is not a whole number"))?;
            return Interval::new(value, unit).map_err(|e| format!("{column} = {v}: {e}"));
        }
    }
    let Some((column, v)) = f.get(Field::IntervalValue) else {
        return Err("no interval is set (the extension never ran this schedule)".into());
    };
    let value = v
        .parse::<u32>()
        .map_err(|_| format!("{column} = {v:?} is not a whole number"))?;
    let Some((unit_column, unit)) = f.get(Field::IntervalUnit) else {
        return Err("no interval unit is set".into());
    };
    let unit = schedule::parse_unit(&unit.to_ascii_lowercase())
        .map_err(|_| format!("{unit_column} = {unit:?} is not minutes, hours or days"))?;
    Interval::new(value, unit).map_err(|e| format!("every {value} {}: {e}", unit.as_str()))
}

/// Maps a policy's fields; anything unreadable goes to `problems`. A
/// schedule whose interval cannot be read is imported switched off, every
/// 24 hours, so its retention rules are not lost and nothing runs that the
/// extension would not have run.
fn map_policy(f: &Fields, now: i64, problems: &mut Vec<String>) -> Policy {
    let wanted = f.flag(Field::Enabled, problems);
    let (interval, enabled) = match interval_of(f) {
        Ok(i) => (i, wanted),
        Err(e) => {
            if wanted {
                problems.push(format!("schedule: {e}; imported switched off"));
            }
            (
                Interval::new(24, Unit::Hours).expect("24 hours is valid"),
                false,
            )
        }
    };
    let last_run = f.get(Field::LastRun).and_then(|(_, v)| parse_time(v));
    let base = last_run
        .or_else(|| f.get(Field::Updated).and_then(|(_, v)| parse_time(v)))
        .unwrap_or(now)
        .min(now);
    let mut p = Policy {
        enabled,
        interval_value: interval.value as i64,
        interval_unit: interval.unit,
        anchor_at: Some(base),
        next_run_at: enabled.then(|| continue_from(base, interval, now)),
        last_run_at: last_run,
        updated_at: now,
        ..Policy::default()
    };
    let rules = [
        (Field::KeepLast, &mut p.keep_last),
        (Field::KeepDaily, &mut p.keep_daily),
        (Field::KeepWeekly, &mut p.keep_weekly),
        (Field::KeepMonthly, &mut p.keep_monthly),
        (Field::KeepYearly, &mut p.keep_yearly),
    ];
    let pruning = f.flag(Field::PruneEnabled, problems);
    let mut any_rule = false;
    for (field, slot) in rules {
        let Some((column, v)) = f.get(field) else {
            continue;
        };
        match v.parse::<i64>() {
            Ok(0) => {}
            Ok(n) if (1..=MAX_KEEP).contains(&n) => {
                any_rule = true;
                if pruning {
                    *slot = Some(n);
                }
            }
            _ => problems.push(format!(
                "{column} = {v:?} is not a count from 0 to {MAX_KEEP}; left out"
            )),
        }
    }
    if let Some((column, v)) = f.get(Field::KeepWithin) {
        match schedule::parse_keep_within(v) {
            Ok(w) if schedule::is_zero_duration(&w) => {}
            Ok(w) => {
                any_rule = true;
                if pruning {
                    p.keep_within = Some(w);
                }
            }
            Err(e) => problems.push(format!("{column} = {v:?}: {e}; left out")),
        }
    }
    if any_rule && !pruning {
        problems.push(
            "retention rules are set but pruning was off in the extension: they were not imported (nothing will be forgotten)".into(),
        );
    }
    p
}

/// The next run of a schedule that last ran (or was saved) at `base`: the
/// next slot of its grid `base + k * interval`; a run the extension missed
/// is due at once (the latest missed slot, so it runs once, and the grid
/// goes on from there).
pub fn continue_from(base: i64, interval: Interval, now: i64) -> i64 {
    let step = interval.seconds();
    if base + step > now {
        return base + step;
    }
    base + (now - base) / step * step
}

fn map_job(row: &SourceRow) -> Result<ImportedJob, String> {
    let id = get(row, "id")
        .and_then(|v| v.parse::<i64>().ok())
        .ok_or("a row without an id")?;
    let kind: String = get(row, "job_type")
        .unwrap_or("unknown")
        .trim()
        .to_ascii_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(50)
        .collect();
    let raw_status = get(row, "status")
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let status = match raw_status.as_str() {
        "failed" | "failure" | "error" | "errored" => api::RunStatus::Failed,
        "succeeded" | "success" | "successful" | "completed" | "complete" | "done" | "ok" => {
            api::RunStatus::Succeeded
        }
        other => {
            return Err(format!(
                "job {id} has the status {other:?}, which has no meaning here"
            ));
        }
    };
    let started_at = time_of(row, "started_at")
        .or_else(|| time_of(row, "created_at"))
        .ok_or_else(|| format!("job {id} has no start time"))?;
    let error = get(row, "message")
        .map(|m| {
            m.chars()
                .filter(|c| !c.is_control())
                .take(MAX_MESSAGE_CHARS)
                .collect::<String>()
        })
        .filter(|m| !m.is_empty());
    Ok(ImportedJob {
        import_ref: format!("extension:{id}"),
        kind: if kind.is_empty() {
            "unknown".into()
        } else {
            kind
        },
        status,
        error,
        started_at,
        finished_at: time_of(row, "finished_at"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(pairs: &[(&str, Option<&str>)]) -> SourceRow {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.map(str::to_owned)))
            .collect()
    }

    fn table(name: &str, rows: Vec<SourceRow>) -> SourceTable {
        let mut columns: Vec<String> = Vec::new();
        for r in &rows {
            for c in r.keys() {
                if !columns.contains(c) {
                    columns.push(c.clone());
                }
            }
        }
        SourceTable {
            name: name.into(),
            columns,
            rows,
            odd_columns: Vec::new(),
        }
    }

    const A: &str = "8f2c1e2a-0000-4000-8000-000000000001";
    const B: &str = "8f2c1e2a-0000-4000-8000-000000000002";
    const NOW: i64 = 1_800_000_000;

    fn source(tables: Vec<SourceTable>) -> ExtensionSource {
        ExtensionSource {
            database: "panel".into(),
            tables: tables.into_iter().map(|t| (t.name.clone(), t)).collect(),
        }
    }

    fn known() -> HashSet<ServerUuid> {
        [ServerUuid::parse(A).unwrap()].into_iter().collect()
    }

    #[test]
    fn mysql_times_are_read_in_utc_and_the_zero_date_is_none() {
        assert_eq!(parse_time("2024-05-01 12:00:00"), Some(1_714_564_800));
        assert_eq!(
            parse_time("2024-05-01 12:00:00.123456"),
            Some(1_714_564_800)
        );
        assert_eq!(parse_time("1714564800"), Some(1_714_564_800));
        for bad in [
            "0000-00-00 00:00:00",
            "",
            "yesterday",
            "2024-13-01 00:00:00",
            "0",
        ] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_schedule_continues_its_grid_and_an_overdue_one_runs_once_now() {
        let six = Interval::new(6, Unit::Hours).unwrap();
        // Last run two hours ago: next in four hours.
        assert_eq!(continue_from(NOW - 7_200, six, NOW), NOW + 4 * 3600);
        // Last run 20 hours ago: the slot 2 hours ago is due now, once.
        let due = continue_from(NOW - 20 * 3600, six, NOW);
        assert_eq!(due, NOW - 2 * 3600);
        assert_eq!(schedule::next_after(due, six, NOW), NOW + 4 * 3600);
    }

    #[test]
    fn policies_map_with_pruning_and_units() {
        let s = source(vec![table(
            "restic_policies",
            vec![row(&[
                ("id", Some("1")),
                ("server_uuid", Some(A)),
                ("interval_value", Some("6")),
                ("interval_unit", Some("hours")),
                ("schedule_enabled", Some("1")),
                ("schedule_last_run_at", Some("2027-01-15 06:00:00")),
                ("keep_last", Some("7")),
                ("keep_daily", Some("0")),
                ("keep_weekly", None),
                ("keep_within", Some("30d")),
                ("pruning_enabled", Some("1")),
            ])],
        )]);
        let plan = plan(&s, &known(), NOW);
        assert!(plan.problems.is_empty(), "{:?}", plan.problems);
        let p = &plan.servers[0].policy.as_ref().unwrap().policy;
        assert!(p.enabled);
        assert_eq!((p.interval_value, p.interval_unit.as_str()), (6, "hours"));
        assert_eq!(p.keep_last, Some(7));
        assert_eq!(p.keep_daily, None);
        assert_eq!(p.keep_within.as_deref(), Some("30d"));
        let last = parse_time("2027-01-15 06:00:00").unwrap();
        assert_eq!(p.last_run_at, Some(last));
        assert_eq!(
            p.next_run_at,
            Some(continue_from(
                last,
                Interval::new(6, Unit::Hours).unwrap(),
                NOW
            ))
        );
    }

    #[test]
    fn rules_with_pruning_off_and_bad_intervals_are_reported_not_guessed() {
        let s = source(vec![table(
            "restic_policies",
            vec![row(&[
                ("server_uuid", Some(A)),
                ("interval_value", Some("10")),
                ("interval_unit", Some("minutes")),
                ("schedule_enabled", Some("1")),
                ("keep_last", Some("3")),
                ("keep_within", Some("1w")),
                ("pruning_enabled", Some("0")),
            ])],
        )]);
        let plan = plan(&s, &known(), NOW);
        let server = &plan.servers[0];
        let p = &server.policy.as_ref().unwrap().policy;
        assert!(!p.enabled, "a 10 minute schedule is below the minimum: off");
        assert_eq!(p.keep_last, None, "pruning was off");
        let all = server.problems.join("\n");
        assert!(all.contains("imported switched off"), "{all}");
        assert!(all.contains("keep_within"), "{all}");
        assert!(all.contains("pruning was off"), "{all}");
    }

    #[test]
    fn legacy_tables_are_read_by_name_only_without_a_policy_row_and_odd_columns_are_named() {
        let s = source(vec![
            table(
                "restic_schedules",
                vec![
                    row(&[
                        ("server_uuid", Some(A)),
                        ("is_enabled", Some("1")),
                        ("interval_hours", Some("12")),
                        ("last_run", Some("2027-01-15 00:00:00")),
                        ("cron_expression", Some("0 */12 * * *")),
                    ]),
                    row(&[("server_uuid", Some(B)), ("is_enabled", Some("1"))]),
                ],
            ),
            table(
                "restic_pruning",
                vec![row(&[
                    ("server_uuid", Some(A)),
                    ("enabled", Some("1")),
                    ("keep_daily", Some("7")),
                ])],
            ),
        ]);
        let plan = plan(&s, &known(), NOW);
        assert_eq!(plan.legacy_rows, 3);
        let mapped = plan.servers[0].policy.as_ref().unwrap();
        assert_eq!(mapped.from, PolicyFrom::Legacy);
        assert!(mapped.policy.enabled);
        assert_eq!(
            (
                mapped.policy.interval_value,
                mapped.policy.interval_unit.as_str()
            ),
            (12, "hours")
        );
        assert_eq!(mapped.policy.keep_daily, Some(7));
        assert!(
            plan.problems
                .iter()
                .any(|p| p.contains("restic_schedules.cron_expression")),
            "{:?}",
            plan.problems
        );
        assert_eq!(plan.unknown.len(), 1);
        assert_eq!(plan.unknown[0].uuid, B);

        // With a `restic_policies` row the legacy rows do not count.
        let mut s = s;
        let policies = table(
            "restic_policies",
            vec![row(&[
                ("server_uuid", Some(A)),
                ("interval_value", Some("2")),
                ("interval_unit", Some("days")),
                ("schedule_enabled", Some("0")),
            ])],
        );
        s.tables.insert("restic_policies".into(), policies);
        let plan = super::plan(&s, &known(), NOW);
        let mapped = plan.servers[0].policy.as_ref().unwrap();
        assert_eq!(mapped.from, PolicyFrom::Policies);
        assert_eq!(mapped.policy.interval_unit, api::IntervalUnit::Days);
        assert_eq!(mapped.policy.keep_daily, None);
    }

    #[test]
    fn only_plain_yes_or_no_switches_anything_on() {
        let policy = |enabled: &str, pruning: &str| {
            let s = source(vec![table(
                "restic_policies",
                vec![row(&[
                    ("server_uuid", Some(A)),
                    ("interval_value", Some("6")),
                    ("interval_unit", Some("hours")),
                    ("schedule_enabled", Some(enabled)),
                    ("keep_last", Some("3")),
                    ("pruning_enabled", Some(pruning)),
                ])],
            )]);
            let plan = plan(&s, &known(), NOW);
            let server = plan.servers[0].clone();
            let p = server.policy.unwrap().policy;
            (p.enabled, p.keep_last, server.problems.join("\n"))
        };
        assert!(policy("1", "\u{1}").0);
        assert_eq!(policy("1", "\u{1}").1, Some(3));
        // BIT(1) zero, an ENUM, words: never read as yes.
        let (on, keep, problems) = policy("\u{0}", "N");
        assert_eq!((on, keep), (false, None));
        assert!(!problems.contains("neither"), "{problems}");
        let (on, keep, problems) = policy("disabled", "maybe");
        assert_eq!((on, keep), (false, None));
        assert!(
            problems.contains("\"disabled\" is neither yes nor no"),
            "{problems}"
        );
    }

    #[test]
    fn duplicate_rows_are_reported_not_chosen_between() {
        let k = "ab".repeat(32);
        let s = source(vec![
            table(
                "restic",
                vec![
                    row(&[
                        ("server_uuid", Some(A)),
                        ("encryption_key", Some(k.as_str())),
                    ]),
                    row(&[
                        ("server_uuid", Some(&A.to_uppercase())),
                        ("encryption_key", Some("cd".repeat(32).as_str())),
                    ]),
                ],
            ),
            table(
                "restic_schedules",
                vec![
                    row(&[
                        ("server_uuid", Some(A)),
                        ("enabled", Some("1")),
                        ("interval_hours", Some("6")),
                    ]),
                    row(&[
                        ("server_uuid", Some(A)),
                        ("enabled", Some("0")),
                        ("interval_hours", Some("1")),
                    ]),
                ],
            ),
            table(
                "restic_backup_notes",
                vec![
                    row(&[
                        ("server_uuid", Some(A)),
                        ("backup_id", Some("abcdef12")),
                        ("note", Some("one")),
                    ]),
                    row(&[
                        ("server_uuid", Some(A)),
                        ("backup_id", Some("ABCDEF12")),
                        ("note", Some("two")),
                    ]),
                ],
            ),
        ]);
        let plan = plan(&s, &known(), NOW);
        let p = &plan.servers[0];
        assert_eq!(p.key, None);
        assert_eq!(p.policy, None);
        assert_eq!(p.notes, vec![("abcdef12".to_owned(), "one".to_owned())]);
        let all = p.problems.join("\n");
        assert!(all.contains("more than one key"), "{all}");
        assert!(all.contains("restic_schedules: 2 rows"), "{all}");
        assert!(all.contains("more than one note"), "{all}");
    }

    #[test]
    fn keys_notes_and_jobs_with_nulls_everywhere() {
        let s = source(vec![
            table(
                "restic",
                vec![row(&[
                    ("server_uuid", Some(A)),
                    ("encryption_key", Some("ab".repeat(32).as_str())),
                    ("created_at", None),
                    ("updated_at", None),
                ])],
            ),
            table(
                "restic_key_history",
                vec![
                    row(&[
                        ("server_uuid", Some(A)),
                        ("owner_username", None),
                        ("encryption_key", Some("cd".repeat(32).as_str())),
                        ("created_at", Some("2025-01-01 00:00:00")),
                    ]),
                    row(&[
                        ("server_uuid", Some(A)),
                        ("owner_username", Some("alice")),
                        ("encryption_key", Some("")),
                        ("created_at", None),
                    ]),
                ],
            ),
            table(
                "restic_backup_notes",
                vec![
                    row(&[
                        ("server_uuid", Some(A)),
                        ("backup_id", Some("ABCDEF12")),
                        ("note", Some(" before 1.21 ")),
                    ]),
                    row(&[
                        ("server_uuid", Some(A)),
                        ("backup_id", Some("abcdef13")),
                        ("note", None),
                    ]),
                    row(&[
                        ("server_uuid", Some(A)),
                        ("backup_id", Some("../../etc")),
                        ("note", Some("x")),
                    ]),
                ],
            ),
            table(
                "restic_job_history",
                vec![
                    row(&[
                        ("id", Some("9")),
                        ("server_uuid", Some(A)),
                        ("job_type", Some("backup")),
                        ("status", Some("failed")),
                        ("message", Some("disk full")),
                        ("details", None),
                        ("started_at", None),
                        ("finished_at", None),
                        ("created_at", Some("2025-02-01 00:00:00")),
                    ]),
                    row(&[
                        ("id", Some("10")),
                        ("server_uuid", Some(A)),
                        ("job_type", None),
                        ("status", Some("queued")),
                        ("started_at", None),
                    ]),
                    row(&[
                        ("id", None),
                        ("server_uuid", None),
                        ("job_type", None),
                        ("status", None),
                    ]),
                ],
            ),
        ]);
        let plan = plan(&s, &known(), NOW);
        let p = &plan.servers[0];
        assert_eq!(p.key.as_ref().unwrap().key.expose(), "ab".repeat(32));
        assert_eq!(p.key.as_ref().unwrap().at, None);
        assert_eq!(p.history.len(), 1);
        assert_eq!(
            p.notes,
            vec![("abcdef12".to_owned(), "before 1.21".to_owned())]
        );
        assert_eq!(p.jobs.len(), 1);
        assert_eq!(p.jobs[0].import_ref, "extension:9");
        assert_eq!(p.jobs[0].error.as_deref(), Some("disk full"));
        let all = p.problems.join("\n");
        assert!(all.contains("not a snapshot ID"), "{all}");
        assert!(all.contains("queued"), "{all}");
        assert!(all.contains("cannot be used"), "{all}");
        assert!(
            plan.problems.iter().any(|e| e.contains("not a UUID")),
            "{:?}",
            plan.problems
        );
    }
}

//! A server's schedule and retention: reading and saving them (the
//! schedule endpoints) and one scheduled run (what the scheduler calls).

use std::time::{Duration, Instant};

use api::agent::{JobStatus, RetentionPolicy};
use api::panel::{LastResult, RunRecord, ScheduleRequest, ScheduleView};
use api::{Repeat, Timestamp};

use super::Panel;
use crate::PanelError;
use crate::permissions::{Authorized, Create, Delete, Read};
use crate::schedule::{self, Cadence, Calendar, Interval, Unit};
use crate::storage::{Policy, Server};

/// How long a scheduled backup may take before the run counts as failed.
const RUN_TIMEOUT: Duration = Duration::from_secs(6 * 3600);
/// Runs shown by the history endpoint.
const HISTORY_LEN: i64 = 20;

/// A stored unix time as the API's [`Timestamp`] (the epoch for a value
/// out of range, which no clock writes).
pub(crate) fn at_unix(unix: i64) -> Timestamp {
    Timestamp::from_unix(unix)
        .or_else(|| Timestamp::from_unix(0))
        .expect("the epoch is a time")
}

fn view(p: &Policy) -> ScheduleView {
    let calendar = p.repeat != Repeat::Interval;
    ScheduleView {
        enabled: p.enabled,
        repeat: p.repeat,
        interval_value: p.interval_value,
        interval_unit: p.interval_unit,
        at: p
            .at_minute
            .filter(|_| calendar)
            .and_then(|m| u16::try_from(m).ok())
            .map(schedule::format_time_of_day),
        weekdays: match p.repeat {
            Repeat::Weekly => p
                .weekdays
                .and_then(|m| u8::try_from(m).ok())
                .map(schedule::weekdays_of)
                .unwrap_or_default(),
            Repeat::Interval | Repeat::Daily => Vec::new(),
        },
        time_zone: p.time_zone.clone().filter(|_| calendar),
        keep_last: p.keep_last,
        keep_daily: p.keep_daily,
        keep_weekly: p.keep_weekly,
        keep_monthly: p.keep_monthly,
        keep_yearly: p.keep_yearly,
        keep_within: p.keep_within.clone(),
        next_run_at: p.next_run_at.filter(|_| p.enabled).map(at_unix),
        last_run_at: p.last_run_at.map(at_unix),
        last_result: p.last_status.map(|status| LastResult {
            status,
            message: p.last_message.clone(),
            snapshot_id: p.last_snapshot_id.clone(),
        }),
    }
}

/// The schedule of a server that never saved one: off, daily, keep all.
fn default_policy(server_id: i64) -> Policy {
    Policy {
        server_id,
        enabled: false,
        interval_value: 24,
        interval_unit: Unit::Hours,
        ..Policy::default()
    }
}

/// When a stored policy runs.
pub(crate) fn cadence_of(p: &Policy) -> Result<Cadence, PanelError> {
    let stored = |e: &dyn std::fmt::Display| PanelError::Internal(format!("stored schedule: {e}"));
    if p.repeat == Repeat::Interval {
        let value = u32::try_from(p.interval_value).map_err(|e| stored(&e))?;
        return Interval::new(value, p.interval_unit)
            .map(Cadence::Every)
            .map_err(|e| stored(&e));
    }
    let minute = p
        .at_minute
        .and_then(|m| u16::try_from(m).ok())
        .ok_or_else(|| stored(&"no time of day"))?;
    let weekdays = match p.repeat {
        Repeat::Weekly => p
            .weekdays
            .and_then(|m| u8::try_from(m).ok())
            .ok_or_else(|| stored(&"no weekdays"))?,
        Repeat::Daily | Repeat::Interval => schedule::EVERY_DAY,
    };
    let (zone, _) = schedule::parse_time_zone(p.time_zone.as_deref().unwrap_or("UTC"))
        .map_err(|e| stored(&e))?;
    Calendar::new(minute, weekdays, zone)
        .map(Cadence::At)
        .map_err(|e| stored(&e))
}

/// A request's repeat and its settings, checked; answers the cadence and
/// the policy's fields for it. The interval is kept when given with
/// another repeat (for switching back); the calendar settings go with
/// `interval`.
struct Timing {
    cadence: Cadence,
    repeat: Repeat,
    interval: Option<Interval>,
    at_minute: Option<i64>,
    weekdays: Option<i64>,
    time_zone: Option<String>,
}

fn check_timing(req: &ScheduleRequest) -> Result<Timing, PanelError> {
    let invalid = |e: schedule::ScheduleError| bad("invalid_schedule", e);
    let repeat = match req.repeat.as_deref() {
        None => Repeat::Interval,
        Some(r) => r.parse::<Repeat>().map_err(|_| {
            PanelError::bad_request(
                "invalid_schedule",
                "repeat must be interval, daily or weekly",
            )
        })?,
    };
    let interval = match (req.interval_value, req.interval_unit.as_deref()) {
        (None, None) => None,
        (Some(value), Some(unit)) => {
            let unit = schedule::parse_unit(unit).map_err(|e| bad("invalid_interval", e))?;
            let value = u32::try_from(value)
                .map_err(|_| bad("invalid_interval", schedule::ScheduleError::Interval))?;
            Some(Interval::new(value, unit).map_err(|e| bad("invalid_interval", e))?)
        }
        _ => {
            return Err(PanelError::bad_request(
                "invalid_interval",
                "interval_value and interval_unit go together",
            ));
        }
    };
    if repeat == Repeat::Interval {
        if req.at.is_some() || req.weekdays.is_some() || req.time_zone.is_some() {
            return Err(PanelError::bad_request(
                "invalid_schedule",
                "at, weekdays and time_zone are for repeat daily or weekly",
            ));
        }
        let interval = interval.ok_or_else(|| {
            PanelError::bad_request(
                "invalid_interval",
                "interval_value and interval_unit are needed to repeat at an interval",
            )
        })?;
        return Ok(Timing {
            cadence: Cadence::Every(interval),
            repeat,
            interval: Some(interval),
            at_minute: None,
            weekdays: None,
            time_zone: None,
        });
    }
    let at = req.at.as_deref().ok_or_else(|| {
        PanelError::bad_request(
            "invalid_schedule",
            "at (HH:MM) is needed to repeat daily or weekly",
        )
    })?;
    let minute = schedule::parse_time_of_day(at.trim()).map_err(invalid)?;
    let (zone, zone_name) =
        schedule::parse_time_zone(req.time_zone.as_deref().unwrap_or("UTC")).map_err(invalid)?;
    let weekdays = match (repeat, &req.weekdays) {
        (Repeat::Weekly, Some(days)) if days.len() <= 7 => {
            let mut mask = 0u8;
            for day in days {
                let day = day
                    .parse::<api::Weekday>()
                    .map_err(|_| invalid(schedule::ScheduleError::Weekdays))?;
                mask |= schedule::weekday_bit(day);
            }
            mask
        }
        (Repeat::Weekly, _) => return Err(invalid(schedule::ScheduleError::Weekdays)),
        (_, Some(_)) => {
            return Err(PanelError::bad_request(
                "invalid_schedule",
                "weekdays are for repeat weekly (daily runs every day)",
            ));
        }
        (_, None) => schedule::EVERY_DAY,
    };
    let calendar = Calendar::new(minute, weekdays, zone).map_err(invalid)?;
    Ok(Timing {
        cadence: Cadence::At(calendar),
        repeat,
        interval,
        at_minute: Some(i64::from(minute)),
        weekdays: Some(i64::from(weekdays)),
        time_zone: Some(zone_name),
    })
}

/// The retention part of a stored policy, in the agent's terms.
pub(crate) fn retention_of(p: &Policy) -> RetentionPolicy {
    let n = |v: Option<i64>| v.and_then(|v| u32::try_from(v).ok()).filter(|v| *v > 0);
    RetentionPolicy {
        keep_last: n(p.keep_last),
        keep_daily: n(p.keep_daily),
        keep_weekly: n(p.keep_weekly),
        keep_monthly: n(p.keep_monthly),
        keep_yearly: n(p.keep_yearly),
        keep_within: p.keep_within.clone().filter(|w| !w.is_empty()),
        keep_snapshot: None,
    }
}

/// Retention rules as a request states them (`keep_last`, `keep_daily`,
/// `keep_weekly`, `keep_monthly`, `keep_yearly`, then `keep_within`),
/// checked: counts 0 to 100,000 (0: no rule), a restic duration that is not
/// zero long (that would keep nothing, where restic reads it as no rule).
pub(crate) fn check_retention(
    keeps: [Option<i64>; 5],
    keep_within: Option<&str>,
) -> Result<RetentionPolicy, PanelError> {
    const NAMES: [&str; 5] = [
        "keep_last",
        "keep_daily",
        "keep_weekly",
        "keep_monthly",
        "keep_yearly",
    ];
    for (name, v) in NAMES.iter().zip(keeps) {
        if v.is_some_and(|v| !(0..=100_000).contains(&v)) {
            return Err(PanelError::bad_request(
                "invalid_retention",
                format!("{name} must be a whole number from 0 to 100000"),
            ));
        }
    }
    let keep_within = match keep_within.map(str::trim) {
        None | Some("") => None,
        Some(w) => Some(schedule::parse_keep_within(w).map_err(|e| bad("invalid_retention", e))?),
    };
    if keep_within
        .as_deref()
        .is_some_and(schedule::is_zero_duration)
    {
        return Err(PanelError::bad_request(
            "invalid_retention",
            "a keep_within of zero keeps nothing; leave it empty to keep every backup",
        ));
    }
    let n = |v: Option<i64>| v.and_then(|v| u32::try_from(v).ok()).filter(|v| *v > 0);
    Ok(RetentionPolicy {
        keep_last: n(keeps[0]),
        keep_daily: n(keeps[1]),
        keep_weekly: n(keeps[2]),
        keep_monthly: n(keeps[3]),
        keep_yearly: n(keeps[4]),
        keep_within,
        keep_snapshot: None,
    })
}

fn bad(code: &'static str, e: impl ToString) -> PanelError {
    PanelError::bad_request(code, e.to_string())
}

impl Panel {
    pub async fn schedule(&self, auth: &Authorized<Read>) -> Result<ScheduleView, PanelError> {
        let id = auth.server().id;
        let p = self.storage().policy(id).await?;
        Ok(view(&p.unwrap_or_else(|| default_policy(id))))
    }

    /// Validates and stores a schedule. Saving never runs a backup: the
    /// first run is one interval after `now`, or the calendar's next time.
    pub async fn save_schedule(
        &self,
        auth: &Authorized<Create>,
        req: ScheduleRequest,
        now: i64,
    ) -> Result<ScheduleView, PanelError> {
        let timing = check_timing(&req)?;
        let keep_within = check_retention(
            [
                req.keep_last,
                req.keep_daily,
                req.keep_weekly,
                req.keep_monthly,
                req.keep_yearly,
            ],
            req.keep_within.as_deref(),
        )?
        .keep_within;
        let server_id = auth.server().id;
        let old = self.storage().policy(server_id).await?;
        let before = old.as_ref().map(retention_of).unwrap_or_default();
        // Turning on, or running more often, a schedule whose rules forget
        // snapshots is as much a delete as changing the rules.
        // So is bringing the next run forward (a calendar's next time can
        // be a minute away: saved again and again, it would run as often
        // as someone likes). A schedule left off runs nothing; turning it
        // on is checked then.
        let anchor = timing.cadence.first_run(now);
        let runs_more = req.enabled
            && old.as_ref().is_none_or(|o| {
                !o.enabled
                    || o.next_run_at.is_some_and(|next| anchor < next)
                    || cadence_of(o)
                        .map_or(true, |c| c.mean_gap_secs() > timing.cadence.mean_gap_secs())
            });
        // A calendar schedule keeps the interval it had (or the default),
        // for switching back.
        let kept = old.as_ref().unwrap_or(&default_policy(server_id)).clone();
        let interval = timing.interval.unwrap_or(Interval {
            value: u32::try_from(kept.interval_value).unwrap_or(24),
            unit: kept.interval_unit,
        });
        let p = Policy {
            server_id,
            enabled: req.enabled,
            interval_value: interval.value as i64,
            interval_unit: interval.unit,
            repeat: timing.repeat,
            at_minute: timing.at_minute,
            weekdays: timing.weekdays,
            time_zone: timing.time_zone,
            keep_last: req.keep_last.filter(|v| *v > 0),
            keep_daily: req.keep_daily.filter(|v| *v > 0),
            keep_weekly: req.keep_weekly.filter(|v| *v > 0),
            keep_monthly: req.keep_monthly.filter(|v| *v > 0),
            keep_yearly: req.keep_yearly.filter(|v| *v > 0),
            keep_within,
            anchor_at: Some(anchor),
            next_run_at: req.enabled.then_some(anchor),
            updated_at: now,
            ..old.unwrap_or_default()
        };
        // Rules that can forget snapshots are a delete: changing them needs
        // `backup.delete`, not just `backup.create`.
        let after = retention_of(&p);
        if !after.is_empty() && (after != before || runs_more) {
            auth.also::<Delete>(self.storage())
                .await
                .map_err(|e| match e {
                    crate::permissions::Denied::Forbidden => PanelError::ForbiddenBecause(
                        "changing retention rules needs the backup.delete permission",
                    ),
                    other => other.into(),
                })?;
        }
        self.storage().save_policy(&p).await?;
        tracing::info!(server = %auth.server().uuid, enabled = p.enabled, "schedule saved");
        let saved = self.storage().policy(server_id).await?.unwrap_or(p);
        Ok(view(&saved))
    }

    /// Which backups `policy` would remove now (before the rules are saved;
    /// nothing is removed). No rules: nothing.
    pub async fn preview_retention(
        &self,
        auth: &Authorized<Read>,
        policy: &RetentionPolicy,
    ) -> Result<api::agent::RetentionPreview, PanelError> {
        let t = self.target(auth.server()).await?;
        let server = &auth.server().uuid;
        if policy.is_empty() {
            let total = match t.client.list(server, &t.key, 1, None).await {
                Ok(page) => page.total,
                Err(e) if super::backups::no_repository(&e) => 0,
                Err(e) => return Err(e.into()),
            };
            return Ok(api::agent::RetentionPreview {
                would_remove: Vec::new(),
                kept: total,
            });
        }
        match t.client.preview_retention(server, &t.key, policy).await {
            Err(e) if super::backups::no_repository(&e) => Ok(api::agent::RetentionPreview {
                would_remove: Vec::new(),
                kept: 0,
            }),
            Err(crate::agent_client::ClientError::Agent {
                status: 404, code, ..
            }) if code == "not_found" => Err(PanelError::Conflict(
                "the server's node runs an agent too old to preview retention; update it".into(),
            )),
            other => Ok(other?),
        }
    }

    pub async fn run_history(&self, auth: &Authorized<Read>) -> Result<Vec<RunRecord>, PanelError> {
        Ok(self
            .storage()
            .recent_jobs(auth.server().id, HISTORY_LEN)
            .await?
            .into_iter()
            .map(|j| RunRecord {
                kind: j.kind,
                origin: j.origin,
                status: j.status,
                snapshot_id: j.snapshot_id,
                error: j.error,
                started_at: at_unix(j.started_at),
                finished_at: j.finished_at.map(at_unix),
            })
            .collect())
    }

    /// One scheduled backup of `server`, to its end, then the policy's
    /// retention. Returns the new snapshot's ID.
    pub async fn scheduled_backup(
        &self,
        server: &Server,
        policy: &Policy,
        history_row: Option<i64>,
    ) -> Result<ScheduledRun, PanelError> {
        let max_backups = super::backups::max_backups(server)?;
        let t = self.target(server).await?;
        let body = api::agent::CreateBackupRequest {
            max_backups,
            ignore: None,
        };
        let accepted = t.client.create_backup(&server.uuid, &t.key, &body).await?;
        if let Some(row) = history_row {
            self.storage()
                .set_job_agent_id(row, accepted.job_id.as_str())
                .await?;
        }
        self.finish_scheduled_backup(server, policy, &t, accepted.job_id)
            .await
    }

    /// `POST …/schedule/run`: the schedule's backup now (the server's
    /// backup limit, then the schedule's retention once it succeeded), as
    /// a person's run in the history; answers with the agent's job at once.
    /// The retention only for someone who may delete backups: for others
    /// it is the backup alone (the rules apply at the next scheduled run).
    pub async fn run_schedule_now(
        &self,
        auth: &Authorized<Create>,
    ) -> Result<api::agent::JobAccepted, PanelError> {
        let server = auth.server().clone();
        let mut policy = self
            .storage()
            .policy(server.id)
            .await?
            .unwrap_or_else(|| default_policy(server.id));
        match auth.also::<Delete>(self.storage()).await {
            Ok(_) => {}
            Err(crate::permissions::Denied::Forbidden) => {
                policy = Policy {
                    keep_last: None,
                    keep_daily: None,
                    keep_weekly: None,
                    keep_monthly: None,
                    keep_yearly: None,
                    keep_within: None,
                    ..policy
                };
            }
            Err(other) => return Err(other.into()),
        }
        let max_backups = super::backups::max_backups(&server)?;
        let t = self.target(&server).await?;
        let body = api::agent::CreateBackupRequest {
            max_backups,
            ignore: None,
        };
        let accepted = t.client.create_backup(&server.uuid, &t.key, &body).await?;
        self.record_manual_job(&server, api::agent::JobKind::Backup, &accepted, None)
            .await;
        let (panel, job) = (self.clone(), accepted.job_id.clone());
        tokio::spawn(async move {
            match panel
                .finish_scheduled_backup(&server, &policy, &t, job.clone())
                .await
            {
                Ok(run) => {
                    if let Some(e) = run.retention_error {
                        tracing::warn!(server = %server.uuid, error = %e, "run now: retention not applied");
                    }
                }
                Err(e) => {
                    tracing::info!(server = %server.uuid, error = %e, "run now: the backup failed")
                }
            }
            if let Ok(view) = t.client.job(&server.uuid, &job).await {
                panel.settle_finished_job(&server, &job, &view).await;
            }
        });
        Ok(accepted)
    }

    /// Waits for a scheduled run's backup job, then applies the policy's
    /// retention (never to the run's own snapshot).
    async fn finish_scheduled_backup(
        &self,
        server: &Server,
        policy: &Policy,
        t: &super::Target,
        job: api::JobId,
    ) -> Result<ScheduledRun, PanelError> {
        let started = Instant::now();
        let view = loop {
            // A blip while polling is not the backup failing.
            match t.client.job(&server.uuid, &job).await {
                Ok(v) if v.status.is_finished() => break v,
                Ok(_) => {}
                Err(crate::agent_client::ClientError::Unavailable)
                    if started.elapsed() < RUN_TIMEOUT => {}
                Err(e) => return Err(e.into()),
            }
            if started.elapsed() > RUN_TIMEOUT {
                return Err(PanelError::NodeUnavailable);
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        };
        if view.status != JobStatus::Succeeded {
            let e = view.error.unwrap_or(api::agent::ErrorDetail {
                code: "backup_failed".into(),
                message: "the backup failed".into(),
            });
            return Err(PanelError::Agent {
                status: 500,
                code: e.code,
                message: e.message,
            });
        }
        let snapshot = view
            .result
            .as_ref()
            .and_then(|r| r["snapshot"]["id"].as_str())
            .map(str::to_owned);
        // The run's own snapshot is never forgotten by its own retention.
        let retention = RetentionPolicy {
            keep_snapshot: snapshot.clone(),
            ..retention_of(policy)
        };
        let retention_error = if retention.is_empty() {
            None
        } else {
            match t
                .client
                .apply_retention(&server.uuid, &t.key, &retention)
                .await
            {
                Ok(r) => {
                    tracing::info!(server = %server.uuid, forgotten = r.forgotten.len(), "retention applied");
                    None
                }
                Err(e) => Some(PanelError::from(e).to_string()),
            }
        };
        Ok(ScheduledRun {
            agent_job_id: job.to_string(),
            snapshot_id: snapshot,
            retention_error,
        })
    }
}

impl Panel {
    /// The agent's view of one of a server's jobs (`None`: the agent does
    /// not know it, e.g. it was restarted or forgot the job).
    pub(crate) async fn agent_job(
        &self,
        server: &Server,
        job: &api::JobId,
    ) -> Result<Option<api::agent::JobView>, PanelError> {
        let t = self.target(server).await?;
        match t.client.job(&server.uuid, job).await {
            Ok(v) => Ok(Some(v)),
            Err(crate::agent_client::ClientError::Agent { status: 404, .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

/// What a scheduled run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduledRun {
    pub agent_job_id: String,
    pub snapshot_id: Option<String>,
    /// The backup worked but retention did not (it runs again next time).
    pub retention_error: Option<String>,
}

//! `restic_policies`: schedules and retention, and claiming due runs.

use api::{IntervalUnit, Repeat, RunStatus};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Result, RunOn, Storage};

/// A server's schedule and retention (`restic_policies`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Policy {
    pub server_id: i64,
    pub enabled: bool,
    pub interval_value: i64,
    pub interval_unit: IntervalUnit,
    pub repeat: Repeat,
    /// `daily`/`weekly`: minutes after local midnight.
    pub at_minute: Option<i64>,
    /// `daily`/`weekly`: Monday bit 0 … Sunday bit 6.
    pub weekdays: Option<i64>,
    /// `daily`/`weekly`: an IANA time zone name.
    pub time_zone: Option<String>,
    pub keep_last: Option<i64>,
    pub keep_daily: Option<i64>,
    pub keep_weekly: Option<i64>,
    pub keep_monthly: Option<i64>,
    pub keep_yearly: Option<i64>,
    pub keep_within: Option<String>,
    pub anchor_at: Option<i64>,
    pub next_run_at: Option<i64>,
    pub last_run_at: Option<i64>,
    pub last_status: Option<RunStatus>,
    pub last_message: Option<String>,
    pub last_snapshot_id: Option<String>,
    pub failures: i64,
    pub updated_at: i64,
}

pub(super) const POLICY_COLS: &str = "server_id, enabled, interval_value, interval_unit, repeat_kind, \
     at_minute, weekdays, time_zone, keep_last, keep_daily, keep_weekly, keep_monthly, keep_yearly, \
     keep_within, anchor_at, next_run_at, last_run_at, last_status, last_message, last_snapshot_id, \
     failures, updated_at";

pub(super) fn policy_of(r: &AnyRow) -> Result<Policy> {
    Ok(Policy {
        server_id: r.try_get("server_id")?,
        enabled: r.try_get::<i64, _>("enabled")? != 0,
        interval_value: r.try_get("interval_value")?,
        interval_unit: super::word(r, "interval_unit")?,
        repeat: super::word(r, "repeat_kind")?,
        at_minute: r.try_get("at_minute")?,
        weekdays: r.try_get("weekdays")?,
        time_zone: r.try_get("time_zone")?,
        keep_last: r.try_get("keep_last")?,
        keep_daily: r.try_get("keep_daily")?,
        keep_weekly: r.try_get("keep_weekly")?,
        keep_monthly: r.try_get("keep_monthly")?,
        keep_yearly: r.try_get("keep_yearly")?,
        keep_within: r.try_get("keep_within")?,
        anchor_at: r.try_get("anchor_at")?,
        next_run_at: r.try_get("next_run_at")?,
        last_run_at: r.try_get("last_run_at")?,
        last_status: super::maybe_word(r, "last_status")?,
        last_message: r.try_get("last_message")?,
        last_snapshot_id: r.try_get("last_snapshot_id")?,
        failures: r.try_get("failures")?,
        updated_at: r.try_get("updated_at")?,
    })
}

impl Storage {
    pub async fn policy(&self, server_id: i64) -> Result<Option<Policy>> {
        sqlx::query(&format!(
            "SELECT {POLICY_COLS} FROM restic_policies WHERE server_id = $1"
        ))
        .bind(server_id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(policy_of)
        .transpose()
    }

    /// Stores the settings of `p` (enabled, interval, retention, anchor and
    /// next run); the run record (last run, result, failures) is kept, except
    /// that failures start again from zero.
    pub async fn save_policy(&self, p: &Policy) -> Result<()> {
        sqlx::query(
            "INSERT INTO restic_policies (server_id, enabled, interval_value, interval_unit, \
             keep_last, keep_daily, keep_weekly, keep_monthly, keep_yearly, keep_within, anchor_at, \
             next_run_at, failures, updated_at, repeat_kind, at_minute, weekdays, time_zone) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 0, $13, $14, $15, $16, $17) \
             ON CONFLICT (server_id) DO UPDATE SET enabled = excluded.enabled, \
             interval_value = excluded.interval_value, interval_unit = excluded.interval_unit, \
             repeat_kind = excluded.repeat_kind, at_minute = excluded.at_minute, \
             weekdays = excluded.weekdays, time_zone = excluded.time_zone, \
             keep_last = excluded.keep_last, keep_daily = excluded.keep_daily, \
             keep_weekly = excluded.keep_weekly, keep_monthly = excluded.keep_monthly, \
             keep_yearly = excluded.keep_yearly, keep_within = excluded.keep_within, \
             anchor_at = excluded.anchor_at, next_run_at = excluded.next_run_at, failures = 0, \
             updated_at = excluded.updated_at",
        )
        .bind(p.server_id)
        .bind(p.enabled as i64)
        .bind(p.interval_value)
        .bind(p.interval_unit.as_str())
        .bind(p.keep_last)
        .bind(p.keep_daily)
        .bind(p.keep_weekly)
        .bind(p.keep_monthly)
        .bind(p.keep_yearly)
        .bind(p.keep_within.as_deref())
        .bind(p.anchor_at)
        .bind(p.next_run_at)
        .bind(p.updated_at)
        .bind(p.repeat.as_str())
        .bind(p.at_minute)
        .bind(p.weekdays)
        .bind(p.time_zone.as_deref())
        .run_on(self)
        .await?;
        Ok(())
    }

    /// Enabled schedules due at `now`, earliest first (whole rows, so the
    /// scheduler needs no second read).
    pub async fn due_policies(&self, now: i64, limit: i64) -> Result<Vec<Policy>> {
        Ok(sqlx::query(&format!(
            "SELECT {POLICY_COLS} FROM restic_policies \
             WHERE enabled = 1 AND next_run_at <= $1 ORDER BY next_run_at LIMIT $2"
        ))
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .filter_map(|r| match policy_of(r) {
            Ok(p) => Some(p),
            // One unreadable row never stops the other servers' runs.
            Err(e) => {
                tracing::error!(error = %e, "a stored schedule can not be read; skipped");
                None
            }
        })
        .collect())
    }

    /// Claims a due run: moves the next run from `due_at` to `next` only if
    /// nobody else did (or changed the schedule) meanwhile. `true` means
    /// this caller runs it.
    pub async fn claim_run(
        &self,
        server_id: i64,
        due_at: i64,
        next: i64,
        now: i64,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE restic_policies SET next_run_at = $1, last_run_at = $2, last_status = $5, \
             last_message = NULL WHERE server_id = $3 AND enabled = 1 AND next_run_at = $4",
        )
        .bind(next)
        .bind(now)
        .bind(server_id)
        .bind(due_at)
        .bind(RunStatus::Running.as_str())
        .run_on(self)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records a run's outcome. On failure `retry_at` replaces the next run
    /// time if it is still the one the claim set (`claimed_next`).
    pub async fn finish_run(
        &self,
        server_id: i64,
        outcome: std::result::Result<Option<&str>, &str>,
        claimed_next: i64,
        retry_at: i64,
    ) -> Result<()> {
        match outcome {
            Ok(snapshot) => {
                sqlx::query(
                    "UPDATE restic_policies SET last_status = $3, last_message = NULL, \
                     last_snapshot_id = $1, failures = 0 WHERE server_id = $2",
                )
                .bind(snapshot)
                .bind(server_id)
                .bind(RunStatus::Succeeded.as_str())
                .run_on(self)
                .await?;
            }
            Err(message) => {
                sqlx::query(
                    "UPDATE restic_policies SET last_status = $5, last_message = $1, \
                     last_snapshot_id = NULL, failures = failures + 1, \
                     next_run_at = CASE WHEN next_run_at = $2 THEN $3 ELSE next_run_at END \
                     WHERE server_id = $4",
                )
                .bind(message)
                .bind(claimed_next)
                .bind(retry_at)
                .bind(server_id)
                .bind(RunStatus::Failed.as_str())
                .run_on(self)
                .await?;
            }
        }
        Ok(())
    }
}

//! `audit_log`: who did what to which server, when and from where. Rows
//! are only added (and swept after `audit_retention_days`), never changed.

use api::{AuditAction, AuditOutcome};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Result, RunOn, Storage};

/// One entry, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub at: i64,
    pub action: AuditAction,
    /// The answer's status (0 for an operator's command).
    pub status: u16,
    pub actor: Option<String>,
    pub server_uuid: Option<String>,
    pub target: Option<String>,
    pub client: Option<String>,
    pub request_id: Option<String>,
}

/// One entry, as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    pub id: i64,
    pub outcome: AuditOutcome,
    pub record: AuditRecord,
}

/// Which entries to list; `None` matches anything.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub server_uuid: Option<String>,
    pub actor: Option<String>,
    pub action: Option<AuditAction>,
    pub outcome: Option<AuditOutcome>,
    /// At or after (Unix seconds).
    pub from: Option<i64>,
    /// Before (Unix seconds).
    pub to: Option<i64>,
}

fn row_of(r: &AnyRow) -> Result<AuditRow> {
    let status: i64 = r.try_get("status")?;
    Ok(AuditRow {
        id: r.try_get("id")?,
        outcome: super::word(r, "outcome")?,
        record: AuditRecord {
            at: r.try_get("at")?,
            action: super::word(r, "action")?,
            status: u16::try_from(status).unwrap_or(0),
            actor: r.try_get("actor")?,
            server_uuid: r.try_get("server_uuid")?,
            target: r.try_get("target")?,
            client: r.try_get("client")?,
            request_id: r.try_get("request_id")?,
        },
    })
}

impl Storage {
    pub async fn add_audit(&self, e: &AuditRecord) -> Result<()> {
        let outcome = if e.status == 0 {
            AuditOutcome::Ok
        } else {
            AuditOutcome::of(e.status)
        };
        sqlx::query(
            "INSERT INTO audit_log (at, action, outcome, status, actor, server_uuid, target, \
             client, request_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(e.at)
        .bind(e.action.as_str())
        .bind(outcome.as_str())
        .bind(i64::from(e.status))
        .bind(e.actor.as_deref())
        .bind(e.server_uuid.as_deref())
        .bind(e.target.as_deref())
        .bind(e.client.as_deref())
        .bind(e.request_id.as_deref())
        .run_on(self)
        .await?;
        Ok(())
    }

    /// Entries matching `filter` with an ID below `before`, newest first.
    pub async fn audit(
        &self,
        filter: &AuditFilter,
        before: i64,
        limit: i64,
    ) -> Result<Vec<AuditRow>> {
        let rows = sqlx::query(
            "SELECT id, at, action, outcome, status, actor, server_uuid, target, client, \
             request_id FROM audit_log WHERE id < $1 \
             AND (CAST($2 AS TEXT) IS NULL OR server_uuid = $2) \
             AND (CAST($3 AS TEXT) IS NULL OR actor = $3) \
             AND (CAST($4 AS TEXT) IS NULL OR action = $4) \
             AND (CAST($5 AS TEXT) IS NULL OR outcome = $5) \
             AND at >= $6 AND at < $7 ORDER BY id DESC LIMIT $8",
        )
        .bind(before)
        .bind(filter.server_uuid.as_deref())
        .bind(filter.actor.as_deref())
        .bind(filter.action.map(|a| a.as_str()))
        .bind(filter.outcome.map(|o| o.as_str()))
        .bind(filter.from.unwrap_or(i64::MIN))
        .bind(filter.to.unwrap_or(i64::MAX))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(row_of).collect()
    }

    /// Removes entries older than `before`; returns how many.
    pub async fn sweep_audit(&self, before: i64) -> Result<u64> {
        let done = sqlx::query("DELETE FROM audit_log WHERE at < $1")
            .bind(before)
            .run_on(self)
            .await?;
        Ok(done.rows_affected())
    }
}

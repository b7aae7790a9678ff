//! The audit log: one entry per audited request (written by the web
//! layer's `audit` middleware once the answer is known) or operator command,
//! also logged at INFO under the target `audit`; read by root admins.

use api::panel::{AuditEntry, AuditList};
use api::{AuditAction, AuditOutcome, ServerUuid, Timestamp};

use super::Panel;
use crate::PanelError;
use crate::permissions::RootAdmin;
use crate::storage::{AuditFilter, AuditRecord};

/// Page size limits of the audit log.
pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 200;

/// The audit log's query, as given (checked by [`Panel::audit_log`]).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    pub limit: Option<String>,
    pub cursor: Option<String>,
    pub server: Option<String>,
    pub actor: Option<String>,
    pub action: Option<String>,
    pub outcome: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
}

fn bad(code: &'static str, message: impl Into<String>) -> PanelError {
    PanelError::bad_request(code, message)
}

fn time_of(name: &str, value: Option<&str>) -> Result<Option<i64>, PanelError> {
    value
        .filter(|v| !v.is_empty())
        .map(|v| {
            Timestamp::parse(v).map(|t| t.unix()).ok_or_else(|| {
                bad(
                    "invalid_time",
                    format!("{name} must be an RFC 3339 time such as 2026-11-27T18:00:00Z"),
                )
            })
        })
        .transpose()
}

/// A filter's value, read with `parse` when one was given (an empty one
/// counts as none); a bad one is 400 `code` with the parser's message.
fn given<T, E: std::fmt::Display>(
    value: &Option<String>,
    code: &'static str,
    parse: impl Fn(&str) -> Result<T, E>,
) -> Result<Option<T>, PanelError> {
    value
        .as_deref()
        .filter(|v| !v.is_empty())
        .map(|v| parse(v).map_err(|e| bad(code, e.to_string())))
        .transpose()
}

impl AuditQuery {
    fn checked(&self) -> Result<(AuditFilter, i64, i64), PanelError> {
        let limit = match self.limit.as_deref().filter(|v| !v.is_empty()) {
            None => DEFAULT_LIMIT,
            Some(v) => match v.parse::<i64>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
                _ => {
                    return Err(bad(
                        "invalid_limit",
                        format!("limit must be a number from 1 to {MAX_LIMIT}"),
                    ));
                }
            },
        };
        let before = match self.cursor.as_deref().filter(|v| !v.is_empty()) {
            None => i64::MAX,
            Some(v) => match v.parse::<i64>() {
                Ok(n) if n > 0 => n,
                _ => {
                    return Err(bad(
                        "invalid_cursor",
                        "cursor must be a next_cursor the log gave",
                    ));
                }
            },
        };
        let server_uuid = given(&self.server, "invalid_server_id", |v| {
            ServerUuid::parse(v).map(|u| u.to_string())
        })?;
        let action = given(&self.action, "invalid_action", str::parse::<AuditAction>)?;
        let outcome = given(&self.outcome, "invalid_outcome", str::parse::<AuditOutcome>)?;
        let actor = self
            .actor
            .as_deref()
            .map(|v| v.trim().to_lowercase())
            .filter(|v| !v.is_empty());
        if actor.as_ref().is_some_and(|a| a.len() > 320) {
            return Err(bad("invalid_actor", "actor is at most 320 characters"));
        }
        let from = time_of("from", self.from.as_deref())?;
        let to = time_of("to", self.to.as_deref())?;
        if let (Some(f), Some(t)) = (from, to)
            && f > t
        {
            return Err(bad("invalid_time", "from must not be after to"));
        }
        Ok((
            AuditFilter {
                server_uuid,
                actor,
                action,
                outcome,
                from,
                to,
            },
            before,
            limit,
        ))
    }
}

/// Writes one entry (and its log line). An entry that can not be written
/// is logged as an error; what it describes stands.
pub(crate) async fn write(storage: &crate::storage::Storage, record: AuditRecord) {
    let outcome = if record.status == 0 {
        AuditOutcome::Ok
    } else {
        AuditOutcome::of(record.status)
    };
    tracing::info!(
        target: "audit",
        action = record.action.as_str(),
        outcome = outcome.as_str(),
        status = record.status,
        actor = record.actor.as_deref().unwrap_or("-"),
        server = record.server_uuid.as_deref().unwrap_or("-"),
        target = record.target.as_deref().unwrap_or("-"),
        client = record.client.as_deref().unwrap_or("-"),
        "audit"
    );
    if let Err(e) = storage.add_audit(&record).await {
        tracing::error!(error = %e, action = record.action.as_str(), "the audit entry could not be written");
    }
}

impl Panel {
    /// Writes one entry (see [`write`]).
    pub async fn audit(&self, record: AuditRecord) {
        write(self.storage(), record).await;
    }

    /// Removes entries older than `days` (0: keeps them all).
    pub async fn sweep_audit(&self, days: u32, now: i64) {
        if days == 0 {
            return;
        }
        match self
            .storage()
            .sweep_audit(now - i64::from(days) * 86_400)
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::info!(entries = n, days, "old audit entries removed"),
            Err(e) => tracing::warn!(error = %e, "old audit entries not removed"),
        }
    }

    /// `GET .../admin/audit`.
    pub async fn audit_log(
        &self,
        _: &RootAdmin,
        query: &AuditQuery,
    ) -> Result<AuditList, PanelError> {
        let (filter, before, limit) = query.checked()?;
        // One more than asked says whether an older page exists.
        let mut rows = self.storage().audit(&filter, before, limit + 1).await?;
        let more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        let next_cursor = more
            .then(|| rows.last().map(|r| r.id.to_string()))
            .flatten();
        let entries = rows
            .into_iter()
            .map(|r| AuditEntry {
                id: r.id,
                at: Timestamp::from_unix(r.record.at).unwrap_or_else(Timestamp::now),
                action: r.record.action,
                outcome: r.outcome,
                status: r.record.status,
                actor: r.record.actor,
                server: r
                    .record
                    .server_uuid
                    .and_then(|u| ServerUuid::parse(&u).ok()),
                target: r.record.target,
                client: r.record.client,
                request_id: r.record.request_id,
            })
            .collect();
        Ok(AuditList {
            entries,
            next_cursor,
        })
    }
}

//! `notification_channels` (where to send, the target sealed),
//! `notification_outbox` (each message until it is delivered or given up,
//! so a restart or a receiver that is down loses nothing) and
//! `notification_missing` (which "no backup for N hours" stretch a channel
//! was told about, so it is told once).

use api::{ChannelKind, NotifyEvent};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Result, RunOn, Storage};

/// One channel, its target still sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelRow {
    pub id: String,
    pub name: String,
    pub kind: ChannelKind,
    pub target_enc: String,
    /// What may be shown of the target (a URL's scheme and host).
    pub target_shown: String,
    pub events: Vec<NotifyEvent>,
    pub missing_hours: u32,
    pub created_at: i64,
    pub last_error: Option<String>,
    /// A server owner's own channel: only that server's messages.
    pub server_uuid: Option<String>,
    /// Who set it: it is sent to only while they own the server.
    pub owner_id: Option<i64>,
}

/// One message waiting to be (re)sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    pub id: i64,
    pub channel_id: String,
    pub event: NotifyEvent,
    /// The message as JSON (see `service::notify::Message`); no secrets.
    pub payload: String,
    pub attempts: u32,
}

/// A server with an enabled schedule, and when its last backup succeeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduledServer {
    pub uuid: String,
    pub name: String,
    pub owner_id: i64,
    /// The newest successful backup (any origin), if any.
    pub last_ok: Option<i64>,
    /// When the schedule starts counting (its anchor, else its last change).
    pub since: i64,
}

fn channel_of(r: &AnyRow) -> Result<ChannelRow> {
    let events: String = r.try_get("events")?;
    let missing: i64 = r.try_get("missing_hours")?;
    Ok(ChannelRow {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        kind: super::word(r, "kind")?,
        target_enc: r.try_get("target_enc")?,
        target_shown: r.try_get("target_shown")?,
        events: events
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect(),
        missing_hours: u32::try_from(missing).unwrap_or(26),
        created_at: r.try_get("created_at")?,
        last_error: r.try_get("last_error")?,
        server_uuid: r.try_get("server_uuid")?,
        owner_id: r.try_get("owner_id")?,
    })
}

const CHANNEL_COLS: &str = "id, name, kind, target_enc, target_shown, events, missing_hours, \
     created_at, last_error, server_uuid, owner_id";

impl Storage {
    pub async fn add_channel(&self, c: &ChannelRow) -> Result<()> {
        let events = c
            .events
            .iter()
            .map(|e| e.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        sqlx::query(
            "INSERT INTO notification_channels (id, name, kind, target_enc, target_shown, \
             events, missing_hours, created_at, server_uuid, owner_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&c.id)
        .bind(&c.name)
        .bind(c.kind.as_str())
        .bind(&c.target_enc)
        .bind(&c.target_shown)
        .bind(events)
        .bind(i64::from(c.missing_hours))
        .bind(c.created_at)
        .bind(c.server_uuid.as_deref())
        .bind(c.owner_id)
        .run_on(self)
        .await
        .map_err(|e| match e {
            super::StorageError::Conflict(_) => {
                super::StorageError::Conflict("a notification channel with this name")
            }
            other => other,
        })?;
        Ok(())
    }

    /// The admins' channels (not the server owners' own).
    pub async fn channels(&self) -> Result<Vec<ChannelRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {CHANNEL_COLS} FROM notification_channels WHERE server_uuid IS NULL \
             ORDER BY name"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(channel_of).collect()
    }

    /// Every channel, the owners' own included.
    pub async fn all_channels(&self) -> Result<Vec<ChannelRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {CHANNEL_COLS} FROM notification_channels ORDER BY name"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(channel_of).collect()
    }

    /// The channels a message about `server_uuid` goes to: the admins'
    /// and that server owner's own.
    pub async fn channels_for(&self, server_uuid: Option<&str>) -> Result<Vec<ChannelRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {CHANNEL_COLS} FROM notification_channels \
             WHERE server_uuid IS NULL OR server_uuid = $1 ORDER BY name"
        ))
        .bind(server_uuid)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(channel_of).collect()
    }

    /// A server owner's own channel.
    pub async fn server_channel(&self, server_uuid: &str) -> Result<Option<ChannelRow>> {
        let row = sqlx::query(&format!(
            "SELECT {CHANNEL_COLS} FROM notification_channels WHERE server_uuid = $1"
        ))
        .bind(server_uuid)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(channel_of).transpose()
    }

    pub async fn channel(&self, id: &str) -> Result<Option<ChannelRow>> {
        let row = sqlx::query(&format!(
            "SELECT {CHANNEL_COLS} FROM notification_channels WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(channel_of).transpose()
    }

    /// Removes the channel and what waits to be sent through it.
    pub async fn delete_channel(&self, id: &str) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        for table in ["notification_outbox", "notification_missing"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE channel_id = $1"))
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        let done = sqlx::query("DELETE FROM notification_channels WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        self.commit(tx).await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn set_channel_error(&self, id: &str, error: Option<&str>) -> Result<()> {
        sqlx::query("UPDATE notification_channels SET last_error = $1 WHERE id = $2")
            .bind(error)
            .bind(id)
            .run_on(self)
            .await?;
        Ok(())
    }

    /// Queues one message for one channel, due now.
    pub async fn enqueue(
        &self,
        channel_id: &str,
        event: NotifyEvent,
        server_uuid: Option<&str>,
        payload: &str,
        now: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO notification_outbox (channel_id, event, server_uuid, payload, status, \
             attempts, next_at, lease_until, created_at) \
             VALUES ($1, $2, $3, $4, 'pending', 0, $5, 0, $5)",
        )
        .bind(channel_id)
        .bind(event.as_str())
        .bind(server_uuid)
        .bind(payload)
        .bind(now)
        .run_on(self)
        .await?;
        Ok(())
    }

    /// Messages due now that no panel is sending.
    pub async fn due_messages(&self, now: i64, limit: i64) -> Result<Vec<OutboxRow>> {
        let rows = sqlx::query(
            "SELECT id, channel_id, event, payload, attempts FROM notification_outbox \
             WHERE status = 'pending' AND next_at <= $1 AND lease_until < $1 \
             ORDER BY next_at, id LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let attempts: i64 = r.try_get("attempts")?;
                Ok(OutboxRow {
                    id: r.try_get("id")?,
                    channel_id: r.try_get("channel_id")?,
                    event: super::word(r, "event")?,
                    payload: r.try_get("payload")?,
                    attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                })
            })
            .collect()
    }

    /// Takes a message for sending until `until`; `false` when another
    /// panel took it first (or it is not due any more).
    pub async fn lease_message(&self, id: i64, now: i64, until: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE notification_outbox SET lease_until = $1 \
             WHERE id = $2 AND status = 'pending' AND lease_until < $3 AND next_at <= $3",
        )
        .bind(until)
        .bind(id)
        .bind(now)
        .run_on(self)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records an attempt by the holder of `lease` (a lease that ran out
    /// and was taken by another panel records nothing): delivered, to be
    /// tried again at `retry_at`, or (neither) given up.
    pub async fn message_attempted(
        &self,
        id: i64,
        lease: i64,
        delivered: bool,
        retry_at: Option<i64>,
        error: Option<&str>,
        now: i64,
    ) -> Result<()> {
        let status = if delivered {
            "sent"
        } else if retry_at.is_some() {
            "pending"
        } else {
            "failed"
        };
        sqlx::query(
            "UPDATE notification_outbox SET status = $1, attempts = attempts + 1, \
             next_at = $2, lease_until = 0, last_error = $3, \
             sent_at = CASE WHEN $1 = 'sent' THEN $4 ELSE sent_at END \
             WHERE id = $5 AND lease_until = $6",
        )
        .bind(status)
        .bind(retry_at.unwrap_or(now))
        .bind(error)
        .bind(now)
        .bind(id)
        .bind(lease)
        .run_on(self)
        .await?;
        Ok(())
    }

    /// Delivered and given-up messages older than `before` go, and marks
    /// of servers whose schedule is off or that are gone.
    pub async fn sweep_messages(&self, before: i64) -> Result<u64> {
        let done = sqlx::query(
            "DELETE FROM notification_outbox WHERE status <> 'pending' AND created_at < $1",
        )
        .bind(before)
        .run_on(self)
        .await?;
        sqlx::query(
            "DELETE FROM notification_missing WHERE server_uuid NOT IN \
             (SELECT s.uuid FROM servers s JOIN restic_policies p ON p.server_id = s.id \
              WHERE p.enabled = 1)",
        )
        .run_on(self)
        .await?;
        Ok(done.rows_affected())
    }

    /// The owner of the server `uuid`, if it exists.
    pub async fn owner_of(&self, uuid: &str) -> Result<Option<i64>> {
        let row = sqlx::query("SELECT owner_id FROM servers WHERE uuid = $1")
            .bind(uuid)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get("owner_id")).transpose()?)
    }

    /// Servers whose schedule is on, with their last successful backup.
    pub async fn scheduled_servers(&self) -> Result<Vec<ScheduledServer>> {
        let rows = sqlx::query(
            "SELECT s.uuid AS uuid, s.name AS name, s.owner_id AS owner_id, \
             p.anchor_at AS anchor_at, \
             p.updated_at AS updated_at, \
             (SELECT MAX(j.finished_at) FROM job_history j WHERE j.server_id = s.id \
              AND j.kind = 'backup' AND j.status = 'succeeded') AS last_ok \
             FROM servers s JOIN restic_policies p ON p.server_id = s.id WHERE p.enabled = 1",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let anchor: Option<i64> = r.try_get("anchor_at")?;
                let updated: i64 = r.try_get("updated_at")?;
                Ok(ScheduledServer {
                    uuid: r.try_get("uuid")?,
                    name: r.try_get("name")?,
                    owner_id: r.try_get("owner_id")?,
                    last_ok: r.try_get("last_ok")?,
                    since: anchor.unwrap_or(updated),
                })
            })
            .collect()
    }

    /// The stretch (its last success, or its start) a channel was last told
    /// about for a server.
    pub async fn missing_told(&self, channel_id: &str, server_uuid: &str) -> Result<Option<i64>> {
        let row = sqlx::query(
            "SELECT since FROM notification_missing WHERE channel_id = $1 AND server_uuid = $2",
        )
        .bind(channel_id)
        .bind(server_uuid)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| r.try_get("since")).transpose()?)
    }

    pub async fn set_missing_told(
        &self,
        channel_id: &str,
        server_uuid: &str,
        since: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO notification_missing (channel_id, server_uuid, since) VALUES ($1, $2, $3) \
             ON CONFLICT (channel_id, server_uuid) DO UPDATE SET since = excluded.since",
        )
        .bind(channel_id)
        .bind(server_uuid)
        .bind(since)
        .run_on(self)
        .await?;
        Ok(())
    }
}

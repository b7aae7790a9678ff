//! What Pterodactyl mode writes: synced users, nodes, servers and subusers
//! (keyed by Pterodactyl's ids), and the record of syncs that changed
//! something or failed. Each call is one transaction; the caller has worked
//! out what changed, so a sync that finds no change calls none of these.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::RunOn;
use super::servers::{NewServer, insert_server};
use super::{Result, Storage};

/// Marks an account that has no password here: no hash parses as this.
pub const NO_PASSWORD: &str = "!pterodactyl";

/// The stand-in e-mail of a synced user while theirs changes or while they
/// are parked; it has spaces, so no real address (nor any a Pterodactyl
/// user can set) is ever equal to it.
pub fn parked_email(ptero_id: i64) -> String {
    format!("pterodactyl user {ptero_id} (no e-mail here)")
}

/// A user as Pterodactyl has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncUser {
    pub ptero_id: i64,
    pub email: String,
    pub username: String,
    pub root_admin: bool,
}

/// A node as Pterodactyl has it; `token_enc` is `None` when the token was
/// not read again (the node did not change).
#[derive(Debug, Clone)]
pub struct SyncNode {
    pub ptero_id: i64,
    pub name: String,
    pub url: String,
    pub token_enc: Option<String>,
    pub ptero_updated_at: Option<String>,
}

/// A server's synced fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncServer {
    pub ptero_id: i64,
    pub name: String,
    pub owner_id: i64,
    pub node_id: i64,
    pub backup_limit: i64,
}

/// One subuser row: server, user, space-separated permissions.
pub type SubuserRow = (i64, i64, Vec<api::Permission>);

/// A sync that changed something or failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncRecord {
    pub id: i64,
    pub origin: String,
    pub started_at: i64,
    pub duration_ms: i64,
    pub ok: bool,
    pub rows_written: i64,
    pub summary: String,
    /// One error per line.
    pub errors: String,
}

fn sync_of(r: &AnyRow) -> Result<SyncRecord> {
    Ok(SyncRecord {
        id: r.try_get("id")?,
        origin: r.try_get("origin")?,
        started_at: r.try_get("started_at")?,
        duration_ms: r.try_get("duration_ms")?,
        ok: r.try_get::<i64, _>("ok")? != 0,
        rows_written: r.try_get("rows_written")?,
        summary: r.try_get("summary")?,
        errors: r.try_get("errors")?,
    })
}

impl Storage {
    /// Adds and updates synced users. E-mail changes go through a
    /// placeholder first, so two users who swap addresses do not collide.
    pub async fn sync_users(
        &self,
        add: &[SyncUser],
        update: &[(i64, SyncUser)],
        now: i64,
    ) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        let mut rows = 0;
        for (id, u) in update {
            rows += sqlx::query("UPDATE users SET email = $1 WHERE id = $2 AND email <> $3")
                .bind(parked_email(u.ptero_id))
                .bind(id)
                .bind(&u.email)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        for (id, u) in update {
            rows += sqlx::query(
                "UPDATE users SET email = $1, username = $2, root_admin = $3, ptero_id = $4 \
                 WHERE id = $5",
            )
            .bind(&u.email)
            .bind(&u.username)
            .bind(i64::from(u.root_admin))
            .bind(u.ptero_id)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        for u in add {
            rows += sqlx::query(
                "INSERT INTO users (email, password_hash, root_admin, created_at, ptero_id, username) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&u.email)
            .bind(NO_PASSWORD)
            .bind(i64::from(u.root_admin))
            .bind(now)
            .bind(u.ptero_id)
            .bind(&u.username)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        self.commit(tx).await?;
        Ok(rows)
    }

    /// Adds and updates synced nodes (browser downloads off: an agent
    /// beside Wings is reached by the panel).
    pub async fn sync_nodes(
        &self,
        add: &[SyncNode],
        update: &[(i64, SyncNode)],
        now: i64,
    ) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        let mut rows = 0;
        // Renames go through a placeholder, like e-mail changes of users.
        for (id, n) in update {
            rows += sqlx::query("UPDATE nodes SET name = $1 WHERE id = $2 AND name <> $3")
                .bind(format!("pterodactyl-node-{}.renaming", n.ptero_id))
                .bind(id)
                .bind(&n.name)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        for (id, n) in update {
            rows += sqlx::query(
                "UPDATE nodes SET name = $1, url = $2, token_enc = COALESCE($3, token_enc), \
                 ptero_updated_at = $4, ptero_id = $5 WHERE id = $6",
            )
            .bind(&n.name)
            .bind(&n.url)
            .bind(n.token_enc.as_deref())
            .bind(n.ptero_updated_at.as_deref())
            .bind(n.ptero_id)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        for n in add {
            rows += sqlx::query(
                "INSERT INTO nodes (name, url, token_enc, ca_pem, browser_downloads, created_at, \
                 ptero_id, ptero_updated_at) VALUES ($1, $2, $3, NULL, 0, $4, $5, $6)",
            )
            .bind(&n.name)
            .bind(&n.url)
            .bind(n.token_enc.as_deref().unwrap_or_default())
            .bind(now)
            .bind(n.ptero_id)
            .bind(n.ptero_updated_at.as_deref())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        self.commit(tx).await?;
        Ok(rows)
    }

    /// Adds servers (each with its sealed key, as `create_server`) and
    /// updates synced fields of others.
    pub async fn sync_servers(
        &self,
        add: &[(NewServer, String, i64)],
        update: &[(i64, SyncServer)],
        now: i64,
    ) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        let mut rows = 0;
        for (id, s) in update {
            rows += sqlx::query(
                "UPDATE servers SET name = $1, owner_id = $2, node_id = $3, backup_limit = $4, \
                 ptero_id = $5 WHERE id = $6",
            )
            .bind(&s.name)
            .bind(s.owner_id)
            .bind(s.node_id)
            .bind(s.backup_limit)
            .bind(s.ptero_id)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        for (server, key_enc, ptero_id) in add {
            insert_server(&mut tx, server, key_enc, Some(*ptero_id), now).await?;
            rows += 1;
        }
        self.commit(tx).await?;
        Ok(rows)
    }

    /// Every subuser row.
    pub async fn all_subusers(&self) -> Result<Vec<SubuserRow>> {
        sqlx::query("SELECT server_id, user_id, permissions FROM subusers")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| {
                let perms: String = r.try_get("permissions")?;
                Ok((
                    r.try_get("server_id")?,
                    r.try_get("user_id")?,
                    api::vocab::parse_permissions(&perms),
                ))
            })
            .collect()
    }

    /// Sets (inserts or replaces) and removes subuser rows.
    pub async fn sync_subusers(&self, set: &[SubuserRow], remove: &[(i64, i64)]) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        let mut rows = 0;
        for (server_id, user_id) in remove {
            rows += sqlx::query("DELETE FROM subusers WHERE server_id = $1 AND user_id = $2")
                .bind(server_id)
                .bind(user_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        for (server_id, user_id, permissions) in set {
            rows += sqlx::query(
                "INSERT INTO subusers (server_id, user_id, permissions) VALUES ($1, $2, $3) \
                 ON CONFLICT (server_id, user_id) DO UPDATE SET permissions = excluded.permissions",
            )
            .bind(server_id)
            .bind(user_id)
            .bind(api::vocab::join_permissions(permissions))
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        self.commit(tx).await?;
        Ok(rows)
    }

    /// A synced user who can not be synced now (their e-mail belongs to a
    /// local account): no e-mail held, no admin, no subuser rows, no
    /// sessions. Answers 0 when they were parked already.
    pub async fn park_user(&self, id: i64, ptero_id: i64) -> Result<u64> {
        self.revoke_access(id, Some(&parked_email(ptero_id))).await
    }

    /// Takes root admin away, removes every subuser row and session of a
    /// user, in one step (a user Pterodactyl no longer has, who still owns
    /// a server that waits for deletion).
    pub async fn disable_user(&self, id: i64) -> Result<u64> {
        self.revoke_access(id, None).await
    }

    /// No admin, no subuser rows, no sessions; the e-mail replaced when
    /// `email` is given. Counts the rows that changed.
    async fn revoke_access(&self, id: i64, email: Option<&str>) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        let mut rows = sqlx::query(
            "UPDATE users SET email = COALESCE($1, email), root_admin = 0 WHERE id = $2 \
             AND (email <> COALESCE($1, email) OR root_admin <> 0)",
        )
        .bind(email)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        for sql in [
            "DELETE FROM subusers WHERE user_id = $1",
            "DELETE FROM sessions WHERE user_id = $1",
        ] {
            rows += sqlx::query(sql)
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        self.commit(tx).await?;
        Ok(rows)
    }

    pub async fn record_sync(&self, r: &SyncRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO pterodactyl_syncs (origin, started_at, duration_ms, ok, rows_written, \
             summary, errors) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&r.origin)
        .bind(r.started_at)
        .bind(r.duration_ms)
        .bind(i64::from(r.ok))
        .bind(r.rows_written)
        .bind(&r.summary)
        .bind(&r.errors)
        .run_on(self)
        .await?;
        Ok(())
    }

    /// The most recent recorded syncs, newest first.
    pub async fn recent_syncs(&self, limit: i64) -> Result<Vec<SyncRecord>> {
        sqlx::query(
            "SELECT id, origin, started_at, duration_ms, ok, rows_written, summary, errors \
             FROM pterodactyl_syncs ORDER BY id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(sync_of)
        .collect()
    }
}

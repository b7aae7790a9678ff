//! `servers`, `restic` (the current and pending key) and `restic_key_history`.

use sqlx::Row;
use sqlx::any::AnyRow;

use api::ServerUuid;

use super::RunOn;
use super::archived_keys::{self, ArchivedKeyGeneration};
use super::{Result, Storage, StorageError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    pub id: i64,
    pub uuid: ServerUuid,
    pub name: String,
    pub owner_id: i64,
    pub node_id: i64,
    /// Snapshots kept at most; 0: no limit; negative: backups disabled
    /// (a Pterodactyl limit of 0 with `zero_backup_limit = "disabled"`).
    pub backup_limit: i64,
    /// The Pterodactyl server this one is synced from.
    pub ptero_id: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct NewServer {
    pub uuid: ServerUuid,
    pub name: String,
    pub owner_id: i64,
    pub node_id: i64,
    pub backup_limit: i64,
}

pub(super) const SERVER_COLS: &str = "id, uuid, name, owner_id, node_id, backup_limit, ptero_id";

pub(super) fn server_of(row: &AnyRow) -> Result<Server> {
    let uuid: String = row.try_get("uuid")?;
    Ok(Server {
        id: row.try_get("id")?,
        uuid: ServerUuid::parse(&uuid).map_err(|_| {
            StorageError::Database(format!("stored server uuid {uuid:?} is not a UUID"))
        })?,
        name: row.try_get("name")?,
        owner_id: row.try_get("owner_id")?,
        node_id: row.try_get("node_id")?,
        backup_limit: row.try_get("backup_limit")?,
        ptero_id: row.try_get("ptero_id")?,
    })
}

/// Inserts a server with its key and the key's first history row.
pub(super) async fn insert_server(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    s: &NewServer,
    key_enc: &str,
    ptero_id: Option<i64>,
    now: i64,
) -> Result<Server> {
    let row = sqlx::query(&format!(
        "INSERT INTO servers (uuid, name, owner_id, node_id, backup_limit, created_at, ptero_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {SERVER_COLS}"
    ))
    .bind(s.uuid.as_str())
    .bind(&s.name)
    .bind(s.owner_id)
    .bind(s.node_id)
    .bind(s.backup_limit)
    .bind(now)
    .bind(ptero_id)
    .fetch_one(&mut **tx)
    .await
    .map_err(|e| match StorageError::from(e) {
        StorageError::Conflict(_) => StorageError::Conflict("a server with this UUID"),
        other => other,
    })?;
    let server = server_of(&row)?;
    sqlx::query(
        "INSERT INTO restic (server_id, encryption_key_enc, updated_at) VALUES ($1, $2, $3)",
    )
    .bind(server.id)
    .bind(key_enc)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "INSERT INTO restic_key_history (server_id, encryption_key_enc, created_at) VALUES ($1, $2, $3)",
    )
    .bind(server.id)
    .bind(key_enc)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(server)
}

impl Storage {
    /// Creates a server together with its (sealed) repository key.
    pub async fn create_server(&self, s: &NewServer, key_enc: &str, now: i64) -> Result<Server> {
        let mut tx = self.pool.begin().await?;
        let server = insert_server(&mut tx, s, key_enc, None, now).await?;
        self.commit(tx).await?;
        Ok(server)
    }

    pub async fn server(&self, id: i64) -> Result<Option<Server>> {
        sqlx::query(&format!("SELECT {SERVER_COLS} FROM servers WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(server_of)
            .transpose()
    }

    pub async fn server_by_uuid(&self, uuid: &ServerUuid) -> Result<Option<Server>> {
        self.cached(
            |s| &mut s.servers,
            uuid.as_str(),
            Option::is_some,
            self.server_by_uuid_db(uuid),
        )
        .await
    }

    async fn server_by_uuid_db(&self, uuid: &ServerUuid) -> Result<Option<Server>> {
        sqlx::query(&format!(
            "SELECT {SERVER_COLS} FROM servers WHERE uuid = $1"
        ))
        .bind(uuid.as_str())
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(server_of)
        .transpose()
    }

    pub async fn servers(&self) -> Result<Vec<Server>> {
        sqlx::query(&format!(
            "SELECT {SERVER_COLS} FROM servers ORDER BY name, id"
        ))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(server_of)
        .collect()
    }

    /// Servers a user owns or is a subuser of.
    pub async fn servers_of_user(&self, user_id: i64) -> Result<Vec<Server>> {
        sqlx::query(&format!(
            "SELECT {SERVER_COLS} FROM servers WHERE owner_id = $1 \
             OR id IN (SELECT server_id FROM subusers WHERE user_id = $2) ORDER BY name, id"
        ))
        .bind(user_id)
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(server_of)
        .collect()
    }

    pub async fn set_backup_limit(&self, server_id: i64, limit: i64) -> Result<bool> {
        let done = sqlx::query("UPDATE servers SET backup_limit = $1 WHERE id = $2")
            .bind(limit)
            .bind(server_id)
            .run_on(self)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Changes what is given; `false` when no such server.
    pub async fn update_server(
        &self,
        server_id: i64,
        name: Option<&str>,
        owner_id: Option<i64>,
        backup_limit: Option<i64>,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE servers SET name = COALESCE($1, name), owner_id = COALESCE($2, owner_id), \
             backup_limit = COALESCE($3, backup_limit) WHERE id = $4",
        )
        .bind(name)
        .bind(owner_id)
        .bind(backup_limit)
        .bind(server_id)
        .run_on(self)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn delete_server(&self, server_id: i64) -> Result<bool> {
        let done = sqlx::query("DELETE FROM servers WHERE id = $1")
            .bind(server_id)
            .run_on(self)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The server's current sealed key.
    pub async fn server_key(&self, server_id: i64) -> Result<Option<String>> {
        Ok(
            sqlx::query("SELECT encryption_key_enc FROM restic WHERE server_id = $1")
                .bind(server_id)
                .fetch_optional(&self.pool)
                .await?
                .map(|r| r.try_get("encryption_key_enc"))
                .transpose()?,
        )
    }

    /// The sealed key of a rotation not yet confirmed, if any.
    pub async fn pending_key(&self, server_id: i64) -> Result<Option<String>> {
        Ok(
            sqlx::query("SELECT pending_key_enc FROM restic WHERE server_id = $1")
                .bind(server_id)
                .fetch_optional(&self.pool)
                .await?
                .map(|r| r.try_get::<Option<String>, _>("pending_key_enc"))
                .transpose()?
                .flatten(),
        )
    }

    /// Remembers the key a rotation is about to put in place.
    pub async fn set_pending_key(&self, server_id: i64, key_enc: &str) -> Result<()> {
        sqlx::query("UPDATE restic SET pending_key_enc = $1 WHERE server_id = $2")
            .bind(key_enc)
            .bind(server_id)
            .run_on(self)
            .await?;
        Ok(())
    }

    /// When the current key was last set.
    pub async fn key_updated_at(&self, server_id: i64) -> Result<Option<i64>> {
        Ok(
            sqlx::query("SELECT updated_at FROM restic WHERE server_id = $1")
                .bind(server_id)
                .fetch_optional(&self.pool)
                .await?
                .map(|r| r.try_get("updated_at"))
                .transpose()?,
        )
    }

    /// Stores a rotated key: the old history row is retired, a new one added,
    /// the pending key cleared.
    pub async fn replace_server_key(&self, server_id: i64, key_enc: &str, now: i64) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE restic SET encryption_key_enc = $1, pending_key_enc = NULL, updated_at = $2 \
             WHERE server_id = $3",
        )
        .bind(key_enc)
        .bind(now)
        .bind(server_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE restic_key_history SET retired_at = $1 WHERE server_id = $2 AND retired_at IS NULL")
            .bind(now)
            .bind(server_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO restic_key_history (server_id, encryption_key_enc, created_at) VALUES ($1, $2, $3)")
            .bind(server_id)
            .bind(key_enc)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        self.commit(tx).await?;
        Ok(())
    }

    /// Every key a server has had, oldest first (the current one included).
    pub async fn key_history(&self, server_id: i64) -> Result<Vec<ArchivedKeyGeneration>> {
        sqlx::query(
            "SELECT encryption_key_enc, created_at, retired_at FROM restic_key_history \
             WHERE server_id = $1 ORDER BY created_at, id",
        )
        .bind(server_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(archived_keys::generation_of)
        .collect()
    }

    /// Number of keys a server has had (the current one included).
    pub async fn key_history_len(&self, server_id: i64) -> Result<i64> {
        Ok(
            sqlx::query("SELECT COUNT(*) AS n FROM restic_key_history WHERE server_id = $1")
                .bind(server_id)
                .fetch_one(&self.pool)
                .await?
                .try_get("n")?,
        )
    }
}

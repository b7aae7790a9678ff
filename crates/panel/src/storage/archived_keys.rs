//! `archived_keys` and `archived_key_history`: the keys of deleted servers'
//! repositories. Deleting a server moves its key rows here in the same
//! transaction, so no moment exists in which the key is gone.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Result, Storage};

/// The key record of one archived repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivedKey {
    pub id: i64,
    pub server_uuid: String,
    pub server_name: String,
    pub node_name: String,
    /// The agent's name of the archive; `None` when the server was
    /// force-deleted because its node was gone.
    pub archive_name: Option<String>,
    /// Sealed, bound to `server:<uuid>` as when the server existed.
    pub key_enc: String,
    pub pending_key_enc: Option<String>,
    pub archived_at: i64,
}

/// One key a repository has had (`restic_key_history` and
/// `archived_key_history` rows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivedKeyGeneration {
    pub key_enc: String,
    pub created_at: i64,
    pub retired_at: Option<i64>,
}

/// A row of `restic_key_history` or `archived_key_history`.
pub(super) fn generation_of(r: &AnyRow) -> Result<ArchivedKeyGeneration> {
    Ok(ArchivedKeyGeneration {
        key_enc: r.try_get("encryption_key_enc")?,
        created_at: r.try_get("created_at")?,
        retired_at: r.try_get("retired_at")?,
    })
}

const COLS: &str = "id, server_uuid, server_name, node_name, archive_name, encryption_key_enc, pending_key_enc, archived_at";

fn archived_key_of(r: &AnyRow) -> Result<ArchivedKey> {
    Ok(ArchivedKey {
        id: r.try_get("id")?,
        server_uuid: r.try_get("server_uuid")?,
        server_name: r.try_get("server_name")?,
        node_name: r.try_get("node_name")?,
        archive_name: r.try_get("archive_name")?,
        key_enc: r.try_get("encryption_key_enc")?,
        pending_key_enc: r.try_get("pending_key_enc")?,
        archived_at: r.try_get("archived_at")?,
    })
}

impl Storage {
    /// Deletes a server, first moving its key, pending key and key history
    /// to the archived keys (one transaction). `archive_name` is the agent's
    /// name of the archived repository (`None`: the node is gone). Returns
    /// whether the server existed.
    pub async fn delete_server_keeping_key(
        &self,
        server_id: i64,
        archive_name: Option<&str>,
        now: i64,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let archived: Option<i64> = sqlx::query(
            "INSERT INTO archived_keys (server_uuid, server_name, node_name, archive_name, \
             encryption_key_enc, pending_key_enc, archived_at) \
             SELECT s.uuid, s.name, n.name, $2, r.encryption_key_enc, r.pending_key_enc, $3 \
             FROM servers s JOIN nodes n ON n.id = s.node_id JOIN restic r ON r.server_id = s.id \
             WHERE s.id = $1 RETURNING id",
        )
        .bind(server_id)
        .bind(archive_name)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?
        .map(|r| r.try_get("id"))
        .transpose()?;
        if let Some(id) = archived {
            sqlx::query(
                "INSERT INTO archived_key_history (archived_key_id, encryption_key_enc, created_at, retired_at) \
                 SELECT $1, encryption_key_enc, created_at, retired_at FROM restic_key_history \
                 WHERE server_id = $2",
            )
            .bind(id)
            .bind(server_id)
            .execute(&mut *tx)
            .await?;
        }
        let done = sqlx::query("DELETE FROM servers WHERE id = $1")
            .bind(server_id)
            .execute(&mut *tx)
            .await?;
        self.commit(tx).await?;
        Ok(done.rows_affected() == 1)
    }

    /// Every archived key record, newest first.
    pub async fn archived_keys(&self) -> Result<Vec<ArchivedKey>> {
        sqlx::query(&format!(
            "SELECT {COLS} FROM archived_keys ORDER BY archived_at DESC, id DESC"
        ))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(archived_key_of)
        .collect()
    }

    /// The keys an archived repository has had, oldest first.
    pub async fn archived_key_history(&self, id: i64) -> Result<Vec<ArchivedKeyGeneration>> {
        sqlx::query(
            "SELECT encryption_key_enc, created_at, retired_at FROM archived_key_history \
             WHERE archived_key_id = $1 ORDER BY created_at, id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(generation_of)
        .collect()
    }

    /// Forgets one archived key record and its history (its archive was
    /// deleted). Returns whether it existed.
    pub async fn delete_archived_key(&self, id: i64) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM archived_key_history WHERE archived_key_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM archived_keys WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        self.commit(tx).await?;
        Ok(done.rows_affected() == 1)
    }
}

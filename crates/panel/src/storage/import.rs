//! Writing what the importer carried over from another install: one
//! transaction per server, each statement written so that running the same
//! import twice changes nothing (notes only when their text changed, jobs
//! keyed by where they came from, a schedule only where none is stored).
//! Also `snapshot_notes`, which the backups list reads.

use std::collections::{HashMap, HashSet};

use sqlx::Row;

use super::policies::Policy;
use super::{Result, Storage};

/// A key as stored in a server's history (sealed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRow {
    pub key_enc: String,
    pub created_at: i64,
    pub retired_at: Option<i64>,
    pub owner_username: Option<String>,
}

/// A run carried over into `job_history`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedJob {
    /// Where it came from (`extension:<id>`); unique per server.
    pub import_ref: String,
    pub kind: String,
    pub status: api::RunStatus,
    pub error: Option<String>,
    pub started_at: i64,
    pub finished_at: Option<i64>,
}

/// Everything one server gets from an import.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerImportWrite {
    pub server_id: i64,
    /// A new current key: the earlier current key is retired at `now`.
    pub current_key: Option<KeyRow>,
    /// Earlier keys to add to the history (already known ones left out).
    pub history: Vec<KeyRow>,
    /// Written only if the server has no schedule stored yet.
    pub policy: Option<Policy>,
    /// `(snapshot ID, note)`.
    pub notes: Vec<(String, String)>,
    pub jobs: Vec<ImportedJob>,
}

/// Rows an import wrote, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportWritten {
    pub keys: u64,
    pub history: u64,
    pub policies: u64,
    pub notes: u64,
    pub jobs: u64,
}

impl ImportWritten {
    pub fn total(&self) -> u64 {
        self.keys + self.history + self.policies + self.notes + self.jobs
    }
}

/// What the panel already holds of every server, read at once so an
/// import of thousands of servers costs a handful of queries, not five per
/// server. Keyed by server id.
#[derive(Debug, Default)]
pub struct ImportState {
    pub key_rows: HashMap<i64, Vec<KeyRow>>,
    pub current_keys: HashMap<i64, String>,
    pub policies: HashMap<i64, Policy>,
    pub notes: HashMap<i64, HashMap<String, String>>,
    pub job_refs: HashMap<i64, HashSet<String>>,
}

impl Storage {
    /// Everything an import compares with, for all servers.
    pub async fn import_state(&self) -> Result<ImportState> {
        let mut st = ImportState::default();
        for r in sqlx::query(
            "SELECT server_id, encryption_key_enc, created_at, retired_at, owner_username \
             FROM restic_key_history ORDER BY server_id, created_at, id",
        )
        .fetch_all(&self.pool)
        .await?
        {
            st.key_rows
                .entry(r.try_get("server_id")?)
                .or_default()
                .push(KeyRow {
                    key_enc: r.try_get("encryption_key_enc")?,
                    created_at: r.try_get("created_at")?,
                    retired_at: r.try_get("retired_at")?,
                    owner_username: r.try_get("owner_username")?,
                });
        }
        for r in sqlx::query("SELECT server_id, encryption_key_enc FROM restic")
            .fetch_all(&self.pool)
            .await?
        {
            st.current_keys
                .insert(r.try_get("server_id")?, r.try_get("encryption_key_enc")?);
        }
        for r in sqlx::query(&format!(
            "SELECT {} FROM restic_policies",
            super::policies::POLICY_COLS
        ))
        .fetch_all(&self.pool)
        .await?
        {
            let p = super::policies::policy_of(&r)?;
            st.policies.insert(p.server_id, p);
        }
        for r in sqlx::query("SELECT server_id, snapshot_id, note FROM snapshot_notes")
            .fetch_all(&self.pool)
            .await?
        {
            st.notes
                .entry(r.try_get("server_id")?)
                .or_default()
                .insert(r.try_get("snapshot_id")?, r.try_get("note")?);
        }
        for r in sqlx::query(
            "SELECT server_id, import_ref FROM job_history WHERE import_ref IS NOT NULL",
        )
        .fetch_all(&self.pool)
        .await?
        {
            st.job_refs
                .entry(r.try_get("server_id")?)
                .or_default()
                .insert(r.try_get("import_ref")?);
        }
        Ok(st)
    }

    /// Applies one server's import in one transaction.
    pub async fn write_import(&self, w: &ServerImportWrite, now: i64) -> Result<ImportWritten> {
        let mut n = ImportWritten::default();
        let mut tx = self.pool.begin().await?;
        if let Some(k) = &w.current_key {
            sqlx::query(
                "UPDATE restic SET encryption_key_enc = $1, pending_key_enc = NULL, updated_at = $2 \
                 WHERE server_id = $3",
            )
            .bind(&k.key_enc)
            .bind(now)
            .bind(w.server_id)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE restic_key_history SET retired_at = $1 \
                 WHERE server_id = $2 AND retired_at IS NULL",
            )
            .bind(now)
            .bind(w.server_id)
            .execute(&mut *tx)
            .await?;
            insert_key_row(&mut tx, w.server_id, k).await?;
            n.keys += 1;
        }
        for k in &w.history {
            insert_key_row(&mut tx, w.server_id, k).await?;
            n.history += 1;
        }
        if let Some(p) = &w.policy {
            let done = sqlx::query(
                "INSERT INTO restic_policies (server_id, enabled, interval_value, interval_unit, \
                 keep_last, keep_daily, keep_weekly, keep_monthly, keep_yearly, keep_within, \
                 anchor_at, next_run_at, last_run_at, failures, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 0, $14) \
                 ON CONFLICT (server_id) DO NOTHING",
            )
            .bind(w.server_id)
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
            .bind(p.last_run_at)
            .bind(p.updated_at)
            .execute(&mut *tx)
            .await?;
            n.policies += done.rows_affected();
        }
        for (snapshot, note) in &w.notes {
            let done = sqlx::query(
                "INSERT INTO snapshot_notes (server_id, snapshot_id, note, updated_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (server_id, snapshot_id) DO UPDATE \
                 SET note = excluded.note, updated_at = excluded.updated_at \
                 WHERE snapshot_notes.note <> excluded.note",
            )
            .bind(w.server_id)
            .bind(snapshot)
            .bind(note)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            n.notes += done.rows_affected();
        }
        for j in &w.jobs {
            let done = sqlx::query(
                "INSERT INTO job_history (server_id, kind, origin, status, error, started_at, \
                 finished_at, import_ref) VALUES ($1, $2, $8, $3, $4, $5, $6, $7) \
                 ON CONFLICT (server_id, import_ref) DO NOTHING",
            )
            .bind(w.server_id)
            .bind(&j.kind)
            .bind(j.status.as_str())
            .bind(j.error.as_deref())
            .bind(j.started_at)
            .bind(j.finished_at)
            .bind(&j.import_ref)
            .bind(api::RunOrigin::Imported.as_str())
            .execute(&mut *tx)
            .await?;
            n.jobs += done.rows_affected();
        }
        self.commit(tx).await?;
        Ok(n)
    }

    /// Sets (or with `None` removes) the note of snapshot `full_id`; notes
    /// kept under a short form of the ID (imported ones) go too.
    pub async fn set_snapshot_note(
        &self,
        server_id: i64,
        full_id: &str,
        note: Option<&str>,
        now: i64,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let keys: Vec<String> =
            sqlx::query("SELECT snapshot_id FROM snapshot_notes WHERE server_id = $1")
                .bind(server_id)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| r.try_get("snapshot_id"))
                .collect::<std::result::Result<_, _>>()?;
        for key in keys.iter().filter(|k| full_id.starts_with(k.as_str())) {
            sqlx::query("DELETE FROM snapshot_notes WHERE server_id = $1 AND snapshot_id = $2")
                .bind(server_id)
                .bind(key)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(note) = note {
            sqlx::query(
                "INSERT INTO snapshot_notes (server_id, snapshot_id, note, updated_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (server_id, snapshot_id) DO UPDATE \
                 SET note = excluded.note, updated_at = excluded.updated_at",
            )
            .bind(server_id)
            .bind(full_id)
            .bind(note)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        self.commit(tx).await?;
        Ok(())
    }
}

async fn insert_key_row(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    server_id: i64,
    k: &KeyRow,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO restic_key_history (server_id, encryption_key_enc, created_at, retired_at, \
         owner_username) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(server_id)
    .bind(&k.key_enc)
    .bind(k.created_at)
    .bind(k.retired_at)
    .bind(k.owner_username.as_deref())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

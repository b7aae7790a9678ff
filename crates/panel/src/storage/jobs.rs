//! `job_history`: every run, manual or scheduled.

use api::agent::JobKind;
use api::{RunOrigin, RunStatus};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Result, RunOn, Storage};

/// How a run in the job history ended.
#[derive(Debug, Clone, Copy)]
pub struct JobEnd<'a> {
    pub status: RunStatus,
    pub agent_job_id: Option<&'a str>,
    pub snapshot_id: Option<&'a str>,
    pub error: Option<&'a str>,
    pub now: i64,
}

/// One run in the job history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRecord {
    pub id: i64,
    pub server_id: i64,
    /// A [`JobKind`] for runs of this panel; the extension's own job type
    /// for imported ones (an open set, shown as it was).
    pub kind: String,
    pub origin: RunOrigin,
    pub agent_job_id: Option<String>,
    pub status: RunStatus,
    pub snapshot_id: Option<String>,
    pub error: Option<String>,
    pub started_at: i64,
    pub finished_at: Option<i64>,
}

pub(super) const JOB_COLS: &str = "id, server_id, kind, origin, agent_job_id, status, snapshot_id, error, started_at, finished_at";

pub(super) fn job_of(r: &AnyRow) -> Result<JobRecord> {
    Ok(JobRecord {
        id: r.try_get("id")?,
        server_id: r.try_get("server_id")?,
        kind: r.try_get("kind")?,
        origin: super::word(r, "origin")?,
        agent_job_id: r.try_get("agent_job_id")?,
        status: super::word(r, "status")?,
        snapshot_id: r.try_get("snapshot_id")?,
        error: r.try_get("error")?,
        started_at: r.try_get("started_at")?,
        finished_at: r.try_get("finished_at")?,
    })
}

impl Storage {
    pub async fn start_job(
        &self,
        server_id: i64,
        kind: JobKind,
        origin: RunOrigin,
        now: i64,
    ) -> Result<i64> {
        Ok(sqlx::query(
            "INSERT INTO job_history (server_id, kind, origin, status, started_at) \
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(server_id)
        .bind(kind.as_str())
        .bind(origin.as_str())
        .bind(RunStatus::Running.as_str())
        .bind(now)
        .insert_returning(self)
        .await?
        .try_get("id")?)
    }

    /// Records a job the agent already accepted (a manual backup or
    /// restore), as running.
    pub async fn record_job(
        &self,
        server_id: i64,
        kind: JobKind,
        origin: RunOrigin,
        agent_job_id: &str,
        note: Option<&str>,
        now: i64,
    ) -> Result<i64> {
        Ok(sqlx::query(
            "INSERT INTO job_history (server_id, kind, origin, agent_job_id, status, started_at, note) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(server_id)
        .bind(kind.as_str())
        .bind(origin.as_str())
        .bind(agent_job_id)
        .bind(RunStatus::Running.as_str())
        .bind(now)
        .bind(note)
        .insert_returning(self)
        .await?
        .try_get("id")?)
    }

    /// What the list shows beside a page of snapshots (by full ID), in one
    /// query: who started the backup that made each (as far as the job
    /// history knows) and the notes that may belong to them (theirs, and
    /// notes kept under a short ID, as the PHP extension stored them).
    pub async fn page_marks(&self, server_id: i64, snapshot_ids: &[&str]) -> Result<PageMarks> {
        if snapshot_ids.is_empty() {
            return Ok(PageMarks::default());
        }
        self.cached(
            |s| &mut s.marks,
            &(server_id, snapshot_ids.join(",")),
            |_| true,
            self.page_marks_db(server_id, snapshot_ids),
        )
        .await
    }

    async fn page_marks_db(&self, server_id: i64, snapshot_ids: &[&str]) -> Result<PageMarks> {
        let mut marks = PageMarks::default();
        let list: Vec<String> = (0..snapshot_ids.len())
            .map(|i| format!("${}", i + 3))
            .collect();
        let list = list.join(", ");
        let sql = format!(
            "SELECT CAST(0 AS BIGINT) AS what, snapshot_id, origin AS val FROM job_history \
             WHERE server_id = $1 AND kind = $2 AND snapshot_id IN ({list}) \
             UNION ALL \
             SELECT CAST(1 AS BIGINT) AS what, snapshot_id, note AS val FROM snapshot_notes \
             WHERE server_id = $1 AND (snapshot_id IN ({list}) OR length(snapshot_id) < 64)"
        );
        let mut q = sqlx::query(&sql)
            .bind(server_id)
            .bind(JobKind::Backup.as_str());
        for id in snapshot_ids {
            q = q.bind(*id);
        }
        for r in q.fetch_all(&self.pool).await? {
            let id: String = r.try_get("snapshot_id")?;
            let val: String = r.try_get("val")?;
            if r.try_get::<i64, _>("what")? == 0 {
                if let Ok(o) = val.parse::<RunOrigin>() {
                    marks.origins.insert(id, o);
                }
            } else {
                marks.notes.push((id, val));
            }
        }
        Ok(marks)
    }

    /// The running history row of a server's agent job, if any.
    pub async fn running_job_of(&self, server_id: i64, agent_job_id: &str) -> Result<Option<i64>> {
        Ok(sqlx::query(
            "SELECT id FROM job_history WHERE server_id = $1 AND agent_job_id = $2 \
             AND status = $3",
        )
        .bind(server_id)
        .bind(agent_job_id)
        .bind(RunStatus::Running.as_str())
        .fetch_optional(&self.pool)
        .await?
        .map(|r| r.try_get("id"))
        .transpose()?)
    }

    pub async fn finish_job(
        &self,
        id: i64,
        status: RunStatus,
        agent_job_id: Option<&str>,
        snapshot_id: Option<&str>,
        error: Option<&str>,
        now: i64,
    ) -> Result<()> {
        let end = JobEnd {
            status,
            agent_job_id,
            snapshot_id,
            error,
            now,
        };
        self.end_job(id, &end, false).await.map(|_| ())
    }

    /// Ends a run that still reads `running` (reconciliation); false if
    /// someone else ended it meanwhile.
    pub async fn settle_job(&self, id: i64, end: &JobEnd<'_>) -> Result<bool> {
        self.end_job(id, end, true).await
    }

    async fn end_job(&self, id: i64, end: &JobEnd<'_>, only_running: bool) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        // `only_running`: the row must still read `running` ($7); otherwise
        // any status matches ($7 is NULL).
        let done = sqlx::query(
            "UPDATE job_history SET status = $1, agent_job_id = $2, snapshot_id = $3, error = $4, \
             finished_at = $5 WHERE id = $6 AND ($7 IS NULL OR status = $7)",
        )
        .bind(end.status.as_str())
        .bind(end.agent_job_id)
        .bind(end.snapshot_id)
        .bind(end.error)
        .bind(end.now)
        .bind(id)
        .bind(only_running.then_some(RunStatus::Running.as_str()))
        .execute(&mut *tx)
        .await?;
        // A note given when the run started goes to the snapshot it made
        // (a note set on the snapshot meanwhile wins).
        if let (true, RunStatus::Succeeded, Some(snapshot)) =
            (done.rows_affected() == 1, end.status, end.snapshot_id)
        {
            sqlx::query(
                "INSERT INTO snapshot_notes (server_id, snapshot_id, note, updated_at) \
                 SELECT server_id, $1, note, $2 FROM job_history WHERE id = $3 AND note IS NOT NULL \
                 ON CONFLICT (server_id, snapshot_id) DO NOTHING",
            )
            .bind(snapshot)
            .bind(end.now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        self.commit(tx).await?;
        Ok(done.rows_affected() == 1)
    }

    /// Remembers the agent's job of a run as soon as the agent accepted it,
    /// so a run whose panel stopped can be reconciled with the agent.
    pub async fn set_job_agent_id(&self, id: i64, agent_job_id: &str) -> Result<()> {
        sqlx::query("UPDATE job_history SET agent_job_id = $1 WHERE id = $2")
            .bind(agent_job_id)
            .bind(id)
            .run_on(self)
            .await?;
        Ok(())
    }

    /// Runs recorded as running (by this panel or another, or by one that
    /// stopped), oldest first.
    pub async fn running_jobs(&self) -> Result<Vec<JobRecord>> {
        sqlx::query(&format!(
            "SELECT {JOB_COLS} FROM job_history WHERE status = $1 ORDER BY started_at, id"
        ))
        .bind(RunStatus::Running.as_str())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(job_of)
        .collect()
    }

    /// A server's most recent runs, newest first.
    pub async fn recent_jobs(&self, server_id: i64, limit: i64) -> Result<Vec<JobRecord>> {
        sqlx::query(&format!(
            "SELECT {JOB_COLS} FROM job_history WHERE server_id = $1 \
             ORDER BY started_at DESC, id DESC LIMIT $2"
        ))
        .bind(server_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(job_of)
        .collect()
    }
}

/// What [`Storage::page_marks`] found for a page of the list.
#[derive(Debug, Default, Clone)]
pub struct PageMarks {
    pub origins: std::collections::HashMap<String, RunOrigin>,
    /// (snapshot ID, full or short; note)
    pub notes: Vec<(String, String)>,
}

impl PageMarks {
    /// The note of the snapshot with full ID `id`: kept under its ID, else
    /// under a short one it starts with.
    pub fn note_of(&self, id: &str) -> Option<&str> {
        self.notes
            .iter()
            .find(|(k, _)| k == id)
            .or_else(|| self.notes.iter().find(|(k, _)| id.starts_with(k.as_str())))
            .map(|(_, n)| n.as_str())
    }
}

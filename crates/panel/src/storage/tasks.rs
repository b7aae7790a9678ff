//! `panel_tasks`: work the panel goes on with after answering 202 (a
//! server's deletion waits for its node to archive the repository).

use api::{RunStatus, TaskKind};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Result, RunOn, Storage};

/// One task and how it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    pub id: String,
    pub kind: TaskKind,
    pub server_uuid: String,
    pub status: RunStatus,
    /// The node's job it follows, once the node accepted.
    pub agent_job_id: Option<String>,
    pub error_code: Option<String>,
    pub error: Option<String>,
    pub created_at: i64,
    /// Renewed while a panel follows the task.
    pub updated_at: i64,
    pub finished_at: Option<i64>,
}

const TASK_COLS: &str = "id, kind, server_uuid, status, agent_job_id, error_code, error, \
     created_at, updated_at, finished_at";

fn task_of(r: &AnyRow) -> Result<Task> {
    Ok(Task {
        id: r.try_get("id")?,
        kind: super::word(r, "kind")?,
        server_uuid: r.try_get("server_uuid")?,
        status: super::word(r, "status")?,
        agent_job_id: r.try_get("agent_job_id")?,
        error_code: r.try_get("error_code")?,
        error: r.try_get("error")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        finished_at: r.try_get("finished_at")?,
    })
}

impl Storage {
    /// Records a task as running, following `agent_job_id` if known.
    pub async fn start_task(
        &self,
        id: &str,
        kind: TaskKind,
        server_uuid: &str,
        agent_job_id: Option<&str>,
        now: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO panel_tasks (id, kind, server_uuid, status, agent_job_id, created_at, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6)",
        )
        .bind(id)
        .bind(kind.as_str())
        .bind(server_uuid)
        .bind(RunStatus::Running.as_str())
        .bind(agent_job_id)
        .bind(now)
        .run_on(self)
        .await?;
        Ok(())
    }

    /// Notes the node's job a task follows, and that it is followed.
    pub async fn follow_task(&self, id: &str, agent_job_id: &str, now: i64) -> Result<()> {
        sqlx::query("UPDATE panel_tasks SET agent_job_id = $1, updated_at = $2 WHERE id = $3")
            .bind(agent_job_id)
            .bind(now)
            .bind(id)
            .run_on(self)
            .await?;
        Ok(())
    }

    /// Says a panel still follows the task.
    pub async fn touch_task(&self, id: &str, now: i64) -> Result<()> {
        sqlx::query("UPDATE panel_tasks SET updated_at = $1 WHERE id = $2")
            .bind(now)
            .bind(id)
            .run_on(self)
            .await?;
        Ok(())
    }

    /// Records how a task ended: `Ok` or `Err((code, message))`.
    pub async fn finish_task(
        &self,
        id: &str,
        outcome: std::result::Result<(), (&str, &str)>,
        now: i64,
    ) -> Result<()> {
        let (status, code, message) = match outcome {
            Ok(()) => (RunStatus::Succeeded, None, None),
            Err((code, message)) => (RunStatus::Failed, Some(code), Some(message)),
        };
        sqlx::query(
            "UPDATE panel_tasks SET status = $1, error_code = $2, error = $3, finished_at = $4, \
             updated_at = $4 WHERE id = $5",
        )
        .bind(status.as_str())
        .bind(code)
        .bind(message)
        .bind(now)
        .bind(id)
        .run_on(self)
        .await?;
        Ok(())
    }

    pub async fn task(&self, id: &str) -> Result<Option<Task>> {
        sqlx::query(&format!(
            "SELECT {TASK_COLS} FROM panel_tasks WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(task_of)
        .transpose()
    }

    /// The newest task of `kind` for a server that a node accepted and that
    /// did not succeed: work a repeated request may have to pick up.
    pub async fn unfinished_task(&self, kind: TaskKind, server_uuid: &str) -> Result<Option<Task>> {
        sqlx::query(&format!(
            "SELECT {TASK_COLS} FROM panel_tasks WHERE kind = $1 AND server_uuid = $2 \
             AND agent_job_id IS NOT NULL AND status <> $3 ORDER BY created_at DESC LIMIT 1"
        ))
        .bind(kind.as_str())
        .bind(server_uuid)
        .bind(RunStatus::Succeeded.as_str())
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(task_of)
        .transpose()
    }
}

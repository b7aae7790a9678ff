//! Deleting a server: its node archives the repository first (a final
//! locked snapshot, then set aside), then the server goes and its keys move
//! to the archived keys in the same transaction, so the archive can always
//! be opened. Archiving takes as long as a backup: once the node accepted,
//! the request is answered 202 with a task (`panel_tasks`) that follows the
//! node's job. Deleting again picks up where an earlier attempt stopped
//! (its node job, or the archive it left), so a server is never archived
//! twice and no archive is left without its key.

use std::time::{Duration, Instant};

use api::agent::{ErrorDetail, JobStatus};
use api::panel::TaskView;
use api::{JobId, RunStatus, ServerUuid, TaskKind};

use super::Panel;
use super::schedule::at_unix;
use crate::PanelError;
use crate::agent_client::AgentClient;
use crate::error::Missing;
use crate::permissions::RootAdmin;
use crate::storage::{Server, Task};

/// How long a task keeps trying while its node does not answer.
const NODE_SILENCE: Duration = Duration::from_secs(10 * 60);
/// How often a followed task says so; one not renewed for [`ABANDONED_AFTER`]
/// lost its panel.
const TOUCH_EVERY: Duration = Duration::from_secs(10);
const ABANDONED_AFTER: i64 = 90;

/// What deleting a server came to.
pub enum Deletion {
    /// Deleted (it had no repository, an earlier attempt's archive was
    /// found, or `force`).
    Done,
    /// The node is archiving the repository; the server goes once it has.
    Started(TaskView),
}

/// Where retiring a server stands after asking its node.
enum Retire {
    Done,
    /// The node's archive job.
    Archiving(JobId),
}

fn random_id() -> JobId {
    let mut b = [0u8; 16];
    getrandom::getrandom(&mut b).expect("the system random number generator failed");
    JobId::from_bytes(b)
}

impl Panel {
    /// Deletes a server (see the module). `force` is for a node that is
    /// gone for good: nothing is asked of it, the keys are kept and the
    /// repository is recorded as being on an unreachable node.
    pub async fn delete_server(
        &self,
        _: &RootAdmin,
        uuid: &ServerUuid,
        force: bool,
    ) -> Result<Deletion, PanelError> {
        let server = self.server(uuid).await?;
        if force {
            self.storage()
                .delete_server_keeping_key(server.id, None, super::now())
                .await?;
            tracing::warn!(server = %server.uuid, "server force-deleted without its node; its keys are kept with the archived repositories");
            return Ok(Deletion::Done);
        }
        let job = match self.resume_retire(&server).await? {
            Some(Retire::Done) => return Ok(Deletion::Done),
            Some(Retire::Archiving(job)) => job,
            None => {
                // The task is recorded before the node is asked, so an
                // archive the node accepts is always followed.
                let id = random_id();
                let created = super::now();
                let storage = self.storage();
                storage
                    .start_task(
                        id.as_str(),
                        TaskKind::ServerDeletion,
                        uuid.as_str(),
                        None,
                        created,
                    )
                    .await?;
                let asked = self.begin_retire(&server).await;
                match asked {
                    Ok(Retire::Archiving(job)) => {
                        storage
                            .follow_task(id.as_str(), job.as_str(), created)
                            .await?;
                        return Ok(self.follow(server, id, job, created));
                    }
                    Ok(Retire::Done) => {
                        storage
                            .finish_task(id.as_str(), Ok(()), super::now())
                            .await?;
                        return Ok(Deletion::Done);
                    }
                    Err(e) => {
                        let message = e.public_message();
                        storage
                            .finish_task(id.as_str(), Err((e.code(), &message)), super::now())
                            .await?;
                        return Err(e);
                    }
                }
            }
        };
        // An earlier attempt's node job still runs: follow it again.
        let id = random_id();
        let created = super::now();
        self.storage()
            .start_task(
                id.as_str(),
                TaskKind::ServerDeletion,
                uuid.as_str(),
                Some(job.as_str()),
                created,
            )
            .await?;
        Ok(self.follow(server, id, job, created))
    }

    /// Picks up an earlier attempt: its node job if it still runs, or the
    /// archive it made. `None`: nothing to pick up.
    async fn resume_retire(&self, server: &Server) -> Result<Option<Retire>, PanelError> {
        let Some(earlier) = self
            .storage()
            .unfinished_task(TaskKind::ServerDeletion, server.uuid.as_str())
            .await?
        else {
            return Ok(None);
        };
        let Some(job) = earlier
            .agent_job_id
            .as_deref()
            .and_then(|j| JobId::parse(j).ok())
        else {
            return Ok(None);
        };
        let client = self.client_of(server).await?;
        match client.job(&server.uuid, &job).await {
            Ok(view) if !view.status.is_finished() => return Ok(Some(Retire::Archiving(job))),
            Ok(view) if view.status == JobStatus::Succeeded => {
                if let Some(name) = archive_name(&view) {
                    self.delete_archived(server, &name).await?;
                    return Ok(Some(Retire::Done));
                }
            }
            Ok(_) => return Ok(None), // it failed: the repository is still in place
            Err(e) if !is_not_found(&e) => return Err(e.into()),
            Err(_) => {} // the node no longer knows the job
        }
        // The node forgot the job: an archive of this server made since
        // the earlier attempt began is its work.
        match newest_archive(&client, server, earlier.created_at).await? {
            Some(name) => {
                self.delete_archived(server, &name).await?;
                Ok(Some(Retire::Done))
            }
            None => Ok(None),
        }
    }

    /// Answers 202 for task `id` and follows the node's `job` in the
    /// background until the server is deleted or the archive failed.
    fn follow(&self, server: Server, id: JobId, job: JobId, created: i64) -> Deletion {
        let panel = self.clone();
        let task = id.clone();
        let uuid = server.uuid.clone();
        tokio::spawn(async move {
            let outcome = panel.finish_retire(&server, &job, Some(&task)).await;
            match &outcome {
                Err(PanelError::Internal(detail)) => {
                    tracing::error!(%detail, server = %server.uuid, "server deletion failed");
                }
                Err(e) => {
                    tracing::warn!(error = %e, server = %server.uuid, "server deletion failed")
                }
                Ok(()) => {}
            }
            let message = outcome.as_ref().err().map(PanelError::public_message);
            let recorded = outcome
                .as_ref()
                .map(|_| ())
                .map_err(|e| (e.code(), message.as_deref().unwrap_or_default()));
            if let Err(e) = panel
                .storage()
                .finish_task(task.as_str(), recorded, super::now())
                .await
            {
                tracing::error!(error = %e, "the end of a server deletion was not recorded");
            }
        });
        Deletion::Started(TaskView {
            id,
            kind: TaskKind::ServerDeletion,
            server: uuid,
            status: RunStatus::Running,
            error: None,
            created_at: at_unix(created),
            finished_at: None,
        })
    }

    /// A task the panel carries on with. One no panel follows any more
    /// (its panel stopped) reads as failed: deleting again picks it up.
    pub async fn task(&self, _: &RootAdmin, id: &JobId) -> Result<TaskView, PanelError> {
        let t: Task = self
            .storage()
            .task(id.as_str())
            .await?
            .ok_or(PanelError::NotFound(Missing::Task))?;
        let server = ServerUuid::parse(&t.server_uuid)
            .map_err(|_| PanelError::Internal("a stored task names a bad server".into()))?;
        let abandoned =
            t.status == RunStatus::Running && super::now() - t.updated_at > ABANDONED_AFTER;
        let (status, error) = if abandoned {
            let message = "the panel stopped following this task; the server is kept until \
                           it is deleted again, which picks up the node's work";
            let error = ErrorDetail {
                code: "interrupted".into(),
                message: message.into(),
            };
            (RunStatus::Failed, Some(error))
        } else {
            let error = t.error_code.map(|code| ErrorDetail {
                code,
                message: t.error.unwrap_or_default(),
            });
            (t.status, error)
        };
        Ok(TaskView {
            id: id.clone(),
            kind: t.kind,
            server,
            status,
            error,
            created_at: at_unix(t.created_at),
            finished_at: t.finished_at.map(at_unix),
        })
    }

    /// Deletes a server after its node archived the repository, waiting for
    /// the archive (the Pterodactyl sync removes servers so).
    pub(crate) async fn retire_server(&self, server: &Server) -> Result<(), PanelError> {
        match self.begin_retire(server).await? {
            Retire::Done => Ok(()),
            Retire::Archiving(job) => self.finish_retire(server, &job, None).await,
        }
    }

    /// Asks the node to archive the server's repository. A server with no
    /// repository is deleted here and then: keeping the key of an archive an
    /// earlier, unrecorded attempt left, if the node has one.
    async fn begin_retire(&self, server: &Server) -> Result<Retire, PanelError> {
        let t = self.target(server).await?;
        let archive = match t.client.archive(&server.uuid, &t.key).await {
            Ok(accepted) => return Ok(Retire::Archiving(accepted.job_id)),
            Err(e) if super::backups::no_repository(&e) => {
                match newest_archive(&t.client, server, i64::MIN).await? {
                    Some(name) => name,
                    None => {
                        self.storage().delete_server(server.id).await?;
                        tracing::info!(server = %server.uuid, "server deleted (it had no repository)");
                        return Ok(Retire::Done);
                    }
                }
            }
            Err(e) => return Err(e.into()),
        };
        self.delete_archived(server, &archive).await?;
        Ok(Retire::Done)
    }

    /// Follows the node's archive job while it runs (as long as it takes;
    /// a node that stops answering is given [`NODE_SILENCE`]), then deletes
    /// the server keeping its keys with the archive. `task` is renewed
    /// while followed.
    async fn finish_retire(
        &self,
        server: &Server,
        job: &JobId,
        task: Option<&JobId>,
    ) -> Result<(), PanelError> {
        let client = self.client_of(server).await?;
        let mut heard = Instant::now();
        let mut touched = Instant::now();
        let view = loop {
            match client.job(&server.uuid, job).await {
                Ok(view) if view.status.is_finished() => break view,
                Ok(_) => heard = Instant::now(),
                Err(e) if is_not_found(&e) => {
                    return Err(PanelError::Conflict(
                        "the node no longer knows its archive job (was it restarted?); the \
                         server was kept, delete it again to finish"
                            .into(),
                    ));
                }
                Err(e) if heard.elapsed() > NODE_SILENCE => return Err(e.into()),
                Err(e) => tracing::debug!(error = %e, "archive job not read; trying again"),
            }
            if let Some(task) = task
                && touched.elapsed() > TOUCH_EVERY
            {
                touched = Instant::now();
                if let Err(e) = self.storage().touch_task(task.as_str(), super::now()).await {
                    tracing::warn!(error = %e, "task not renewed");
                }
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        };
        if view.status == JobStatus::Failed {
            let why = view.error.map(|e| e.message).unwrap_or_default();
            return Err(PanelError::Conflict(format!(
                "the repository could not be archived, so the server was kept: {why}"
            )));
        }
        let Some(archive) = archive_name(&view) else {
            return Err(PanelError::Internal(
                "the agent archived the repository but did not name the archive".into(),
            ));
        };
        self.delete_archived(server, &archive).await
    }

    async fn delete_archived(&self, server: &Server, archive: &str) -> Result<(), PanelError> {
        let deleted = self
            .storage()
            .delete_server_keeping_key(server.id, Some(archive), super::now())
            .await?;
        if !deleted {
            return Err(PanelError::Conflict(format!(
                "the server was deleted meanwhile; its repository was archived as {archive} on \
                 its node"
            )));
        }
        tracing::info!(server = %server.uuid, %archive, "server deleted (repository archived, keys kept)");
        Ok(())
    }

    /// The client of the server's node (no key needed to follow a job).
    async fn client_of(&self, server: &Server) -> Result<AgentClient, PanelError> {
        let node = self.node(server.node_id).await?;
        self.client(&node)
    }
}

/// The name of the newest archive of `server` on its node made at or after
/// `since` (unix seconds).
async fn newest_archive(
    client: &AgentClient,
    server: &Server,
    since: i64,
) -> Result<Option<String>, PanelError> {
    Ok(client
        .archives()
        .await?
        .archives
        .into_iter()
        .filter(|a| a.server_uuid == server.uuid.as_str() && a.archived_at.unix() >= since)
        .max_by_key(|a| a.archived_at)
        .map(|a| a.name))
}

/// The archive's name in a finished archive job's result.
fn archive_name(view: &api::agent::JobView) -> Option<String> {
    view.result
        .as_ref()
        .and_then(|r| r["name"].as_str())
        .map(str::to_owned)
}

fn is_not_found(e: &crate::agent_client::ClientError) -> bool {
    matches!(
        e,
        crate::agent_client::ClientError::Agent { status: 404, .. }
    )
}

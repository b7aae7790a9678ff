//! Backups of one server, proxied to its node's agent.

use api::agent::{
    BackupItem, CreateBackupRequest, JobAccepted, JobKind, JobView, LockState, RepoStats,
    RestoreRequest,
};
use api::files::{FileList, FilesQuery};
use api::panel::{NoteView, PanelBackupList, ServerSummary, clean_note};
use api::{JobId, RunOrigin, RunStatus, SnapshotRef};

use super::{Panel, now};
use crate::PanelError;
use crate::agent_client::{ClientError, Wanted};
use crate::error::Missing;
use crate::permissions::{
    Authorized, Create, Delete, Download, Read, Restore, allowed_permissions,
};
use crate::storage::{Server, User};

/// The agent's answer for a server that was never backed up.
pub(super) fn no_repository(e: &ClientError) -> bool {
    matches!(e, ClientError::Agent { code, .. } if code == "repository_not_found")
}

/// How a finished agent job goes into the job history: its status, the
/// snapshot it made or restored, and the agent's error message.
pub(crate) fn job_outcome(view: &JobView) -> (RunStatus, Option<String>, Option<String>) {
    if view.status == api::agent::JobStatus::Succeeded {
        let snapshot = view
            .result
            .as_ref()
            .and_then(|r| r["snapshot"]["id"].as_str().or(r["restored"].as_str()))
            .map(str::to_owned);
        (RunStatus::Succeeded, snapshot, None)
    } else {
        (
            RunStatus::Failed,
            None,
            view.error.as_ref().map(|e| e.message.clone()),
        )
    }
}

/// The longest one-time download link handed to a browser.
const MAX_LINK_BYTES: usize = 8000;

/// How a download reaches the browser.
pub enum DownloadAnswer {
    /// A one-time link straight to the agent.
    Redirect(String),
    /// The agent's response, to be streamed through the panel.
    Stream(reqwest::Response),
}

impl Panel {
    /// Servers the user can see, with the permissions they hold there.
    pub async fn servers_of(&self, user: &User) -> Result<Vec<ServerSummary>, PanelError> {
        let servers = if user.root_admin {
            self.storage().servers().await?
        } else {
            self.storage().servers_of_user(user.id).await?
        };
        let mut out = Vec::with_capacity(servers.len());
        for s in servers {
            if let Some(perms) = allowed_permissions(self.storage(), user, &s).await? {
                out.push(ServerSummary {
                    uuid: s.uuid,
                    name: s.name,
                    backup_limit: s.backup_limit,
                    permissions: perms,
                });
            }
        }
        Ok(out)
    }

    /// What the backups page of `uuid` shows `user`: the server and the
    /// actions they may take; `None` when they can not see it.
    pub async fn backups_page(
        &self,
        user: &User,
        uuid: &api::ServerUuid,
    ) -> Result<Option<(crate::storage::Server, Vec<api::Permission>)>, PanelError> {
        let Some(server) = self.storage().server_by_uuid(uuid).await? else {
            return Ok(None);
        };
        Ok(allowed_permissions(self.storage(), user, &server)
            .await?
            .map(|perms| (server, perms)))
    }

    pub async fn list_backups(
        &self,
        auth: &Authorized<Read>,
        limit: usize,
        cursor: Option<&str>,
        range: &api::TimeRange,
    ) -> Result<PanelBackupList, PanelError> {
        let server = auth.server();
        let t = self.target(server).await?;
        let page = match t
            .client
            .list_in(&server.uuid, &t.key, limit, cursor, range)
            .await
        {
            Err(e) if no_repository(&e) => api::agent::BackupList {
                backups: Vec::new(),
                next_cursor: None,
                total: 0,
            },
            other => other?,
        };
        let mut backups = page.backups;
        if !backups.is_empty() {
            let ids: Vec<&str> = backups.iter().map(|b| b.id.as_str()).collect();
            let marks = self.storage().page_marks(server.id, &ids).await?;
            for b in &mut backups {
                b.origin = marks.origins.get(b.id.as_str()).copied();
                b.note = marks.note_of(b.id.as_str()).map(str::to_owned);
            }
        }
        Ok(PanelBackupList {
            backups,
            next_cursor: page.next_cursor,
            total: page.total,
            backup_limit: server.backup_limit,
        })
    }

    /// Storage over time (none yet for a server never backed up).
    pub async fn storage_history(
        &self,
        auth: &Authorized<Read>,
    ) -> Result<api::agent::StorageHistory, PanelError> {
        let t = self.target(auth.server()).await?;
        match t.client.storage_history(&auth.server().uuid, &t.key).await {
            Err(e) if no_repository(&e) => Ok(api::agent::StorageHistory { points: Vec::new() }),
            other => Ok(other?),
        }
    }

    pub async fn stats(&self, auth: &Authorized<Read>) -> Result<RepoStats, PanelError> {
        let t = self.target(auth.server()).await?;
        match t.client.stats(&auth.server().uuid, &t.key).await {
            // Never backed up yet: an empty repository's numbers.
            Err(e) if no_repository(&e) => Ok(RepoStats {
                total_size: 0,
                total_uncompressed_size: 0,
                snapshots_count: 0,
                dedup_ratio: 1.0,
                computed_at: api::Timestamp::now(),
            }),
            other => Ok(other?),
        }
    }

    /// The server's jobs on its node (`active`: queued and running); the
    /// finished ones a person started are settled in the history.
    pub async fn jobs(
        &self,
        auth: &Authorized<Read>,
        active: bool,
    ) -> Result<api::agent::JobList, PanelError> {
        let node = self.node(auth.server().node_id).await?;
        let list = self
            .client(&node)?
            .jobs(&auth.server().uuid, active)
            .await?;
        for view in list.jobs.iter().filter(|v| v.status.is_finished()) {
            self.settle_manual_job(auth.server(), &view.id, view).await;
        }
        Ok(list)
    }

    pub async fn job(&self, auth: &Authorized<Read>, job: &JobId) -> Result<JobView, PanelError> {
        let node = self.node(auth.server().node_id).await?;
        let view = self.client(&node)?.job(&auth.server().uuid, job).await?;
        if view.status.is_finished() {
            self.settle_manual_job(auth.server(), job, &view).await;
        }
        Ok(view)
    }

    /// Puts a job the panel started for a person into the job history
    /// (`origin = manual`). Failing to record it never fails the request.
    /// `note`: for the snapshot a backup makes (see [`Panel::set_note`]).
    pub(super) async fn record_manual_job(
        &self,
        server: &Server,
        kind: JobKind,
        accepted: &JobAccepted,
        note: Option<&str>,
    ) {
        if let Err(e) = self
            .storage()
            .record_job(
                server.id,
                kind,
                RunOrigin::Manual,
                accepted.job_id.as_str(),
                note,
                now(),
            )
            .await
        {
            tracing::warn!(server = %server.uuid, error = %e, "a manual job was not recorded in the history");
        }
    }

    /// Sets or clears a backup's note (kept by the panel under the
    /// snapshot's full ID).
    pub async fn set_note(
        &self,
        auth: &Authorized<Create>,
        id: &SnapshotRef,
        raw: &str,
    ) -> Result<NoteView, PanelError> {
        let note = clean_note(raw).map_err(|m| PanelError::bad_request("invalid_note", m))?;
        let server = auth.server();
        let t = self.target(server).await?;
        let backup = self.find_backup(&t, server, id).await?;
        self.storage()
            .set_snapshot_note(server.id, backup.id.as_str(), note.as_deref(), now())
            .await?;
        Ok(NoteView {
            id: backup.id,
            note,
        })
    }

    /// [`Panel::settle_manual_job`] for the other services.
    pub(super) async fn settle_finished_job(&self, server: &Server, job: &JobId, view: &JobView) {
        if view.status.is_finished() {
            self.settle_manual_job(server, job, view).await;
        }
    }

    /// Records how a manual job ended, once someone looked at it finished
    /// (the scheduler's reconciliation settles the ones nobody looked at).
    async fn settle_manual_job(&self, server: &Server, job: &JobId, view: &JobView) {
        let row = match self.storage().running_job_of(server.id, job.as_str()).await {
            Ok(Some(row)) => row,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(server = %server.uuid, error = %e, "job history not read");
                return;
            }
        };
        let (status, snapshot, error) = job_outcome(view);
        let end = crate::storage::JobEnd {
            status,
            agent_job_id: Some(job.as_str()),
            snapshot_id: snapshot.as_deref(),
            error: error.as_deref(),
            now: now(),
        };
        if let Err(e) = self.storage().settle_job(row, &end).await {
            tracing::warn!(server = %server.uuid, error = %e, "job history not updated");
        }
    }

    /// Starts a backup; the server's `backup_limit` goes along as `max_backups`.
    pub async fn create_backup(
        &self,
        auth: &Authorized<Create>,
        ignore: Option<String>,
        note: Option<&str>,
    ) -> Result<JobAccepted, PanelError> {
        let note = match note {
            Some(raw) => clean_note(raw).map_err(|m| PanelError::bad_request("invalid_note", m))?,
            None => None,
        };
        let server = auth.server();
        let max_backups = max_backups(server)?;
        let t = self.target(server).await?;
        let body = CreateBackupRequest {
            max_backups,
            ignore,
        };
        let accepted = t.client.create_backup(&server.uuid, &t.key, &body).await?;
        self.record_manual_job(server, JobKind::Backup, &accepted, note.as_deref())
            .await;
        Ok(accepted)
    }

    pub async fn restore(
        &self,
        auth: &Authorized<Restore>,
        id: &SnapshotRef,
        request: &RestoreRequest,
    ) -> Result<JobAccepted, PanelError> {
        let t = self.target(auth.server()).await?;
        if !request.paths.is_empty() {
            // An agent older than the file browser ignores `paths` and
            // would restore (and with truncate, replace) everything: its
            // lack of the files endpoint tells, and the restore stops here.
            let probe = FilesQuery {
                path: api::files::SnapshotPath::root(),
                limit: 1,
                offset: 0,
            };
            match t
                .client
                .files(&auth.server().uuid, &t.key, id, &probe)
                .await
            {
                Err(ClientError::Agent {
                    status: 404, code, ..
                }) if code == "not_found" => {
                    return Err(PanelError::Conflict(
                        "the server's node runs an agent too old to restore single files; update it, or restore the whole backup".into(),
                    ));
                }
                Err(e) => return Err(e.into()),
                Ok(_) => {}
            }
        }
        let accepted = t
            .client
            .restore(&auth.server().uuid, &t.key, id, request)
            .await?;
        self.record_manual_job(auth.server(), JobKind::Restore, &accepted, None)
            .await;
        self.notify_restored(auth.server(), auth.user(), id.as_str());
        Ok(accepted)
    }

    pub async fn set_locked(
        &self,
        auth: &Authorized<Delete>,
        id: &SnapshotRef,
        locked: bool,
    ) -> Result<LockState, PanelError> {
        let t = self.target(auth.server()).await?;
        Ok(t.client
            .set_locked(&auth.server().uuid, &t.key, id, locked)
            .await?)
    }

    pub async fn delete_backup(
        &self,
        auth: &Authorized<Delete>,
        id: &SnapshotRef,
    ) -> Result<(), PanelError> {
        let t = self.target(auth.server()).await?;
        Ok(t.client.delete(&auth.server().uuid, &t.key, id).await?)
    }

    /// A download: a one-time link to the agent when browsers can reach the
    /// node, else the archive streamed through the panel.
    pub async fn download(
        &self,
        auth: &Authorized<Download>,
        id: &SnapshotRef,
        what: &Wanted,
    ) -> Result<DownloadAnswer, PanelError> {
        let server = auth.server();
        let t = self.target(server).await?;
        if t.node.browser_downloads {
            // Resolve the snapshot (and the path) first, so a wrong one is
            // a clear 404 here rather than an error page on the node.
            match &what.path {
                None => {
                    self.find_backup(&t, server, id).await?;
                }
                Some(path) => {
                    let q = FilesQuery {
                        path: path.clone(),
                        limit: 1,
                        offset: 0,
                    };
                    match t.client.files(&server.uuid, &t.key, id, &q).await {
                        // A folder lists; a file says it is not one.
                        Ok(_) => {}
                        Err(ClientError::Agent { code, .. }) if code == "not_a_folder" => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            }
            let link = t
                .client
                .download_link(&server.uuid, id, what, &t.key, now());
            // Browsers, proxies and the agent take links of about 8 kB.
            if link.len() > MAX_LINK_BYTES {
                return Err(PanelError::bad_request(
                    "path_too_long",
                    "this path is too long for a download link; download its folder instead",
                ));
            }
            Ok(DownloadAnswer::Redirect(link))
        } else {
            Ok(DownloadAnswer::Stream(
                t.client.download(&server.uuid, &t.key, id, what).await?,
            ))
        }
    }

    /// One page of a folder of a backup.
    pub async fn files(
        &self,
        auth: &Authorized<Read>,
        id: &SnapshotRef,
        q: &FilesQuery,
    ) -> Result<FileList, PanelError> {
        let t = self.target(auth.server()).await?;
        Ok(t.client.files(&auth.server().uuid, &t.key, id, q).await?)
    }

    /// The listed backup `id` refers to (pages through the agent's index).
    async fn find_backup(
        &self,
        t: &super::Target,
        server: &crate::storage::Server,
        id: &SnapshotRef,
    ) -> Result<BackupItem, PanelError> {
        let mut cursor: Option<String> = None;
        loop {
            let page = match t
                .client
                .list(&server.uuid, &t.key, 100, cursor.as_deref())
                .await
            {
                Err(e) if no_repository(&e) => return Err(PanelError::NotFound(Missing::Backup)),
                other => other?,
            };
            let mut hits = page
                .backups
                .into_iter()
                .filter(|b| b.id.as_str().starts_with(id.as_str()));
            if let Some(hit) = hits.next() {
                return Ok(hit);
            }
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => return Err(PanelError::NotFound(Missing::Backup)),
            }
        }
    }
}

/// The agent's `max_backups` for a server: `None` for no limit (0); a
/// negative limit means backups are disabled.
pub(super) fn max_backups(server: &crate::storage::Server) -> Result<Option<u32>, PanelError> {
    if server.backup_limit < 0 {
        return Err(PanelError::BackupsDisabled);
    }
    Ok(u32::try_from(server.backup_limit).ok().filter(|n| *n > 0))
}

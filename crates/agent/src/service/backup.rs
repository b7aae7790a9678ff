//! `POST /api/servers/{uuid}/backups/restic`: backups as jobs, with the
//! `max_backups` limit.

use std::path::Path;

use api::agent::{CreateBackupRequest, JobKind, JobProgress};
use api::{JobId, Secret, ServerUuid};
use engine::{BackupEvent, BackupRequest};

use super::{Agent, JobClaim, LiveJob, RepoSlot};
use crate::index::plan_removals;
use crate::{AgentError, ignore};

impl Agent {
    /// `POST …/backups/restic`: checks what can be checked at once (server
    /// directory, key, backup limit), then queues the backup as a job.
    pub async fn create_backup(
        &self,
        server: &ServerUuid,
        key: &Secret,
        req: CreateBackupRequest,
    ) -> Result<JobId, AgentError> {
        let dir = self.inner.layout.existing_server_dir(server)?;
        let excludes = ignore::to_excludes(req.ignore.as_deref(), &dir)?;
        let max = req.max_backups.filter(|m| *m > 0);
        let slot = self.slot(server);

        let job = self.inner.jobs.create(server, JobKind::Backup);
        {
            let mut active = slot.active_job.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(running) = active.as_ref() {
                let running = running.to_string();
                drop(active);
                self.inner.jobs.discard(&job);
                return Err(AgentError::JobInProgress {
                    job_id: Some(running),
                });
            }
            *active = Some(job.clone());
        }
        let claim = JobClaim { slot: slot.clone() };

        if let Err(e) = self.precheck_backup(server, &slot, key, max).await {
            self.inner.jobs.discard(&job);
            return Err(e);
        }

        let agent = self.clone();
        let server = server.clone();
        let key = key.clone();
        let id = job.clone();
        let live = LiveJob::new(&self.inner);
        tokio::spawn(async move {
            let _live = live;
            let _claim = claim;
            let jobs = &agent.inner.jobs;
            let _permit = jobs.slot().await;
            let _writer = slot.writer.lock().await;
            jobs.start(&id);
            let outcome = agent
                .run_backup(&server, &slot, &key, &dir, &excludes, max, &id)
                .await;
            if let Err(e) = &outcome {
                Agent::note_failure(&slot, e);
            }
            jobs.finish(&id, outcome);
        });
        Ok(job)
    }

    async fn precheck_backup(
        &self,
        server: &ServerUuid,
        slot: &RepoSlot,
        key: &Secret,
        max: Option<u32>,
    ) -> Result<(), AgentError> {
        match self.fresh(server, slot, key).await {
            Ok(idx) => {
                if let Some(max) = max {
                    plan_removals(idx.entries(), max, 1)?;
                }
                Ok(())
            }
            // First backup: the job creates the repository.
            Err(AgentError::RepoNotFound) => Ok(()),
            Err(e) => Err(e),
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn run_backup(
        &self,
        server: &ServerUuid,
        slot: &RepoSlot,
        key: &Secret,
        dir: &Path,
        excludes: &[String],
        max: Option<u32>,
        job: &JobId,
    ) -> Result<serde_json::Value, AgentError> {
        let repo = self.repo(server, key);
        self.clear_stale_locks(server, slot, key).await?;
        if !repo.exists() {
            tokio::fs::create_dir_all(self.inner.layout.repo_root()).await?;
            repo.init().await?;
            tracing::info!(server = %server, "repository created");
        }
        // The limit is checked before the backup (nothing is written when it
        // can not be met), but snapshots are only forgotten after the new one
        // exists, so a failed backup never costs an old one.
        if let Some(max) = max {
            plan_removals(self.fresh(server, slot, key).await?.entries(), max, 1)?;
        }
        let jobs = &self.inner.jobs;
        let summary = repo
            .backup(
                &BackupRequest {
                    source: dir,
                    host: server.as_str(),
                    tags: &[],
                    excludes,
                },
                Some(&self.inner.shutdown),
                &mut |event| {
                    if let BackupEvent::Status(s) = event {
                        jobs.progress(
                            job,
                            JobProgress {
                                percent: Some((s.percent_done * 1000.0).round() / 10.0),
                                bytes_done: Some(s.bytes_done),
                                total_bytes: Some(s.total_bytes),
                                files_done: Some(s.files_done),
                                total_files: Some(s.total_files),
                                seconds_remaining: s.seconds_remaining,
                            },
                        );
                    }
                },
            )
            .await?;

        let mut idx = self.fresh(server, slot, key).await?;
        let snapshot = idx
            .by_current_prefix(&summary.snapshot_id)
            .cloned()
            .ok_or_else(|| AgentError::Internal("the new snapshot is not in the listing".into()))?;
        idx.set_size(&snapshot.tree, summary.total_bytes_processed);
        let sizes = idx.sizes.clone();
        let older: Vec<_> = idx
            .entries()
            .iter()
            .filter(|e| e.id != snapshot.id)
            .cloned()
            .collect();
        drop(idx);
        self.save_sizes(server, &sizes).await;

        let mut forgotten = Vec::new();
        if let Some(max) = max {
            let removals = plan_removals(&older, max, 1)?;
            if !removals.is_empty() {
                repo.forget(&removals.iter().map(|e| &e.current).collect::<Vec<_>>())
                    .await?;
                forgotten = removals.iter().map(|e| e.id.to_string()).collect();
            }
        }
        let mut item = snapshot.to_item();
        item.size = Some(summary.total_bytes_processed);
        tracing::info!(
            server = %server,
            snapshot = %snapshot.id.short(),
            bytes = summary.total_bytes_processed,
            added = summary.data_added,
            forgotten = forgotten.len(),
            "backup finished"
        );
        Ok(serde_json::json!({
            "snapshot": item,
            "forgotten": forgotten,
            "files_new": summary.files_new,
            "files_changed": summary.files_changed,
            "files_unmodified": summary.files_unmodified,
            "data_added": summary.data_added,
            "duration_seconds": summary.total_duration,
        }))
    }
}

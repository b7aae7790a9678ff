//! `POST /api/servers/{uuid}/backups/restic`: backups as jobs, with the
//! `max_backups` limit. Also the snapshot step that restore (safety
//! snapshot) and archive (final snapshot) share.

use std::path::Path;

use api::agent::{CreateBackupRequest, JobKind, JobProgress};
use api::{JobId, Secret, ServerUuid};
use engine::{BackupEvent, BackupRequest, BackupSummary};
use time::OffsetDateTime;

use super::{Agent, JobCtx, RepoSlot};
use crate::index::{Entry, plan_removals};
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
        // The request's patterns, else the server's own `.pteroignore` (as
        // Wings does).
        let patterns = match req.ignore.filter(|p| !p.trim().is_empty()) {
            Some(p) => Some(p),
            None => ignore::read_server_ignore(&dir)?,
        };
        let excludes = ignore::to_excludes(patterns.as_deref(), &dir)?;
        let (check, check_dir) = (excludes.clone(), dir.clone());
        let everything =
            tokio::task::spawn_blocking(move || ignore::excludes_everything(&check, &check_dir))
                .await
                .unwrap_or(false);
        if everything {
            return Err(AgentError::bad_request(
                "nothing_to_back_up",
                "the ignore rules exclude every file of this server; nothing would be backed up",
            ));
        }
        if ignore::is_empty_dir(&dir) {
            return Err(AgentError::bad_request(
                "nothing_to_back_up",
                "the server directory is empty; nothing would be backed up",
            ));
        }
        let max = req.max_backups.filter(|m| *m > 0);
        let slot = self.slot(server);
        let claim = self.claim(server, &slot, JobKind::Backup)?;
        if let Err(e) = self.precheck_backup(server, &slot, key, max).await {
            self.inner.jobs.discard(&claim.0);
            return Err(e);
        }
        Ok(
            self.spawn_job(server, slot, key, claim, move |ctx| async move {
                ctx.agent.run_backup(&ctx, &dir, &excludes, max).await
            }),
        )
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
                    plan_removals(idx.entries(), max, 1, OffsetDateTime::now_utc())?;
                }
                Ok(())
            }
            // First backup: the job creates the repository.
            Err(AgentError::RepoNotFound) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn run_backup(
        &self,
        ctx: &JobCtx,
        dir: &Path,
        excludes: &[String],
        max: Option<u32>,
    ) -> Result<serde_json::Value, AgentError> {
        // The limit is checked before the backup (nothing is written when it
        // can not be met), but snapshots are only forgotten after the new one
        // exists, so a failed backup never costs an old one.
        if let Some(max) = max
            && self.repo_exists(&ctx.server, &ctx.slot, &ctx.key).await?
        {
            let idx = self.fresh(&ctx.server, &ctx.slot, &ctx.key).await?;
            plan_removals(idx.entries(), max, 1, OffsetDateTime::now_utc())?;
        }
        let (snapshot, summary) = self.snapshot(ctx, dir, excludes, &[]).await?;

        let mut forgotten = Vec::new();
        if let Some(max) = max {
            let older: Vec<Entry> = self
                .fresh(&ctx.server, &ctx.slot, &ctx.key)
                .await?
                .entries()
                .iter()
                .filter(|e| e.id != snapshot.id)
                .cloned()
                .collect();
            let removals = plan_removals(&older, max, 1, OffsetDateTime::now_utc())?;
            if !removals.is_empty() {
                self.repo(&ctx.server, &ctx.key)
                    .forget(&removals.iter().map(|e| &e.current).collect::<Vec<_>>())
                    .await?;
                forgotten = removals.iter().map(|e| e.id.to_string()).collect();
                self.note_forgotten(&ctx.server, &forgotten);
            }
        }
        self.prune_if_due(&ctx.server, &ctx.key);
        let copy = self.copy_after_backup(ctx).await;
        let now = OffsetDateTime::now_utc().unix_timestamp();
        self.inner.metrics.update(&ctx.server, |f| {
            f.last_success = Some(now);
            f.last_duration_seconds = Some(summary.total_duration);
            f.last_size_bytes = Some(summary.total_bytes_processed);
            f.last_added_bytes = Some(summary.data_added);
        });
        tracing::info!(
            server = %ctx.server,
            snapshot = %snapshot.id.short(),
            bytes = summary.total_bytes_processed,
            added = summary.data_added,
            forgotten = forgotten.len(),
            "backup finished"
        );
        Ok(serde_json::json!({
            "snapshot": snapshot.to_item(),
            "forgotten": forgotten,
            "files_new": summary.files_new,
            "files_changed": summary.files_changed,
            "files_unmodified": summary.files_unmodified,
            "data_added": summary.data_added,
            "duration_seconds": summary.total_duration,
            "copy": copy,
        }))
    }

    /// After a successful backup: copies new snapshots to the second copy
    /// (`copy_to`), creating it with the repository's chunker parameters
    /// on first use. The backup stands whatever happens here; the answer
    /// says how the copy went (`null` without `copy_to`).
    async fn copy_after_backup(&self, ctx: &JobCtx) -> serde_json::Value {
        let Some(copy) = self.copy_repo(&ctx.server, &ctx.key) else {
            return serde_json::Value::Null;
        };
        let source = self.repo(&ctx.server, &ctx.key);
        let result = async {
            match copy.check_key().await {
                Ok(()) => {}
                Err(engine::EngineError::RepoNotFound) => {
                    copy.init_copy_of(&source).await?;
                    tracing::info!(server = %ctx.server, copy = %copy.location().display(), "second copy created");
                }
                Err(e) => return Err(e),
            }
            copy.copy_from(&source, Some(&self.inner.shutdown)).await
        }
        .await;
        match result {
            Ok(()) => {
                tracing::info!(server = %ctx.server, "snapshots copied to the second copy");
                let forgotten = self.forget_in_copy(&ctx.server, &copy).await;
                // The list's `copied` flags are current right after.
                self.refresh_copied(&ctx.server, &ctx.slot, &ctx.key).await;
                match forgotten {
                    Ok(forgotten) => serde_json::json!({"ok": true, "forgotten": forgotten}),
                    Err(e) => {
                        let e = AgentError::from(e);
                        tracing::warn!(server = %ctx.server, error = %e, "second copy: forgotten snapshots not forgotten there yet");
                        serde_json::json!({
                            "ok": true,
                            "forget_error": {"code": e.code(), "message": e.public_message()},
                        })
                    }
                }
            }
            Err(e) => {
                let e = AgentError::from(e);
                tracing::warn!(server = %ctx.server, error = %e, "second copy not made");
                serde_json::json!({
                    "ok": false,
                    "error": {"code": e.code(), "message": e.public_message()},
                })
            }
        }
    }

    /// Takes one snapshot of `dir` (creating the repository on first use),
    /// reports progress on the job, records the snapshot's size and returns
    /// its index entry. Call with the writer lock held.
    pub(super) async fn snapshot(
        &self,
        ctx: &JobCtx,
        dir: &Path,
        excludes: &[String],
        tags: &[&str],
    ) -> Result<(Entry, BackupSummary), AgentError> {
        let repo = self.repo(&ctx.server, &ctx.key);
        // A local repository is looked for (a file); a remote one is not
        // asked first: the backup itself says when there is none (restic's
        // positive word, see `engine::error::classify`), and only then is
        // it created.
        let remote = repo.location().local_path().is_none();
        if !remote && !self.repo_exists(&ctx.server, &ctx.slot, &ctx.key).await? {
            tokio::fs::create_dir_all(self.inner.layout.repo_root()).await?;
            let master = repo.init().await?;
            tracing::info!(server = %ctx.server, repository = %repo.location().display(), "repository created");
            self.index_new_repository(&ctx.server, &ctx.slot, &ctx.key, master)
                .await;
        }
        let jobs = &self.inner.jobs;
        let request = BackupRequest {
            source: dir,
            host: ctx.server.as_str(),
            tags,
            excludes,
        };
        let mut on_event = |event| {
            if let BackupEvent::Status(s) = event {
                jobs.progress(
                    &ctx.job,
                    JobProgress {
                        percent: Some((s.percent_done * 1000.0).round() / 10.0),
                        bytes_done: Some(s.bytes_done),
                        total_bytes: Some(s.total_bytes),
                        files_done: Some(s.files_done),
                        total_files: Some(s.total_files),
                        seconds_remaining: s.seconds_remaining,
                        phase: None,
                    },
                );
            }
        };
        let (mut retried, mut created) = (false, false);
        let summary = loop {
            match repo
                .backup(&request, Some(&self.inner.shutdown), &mut on_event)
                .await
            {
                // A stale exclusive lock (a restic that died): clear, retry once.
                Err(engine::EngineError::RepoLocked) if !retried => {
                    repo.unlock_stale().await?;
                    tracing::info!(server = %ctx.server, "repository was locked; stale locks cleared, trying again");
                    retried = true;
                }
                Err(engine::EngineError::RepoNotFound) if remote && !created => {
                    repo.init().await?;
                    tracing::info!(server = %ctx.server, repository = %repo.location().display(), "repository created");
                    created = true;
                }
                other => break other?,
            }
        };
        // restic's last status line may come before it counted everything
        // (a small backup can end at "0 of 10 bytes"): the end is the totals.
        jobs.progress(
            &ctx.job,
            JobProgress {
                percent: Some(100.0),
                bytes_done: Some(summary.total_bytes_processed),
                total_bytes: Some(summary.total_bytes_processed),
                files_done: Some(summary.total_files_processed),
                total_files: Some(summary.total_files_processed),
                seconds_remaining: Some(0),
                phase: None,
            },
        );

        let mut idx = self.fresh(&ctx.server, &ctx.slot, &ctx.key).await?;
        let mut snapshot = idx
            .by_current_prefix(&summary.snapshot_id)
            .cloned()
            .ok_or_else(|| AgentError::Internal("the new snapshot is not in the listing".into()))?;
        idx.set_size(&snapshot.tree, summary.total_bytes_processed);
        snapshot.size = Some(summary.total_bytes_processed);
        let sizes = idx.sizes.clone();
        drop(idx);
        self.save_sizes(&ctx.server, &sizes).await;
        self.record_point(&ctx.server, &ctx.slot, &snapshot, summary.data_added)
            .await;
        Ok((snapshot, summary))
    }
}

//! `POST /api/servers/{uuid}/backups/restic/{id}/restore`: the game server
//! is stopped through Wings (when the agent has Wings' settings and the
//! request does not say `stop_server: false`), a safety snapshot is taken,
//! the server directory's content becomes the snapshot's, swapped in
//! crash-safely (see [`crate::swap`]), and the game server is started again
//! if it was running.

use std::time::{Duration, Instant};

use api::agent::{JobKind, JobPhase, RestoreRequest};
use api::files::{MAX_RESTORE_PATHS, SnapshotPath};
use api::{JobId, Secret, ServerUuid, SnapshotRef};

use super::{Agent, JobCtx};
use crate::AgentError;
use crate::index::PRE_RESTORE_TAG;
use crate::swap::Swap;
use crate::wings::{PowerAction, PowerState, Wings};

/// How often the game server's state is asked while it stops.
const POLL_EVERY: Duration = Duration::from_millis(250);
/// How long a killed game server may take to read `offline`.
const KILL_WAIT: Duration = Duration::from_secs(30);
/// How long a given-up restore waits for the game server it asked to stop
/// before starting it again (Wings kills a stop after 10 minutes).
const BRING_BACK_WITHIN: Duration = Duration::from_secs(11 * 60);

/// What happened to the game server before the restore (the job's
/// `result.game_server.stop`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StopOutcome {
    /// The request said `stop_server: false`.
    NotRequested,
    /// The agent has no Wings settings (no Wings `config.yml` with a token).
    NoWings,
    AlreadyOffline,
    Stopped,
    /// It did not stop in time and `restore_kill_after_timeout` allowed a kill.
    Killed,
}

impl StopOutcome {
    fn as_str(self) -> &'static str {
        match self {
            StopOutcome::NotRequested => "not_requested",
            StopOutcome::NoWings => "no_wings",
            StopOutcome::AlreadyOffline => "already_offline",
            StopOutcome::Stopped => "stopped",
            StopOutcome::Killed => "killed",
        }
    }
}

/// A restore that failed, and whether the server directory may have been
/// touched (then the game server is not started on it).
struct Failed {
    error: AgentError,
    swap_began: bool,
}

impl<E: Into<AgentError>> From<E> for Failed {
    fn from(e: E) -> Self {
        Failed {
            error: e.into(),
            swap_began: false,
        }
    }
}

/// A name restic could not show as it is (not UTF-8 on disk): selecting
/// it would match nothing, so it is refused rather than "restored".
pub(super) fn unreadable_name() -> AgentError {
    AgentError::bad_request(
        "unreadable_name",
        "this name is not valid UTF-8 in the backup, so it can not be chosen on its own; restore or download its folder",
    )
}

impl Agent {
    pub async fn restore(
        &self,
        server: &ServerUuid,
        key: &Secret,
        snapshot: &SnapshotRef,
        request: &RestoreRequest,
    ) -> Result<JobId, AgentError> {
        let truncate = request.truncate;
        let dir = self.inner.layout.existing_server_dir(server)?;
        // Checked now so the client hears at once, not after a safety snapshot.
        let (layout, who) = (self.inner.layout.clone(), server.clone());
        tokio::task::spawn_blocking(move || Swap::plan(&layout, &who, truncate))
            .await
            .map_err(|e| AgentError::Internal(e.to_string()))??;
        let paths = self
            .restore_paths(server, key, snapshot, &request.paths)
            .await?;
        let slot = self.slot(server);
        // From the second copy if the repository's store fails now.
        let target = self
            .readable(server, &slot, key, |idx| idx.resolve(snapshot).cloned())
            .await?
            .0
            .id;
        // Wings must answer before anything starts: a restore that should
        // stop the game server and cannot is refused with nothing changed.
        let wings = match (self.wings_link(), request.stop_server) {
            (Some(link), true) => {
                let wings = Wings::connect(&link)?;
                wings.state(server).await?;
                Ok(wings)
            }
            (Some(_), false) => Err(StopOutcome::NotRequested),
            (None, _) => Err(StopOutcome::NoWings),
        };
        let claim = self.claim(server, &slot, JobKind::Restore)?;
        Ok(
            self.spawn_job(server, slot, key, claim, move |ctx| async move {
                let agent = ctx.agent.clone();
                agent
                    .run_restore(&ctx, &dir, &target, truncate, paths, wings)
                    .await
            }),
        )
    }

    /// The paths of a partial restore, each one checked against the
    /// snapshot's listing, without repeats or paths inside another one;
    /// empty for a full restore (none asked, or `/` among them).
    async fn restore_paths(
        &self,
        server: &ServerUuid,
        key: &Secret,
        snapshot: &SnapshotRef,
        asked: &[SnapshotPath],
    ) -> Result<Vec<SnapshotPath>, AgentError> {
        if asked.len() > MAX_RESTORE_PATHS {
            return Err(AgentError::bad_request(
                "too_many_paths",
                format!(
                    "a restore names at most {MAX_RESTORE_PATHS} paths; restore their folder instead"
                ),
            ));
        }
        if asked.is_empty() {
            return Ok(Vec::new());
        }
        if asked.iter().any(SnapshotPath::is_root) {
            // A path built from an empty value must not become "all of it".
            return Err(AgentError::bad_request(
                "invalid_path",
                "a path to restore names a file or folder; send no paths to restore everything",
            ));
        }
        if asked.iter().any(|p| !p.is_exact()) {
            return Err(unreadable_name());
        }
        let (_, listing) = self.listing_of(server, key, snapshot).await?;
        let mut paths = asked.to_vec();
        paths.sort();
        paths.dedup();
        // Sorted, a path's folders come before it.
        let mut kept: Vec<SnapshotPath> = Vec::new();
        for p in paths {
            if !kept.iter().any(|k| p.starts_with(k)) {
                Self::kind_at(&listing, &p)?;
                kept.push(p);
            }
        }
        Ok(kept)
    }

    async fn run_restore(
        &self,
        ctx: &JobCtx,
        dir: &std::path::Path,
        target: &api::SnapshotId,
        truncate: bool,
        paths: Vec<SnapshotPath>,
        wings: Result<Wings, StopOutcome>,
    ) -> Result<serde_json::Value, AgentError> {
        let (wings, stopped, was_running) = match wings {
            Ok(wings) => {
                self.inner.jobs.phase(&ctx.job, JobPhase::Stopping);
                let (stopped, was_running) = match self.stop_game_server(ctx, &wings).await {
                    Ok(done) => done,
                    Err((e, true)) => {
                        // The stop was sent to a running server and the
                        // restore is off: it runs again once it is down.
                        self.start_when_offline(&ctx.server, wings);
                        return Err(e);
                    }
                    Err((e, false)) => return Err(e),
                };
                (Some(wings), stopped, was_running)
            }
            Err(why) => (None, why, false),
        };

        let outcome = self
            .restore_files(ctx, dir, target, truncate, paths, wings.as_ref())
            .await;

        // Started again only if it ran before, and never on a directory a
        // failed swap may have left changed.
        let start = match &outcome {
            Ok(_) => was_running,
            Err(Failed {
                error: AgentError::ServerNotStopped,
                ..
            }) => false,
            Err(f) => was_running && !f.swap_began,
        };
        let mut started = None;
        if let (true, Some(wings)) = (start, &wings) {
            self.inner.jobs.phase(&ctx.job, JobPhase::Starting);
            started = Some(wings.power(&ctx.server, PowerAction::Start).await);
            match &started {
                Some(Ok(())) => {
                    tracing::info!(server = %ctx.server, "game server started again after the restore")
                }
                Some(Err(e)) => {
                    tracing::warn!(server = %ctx.server, error = %e, "could not start the game server again after the restore")
                }
                None => {}
            }
        } else if was_running {
            tracing::warn!(server = %ctx.server, "the game server is left stopped: the restore failed after its swap began");
        }

        let mut result = outcome.map_err(|f| f.error)?;
        let mut game = serde_json::json!({
            "stop": stopped.as_str(),
            "started_again": matches!(started, Some(Ok(()))),
        });
        if let Some(Err(e)) = started {
            game["start_error"] = e.public_message().into();
        }
        result["game_server"] = game;
        Ok(result)
    }

    /// After a restore was given up once a running game server was asked
    /// to stop: waits (in the background, up to Wings' own 10 minute stop)
    /// for it to be offline and starts it again, so a refused restore does
    /// not leave it down.
    fn start_when_offline(&self, server: &ServerUuid, wings: Wings) {
        let (agent, server) = (self.clone(), server.clone());
        tokio::spawn(async move {
            match agent.wait_offline(&wings, &server, BRING_BACK_WITHIN).await {
                Ok(true) => match wings.power(&server, PowerAction::Start).await {
                    Ok(()) => {
                        tracing::info!(server = %server, "game server started again after the restore was given up")
                    }
                    Err(e) => {
                        tracing::warn!(server = %server, error = %e, "could not start the game server again after the restore was given up")
                    }
                },
                Ok(false) => {
                    tracing::warn!(server = %server, "the game server did not stop; it was not started again")
                }
                Err(e) => {
                    tracing::warn!(server = %server, error = %e, "lost Wings while waiting to start the game server again")
                }
            }
        });
    }

    /// Stops the game server and waits for `offline`; returns how, and
    /// whether it was running (or starting) before. An error says whether
    /// a stop was sent to a server that was running.
    async fn stop_game_server(
        &self,
        ctx: &JobCtx,
        wings: &Wings,
    ) -> Result<(StopOutcome, bool), (AgentError, bool)> {
        let before = wings.state(&ctx.server).await.map_err(|e| (e, false))?;
        let running = before.is_running();
        self.stop_from(ctx, wings, before)
            .await
            .map_err(|e| (e, running))
    }

    async fn stop_from(
        &self,
        ctx: &JobCtx,
        wings: &Wings,
        before: PowerState,
    ) -> Result<(StopOutcome, bool), AgentError> {
        let server = &ctx.server;
        if before == PowerState::Offline {
            return Ok((StopOutcome::AlreadyOffline, false));
        }
        // A server already `stopping` is asked too: its stop may be a
        // restart's, which would start it again.
        wings.power(server, PowerAction::Stop).await?;
        tracing::info!(server = %server, state = ?before, "asked Wings to stop the game server for a restore");
        let timeout = self.inner.restore_stop_timeout;
        if self.wait_offline(wings, server, timeout).await? {
            tracing::info!(server = %server, "the game server is offline");
            return Ok((StopOutcome::Stopped, before.is_running()));
        }
        if !self.inner.restore_kill_after_timeout {
            tracing::warn!(server = %server, seconds = timeout.as_secs(), "the game server did not stop in time; restore refused");
            return Err(AgentError::ServerStopTimeout {
                seconds: timeout.as_secs(),
            });
        }
        tracing::warn!(server = %server, seconds = timeout.as_secs(), "the game server did not stop in time; killing it (restore_kill_after_timeout)");
        wings.power(server, PowerAction::Kill).await?;
        if self.wait_offline(wings, server, KILL_WAIT).await? {
            return Ok((StopOutcome::Killed, before.is_running()));
        }
        Err(AgentError::ServerStopTimeout {
            seconds: (timeout + KILL_WAIT).as_secs(),
        })
    }

    /// Polls the state until `offline` (true) or `within` has passed (false).
    async fn wait_offline(
        &self,
        wings: &Wings,
        server: &ServerUuid,
        within: Duration,
    ) -> Result<bool, AgentError> {
        let deadline = Instant::now() + within;
        loop {
            if wings.state(server).await? == PowerState::Offline {
                return Ok(true);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(false);
            }
            tokio::select! {
                () = self.inner.shutdown.cancelled() => return Err(AgentError::ShuttingDown),
                () = tokio::time::sleep(POLL_EVERY.min(left)) => {}
            }
        }
    }

    /// The safety snapshot of `dir` (none of an empty one), tagged
    /// `pre-restore`: through [`Agent::snapshot`] into the repository, or
    /// into the second copy while the restore reads from it.
    async fn safety_snapshot(
        &self,
        ctx: &JobCtx,
        dir: &std::path::Path,
        empty: bool,
        from_copy: bool,
        source: &engine::Repo,
    ) -> Result<serde_json::Value, AgentError> {
        let safety = if empty {
            tracing::info!(server = %ctx.server, "the server directory is empty: no safety snapshot needed");
            serde_json::Value::Null
        } else if crate::failpoint::fails("safety-snapshot") {
            // As a store that fails half way: restic's restore is under way.
            tokio::time::sleep(Duration::from_secs(2)).await;
            return Err(AgentError::Store(engine::StoreFailure::Full));
        } else if from_copy {
            let request = engine::BackupRequest {
                source: dir,
                host: ctx.server.as_str(),
                tags: &[PRE_RESTORE_TAG],
                excludes: &[],
            };
            let summary = source
                .backup(&request, Some(&self.inner.shutdown), &mut |_| {})
                .await?;
            serde_json::json!({
                "id": summary.snapshot_id,
                "tags": [PRE_RESTORE_TAG],
                "in_copy": true,
            })
        } else {
            let (safety, _) = self.snapshot(ctx, dir, &[], &[PRE_RESTORE_TAG]).await?;
            serde_json::to_value(safety.to_item())
                .map_err(|e| AgentError::Internal(e.to_string()))?
        };
        tracing::info!(server = %ctx.server, safety = %safety["id"], from_copy, "safety snapshot taken before restore");
        Ok(safety)
    }

    /// An empty work folder and the `restoring` journal for `plan`.
    async fn begin_swap(plan: Swap, paths: &[SnapshotPath]) -> Result<Swap, AgentError> {
        let swap = plan.only(paths.to_vec());
        let begun = swap.clone();
        tokio::task::spawn_blocking(move || begun.begin())
            .await
            .map_err(|e| AgentError::Internal(e.to_string()))??;
        Ok(swap)
    }

    /// restic's restore of `entry` (only `paths`, if any) into the work
    /// folder of `swap`, until `cancel` (a child of the agent's shutdown).
    async fn restore_into(
        &self,
        ctx: &JobCtx,
        swap: &Swap,
        entry: &crate::index::Entry,
        source: &engine::Repo,
        paths: &[SnapshotPath],
        cancel: &engine::Cancel,
    ) -> Result<(), AgentError> {
        let includes: Vec<String> = paths
            .iter()
            .map(|p| p.include_pattern(entry.nested.as_deref()))
            .collect();
        source
            .restore(&entry.current, &swap.new_dir(), &includes, Some(cancel))
            .await?;
        tracing::debug!(server = %ctx.server, snapshot = %entry.id.short(), "restic restored into the work folder");
        Ok(())
    }

    /// The safety snapshot, restic's restore into the work folder and the
    /// swap. With `wings`, the game server must still be offline right
    /// before the swap.
    async fn restore_files(
        &self,
        ctx: &JobCtx,
        dir: &std::path::Path,
        target: &api::SnapshotId,
        truncate: bool,
        paths: Vec<SnapshotPath>,
        wings: Option<&Wings>,
    ) -> Result<serde_json::Value, Failed> {
        // Resolve again under the writer lock: the snapshot may have been
        // re-tagged (new current ID) since the request. When the
        // repository's store fails, the second copy is read instead.
        let (entry, source, from_copy) = self
            .readable(&ctx.server, &ctx.slot, &ctx.key, |idx| {
                idx.by_stable_id(target)
                    .cloned()
                    .ok_or(AgentError::BackupNotFound)
            })
            .await?;

        // The safety snapshot comes first, of the tree as it is (files the
        // game wrote since an earlier failed swap included)… into the
        // repository the restore reads (the second copy while the
        // repository's store fails).
        self.inner.jobs.phase(&ctx.job, JobPhase::SafetySnapshot);
        // An emptied server directory (the files are gone: the case a
        // restore is for) has nothing to keep, and restic would refuse a
        // snapshot of nothing.
        let empty = {
            let dir = dir.to_owned();
            tokio::task::spawn_blocking(move || crate::ignore::is_empty_dir(&dir))
                .await
                .unwrap_or(false)
        };
        let (layout, server) = (self.inner.layout.clone(), ctx.server.clone());
        let plan = tokio::task::spawn_blocking(move || Swap::plan(&layout, &server, truncate))
            .await
            .map_err(|e| AgentError::Internal(e.to_string()))??;
        // A failed safety snapshot stops the restore at once (restic gets
        // SIGINT): there will be no swap without it.
        let stop_restore = self.inner.shutdown.child_token();
        let safety_then_restoring = async {
            let safety = self
                .safety_snapshot(ctx, dir, empty, from_copy, &source)
                .await;
            match &safety {
                Ok(_) => self.inner.jobs.phase(&ctx.job, JobPhase::Restoring),
                Err(_) => stop_restore.cancel(),
            }
            safety
        };
        let (safety, swap, restored) = if plan.has_pending() {
            // …then a swap an earlier restore left half way is finished,
            // and only then does the new one begin.
            let safety = safety_then_restoring.await?;
            let pending = plan.clone();
            let pending = tokio::task::spawn_blocking(move || pending.finish_pending())
                .await
                .map_err(|e| AgentError::Internal(e.to_string()))?
                .map_err(|e| Failed {
                    error: e.into(),
                    swap_began: true,
                })?;
            if let Some(phase) = pending {
                tracing::warn!(server = %ctx.server, ?phase, "finished an earlier restore's swap first");
            }
            let swap = Self::begin_swap(plan, &paths).await?;
            let restored = self
                .restore_into(ctx, &swap, &entry, &source, &paths, &stop_restore)
                .await;
            (Ok(safety), swap, restored)
        } else {
            // Nothing to finish first: restic restores into the work folder
            // while the safety snapshot reads the server directory (which
            // nothing changes before the swap); both restic runs share the
            // repository's non-exclusive lock.
            let swap = Self::begin_swap(plan, &paths).await?;
            let (safety, restored) = tokio::join!(
                safety_then_restoring,
                self.restore_into(ctx, &swap, &entry, &source, &paths, &stop_restore)
            );
            (safety, swap, restored)
        };
        // No restore without its safety snapshot.
        let restored = safety.and_then(|safety| restored.map(|()| safety));
        // The game server must not have come back meanwhile (started from
        // the panel, a schedule): it would write into the new files.
        let still_offline = match (&restored, wings) {
            (Ok(_), Some(wings)) => match wings.state(&ctx.server).await {
                Ok(PowerState::Offline) => Ok(()),
                Ok(state) => {
                    tracing::warn!(server = %ctx.server, ?state, "the game server came back during the restore; not swapping");
                    Err(AgentError::ServerNotStopped)
                }
                Err(e) => Err(e),
            },
            _ => Ok(()),
        };
        let safety = match restored.and_then(|safety| still_offline.map(|()| safety)) {
            Ok(safety) => safety,
            Err(e) => {
                let abandon = swap.clone();
                let _ = tokio::task::spawn_blocking(move || abandon.abandon()).await;
                return Err(e.into());
            }
        };
        if let Some(nested) = entry.nested.clone() {
            let hoist = swap.clone();
            let moved = tokio::task::spawn_blocking(move || hoist.hoist_nested(&nested))
                .await
                .map_err(|e| AgentError::Internal(e.to_string()))?;
            match moved {
                Ok(true) => {
                    tracing::info!(server = %ctx.server, "restored a snapshot made by another tool: its files were under their absolute folder")
                }
                Ok(false) => {}
                Err(e) => {
                    let abandon = swap.clone();
                    let _ = tokio::task::spawn_blocking(move || abandon.abandon()).await;
                    return Err(e.into());
                }
            }
        }
        crate::failpoint::hit("restore-after-restic");
        let commit = swap.clone();
        let trash = tokio::task::spawn_blocking(move || {
            commit.commit_leaving_trash().or_else(|e| {
                tracing::warn!(error = %e, "restore swap failed; trying once more from its journal");
                commit.retry_after_failure(e).map(|()| crate::swap::Trash::none())
            })
        })
        .await
        .map_err(|e| AgentError::Internal(e.to_string()))
        .and_then(|r| r.map_err(AgentError::from))
        .map_err(|error| Failed {
            error,
            swap_began: true,
        })?;
        // The old files go after the answer (a large world takes a while
        // to delete); nothing reads them, and a stop before that leaves
        // them to the next start's repair.
        tokio::task::spawn_blocking(move || trash.remove());
        tracing::info!(server = %ctx.server, snapshot = %entry.id.short(), truncate, paths = paths.len(), "restore finished");
        let mut result = serde_json::json!({
            "restored": entry.id.to_string(),
            "safety_snapshot": safety,
            "truncate": truncate,
            "from_copy": from_copy,
        });
        if !paths.is_empty() {
            result["paths"] =
                serde_json::to_value(&paths).map_err(|e| AgentError::Internal(e.to_string()))?;
        }
        Ok(result)
    }
}

//! Batched `restic prune`. Forgetting a snapshot only drops its record; the
//! space comes back when unreferenced data is pruned, which is slow and takes
//! the repository's exclusive lock. So forgets are counted per repository and
//! a prune job runs once `prune_after_forgets` accumulated, or once a day when
//! any are pending. The agent holds no keys at rest, so a prune can only start
//! from a request that brought the key; it then waits for the repository's
//! writer lock like every other change (never beside a backup).

use std::sync::atomic::Ordering;

use api::agent::JobKind;
use api::{JobId, Secret, ServerUuid};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::Agent;
use crate::AgentError;

const DAY_SECS: i64 = 24 * 60 * 60;

/// Persisted per repository in `<state_dir>/prune/<uuid>.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct PruneState {
    pub pending_forgets: u64,
    pub last_prune_unix: Option<i64>,
    /// Stable IDs of snapshots the agent forgot (deleted, retention, the
    /// backup limit) that the second copy still has to forget. Only these:
    /// a snapshot gone from the repository otherwise (by hand, a lost
    /// store) stays in the copy, which is what the copy is for.
    #[serde(default)]
    pub copy_forgets: Vec<String>,
}

impl Agent {
    /// After a copy run: forgets in the second copy the snapshots the
    /// agent forgot in the repository (matched by the `original` restic
    /// copy records). Returns how many; the list is emptied of what was
    /// handled (also IDs the copy never had).
    pub(super) async fn forget_in_copy(
        &self,
        server: &ServerUuid,
        copy: &engine::Repo,
    ) -> Result<usize, engine::EngineError> {
        let pending = self.prune_state(server).copy_forgets;
        if pending.is_empty() {
            return Ok(0);
        }
        let gone: Vec<api::SnapshotId> = copy
            .snapshots()
            .await?
            .into_iter()
            .filter(|s| {
                s.original
                    .as_ref()
                    .is_some_and(|o| pending.iter().any(|p| p == o.as_str()))
            })
            .map(|s| s.id)
            .collect();
        for chunk in gone.chunks(100) {
            copy.forget(&chunk.iter().collect::<Vec<_>>()).await?;
        }
        let slot = self.slot(server);
        let _guard = slot.prune_state.lock().unwrap_or_else(|p| p.into_inner());
        let mut state = self.prune_state(server);
        state.copy_forgets.retain(|id| !pending.contains(id));
        self.save_prune_state(server, state);
        Ok(gone.len())
    }

    fn prune_state(&self, server: &ServerUuid) -> PruneState {
        let path = self.inner.layout.prune_file(server);
        std::fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    fn save_prune_state(&self, server: &ServerUuid, state: PruneState) {
        let path = self.inner.layout.prune_file(server);
        let result = serde_json::to_vec(&state)
            .map_err(std::io::Error::from)
            .and_then(|bytes| crate::layout::write_atomically(&path, &bytes));
        if let Err(e) = result {
            tracing::warn!(server = %server, error = %e, "could not save the prune state");
        }
    }

    /// Counts forgotten snapshots (their stable IDs) towards the next
    /// prune, and for the second copy to forget too.
    pub(super) fn note_forgotten(&self, server: &ServerUuid, ids: &[String]) {
        let slot = self.slot(server);
        let _guard = slot.prune_state.lock().unwrap_or_else(|p| p.into_inner());
        let mut state = self.prune_state(server);
        state.pending_forgets += ids.len() as u64;
        if self.inner.layout.copy_store().is_some() {
            state.copy_forgets.extend(ids.iter().cloned());
        }
        // The daily rule counts from the first forget of a repository never
        // pruned, not from the epoch.
        state
            .last_prune_unix
            .get_or_insert(OffsetDateTime::now_utc().unix_timestamp());
        self.save_prune_state(server, state);
    }

    /// Queues a prune job if one is due. Cheap when none is.
    pub(super) fn prune_if_due(&self, server: &ServerUuid, key: &Secret) {
        let state = self.prune_state(server);
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let stale = state.last_prune_unix.is_none_or(|t| now - t >= DAY_SECS);
        let due = state.pending_forgets >= self.inner.prune_after_forgets
            || (state.pending_forgets > 0 && stale);
        if due {
            self.queue_prune(server, key);
        }
    }

    /// `POST …/prune`: removes the data of forgotten snapshots now (an
    /// operator's "reclaim space"), instead of with the next batch.
    pub async fn prune_now(&self, server: &ServerUuid, key: &Secret) -> Result<JobId, AgentError> {
        if self.inner.draining.is_cancelled() {
            return Err(AgentError::ShuttingDown);
        }
        // Proves the key and that there is a repository.
        let slot = self.slot(server);
        drop(self.fresh(server, &slot, key).await?);
        self.queue_prune(server, key).ok_or(AgentError::Conflict {
            code: "prune_queued",
            message: "space is already being reclaimed for this server".into(),
        })
    }

    /// Queues a prune job unless one is queued or running.
    fn queue_prune(&self, server: &ServerUuid, key: &Secret) -> Option<JobId> {
        let slot = self.slot(server);
        if self.inner.draining.is_cancelled() || slot.prune_queued.swap(true, Ordering::SeqCst) {
            return None;
        }
        let agent = self.clone();
        let server = server.clone();
        let key = key.clone();
        let job = self.inner.jobs.create(&server, JobKind::Prune);
        let id = job.clone();
        self.inner.live_jobs.spawn(async move {
            let jobs = &agent.inner.jobs;
            let ready = tokio::select! {
                biased;
                () = agent.inner.draining.cancelled() => None,
                ready = async { (jobs.slot().await, slot.writer.lock().await) } => Some(ready),
            };
            let outcome = match ready {
                None => {
                    // Ended by a stop before it started: not a failure.
                    jobs.finish(&job, Err(AgentError::ShuttingDown), |_, _| ());
                    slot.prune_queued.store(false, Ordering::SeqCst);
                    return;
                }
                Some(_held) => {
                    jobs.start(&job);
                    agent.run_prune(&server, &key).await
                }
            };
            if let Err(e) = &outcome {
                Agent::note_failure(&slot, e);
            }
            agent.finish_job(&job, outcome);
            slot.prune_queued.store(false, Ordering::SeqCst);
        });
        Some(id)
    }

    async fn run_prune(
        &self,
        server: &ServerUuid,
        key: &Secret,
    ) -> Result<serde_json::Value, AgentError> {
        let slot = self.slot(server);
        self.clear_stale_locks(server, &slot, key).await?;
        let pending = self.prune_state(server).pending_forgets;
        self.repo(server, key)
            .prune(Some(&self.inner.shutdown))
            .await?;
        let _guard = slot.prune_state.lock().unwrap_or_else(|p| p.into_inner());
        let mut state = self.prune_state(server);
        // Forgets that happened while pruning still count for the next one.
        state.pending_forgets = state.pending_forgets.saturating_sub(pending);
        state.last_prune_unix = Some(OffsetDateTime::now_utc().unix_timestamp());
        self.save_prune_state(server, state);
        drop(_guard);
        tracing::info!(server = %server, forgets = pending, "repository pruned");
        let _ = self.measure_repository(server).await;
        // The second copy's forgotten snapshots go with the same batch.
        let copy_pruned = match self.copy_repo(server, key) {
            None => None,
            Some(copy) => match copy.prune(Some(&self.inner.shutdown)).await {
                Ok(()) | Err(engine::EngineError::RepoNotFound) => Some(true),
                Err(e) => {
                    tracing::warn!(server = %server, error = %e, "second copy not pruned");
                    Some(false)
                }
            },
        };
        Ok(serde_json::json!({ "forgets_pruned": pending, "copy_pruned": copy_pruned }))
    }
}

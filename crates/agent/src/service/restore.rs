//! `POST /api/servers/{uuid}/backups/restic/{id}/restore`: a safety snapshot
//! first, then the server directory's content becomes the snapshot's, swapped
//! in crash-safely (see [`crate::swap`]).

use api::agent::JobKind;
use api::{JobId, Secret, ServerUuid, SnapshotRef};

use super::{Agent, JobCtx};
use crate::AgentError;
use crate::index::PRE_RESTORE_TAG;
use crate::swap::Swap;

impl Agent {
    pub async fn restore(
        &self,
        server: &ServerUuid,
        key: &Secret,
        snapshot: &SnapshotRef,
        truncate: bool,
    ) -> Result<JobId, AgentError> {
        let dir = self.inner.layout.existing_server_dir(server)?;
        // Checked now so the client hears at once, not after a safety snapshot.
        let (layout, who) = (self.inner.layout.clone(), server.clone());
        tokio::task::spawn_blocking(move || Swap::plan(&layout, &who, truncate))
            .await
            .map_err(|e| AgentError::Internal(e.to_string()))??;
        let slot = self.slot(server);
        let target = self
            .fresh(server, &slot, key)
            .await?
            .resolve(snapshot)?
            .id
            .clone();
        let claim = self.claim(server, &slot, JobKind::Restore)?;
        Ok(
            self.spawn_job(server, slot, key, claim, move |ctx| async move {
                let agent = ctx.agent.clone();
                agent.run_restore(&ctx, &dir, &target, truncate).await
            }),
        )
    }

    async fn run_restore(
        &self,
        ctx: &JobCtx,
        dir: &std::path::Path,
        target: &api::SnapshotId,
        truncate: bool,
    ) -> Result<serde_json::Value, AgentError> {
        // Resolve again under the writer lock: the snapshot may have been
        // re-tagged (new current ID) since the request.
        let entry = self
            .fresh(&ctx.server, &ctx.slot, &ctx.key)
            .await?
            .by_stable_id(target)
            .cloned()
            .ok_or(AgentError::BackupNotFound)?;

        // The safety snapshot comes first, of the tree as it is (files the
        // game wrote since an earlier failed swap included)…
        let (safety, _) = self.snapshot(ctx, dir, &[], &[PRE_RESTORE_TAG]).await?;
        tracing::info!(server = %ctx.server, safety = %safety.id.short(), "safety snapshot taken before restore");
        // …then a swap an earlier restore left half way is finished.
        let (layout, server) = (self.inner.layout.clone(), ctx.server.clone());
        let pending = tokio::task::spawn_blocking(move || {
            Swap::plan(&layout, &server, truncate)?
                .finish_pending()
                .map_err(AgentError::from)
        })
        .await
        .map_err(|e| AgentError::Internal(e.to_string()))??;
        if let Some(phase) = pending {
            tracing::warn!(server = %ctx.server, ?phase, "finished an earlier restore's swap first");
        }

        let (layout, server) = (self.inner.layout.clone(), ctx.server.clone());
        let swap = tokio::task::spawn_blocking(move || {
            let swap = Swap::plan(&layout, &server, truncate)?;
            swap.begin()?;
            Ok::<_, AgentError>(swap)
        })
        .await
        .map_err(|e| AgentError::Internal(e.to_string()))??;

        let restored = self
            .repo(&ctx.server, &ctx.key)
            .restore(&entry.current, &swap.new_dir(), Some(&self.inner.shutdown))
            .await;
        if let Err(e) = restored {
            let abandon = swap.clone();
            let _ = tokio::task::spawn_blocking(move || abandon.abandon()).await;
            return Err(e.into());
        }
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
        tokio::task::spawn_blocking(move || {
            commit.commit().or_else(|e| {
                tracing::warn!(error = %e, "restore swap failed; trying once more from its journal");
                commit.retry_after_failure(e)
            })
        })
        .await
        .map_err(|e| AgentError::Internal(e.to_string()))??;
        tracing::info!(server = %ctx.server, snapshot = %entry.id.short(), truncate, "restore finished");
        Ok(serde_json::json!({
            "restored": entry.id.to_string(),
            "safety_snapshot": safety.to_item(),
            "truncate": truncate,
        }))
    }
}

//! `POST /api/servers/{uuid}/backups/restic/retention`: forget what a policy
//! does not keep (see [`crate::retention`]), under the writer lock; the
//! forgotten snapshots count towards the batched prune.

use api::agent::{RetentionPolicy, RetentionResult};
use api::{Secret, ServerUuid};
use time::OffsetDateTime;

use super::{Agent, RepoSlot};
use crate::AgentError;
use crate::index::Entry;
use crate::retention::Semantics;

impl Agent {
    /// The repository's snapshots and those `policy` does not keep.
    async fn plan_retention(
        &self,
        server: &ServerUuid,
        slot: &RepoSlot,
        key: &Secret,
        policy: &RetentionPolicy,
    ) -> Result<(Vec<Entry>, Vec<Entry>), AgentError> {
        // `removals` refuses a bad policy too.
        let entries = self.fresh(server, slot, key).await?.entries().to_vec();
        let removals = crate::retention::removals(
            &entries,
            policy,
            OffsetDateTime::now_utc(),
            Semantics::of(self.inner.restic.version()),
        )?;
        Ok((entries, removals))
    }

    /// What `policy` would forget now; nothing is forgotten (no lock taken).
    pub async fn preview_retention(
        &self,
        server: &ServerUuid,
        key: &Secret,
        policy: &RetentionPolicy,
    ) -> Result<api::agent::RetentionPreview, AgentError> {
        crate::retention::validate(policy)?;
        let slot = self.slot(server);
        let (entries, removals) = self.plan_retention(server, &slot, key, policy).await?;
        let mut would_remove: Vec<_> = removals.iter().map(|e| e.to_item()).collect();
        would_remove.sort_by_key(|b| std::cmp::Reverse(b.time));
        Ok(api::agent::RetentionPreview {
            kept: entries.len() - removals.len(),
            would_remove,
        })
    }

    pub async fn apply_retention(
        &self,
        server: &ServerUuid,
        key: &Secret,
        policy: &RetentionPolicy,
    ) -> Result<RetentionResult, AgentError> {
        // A bad policy is refused before waiting for the repository.
        crate::retention::validate(policy)?;
        let slot = self.slot(server);
        let _writer = self.writer(&slot).await?;
        let (entries, removals) = self.plan_retention(server, &slot, key, policy).await?;
        if !removals.is_empty() {
            self.clear_stale_locks(server, &slot, key).await?;
            self.change(server, &slot, key, |repo| {
                let ids: Vec<_> = removals.iter().map(|e| e.current.clone()).collect();
                async move { repo.forget(&ids.iter().collect::<Vec<_>>()).await }
            })
            .await?;
            self.note_forgotten(
                server,
                &removals
                    .iter()
                    .map(|e| e.id.to_string())
                    .collect::<Vec<_>>(),
            );
            tracing::info!(server = %server, forgotten = removals.len(), "retention applied");
        }
        self.prune_if_due(server, key);
        Ok(RetentionResult {
            forgotten: removals.iter().map(|e| e.id.to_string()).collect(),
            kept: entries.len() - removals.len(),
        })
    }
}

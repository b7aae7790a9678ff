//! `POST /api/servers/{uuid}/backups/restic/retention`: forget what a policy
//! does not keep (see [`crate::retention`]), under the writer lock; the
//! forgotten snapshots count towards the batched prune.

use api::agent::{RetentionPolicy, RetentionResult};
use api::{Secret, ServerUuid};
use time::OffsetDateTime;

use super::Agent;
use crate::AgentError;

impl Agent {
    pub async fn apply_retention(
        &self,
        server: &ServerUuid,
        key: &Secret,
        policy: &RetentionPolicy,
    ) -> Result<RetentionResult, AgentError> {
        crate::retention::validate(policy)?;
        let slot = self.slot(server);
        let _writer = self.writer(&slot).await?;
        let entries = self.fresh(server, &slot, key).await?.entries().to_vec();
        let removals = crate::retention::removals(&entries, policy, OffsetDateTime::now_utc())?;
        if !removals.is_empty() {
            self.clear_stale_locks(server, &slot, key).await?;
            self.repo(server, key)
                .forget(&removals.iter().map(|e| &e.current).collect::<Vec<_>>())
                .await
                .map_err(|e| Self::failed_change(&slot, e))?;
            self.note_forgotten(server, removals.len());
            tracing::info!(server = %server, forgotten = removals.len(), "retention applied");
        }
        self.prune_if_due(server, key);
        Ok(RetentionResult {
            forgotten: removals.iter().map(|e| e.id.to_string()).collect(),
            kept: entries.len() - removals.len(),
        })
    }
}

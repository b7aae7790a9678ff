//! `POST /api/servers/{uuid}/backups/restic/key`: key rotation. The new key
//! is added, proven to open the repository, and only then the old one is
//! removed, so an interruption at any point leaves the repository openable
//! with the old key or the new one. A retry with the same new key finishes
//! what an interrupted run started.

use api::agent::KeyRotated;
use api::{Secret, ServerUuid};
use engine::EngineError;

use super::Agent;
use crate::AgentError;

/// Shortest new key accepted (the panel generates much longer ones).
const MIN_NEW_KEY: usize = 16;

impl Agent {
    pub async fn rotate_key(
        &self,
        server: &ServerUuid,
        current: &Secret,
        new: &Secret,
    ) -> Result<KeyRotated, AgentError> {
        let raw = new.expose();
        if raw.len() < MIN_NEW_KEY || raw.trim() != raw {
            return Err(AgentError::bad_request(
                "invalid_new_key",
                format!(
                    "the new key needs at least {MIN_NEW_KEY} characters and no surrounding spaces"
                ),
            ));
        }
        if new == current {
            return Err(AgentError::bad_request(
                "same_key",
                "the new key equals the current one",
            ));
        }
        // A remote repository that is not there answers the same from
        // `restic key list` below.
        if let Some(path) = self.inner.layout.repo(server).local_path()
            && !engine::repo_exists(path)
        {
            return Err(AgentError::RepoNotFound);
        }
        let slot = self.slot(server);
        let _writer = self.writer(&slot).await?;
        let old_repo = self.repo(server, current);
        let new_repo = self.repo(server, new);

        let old_keys = match old_repo.keys().await {
            Ok(keys) => keys,
            // A retry after the rotation completed: the new key is in place.
            Err(EngineError::WrongKey) => {
                let keys = new_repo.keys().await.map_err(|e| match e {
                    EngineError::WrongKey => AgentError::WrongKey,
                    other => other.into(),
                })?;
                let id = current_key_id(&keys)?;
                self.rotate_copy(server, current, new).await?;
                tracing::info!(server = %server, "key rotation was already complete");
                return Ok(KeyRotated { key_id: id });
            }
            Err(e) => return Err(e.into()),
        };
        let old_id = current_key_id(&old_keys)?;
        self.clear_stale_locks(server, &slot, current).await?;

        // Added already by an interrupted attempt?
        match new_repo.check_key().await {
            Ok(()) => {
                tracing::info!(server = %server, "new key already present; finishing the rotation")
            }
            Err(EngineError::WrongKey) => self
                .add_key(server, current, new)
                .await
                .map_err(|e| Self::failed_change(&slot, e))?,
            Err(e) => return Err(e.into()),
        }
        crate::failpoint::hit("rotate-after-add");
        let new_id = current_key_id(&new_repo.keys().await?)?;
        if new_id == old_id {
            return Err(AgentError::Internal(
                "the new key resolved to the old key".into(),
            ));
        }
        new_repo
            .remove_key(&old_id)
            .await
            .map_err(|e| Self::failed_change(&slot, e))?;
        remove_other_keys(&old_repo, &new_repo)
            .await
            .map_err(|e| Self::failed_change(&slot, e))?;
        self.rotate_copy(server, current, new).await?;
        tracing::info!(server = %server, key = %new_id, "repository key rotated");
        Ok(KeyRotated { key_id: new_id })
    }

    /// Adds `new` as a further key of the repository `current` opens. For a
    /// local repository and a 256-bit key the key file is written directly
    /// with the light work factor (see `engine::is_machine_key`), from the
    /// master key opened with `current`; otherwise by `restic key add`.
    async fn add_key(
        &self,
        server: &ServerUuid,
        current: &Secret,
        new: &Secret,
    ) -> Result<(), EngineError> {
        if let Some(path) = self.local_repo(server)
            && engine::is_machine_key(new)
        {
            let (current, new) = (current.clone(), new.clone());
            let written = tokio::task::spawn_blocking(move || {
                engine::MasterKey::open(&path, &current)?.add_light_key(&path, &new)
            })
            .await
            .map_err(|e| EngineError::Io(std::io::Error::other(e)))?;
            match written {
                Ok(_) => return Ok(()),
                // restic accepted `current` (its key list proved it): a key
                // file this agent does not open itself (beyond its memory
                // bounds) is left to restic.
                Err(e) => {
                    tracing::debug!(server = %server, error = %e, "key file not written directly; asking restic")
                }
            }
        }
        self.repo(server, current).add_key(new).await
    }

    /// The same rotation on the second copy (`copy_to`), if there is one:
    /// it keeps the repository's key. A failure fails the request; a retry
    /// with the same keys finishes both.
    async fn rotate_copy(
        &self,
        server: &ServerUuid,
        current: &Secret,
        new: &Secret,
    ) -> Result<(), AgentError> {
        let (Some(old), Some(next)) =
            (self.copy_repo(server, current), self.copy_repo(server, new))
        else {
            return Ok(());
        };
        let old_keys = match old.keys().await {
            Ok(keys) => keys,
            // No copy yet: the next backup creates it with the new key.
            Err(EngineError::RepoNotFound) => return Ok(()),
            // Rotated already.
            Err(EngineError::WrongKey) => return next.check_key().await.map_err(Into::into),
            Err(e) => return Err(e.into()),
        };
        let old_id = current_key_id(&old_keys)?;
        match next.check_key().await {
            Ok(()) => {}
            Err(EngineError::WrongKey) => old.add_key(new).await?,
            Err(e) => return Err(e.into()),
        }
        let new_id = current_key_id(&next.keys().await?)?;
        if new_id != old_id {
            next.remove_key(&old_id).await?;
        }
        remove_other_keys(&old, &next).await?;
        tracing::info!(server = %server, "second copy's key rotated");
        Ok(())
    }
}

/// After the old key's file was removed: another key file for the old
/// password (added by hand, or left by an interrupted run) would keep it
/// working, so each one it still opens is removed too (by `new`, which
/// restic never lets remove its own key).
async fn remove_other_keys(old: &engine::Repo, new: &engine::Repo) -> Result<(), EngineError> {
    for _ in 0..8 {
        match old.check_key().await {
            Err(EngineError::WrongKey) => return Ok(()),
            Ok(()) => new.remove_key(&current_key_id(&old.keys().await?)?).await?,
            Err(e) => return Err(e),
        }
    }
    Err(EngineError::Failed {
        code: None,
        message: "the old key still opens the repository".into(),
    })
}

fn current_key_id(keys: &[engine::KeyInfo]) -> Result<String, EngineError> {
    keys.iter()
        .find(|k| k.current)
        .map(|k| k.id.clone())
        .ok_or_else(|| EngineError::Parse("restic listed no current key".into()))
}

//! `POST /api/servers/{uuid}/backups/restic/adopt`: the importer's key check,
//! and the move of a repository the PHP extension left behind.
//!
//! The extension kept a server's repository at `<root>/<uuid>+<owner
//! username>` (or `<root>/<uuid>`), where `<root>` is Wings' data folder's
//! sibling `restic`, the agent's default `repo_root`. This agent keeps it at
//! `<repo_root>/<uuid>`. When that does not exist, the candidates
//! `<uuid>+<name>` (real folders, never symlinks) are tried with the key and
//! the one it opens is renamed into place, under the server's writer lock.
//! Repositories of earlier owners (other keys) stay where they are.

use api::agent::AdoptAnswer;
use api::{Secret, ServerUuid};
use engine::EngineError;

use super::Agent;
use crate::AgentError;

/// What the extension allowed as an owner name (`safeOwner`), bounded.
fn owner_name(suffix: &str) -> bool {
    !suffix.is_empty()
        && suffix.len() <= 191
        && suffix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'@'))
        && suffix != "."
        && suffix != ".."
}

impl Agent {
    pub async fn adopt(
        &self,
        server: &ServerUuid,
        key: &Secret,
        dry_run: bool,
    ) -> Result<AdoptAnswer, AgentError> {
        let slot = self.slot(server);
        let _writer = self.writer(&slot).await?;
        let root = self.inner.layout.repo_root().clone();
        let target = self.inner.layout.repo(server);
        let restic = self.inner.restic.clone();
        let open = |path: std::path::PathBuf| {
            let repo = restic.repo(path, key.clone());
            async move { repo.check_key().await }
        };

        let prefix = format!("{}+", server.as_str());
        let mut candidates = Vec::new();
        if let Ok(entries) = std::fs::read_dir(&root) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let Some(owner) = name.strip_prefix(&prefix) else {
                    continue;
                };
                // `file_type` does not follow symlinks.
                if owner_name(owner) && entry.file_type().is_ok_and(|t| t.is_dir()) {
                    candidates.push(name);
                }
            }
        }
        candidates.sort();

        if std::fs::symlink_metadata(&target).is_ok() {
            return match open(target).await {
                Ok(()) => Ok(AdoptAnswer {
                    adopted_from: None,
                    left: candidates,
                }),
                Err(EngineError::WrongKey) => Err(AgentError::WrongKey),
                Err(EngineError::RepoNotFound) => Err(AgentError::bad_request(
                    "not_a_repository",
                    "the server's repository folder exists but holds no restic repository",
                )),
                Err(e) => Err(e.into()),
            };
        }
        let mut opened = None;
        let mut tried = false;
        for name in &candidates {
            tried = true;
            match open(root.join(name)).await {
                Ok(()) => {
                    opened = Some(name.clone());
                    break;
                }
                Err(EngineError::WrongKey | EngineError::RepoNotFound) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let Some(from) = opened else {
            return Err(if tried {
                AgentError::WrongKey
            } else {
                AgentError::RepoNotFound
            });
        };
        if !dry_run {
            std::fs::rename(root.join(&from), &target).map_err(|e| {
                AgentError::Internal(format!("could not move {from} into place: {e}"))
            })?;
            tracing::info!(server = %server, from = %from, "adopted the extension's repository");
        }
        let left = candidates.into_iter().filter(|c| *c != from).collect();
        Ok(AdoptAnswer {
            adopted_from: Some(from),
            left,
        })
    }
}

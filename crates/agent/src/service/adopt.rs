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
        let location = self.inner.layout.repo(server);
        let restic = self.inner.restic.clone();
        let open = |path: std::path::PathBuf| {
            let repo = restic.repo(path, key.clone());
            async move { repo.check_key().await }
        };

        let prefix = format!("{}+", server.as_str());
        let mut candidates = Vec::new();
        // Folders that look like the extension's but cannot be used: a
        // symlink (it could point anywhere), a name out of the owner set.
        let mut unusable = Vec::new();
        match std::fs::read_dir(&root) {
            Ok(entries) => {
                for entry in entries {
                    let entry = entry?;
                    let name = entry.file_name().to_string_lossy().into_owned();
                    let Some(owner) = name.strip_prefix(&prefix) else {
                        continue;
                    };
                    // `file_type` does not follow symlinks.
                    if owner_name(owner) && entry.file_type().is_ok_and(|t| t.is_dir()) {
                        candidates.push(name);
                    } else {
                        unusable.push(name);
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        candidates.sort();
        unusable.sort();

        let Some(target) = location.local_path().map(ToOwned::to_owned) else {
            // A remote store: the key must open the repository there; the
            // extension's folders on this disk are never moved to it.
            return match self.repo(server, key).check_key().await {
                Ok(()) => Ok(AdoptAnswer {
                    adopted_from: None,
                    left: candidates,
                }),
                Err(EngineError::RepoNotFound) if !candidates.is_empty() => {
                    Err(AgentError::Conflict {
                        code: "repository_not_in_store",
                        message: format!(
                            "this node keeps repositories in {}, but this server's is on the node's disk ({}); copy it there with `restic copy` first",
                            location.display(),
                            candidates.join(", ")
                        ),
                    })
                }
                Err(e) => Err(e.into()),
            };
        };
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
        if !unusable.is_empty() {
            return Err(AgentError::Conflict {
                code: "unusable_repository",
                message: format!(
                    "repository folders of this server that are not plain folders with an owner name were left alone: {}; move them yourself",
                    unusable.join(", ")
                ),
            });
        }
        // Every candidate is tried: two that open with the same key leave
        // no way to tell which is the current owner's.
        let mut opened = Vec::new();
        for name in &candidates {
            match open(root.join(name)).await {
                Ok(()) => opened.push(name.clone()),
                Err(EngineError::WrongKey | EngineError::RepoNotFound) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let from = match opened.as_slice() {
            [] if candidates.is_empty() => return Err(AgentError::RepoNotFound),
            [] => return Err(AgentError::WrongKey),
            [one] => one.clone(),
            several => {
                return Err(AgentError::Conflict {
                    code: "ambiguous_repository",
                    message: format!(
                        "the key opens more than one of this server's repositories ({}); move the right one to {} yourself",
                        several.join(", "),
                        server.as_str()
                    ),
                });
            }
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

//! Archiving a deleted server's repository, and the archive browser.
//!
//! `POST /api/servers/{uuid}/backups/restic/archive` takes a final snapshot
//! tagged `archived` + `locked` and moves a local repository to
//! `<repo_root>/archive/<uuid>-<UTC YYYYMMDDTHHMMSSZ>`. A remote repository
//! is archived in place: it stays where it is (its snapshots tagged by the
//! final one), and a record `<state_dir>/archived/<name>.json` says where it
//! is. Archived repositories are listed and deleted by name; a name is only
//! used after it matched an entry that exists. Deleting a remote one
//! forgets all its snapshots and prunes (restic can not remove a
//! repository; its `config` and `keys/`, a few KB, stay), so it needs the
//! key.

use std::path::Path;

use api::agent::{ArchivedRepo, JobKind};
use api::{JobId, Secret, ServerUuid};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::macros::format_description;

use super::{Agent, JobCtx};
use crate::AgentError;
use crate::clock::rfc3339;
use crate::index::LOCKED_TAG;

const ARCHIVED_TAG: &str = "archived";
const STAMP: &[time::format_description::BorrowedFormatItem<'_>] =
    format_description!("[year][month][day]T[hour][minute][second]Z");

/// Splits `<uuid>-<stamp>` (optionally `-N` for a same-second repeat).
fn parse_name(name: &str) -> Option<(ServerUuid, OffsetDateTime)> {
    let uuid = ServerUuid::parse(name.get(..36)?).ok()?;
    let rest = name.get(36..)?.strip_prefix('-')?;
    let stamp = rest.get(..16)?;
    match rest.get(16..)? {
        "" => {}
        suffix => {
            let n = suffix.strip_prefix('-')?;
            if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) || n.len() > 4 {
                return None;
            }
        }
    }
    let at = time::PrimitiveDateTime::parse(stamp, STAMP)
        .ok()?
        .assume_utc();
    Some((uuid, at))
}

/// The record of a remote repository archived in place.
#[derive(Debug, Serialize, Deserialize)]
struct RemoteArchive {
    server_uuid: String,
    /// Where the repository is (no secrets).
    store: String,
    archived_at: String,
    size_bytes: u64,
}

impl Agent {
    pub async fn archive(&self, server: &ServerUuid, key: &Secret) -> Result<JobId, AgentError> {
        let layout = &self.inner.layout;
        let dir = layout.existing_server_dir(server).ok();
        let slot = self.slot(server);
        let has_repo = self.repo_exists(server, &slot, key).await?;
        if dir.is_none() && !has_repo {
            return Err(AgentError::RepoNotFound);
        }
        if has_repo {
            // Proves the key before a job is queued.
            drop(self.fresh(server, &slot, key).await?);
        }
        let claim = self.claim(server, &slot, JobKind::Archive)?;
        Ok(
            self.spawn_job(server, slot, key, claim, move |ctx| async move {
                let agent = ctx.agent.clone();
                agent.run_archive(&ctx, dir.as_deref()).await
            }),
        )
    }

    async fn run_archive(
        &self,
        ctx: &JobCtx,
        dir: Option<&Path>,
    ) -> Result<serde_json::Value, AgentError> {
        // An emptied server folder has nothing for a final snapshot (restic
        // refuses one of nothing): the archive keeps the backups it has.
        let last = match dir.filter(|d| !crate::ignore::is_empty_dir(d)) {
            Some(dir) => Some(
                self.snapshot(ctx, dir, &[], &[ARCHIVED_TAG, LOCKED_TAG])
                    .await?
                    .0,
            ),
            None => None,
        };
        let layout = &self.inner.layout;
        let location = layout.repo(&ctx.server);
        let remote = location.local_path().is_none();
        let root = if remote {
            layout.remote_archive_dir()
        } else {
            layout.archive_root()
        };
        tokio::fs::create_dir_all(&root).await?;
        let now = OffsetDateTime::now_utc();
        let stamp = now
            .format(STAMP)
            .map_err(|e| AgentError::Internal(e.to_string()))?;
        let file = |name: &str| {
            if remote {
                root.join(format!("{name}.json"))
            } else {
                root.join(name)
            }
        };
        let mut name = format!("{}-{stamp}", ctx.server);
        let mut n = 1;
        while tokio::fs::try_exists(file(&name)).await.unwrap_or(true) {
            name = format!("{}-{stamp}-{n}", ctx.server);
            n += 1;
        }
        if remote {
            // Archived before (a retried server deletion): the old record
            // goes, so there is one, stamped after the newest snapshot.
            for existing in self.archives().await? {
                if existing.server_uuid == ctx.server.as_str()
                    && existing.store.as_deref() == Some(&location.display())
                {
                    let old = root.join(format!("{}.json", existing.name));
                    let _ = tokio::fs::remove_file(old).await;
                    tracing::info!(server = %ctx.server, archive = %existing.name, "earlier archive record replaced");
                }
            }
        }
        match location.local_path() {
            Some(path) => tokio::fs::rename(path, file(&name)).await?,
            None => {
                let size_bytes = self
                    .repo(&ctx.server, &ctx.key)
                    .stats(engine::StatsMode::RawData, &[])
                    .await
                    .map(|s| s.total_size)
                    .unwrap_or(0);
                let record = RemoteArchive {
                    server_uuid: ctx.server.to_string(),
                    store: location.display(),
                    archived_at: rfc3339(now),
                    size_bytes,
                };
                let bytes = serde_json::to_vec_pretty(&record)
                    .map_err(|e| AgentError::Internal(e.to_string()))?;
                let path = file(&name);
                tokio::task::spawn_blocking(move || crate::layout::write_atomically(&path, &bytes))
                    .await
                    .map_err(|e| AgentError::Internal(e.to_string()))??;
            }
        }
        for file in [
            layout.sizes_file(&ctx.server),
            layout.prune_file(&ctx.server),
        ] {
            let _ = tokio::fs::remove_file(file).await;
        }
        self.forget_listings(&ctx.server).await;
        self.forget_history(&ctx.server).await;
        self.inner.metrics.forget(&ctx.server);
        tracing::info!(server = %ctx.server, archive = %name, "repository archived");
        Ok(serde_json::json!({
            "name": name,
            "snapshot": last.map(|e| e.to_item()),
        }))
    }

    /// `GET /api/restic/archive`, newest first: folders under
    /// `<repo_root>/archive` and records of remote repositories.
    pub async fn archives(&self) -> Result<Vec<ArchivedRepo>, AgentError> {
        let root = self.inner.layout.archive_root();
        let records = self.inner.layout.remote_archive_dir();
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            for entry in std::fs::read_dir(&root).into_iter().flatten().flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let Some((uuid, at)) = parse_name(&name) else {
                    continue;
                };
                if !entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    continue;
                }
                out.push(ArchivedRepo {
                    size_bytes: crate::layout::dir_size(&entry.path()),
                    name,
                    server_uuid: uuid.to_string(),
                    archived_at: at.into(),
                    store: None,
                });
            }
            for entry in std::fs::read_dir(&records).into_iter().flatten().flatten() {
                let file = entry.file_name().to_string_lossy().into_owned();
                let Some(name) = file.strip_suffix(".json") else {
                    continue;
                };
                let Some((uuid, at)) = parse_name(name) else {
                    continue;
                };
                let record: Option<RemoteArchive> = std::fs::read(entry.path())
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok());
                let Some(record) = record.filter(|r| r.server_uuid == uuid.as_str()) else {
                    tracing::warn!(record = %file, "ignoring an unreadable archive record");
                    continue;
                };
                out.push(ArchivedRepo {
                    size_bytes: record.size_bytes,
                    name: name.to_owned(),
                    server_uuid: uuid.to_string(),
                    archived_at: at.into(),
                    store: Some(record.store),
                });
            }
            out.sort_by(|a, b| b.archived_at.cmp(&a.archived_at).then(a.name.cmp(&b.name)));
            out
        })
        .await
        .map_err(|e| AgentError::Internal(e.to_string()))
    }

    /// `DELETE /api/restic/archive/{name}`: only names that exist are used.
    /// A remote repository needs `key`: its snapshots are forgotten and the
    /// repository pruned, then its record goes.
    pub async fn delete_archive(&self, name: &str, key: Option<&Secret>) -> Result<(), AgentError> {
        if parse_name(name).is_none() {
            return Err(AgentError::bad_request(
                "invalid_archive_name",
                "archive names look like <server uuid>-<YYYYMMDDTHHMMSSZ>",
            ));
        }
        let found = self
            .archives()
            .await?
            .into_iter()
            .find(|a| a.name == name)
            .ok_or(AgentError::ArchiveNotFound)?;
        if found.store.is_some() {
            return self.delete_remote_archive(&found, key).await;
        }
        let path = self.inner.layout.archive_root().join(&found.name);
        tokio::fs::remove_dir_all(&path).await?;
        tracing::info!(archive = %found.name, "archived repository deleted");
        Ok(())
    }
}

impl Agent {
    async fn delete_remote_archive(
        &self,
        found: &ArchivedRepo,
        key: Option<&Secret>,
    ) -> Result<(), AgentError> {
        let key = key.ok_or_else(|| {
            AgentError::bad_request(
                "missing_key",
                "a remote archived repository is emptied with its key: send it in X-Restic-Password",
            )
        })?;
        let server = ServerUuid::parse(&found.server_uuid)
            .map_err(|e| AgentError::Internal(e.to_string()))?;
        let location = self.inner.layout.repo(&server);
        if Some(location.display()) != found.store {
            return Err(AgentError::Conflict {
                code: "archive_elsewhere",
                message: format!(
                    "this node's repository template changed since the archive was made; it is at {}: empty it there by hand, nothing was deleted",
                    found.store.as_deref().unwrap_or("?")
                ),
            });
        }
        let archived_at = found.archived_at.time();
        let slot = self.slot(&server);
        if let Some(job) = slot.active_job() {
            return Err(AgentError::JobInProgress {
                job_id: Some(job.to_string()),
            });
        }
        let _writer = self.writer(&slot).await?;
        let repo = self.repo(&server, key);
        match repo.snapshots().await {
            Ok(snapshots) => {
                // The archive's stamp is taken after its final snapshot:
                // anything newer was made since (the server added again?).
                if snapshots.iter().any(|s| s.time > archived_at) {
                    return Err(AgentError::Conflict {
                        code: "archive_in_use",
                        message: "this repository has snapshots newer than the archive (is the server back?); nothing was deleted".into(),
                    });
                }
                let ids: Vec<&api::SnapshotId> = snapshots.iter().map(|s| &s.id).collect();
                for chunk in ids.chunks(100) {
                    repo.forget(chunk).await?;
                }
                repo.prune(Some(&self.inner.shutdown)).await?;
            }
            // Already gone (removed by hand): only the record is left.
            Err(engine::EngineError::RepoNotFound) => {}
            Err(e) => return Err(e.into()),
        }
        let record = self
            .inner
            .layout
            .remote_archive_dir()
            .join(format!("{}.json", found.name));
        tokio::fs::remove_file(&record).await?;
        tracing::info!(archive = %found.name, store = ?found.store, "archived remote repository emptied and its record deleted");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_names_parse_strictly() {
        let ok = "1f0e2d3c-4b5a-6978-8796-a5b4c3d2e1f0-20261126T130501Z";
        let (uuid, at) = parse_name(ok).unwrap();
        assert_eq!(uuid.as_str(), "1f0e2d3c-4b5a-6978-8796-a5b4c3d2e1f0");
        assert_eq!(at.unix_timestamp(), 1795698301);
        assert!(parse_name(&format!("{ok}-2")).is_some());
        for bad in [
            "",
            "..",
            "../../etc",
            "1f0e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
            "1f0e2d3c-4b5a-6978-8796-a5b4c3d2e1f0-20261126T130501Z/..",
            "1f0e2d3c-4b5a-6978-8796-a5b4c3d2e1f0-20261126T130501Z-",
            "1f0e2d3c-4b5a-6978-8796-a5b4c3d2e1f0-20261126T130501Z-x",
            "1f0e2d3c-4b5a-6978-8796-a5b4c3d2e1f0-20261399T130501Z",
            "--password-command=sh",
        ] {
            assert!(parse_name(bad).is_none(), "{bad}");
        }
    }
}

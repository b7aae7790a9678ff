//! Archiving a deleted server's repository, and the archive browser.
//!
//! `POST /api/servers/{uuid}/backups/restic/archive` takes a final snapshot
//! tagged `archived` + `locked` and moves the repository to
//! `<repo_root>/archive/<uuid>-<UTC YYYYMMDDTHHMMSSZ>`. Archived repositories
//! are listed and deleted by name; a name is only used after it matched an
//! entry that exists.

use std::path::Path;

use api::agent::{ArchivedRepo, JobKind};
use api::{JobId, Secret, ServerUuid};
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

fn dir_size(path: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![path.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in rd.flatten() {
            match entry.metadata() {
                Ok(m) if m.is_dir() => stack.push(entry.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

impl Agent {
    pub async fn archive(&self, server: &ServerUuid, key: &Secret) -> Result<JobId, AgentError> {
        let layout = &self.inner.layout;
        let dir = layout.existing_server_dir(server).ok();
        let has_repo = engine::repo_exists(&layout.repo(server));
        if dir.is_none() && !has_repo {
            return Err(AgentError::RepoNotFound);
        }
        let slot = self.slot(server);
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
        let last = match dir {
            Some(dir) => Some(
                self.snapshot(ctx, dir, &[], &[ARCHIVED_TAG, LOCKED_TAG])
                    .await?
                    .0,
            ),
            None => None,
        };
        let layout = &self.inner.layout;
        let root = layout.archive_root();
        tokio::fs::create_dir_all(&root).await?;
        let stamp = OffsetDateTime::now_utc()
            .format(STAMP)
            .map_err(|e| AgentError::Internal(e.to_string()))?;
        let mut name = format!("{}-{stamp}", ctx.server);
        let mut n = 1;
        while tokio::fs::try_exists(root.join(&name))
            .await
            .unwrap_or(true)
        {
            name = format!("{}-{stamp}-{n}", ctx.server);
            n += 1;
        }
        tokio::fs::rename(layout.repo(&ctx.server), root.join(&name)).await?;
        for file in [
            layout.sizes_file(&ctx.server),
            layout.prune_file(&ctx.server),
        ] {
            let _ = tokio::fs::remove_file(file).await;
        }
        tracing::info!(server = %ctx.server, archive = %name, "repository archived");
        Ok(serde_json::json!({
            "name": name,
            "snapshot": last.map(|e| e.to_item()),
        }))
    }

    /// `GET /api/restic/archive`, newest first.
    pub async fn archives(&self) -> Result<Vec<ArchivedRepo>, AgentError> {
        let root = self.inner.layout.archive_root();
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            let Ok(rd) = std::fs::read_dir(&root) else {
                return out;
            };
            for entry in rd.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let Some((uuid, at)) = parse_name(&name) else {
                    continue;
                };
                if !entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    continue;
                }
                out.push(ArchivedRepo {
                    size_bytes: dir_size(&entry.path()),
                    name,
                    server_uuid: uuid.to_string(),
                    archived_at: rfc3339(at),
                });
            }
            out.sort_by(|a, b| b.archived_at.cmp(&a.archived_at).then(a.name.cmp(&b.name)));
            out
        })
        .await
        .map_err(|e| AgentError::Internal(e.to_string()))
    }

    /// `DELETE /api/restic/archive/{name}`: only names that exist are used.
    pub async fn delete_archive(&self, name: &str) -> Result<(), AgentError> {
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
        let path = self.inner.layout.archive_root().join(&found.name);
        tokio::fs::remove_dir_all(&path).await?;
        tracing::info!(archive = %found.name, "archived repository deleted");
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

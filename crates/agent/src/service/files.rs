//! `GET /api/servers/{uuid}/backups/restic/{id}/files`: the snapshot
//! browser. The first view of a snapshot lists it with `restic ls` into a
//! listing file (see [`crate::listing`]); every later view, and the checks
//! of a partial restore or a download of one path, read only that.

use std::collections::HashSet;
use std::sync::Arc;

use api::files::{FileKind, FileList, SnapshotPath};
use api::{Secret, ServerUuid, SnapshotRef};
use engine::Repo;

use super::{Agent, RepoSlot};
use crate::AgentError;
use crate::index::{Entry, RepoIndex};
use crate::listing::{Builder, Listing, ListingError};

/// Bytes of listings kept in memory (about 1.5 million entries).
pub(super) const CACHE_BUDGET: usize = 64 << 20;

/// Listings made at the same time on a node (each holds its snapshot's
/// names in memory while restic lists it).
pub(super) const BUILDS: usize = 2;

/// How often a listing is tried when the snapshot is re-tagged (lock,
/// unlock) under it: restic then knows it by a new ID.
const ATTEMPTS: usize = 3;

fn tree_ok(tree: &str) -> bool {
    tree.len() == 64 && tree.bytes().all(|b| b.is_ascii_hexdigit())
}

fn too_many_files() -> AgentError {
    AgentError::Conflict {
        code: "too_many_files",
        message: format!(
            "this backup holds more than {} files and folders, more than the browser lists; restore or download it whole, or browse it with restic",
            crate::listing::MAX_ENTRIES
        ),
    }
}

impl From<ListingError> for AgentError {
    fn from(e: ListingError) -> Self {
        match e {
            ListingError::NotFound => AgentError::PathNotFound,
            ListingError::NotAFolder => {
                AgentError::bad_request("not_a_folder", "this path is a file, not a folder")
            }
            ListingError::Damaged => AgentError::Internal("a snapshot listing is damaged".into()),
        }
    }
}

impl Agent {
    /// One page of a folder of a snapshot.
    pub async fn files(
        &self,
        server: &ServerUuid,
        key: &Secret,
        snapshot: &SnapshotRef,
        path: &SnapshotPath,
        offset: usize,
        limit: usize,
    ) -> Result<FileList, AgentError> {
        let (_, listing) = self.listing_of(server, key, snapshot).await?;
        Ok(listing.page(path, offset, limit)?)
    }

    /// The snapshot `snapshot` names and its listing.
    pub(super) async fn listing_of(
        &self,
        server: &ServerUuid,
        key: &Secret,
        snapshot: &SnapshotRef,
    ) -> Result<(Entry, Arc<Listing>), AgentError> {
        let slot = self.slot(server);
        let pick = |idx: &RepoIndex| idx.resolve(snapshot).cloned();
        let (mut entry, mut repo, _) = self.readable(server, &slot, key, pick).await?;
        for attempt in 1.. {
            match self.listing(server, &slot, &entry, &repo).await {
                Err(AgentError::BackupNotFound) if attempt < ATTEMPTS => {
                    tracing::info!(server = %server, snapshot = %entry.id.short(), "snapshot changed under the listing; resolving again");
                    let id = entry.id.clone();
                    let again = |idx: &RepoIndex| {
                        idx.by_stable_id(&id)
                            .cloned()
                            .ok_or(AgentError::BackupNotFound)
                    };
                    (entry, repo, _) = self.readable(server, &slot, key, again).await?;
                }
                done => return done.map(|listing| (entry, listing)),
            }
        }
        unreachable!("the loop returns")
    }

    /// What `path` is in the snapshot: an error when it is not there.
    pub(super) fn kind_at(listing: &Listing, path: &SnapshotPath) -> Result<FileKind, AgentError> {
        Ok(listing.find(path)?.kind)
    }

    /// The listing of `entry`'s tree: from memory, or else from its file
    /// or made from `restic ls` by a task of its own, so a request that
    /// gives up (a browser closed, a proxy's timeout) does not throw away
    /// a listing half made; the next request finds it.
    async fn listing(
        &self,
        server: &ServerUuid,
        slot: &Arc<RepoSlot>,
        entry: &Entry,
        repo: &Repo,
    ) -> Result<Arc<Listing>, AgentError> {
        if !tree_ok(&entry.tree) {
            return Err(AgentError::Internal(format!(
                "restic named an odd tree for snapshot {}",
                entry.id.short()
            )));
        }
        let cache_key = format!("{server}/{}", entry.tree);
        if let Some(hit) = self.inner.listings.get(&cache_key) {
            return Ok(hit);
        }
        let (agent, server, slot, entry, repo) = (
            self.clone(),
            server.clone(),
            slot.clone(),
            entry.clone(),
            repo.clone(),
        );
        tokio::spawn(async move {
            agent
                .load_or_build(&server, &slot, &entry, &repo, cache_key)
                .await
        })
        .await
        .map_err(|e| AgentError::Internal(e.to_string()))?
    }

    /// One listing at a time per repository (two first views of a big
    /// snapshot run restic once) and [`BUILDS`] on the node.
    async fn load_or_build(
        &self,
        server: &ServerUuid,
        slot: &RepoSlot,
        entry: &Entry,
        repo: &Repo,
        cache_key: String,
    ) -> Result<Arc<Listing>, AgentError> {
        let _one_at_a_time = slot.listing_build.lock().await;
        if let Some(hit) = self.inner.listings.get(&cache_key) {
            return Ok(hit);
        }
        // A snapshot found too big is not listed again for every request
        // that queued behind the first.
        if self
            .inner
            .listings_refused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&cache_key)
        {
            return Err(too_many_files());
        }
        let file = self
            .inner
            .layout
            .listings_dir(server)
            .join(format!("{}.list", entry.tree));
        let read = {
            let file = file.clone();
            tokio::task::spawn_blocking(move || std::fs::read(file))
                .await
                .map_err(|e| AgentError::Internal(e.to_string()))?
        };
        match read.map(Listing::parse) {
            Ok(Ok(listing)) => {
                let listing = Arc::new(listing);
                self.inner.listings.put(cache_key, listing.clone());
                return Ok(listing);
            }
            Ok(Err(_)) => {
                tracing::warn!(server = %server, file = %file.display(), "a snapshot listing is damaged; listing the snapshot again");
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }

        let _node_wide = self
            .inner
            .listing_builds
            .acquire()
            .await
            .map_err(|e| AgentError::Internal(e.to_string()))?;
        let started = std::time::Instant::now();
        let mut builder = Builder::new(entry.nested.as_deref());
        // Stops restic as soon as the snapshot proves bigger than a
        // listing takes (and when the agent shuts down).
        let enough = self.inner.shutdown.child_token();
        let listed = repo
            .ls(&entry.current, Some(&enough), &mut |node| {
                builder.add(node);
                if builder.is_full() {
                    enough.cancel();
                }
            })
            .await;
        if builder.is_full() {
            self.inner
                .listings_refused
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(cache_key);
            return Err(too_many_files());
        }
        listed?;
        let root = self.inner.layout.listings_root();
        let (listing, size, saved) = tokio::task::spawn_blocking(move || {
            let bytes = builder.finish();
            let saved = crate::swap::ensure_private_dir(&root)
                .and_then(|()| crate::layout::write_atomically(&file, &bytes));
            let size = bytes.len();
            Listing::parse(bytes).map(|l| (l, size, saved))
        })
        .await
        .map_err(|e| AgentError::Internal(e.to_string()))??;
        let entries = listing.entries();
        if let Err(e) = saved {
            // Served from memory now; listed again after a restart.
            tracing::warn!(server = %server, error = %e, "could not keep a snapshot listing");
        }
        tracing::info!(server = %server, snapshot = %entry.id.short(), entries, bytes = size, ms = started.elapsed().as_millis() as u64, "snapshot listed");
        let listing = Arc::new(listing);
        self.inner.listings.put(cache_key, listing.clone());
        Ok(listing)
    }

    /// Removes the listings of trees no snapshot has any more (after the
    /// index was read anew), in the background.
    pub(super) fn drop_stale_listings(&self, server: &ServerUuid, idx: &RepoIndex) {
        let live: HashSet<String> = idx.entries().iter().map(|e| e.tree.clone()).collect();
        let prefix = format!("{server}/");
        self.inner.listings.retain(|k| {
            k.strip_prefix(&prefix)
                .is_none_or(|tree| live.contains(tree))
        });
        let dir = self.inner.layout.listings_dir(server);
        tokio::task::spawn_blocking(move || {
            let Ok(names) = std::fs::read_dir(&dir) else {
                return;
            };
            for e in names.flatten() {
                let name = e.file_name();
                let name = name.to_string_lossy();
                let stale = match name.strip_suffix(".list") {
                    Some(tree) => !live.contains(tree),
                    // A half-written one a crash left (not one being
                    // written now).
                    None => {
                        name.ends_with(".tmp")
                            && e.metadata()
                                .and_then(|m| m.modified())
                                .is_ok_and(|t| t.elapsed().is_ok_and(|age| age.as_secs() > 3600))
                    }
                };
                if stale {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        });
    }

    /// Removes every listing of a server (its repository was archived).
    pub(super) async fn forget_listings(&self, server: &ServerUuid) {
        let prefix = format!("{server}/");
        self.inner.listings.retain(|k| !k.starts_with(&prefix));
        let _ = tokio::fs::remove_dir_all(self.inner.layout.listings_dir(server)).await;
    }
}

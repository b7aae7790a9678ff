//! Storage over time: for each snapshot this agent took (backups, safety
//! snapshots, final snapshots), when, how many bytes it added to the
//! repository and the repository's size on disk right after it (local
//! repositories: the folder is measured; a remote store's is not). Kept
//! in `<state_dir>/history/<uuid>.json`, the last [`KEEP`] points, so the
//! history outlives the snapshots (a deleted one's space comes back at the
//! next prune, which the history then shows).

use std::collections::HashMap;
use std::sync::Arc;

use api::agent::{StorageHistory, StoragePoint};
use api::{Secret, ServerUuid, SnapshotId, Timestamp};
use serde::{Deserialize, Serialize};

use super::{Agent, RepoSlot};
use crate::AgentError;
use crate::index::Entry;

/// Points kept per repository.
const KEEP: usize = 1000;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Point {
    id: SnapshotId,
    time: i64,
    added: u64,
    #[serde(default)]
    size: Option<u64>,
}

/// A repository's points, oldest first, and the bytes added by snapshot.
#[derive(Default)]
pub(super) struct History {
    points: Vec<Point>,
    added: HashMap<SnapshotId, u64>,
}

impl History {
    fn from_points(points: Vec<Point>) -> Self {
        let added = points.iter().map(|p| (p.id.clone(), p.added)).collect();
        Self { points, added }
    }
}

impl Agent {
    /// The repository's history, read from its file once.
    async fn history_of(&self, server: &ServerUuid, slot: &RepoSlot) -> Arc<History> {
        if let Some(h) = slot
            .history
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        {
            return h;
        }
        let path = self.inner.layout.history_file(server);
        let points: Vec<Point> = match tokio::fs::read(&path).await {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!(path = %path.display(), error = %e, "ignoring an unreadable storage history");
                Vec::new()
            }),
            Err(_) => Vec::new(),
        };
        // A point recorded while the file was read wins over this reading.
        slot.history
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert_with(|| Arc::new(History::from_points(points)))
            .clone()
    }

    /// Records a snapshot just taken (with the writer lock held).
    pub(super) async fn record_point(
        &self,
        server: &ServerUuid,
        slot: &RepoSlot,
        entry: &Entry,
        added: u64,
    ) {
        // Measured once per snapshot, for the history and `/metrics`.
        let size = self.measure_repository(server).await;
        let old = self.history_of(server, slot).await;
        let mut points = old.points.clone();
        points.push(Point {
            id: entry.id.clone(),
            time: entry.time.unix_timestamp(),
            added,
            size,
        });
        if points.len() > KEEP {
            points.drain(..points.len() - KEEP);
        }
        let path = self.inner.layout.history_file(server);
        match serde_json::to_vec(&points) {
            Ok(bytes) => {
                let saved = tokio::task::spawn_blocking(move || {
                    crate::layout::write_atomically(&path, &bytes)
                })
                .await
                .unwrap_or_else(|e| Err(std::io::Error::other(e)));
                if let Err(e) = saved {
                    tracing::warn!(server = %server, error = %e, "could not keep the storage history");
                }
            }
            Err(e) => {
                tracing::warn!(server = %server, error = %e, "could not keep the storage history")
            }
        }
        *slot.history.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(Arc::new(History::from_points(points)));
    }

    /// Bytes each listed backup added, where the node took it.
    pub(super) async fn fill_added(
        &self,
        server: &ServerUuid,
        slot: &RepoSlot,
        items: &mut [api::agent::BackupItem],
    ) {
        let h = self.history_of(server, slot).await;
        if h.added.is_empty() {
            return;
        }
        for item in items {
            item.added = h.added.get(&item.id).copied();
        }
    }

    /// `GET …/stats/history`
    pub async fn storage_history(
        &self,
        server: &ServerUuid,
        key: &Secret,
    ) -> Result<StorageHistory, AgentError> {
        let slot = self.slot(server);
        let present: std::collections::HashSet<SnapshotId> = self
            .fresh(server, &slot, key)
            .await?
            .entries()
            .iter()
            .map(|e| e.id.clone())
            .collect();
        let h = self.history_of(server, &slot).await;
        Ok(StorageHistory {
            points: h
                .points
                .iter()
                .filter_map(|p| {
                    Some(StoragePoint {
                        id: p.id.clone(),
                        time: Timestamp::from_unix(p.time)?,
                        added: p.added,
                        size: p.size,
                        kept: present.contains(&p.id),
                    })
                })
                .collect(),
        })
    }

    /// Forgets a repository's history (it was archived).
    pub(super) async fn forget_history(&self, server: &ServerUuid) {
        *self
            .slot(server)
            .history
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = None;
        let _ = tokio::fs::remove_file(self.inner.layout.history_file(server)).await;
    }
}

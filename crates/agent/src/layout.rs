//! Where things live on the node. Paths are only ever built from validated
//! [`ServerUuid`]s, so no request can point outside these roots.

use std::path::{Path, PathBuf};

use api::ServerUuid;
use engine::Location;

use crate::AgentError;
use crate::store::Store;

#[derive(Debug, Clone)]
pub struct Layout {
    data_dir: PathBuf,
    repo_root: PathBuf,
    state_dir: PathBuf,
    store: Store,
    copy: Option<Store>,
}

impl Layout {
    pub fn new(data_dir: PathBuf, repo_root: PathBuf, state_dir: PathBuf, store: Store) -> Self {
        Self {
            data_dir,
            repo_root,
            state_dir,
            store,
            copy: None,
        }
    }

    /// Where second copies go (`copy_to`).
    pub fn with_copy(mut self, copy: Option<Store>) -> Self {
        self.copy = copy;
        self
    }

    /// The server's second copy, if the node keeps one.
    pub fn copy_repo(&self, server: &ServerUuid) -> Option<Location> {
        self.copy.as_ref().map(|c| c.location(server))
    }

    pub fn copy_store(&self) -> Option<&Store> {
        self.copy.as_ref()
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The server's files (`<data_dir>/<uuid>`).
    pub fn server_dir(&self, server: &ServerUuid) -> PathBuf {
        self.data_dir.join(server.as_str())
    }

    /// The server's files, which must exist as a directory. A symlink in its
    /// place is refused (it could point anywhere on the host).
    pub fn existing_server_dir(&self, server: &ServerUuid) -> Result<PathBuf, AgentError> {
        let dir = self.server_dir(server);
        match std::fs::symlink_metadata(&dir) {
            Ok(m) if m.is_dir() => Ok(dir),
            _ => Err(AgentError::ServerNotFound),
        }
    }

    /// The server's repository (`<repo_root>/<uuid>`, or the remote
    /// template filled in).
    pub fn repo(&self, server: &ServerUuid) -> Location {
        self.store.location(server)
    }

    pub fn repo_root(&self) -> &PathBuf {
        &self.repo_root
    }

    /// Job records.
    pub fn jobs_dir(&self) -> PathBuf {
        self.state_dir.join("jobs")
    }

    /// Archived local repositories of deleted servers.
    pub fn archive_root(&self) -> PathBuf {
        self.repo_root.join("archive")
    }

    /// Records of remote repositories archived in place.
    pub fn remote_archive_dir(&self) -> PathBuf {
        self.state_dir.join("archived")
    }

    /// Where restores stage their files and journals: beside the server
    /// directories (so on the same filesystem), never inside one; mode 0700.
    pub fn restore_work_root(&self) -> PathBuf {
        self.data_dir.join(".restic-restore")
    }

    /// IDs of one-time download links already used (so a restart does not
    /// allow a replay).
    pub fn used_links_file(&self) -> PathBuf {
        self.state_dir.join("used-links.json")
    }

    /// Which of the node's folders can not be used now: the server
    /// directories must be readable, local repositories and agent state
    /// writable.
    pub fn unusable(&self) -> Vec<&'static str> {
        let mut failing = Vec::new();
        if std::fs::read_dir(&self.data_dir).is_err() {
            failing.push("data_dir");
        }
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let mut writable = vec![("state_dir", &self.state_dir)];
        if !self.store.is_remote() {
            writable.insert(0, ("repo_root", &self.repo_root));
        }
        for (name, dir) in writable {
            // Never created here: a missing folder (an unmounted disk) is
            // not ready, rather than filled on the disk beneath.
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let probe = dir.join(format!(".ready-probe-{}-{n}", std::process::id()));
            let ok = std::fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir())
                && std::fs::write(&probe, b"").is_ok()
                && std::fs::remove_file(&probe).is_ok();
            if !ok {
                failing.push(name);
            }
        }
        failing
    }

    /// Pending-prune bookkeeping of one repository.
    pub fn prune_file(&self, server: &ServerUuid) -> PathBuf {
        self.state_dir
            .join("prune")
            .join(format!("{}.json", server.as_str()))
    }

    /// Per-server figures for `/metrics` (see `crate::metrics`).
    pub fn figures_dir(&self) -> PathBuf {
        self.state_dir.join("figures")
    }

    /// One repository's snapshot listings (see `crate::listing`), a file
    /// per root tree.
    pub fn listings_dir(&self, server: &ServerUuid) -> PathBuf {
        self.listings_root().join(server.as_str())
    }

    /// Where the listings live (agent-only, 0700: they name tenants' files).
    pub fn listings_root(&self) -> PathBuf {
        self.state_dir.join("listings")
    }

    /// One repository's storage over time (see `service::history`).
    pub fn history_file(&self, server: &ServerUuid) -> PathBuf {
        self.state_dir
            .join("history")
            .join(format!("{}.json", server.as_str()))
    }

    /// File with the snapshot sizes measured for one repository.
    pub fn sizes_file(&self, server: &ServerUuid) -> PathBuf {
        self.state_dir
            .join("sizes")
            .join(format!("{}.json", server.as_str()))
    }
}

/// Bytes the files under `path` take (symlinks not followed; unreadable
/// parts skipped).
pub fn dir_size(path: &Path) -> u64 {
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

/// Replaces `path` with `bytes` atomically (write a temporary file beside
/// it, then rename). Concurrent writers each use their own temporary name,
/// so one never renames the other's half-written file away.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{}.{n}.tmp", std::process::id()));
    let tmp = path.with_file_name(name);
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

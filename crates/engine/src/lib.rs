//! The engine: the only code in the product that runs `restic`.
//!
//! [`Restic::detect`] checks the binary once; [`Restic::repo`] gives a
//! [`Repo`] handle bound to one repository and its key, whose methods are the
//! restic commands the product uses, typed in and out. Every positional
//! argument comes after `--` and is a validated ID; the key travels in the
//! child's environment only.

mod error;
mod location;
mod output;
mod process;
mod repo;
mod repo_files;
mod repo_init;
mod version;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The cancellation signal of a restic run (a client that went away, the
/// agent shutting down): tokio-util's token, cloneable, cancelling any clone
/// cancels all.
pub type Cancel = tokio_util::sync::CancellationToken;
pub use error::{EngineError, StoreFailure};
pub use location::{Access, Location, Remote};
pub use output::{
    BackupEvent, BackupStatus, BackupSummary, LsNode, NodeKind, Snapshot, StatsOutput,
};
pub use process::OutputStream;
pub use repo::{BackupRequest, ChangeHook, DumpFormat, KeyInfo, Repo, StatsMode};
pub use repo_files::{MasterKey, is_machine_key};
pub use repo_init::init_local;
pub use version::Version;

/// Time limits for restic runs.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Listing, tagging, forgetting, statistics, key checks.
    pub quick: Duration,
    /// Backups, restores, prunes, dumps.
    pub long: Duration,
    /// Time restic gets after SIGINT to remove its lock before it is killed.
    pub grace: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            quick: Duration::from_secs(10 * 60),
            long: Duration::from_secs(24 * 60 * 60),
            grace: Duration::from_secs(15),
        }
    }
}

#[derive(Debug)]
struct Inner {
    bin: PathBuf,
    version: Version,
    cache_dir: Option<PathBuf>,
    timeouts: Timeouts,
    grace: Duration,
}

/// A restic binary whose version was checked. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Restic {
    inner: Arc<Inner>,
}

impl Restic {
    /// Runs `restic version` and refuses binaries older than
    /// [`Version::MINIMUM`]. `cache_dir` of `None` runs restic with `--no-cache`.
    pub async fn detect(
        bin: impl Into<PathBuf>,
        cache_dir: Option<PathBuf>,
        timeouts: Timeouts,
    ) -> Result<Self, EngineError> {
        let bin = bin.into();
        let output = tokio::time::timeout(
            Duration::from_secs(30),
            tokio::process::Command::new(&bin)
                .arg("version")
                .env_clear()
                .stdin(std::process::Stdio::null())
                .output(),
        )
        .await
        .map_err(|_| EngineError::Timeout { seconds: 30 })?
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied => {
                EngineError::ResticMissing {
                    bin: bin.display().to_string(),
                }
            }
            _ => EngineError::Io(e),
        })?;
        let text = String::from_utf8_lossy(&output.stdout);
        let version = Version::parse_banner(&text).ok_or_else(|| EngineError::UnknownVersion {
            output: text.chars().take(200).collect(),
        })?;
        if version < Version::MINIMUM {
            return Err(EngineError::ResticTooOld {
                found: version.to_string(),
                required: Version::MINIMUM.to_string(),
            });
        }
        Ok(Self {
            inner: Arc::new(Inner {
                bin,
                version,
                cache_dir,
                grace: timeouts.grace,
                timeouts,
            }),
        })
    }

    pub fn version(&self) -> Version {
        self.inner.version
    }

    pub fn bin(&self) -> &Path {
        &self.inner.bin
    }

    /// Whether the binary still runs (`restic version` succeeds within 5 s),
    /// for readiness checks.
    pub async fn runnable(&self) -> bool {
        let status = tokio::time::timeout(
            Duration::from_secs(5),
            tokio::process::Command::new(self.bin())
                .arg("version")
                .env_clear()
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .kill_on_drop(true)
                .status(),
        )
        .await;
        matches!(status, Ok(Ok(s)) if s.success())
    }

    /// A handle on the repository at `location`, opened with `key`.
    pub fn repo(&self, location: impl Into<Location>, key: api::Secret) -> Repo {
        Repo::new(self.clone(), location.into(), key)
    }

    pub(crate) fn timeouts(&self) -> Timeouts {
        self.inner.timeouts
    }
}

/// Whether a restic repository exists at `path` (its `config` file is there).
/// Needs no key and runs no process.
pub fn repo_exists(path: &Path) -> bool {
    path.join("config").is_file()
}

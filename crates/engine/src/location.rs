//! Where a repository lives: a folder on this machine, or a remote store
//! restic reaches itself (S3, SFTP, a REST server).
//!
//! A remote location carries what restic needs to reach it: the repository
//! string (for a REST server it may hold the user and password, so it is a
//! [`Secret`] and travels only as `RESTIC_REPOSITORY` in restic's
//! environment), environment variables (S3 keys) and `-o` options (the SFTP
//! command, which names only files). What operators see is
//! [`Location::display`], never holding a secret.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use api::Secret;

/// A repository's place.
#[derive(Debug, Clone)]
pub enum Location {
    Local(PathBuf),
    Remote(Remote),
}

/// A repository restic reaches over the network.
#[derive(Debug, Clone)]
pub struct Remote {
    /// The repository string as operators see it (no credentials).
    shown: String,
    /// The repository string restic gets, credentials included.
    repository: Secret,
    access: Arc<Access>,
}

/// How restic reaches a kind of store: environment variables (values are
/// secrets) and extended options (`-o name=value`, never secret).
#[derive(Debug, Default)]
pub struct Access {
    pub env: Vec<(&'static str, Secret)>,
    pub options: Vec<String>,
    /// A command (argv, no shell) that reaches the store the way restic
    /// does, run when restic's own words do not say why it could not:
    /// restic 0.14 may exit before relaying ssh's reason, so the SSH
    /// command is run once more on its own and its stderr read.
    pub probe: Option<Vec<String>>,
    /// Secrets that could show up in restic's messages (a REST password
    /// restic failed to hide): removed from them before they are read.
    pub scrub: Vec<Secret>,
}

impl Remote {
    /// `shown` must hold no credentials; `repository` is what restic gets.
    pub fn new(shown: String, repository: Secret, access: Arc<Access>) -> Self {
        Self {
            shown,
            repository,
            access,
        }
    }

    pub fn shown(&self) -> &str {
        &self.shown
    }
}

impl Location {
    /// What operators may see: the folder, or the repository string without
    /// credentials.
    pub fn display(&self) -> String {
        match self {
            Location::Local(p) => p.display().to_string(),
            Location::Remote(r) => r.shown.clone(),
        }
    }

    pub fn local_path(&self) -> Option<&Path> {
        match self {
            Location::Local(p) => Some(p),
            Location::Remote(_) => None,
        }
    }

    pub fn is_remote(&self) -> bool {
        matches!(self, Location::Remote(_))
    }

    /// `RESTIC_REPOSITORY` for restic.
    pub(crate) fn repository(&self) -> std::ffi::OsString {
        match self {
            Location::Local(p) => p.clone().into_os_string(),
            Location::Remote(r) => r.repository.expose().into(),
        }
    }

    pub(crate) fn env(&self) -> &[(&'static str, Secret)] {
        match self {
            Location::Local(_) => &[],
            Location::Remote(r) => &r.access.env,
        }
    }

    /// `text` without the store's secrets.
    pub(crate) fn scrub(&self, text: String) -> String {
        match self {
            Location::Local(_) => text,
            Location::Remote(r) => r.access.scrub.iter().fold(text, |t, s| {
                if s.expose().is_empty() {
                    t
                } else {
                    t.replace(s.expose(), "***")
                }
            }),
        }
    }

    pub(crate) fn probe(&self) -> Option<&[String]> {
        match self {
            Location::Local(_) => None,
            Location::Remote(r) => r.access.probe.as_deref(),
        }
    }

    pub(crate) fn options(&self) -> &[String] {
        match self {
            Location::Local(_) => &[],
            Location::Remote(r) => &r.access.options,
        }
    }
}

impl From<PathBuf> for Location {
    fn from(p: PathBuf) -> Self {
        Location::Local(p)
    }
}

impl From<&Path> for Location {
    fn from(p: &Path) -> Self {
        Location::Local(p.to_owned())
    }
}

impl From<&PathBuf> for Location {
    fn from(p: &PathBuf) -> Self {
        Location::Local(p.clone())
    }
}

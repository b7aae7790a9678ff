//! Replacing a server directory's content with a restored tree, so that a crash
//! at any moment leaves either the old content, or the new content, or a state
//! [`repair`] completes at the next start.
//!
//! restic restores into `<work>/new`; the swap then moves entries with
//! `rename(2)` (atomic per entry, same filesystem), the old ones into
//! `<work>/old`. A journal (`<work>/journal.json`, written atomically) records
//! the phase:
//!
//! | phase | on crash, `repair` … |
//! |---|---|
//! | `restoring` | drops `<work>`: the old content was never touched |
//! | `clearing` / `filling` / `merging` | finishes the swap: the new content is complete in `new/` |
//! | `cleanup` | drops `<work>` |
//!
//! The server directory itself is never renamed, so its inode, owner and mode
//! stay (a container may bind-mount it).
//!
//! **Trust.** The server directory belongs to a tenant who may be hostile and
//! may change it while the agent works (the agent runs as root). So:
//! - the work folder is `<data_dir>/.restic-restore/<uuid>`, in a folder only
//!   the agent can write (mode 0700), never inside a server directory; a work
//!   folder found inside one is never read;
//! - the journal names nothing but the phase: the server directory is derived
//!   from the work folder's name, which must be a server UUID;
//! - every step inside the server directory works on directory descriptors
//!   opened with `O_NOFOLLOW` (`openat`, `renameat`, `fchmod`, `fchown`), so a
//!   symlink planted anywhere, even between two steps, is moved like any other
//!   entry and never followed. A server directory that is itself a symlink is
//!   refused.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use api::ServerUuid;
use api::files::SnapshotPath;
use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, Uid};
use serde::{Deserialize, Serialize};

use crate::AgentError;
use crate::layout::Layout;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Restoring,
    Clearing,
    Filling,
    Merging,
    Cleanup,
}

/// What the journal records. Journals of older agents also carried the server
/// directory; that field is ignored.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Journal {
    phase: Phase,
    truncate: bool,
    /// The paths a partial restore brings back (validated again when read).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    only: Vec<SnapshotPath>,
}

/// The name prefix of a finished restore's work folder waiting to be
/// removed (see [`Swap::commit_leaving_trash`]).
const TRASH_PREFIX: &str = ".trash-";

/// A finished restore's old content, out of the way; removing it is all
/// that is left.
#[must_use]
pub struct Trash(Option<PathBuf>);

impl Trash {
    /// Nothing to remove.
    pub fn none() -> Self {
        Self(None)
    }

    pub fn remove(self) {
        if let Some(dir) = self.0
            && let Err(e) = remove_all(&dir)
        {
            tracing::warn!(dir = %dir.display(), error = %e, "could not remove a finished restore's old files; the next start tries again");
        }
    }
}

/// One restore's folders.
#[derive(Debug, Clone)]
pub struct Swap {
    server_dir: PathBuf,
    work: PathBuf,
    truncate: bool,
    /// A partial restore's paths: restic restored only these into
    /// `new/`, and the swap merges (with `truncate`, each of them replaces
    /// what the server has at its place, whole). Empty: everything.
    only: Vec<SnapshotPath>,
}

impl Swap {
    /// The swap for `server`: its directory must be a real directory (not a
    /// symlink) on the same filesystem as the agent's work root.
    pub fn plan(layout: &Layout, server: &ServerUuid, truncate: bool) -> Result<Self, AgentError> {
        let server_dir = layout.existing_server_dir(server)?;
        let root = layout.restore_work_root();
        ensure_private_dir(&root)?;
        if fs::metadata(&root)?.dev() != fs::symlink_metadata(&server_dir)?.dev() {
            return Err(AgentError::RestoreUnsupported);
        }
        Ok(Self {
            server_dir,
            work: root.join(server.as_str()),
            truncate,
            only: Vec::new(),
        })
    }

    /// Makes this a partial restore of `paths` (none: everything).
    pub fn only(mut self, paths: Vec<SnapshotPath>) -> Self {
        self.only = paths;
        self
    }

    pub fn new_dir(&self) -> PathBuf {
        self.work.join("new")
    }

    fn journal_path(&self) -> PathBuf {
        self.work.join("journal.json")
    }

    /// Whether an earlier restore of this server left its swap unfinished
    /// (its journal is there).
    pub fn has_pending(&self) -> bool {
        fs::symlink_metadata(self.journal_path()).is_ok()
    }

    /// Completes (or rolls back) a swap of this server an earlier restore
    /// left unfinished, as the start-up repair would; call before taking a
    /// new restore's safety snapshot. Returns the phase it was in.
    pub fn finish_pending(&self) -> std::io::Result<Option<Phase>> {
        let bytes = match fs::read(self.journal_path()) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let journal: Journal = serde_json::from_slice(&bytes).map_err(std::io::Error::other)?;
        let pending = Swap {
            truncate: journal.truncate,
            only: journal.only,
            ..self.clone()
        };
        pending.resume(journal.phase)?;
        Ok(Some(journal.phase))
    }

    /// After a failed [`Swap::commit`]: if the swap had begun (the journal
    /// is past `restoring`), tries once more to finish it (a tenant or a
    /// running game server can make a single rename fail); what still
    /// fails is for the start-up repair. If it had not begun, nothing was
    /// touched: the work folder goes and `failed` is the answer.
    pub fn retry_after_failure(&self, failed: std::io::Error) -> std::io::Result<()> {
        let phase = fs::read(self.journal_path())
            .ok()
            .and_then(|b| serde_json::from_slice::<Journal>(&b).ok())
            .map(|j| j.phase);
        match phase {
            Some(Phase::Clearing | Phase::Filling | Phase::Merging | Phase::Cleanup) => {
                self.finish_pending().map(|_| ())
            }
            _ => {
                let _ = self.abandon();
                Err(failed)
            }
        }
    }

    /// Starts a restore: an empty work folder and the `restoring` journal.
    pub fn begin(&self) -> std::io::Result<()> {
        remove_all(&self.work)?;
        fs::create_dir(&self.work)?;
        fs::set_permissions(&self.work, fs::Permissions::from_mode(0o700))?;
        self.write_journal(Phase::Restoring)
    }

    fn write_journal(&self, phase: Phase) -> std::io::Result<()> {
        let journal = Journal {
            phase,
            truncate: self.truncate,
            only: self.only.clone(),
        };
        let tmp = self.work.join("journal.json.tmp");
        let mut f = fs::File::create(&tmp)?;
        f.write_all(&serde_json::to_vec(&journal).map_err(std::io::Error::other)?)?;
        f.sync_all()?;
        fs::rename(&tmp, self.journal_path())?;
        fs::File::open(&self.work)?.sync_all()
    }

    /// A snapshot the PHP extension made holds the server's files under
    /// their absolute folder (`nested`, e.g. `/var/lib/pterodactyl/volumes/<uuid>`),
    /// so restic restored them as `new/var/lib/.../<uuid>/…`. When the
    /// restored tree is exactly that chain of real folders, the last
    /// folder's entries move up to `new/` and the emptied chain is removed
    /// (folder by folder: nothing recursive runs on restored content).
    /// Returns whether it moved anything. Call before [`Swap::commit`].
    pub fn hoist_nested(&self, nested: &str) -> std::io::Result<bool> {
        let parts: Vec<&str> = nested.split('/').filter(|c| !c.is_empty()).collect();
        if parts.is_empty() || parts.iter().any(|c| *c == "." || *c == "..") {
            return Ok(false);
        }
        let new = self.new_dir();
        let mut dir = new.clone();
        for (depth, part) in parts.iter().enumerate() {
            let mut names = Vec::new();
            for e in fs::read_dir(&dir)? {
                names.push(e?.file_name());
                if names.len() > 1 {
                    break;
                }
            }
            dir.push(part);
            let named = names.len() == 1 && names[0] == std::ffi::OsStr::new(part);
            if !named && depth == 0 {
                // Not the layout at all: the snapshot's files are at its root.
                return Ok(false);
            }
            if !named || !fs::symlink_metadata(&dir)?.is_dir() {
                // Half the layout: swapping it in would put the server's
                // files in the wrong place.
                return Err(std::io::Error::other(format!(
                    "the snapshot holds its files under {nested} but not only there; restore it by hand with restic"
                )));
            }
        }
        // The chain moves aside first, so a restored entry named like its
        // first folder cannot collide.
        let aside = self.work.join("nested");
        fs::rename(new.join(parts[0]), &aside)?;
        let mut inner = aside.clone();
        for part in &parts[1..] {
            inner.push(part);
        }
        for e in fs::read_dir(&inner)? {
            let e = e?;
            fs::rename(e.path(), new.join(e.file_name()))?;
        }
        let mut level = inner;
        while level.starts_with(&aside) {
            fs::remove_dir(&level)?;
            if !level.pop() {
                break;
            }
        }
        Ok(true)
    }

    /// Gives up before the swap began: the old content is untouched.
    pub fn abandon(&self) -> std::io::Result<()> {
        remove_all(&self.work)
    }

    /// Swaps the restored tree in. Call after restic restored into
    /// [`Swap::new_dir`] completely.
    #[cfg(test)]
    pub fn commit(&self) -> std::io::Result<()> {
        self.commit_leaving_trash().map(Trash::remove)
    }

    /// [`Swap::commit`], but the old content (the work folder, journal at
    /// `cleanup` included) is only renamed out of the way, to a
    /// `.trash-…` folder beside it, for the caller to remove after
    /// answering: deleting a large world takes a while. A crash before
    /// that is cleaned up by [`repair`].
    pub fn commit_leaving_trash(&self) -> std::io::Result<Trash> {
        if self.truncate && self.only.is_empty() {
            self.write_journal(Phase::Clearing)?;
            self.clear()?;
            crate::failpoint::hit("restore-after-clear");
            self.write_journal(Phase::Filling)?;
            self.fill()?;
        } else {
            self.write_journal(Phase::Merging)?;
            self.merge()?;
        }
        self.write_journal(Phase::Cleanup)?;
        Ok(self.retire())
    }

    /// Renames the work folder to a trash name nothing else uses (removes
    /// it at once if that fails).
    fn retire(&self) -> Trash {
        let unique = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let name = self.work.file_name().unwrap_or_default().to_string_lossy();
        let trash = self
            .work
            .with_file_name(format!("{TRASH_PREFIX}{name}-{unique:x}"));
        match fs::rename(&self.work, &trash) {
            Ok(()) => Trash(Some(trash)),
            Err(_) => {
                let _ = remove_all(&self.work);
                Trash(None)
            }
        }
    }

    fn resume(&self, phase: Phase) -> std::io::Result<()> {
        match phase {
            Phase::Restoring | Phase::Cleanup => return remove_all(&self.work),
            Phase::Clearing => {
                self.clear()?;
                self.write_journal(Phase::Filling)?;
                self.fill()?;
            }
            Phase::Filling => self.fill()?,
            Phase::Merging => self.merge()?,
        }
        self.write_journal(Phase::Cleanup)?;
        remove_all(&self.work)
    }

    /// The server directory, opened without following a symlink.
    fn open_server_dir(&self) -> std::io::Result<OwnedFd> {
        open_dir_at(rustix::fs::CWD, &self.server_dir)
    }

    /// `<work>/<name>`, created if missing.
    fn work_child(&self, name: &str) -> std::io::Result<OwnedFd> {
        let work = open_dir_at(rustix::fs::CWD, &self.work)?;
        child_dir(&work, OsStr::new(name))
    }

    /// Moves every entry of the server directory aside.
    fn clear(&self) -> std::io::Result<()> {
        let server = self.open_server_dir()?;
        let old = self.work_child("old")?;
        for name in entries(&server)? {
            let aside = free_name(&old, &name)?;
            match rustix::fs::renameat(&server, &name, &old, &aside) {
                // Gone meanwhile (the game server deleted it): nothing to move.
                Ok(()) | Err(rustix::io::Errno::NOENT) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Moves every restored entry into the (cleared) server directory.
    fn fill(&self) -> std::io::Result<()> {
        let Some(new) = self.open_new()? else {
            return Ok(());
        };
        let server = self.open_server_dir()?;
        let mut old = None;
        for name in entries(&new)? {
            // Something appeared meanwhile (the game server was running): it
            // goes aside with the old content, which the safety snapshot
            // holds. A few tries, in case it keeps appearing.
            for attempt in 0.. {
                if lstat_at(&server, &name)?.is_some() {
                    let old = match &old {
                        Some(fd) => fd,
                        None => old.insert(self.work_child("old")?),
                    };
                    let aside = free_name(old, &name)?;
                    match rustix::fs::renameat(&server, &name, old, &aside) {
                        Ok(()) | Err(rustix::io::Errno::NOENT) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                match rustix::fs::renameat(&new, &name, &server, &name) {
                    Ok(()) => break,
                    Err(e) if attempt < 3 && replaced_meanwhile(e) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(())
    }

    fn merge(&self) -> std::io::Result<()> {
        let Some(new) = self.open_new()? else {
            return Ok(());
        };
        let server = self.open_server_dir()?;
        let mut aside = Aside::new(self.work_child("old")?);
        let mut replace = Replace::default();
        if self.truncate {
            for path in &self.only {
                replace.add(path.components());
            }
        }
        merge(&new, &server, &mut aside, &replace)
    }

    /// `<work>/new` (restic's target), if restic created it.
    fn open_new(&self) -> std::io::Result<Option<OwnedFd>> {
        match open_dir_at(rustix::fs::CWD, self.new_dir()) {
            Ok(fd) => Ok(Some(fd)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Where entries of one directory level go when a restored entry takes their
/// place: a folder under `<work>/old`, made on first use.
struct Aside {
    parent: OwnedFd,
    name: Option<OsString>,
    dir: Option<OwnedFd>,
}

impl Aside {
    fn new(root: OwnedFd) -> Self {
        Self {
            parent: root,
            name: None,
            dir: None,
        }
    }

    fn dir(&mut self) -> std::io::Result<&OwnedFd> {
        if self.dir.is_none() {
            let fd = match &self.name {
                None => rustix::io::dup(&self.parent)?,
                Some(name) => child_dir(&self.parent, name)?,
            };
            self.dir = Some(fd);
        }
        Ok(self.dir.as_ref().expect("just set"))
    }

    /// The aside folder one level down, for the entries of `name`.
    fn child(&mut self, name: &OsStr) -> std::io::Result<Aside> {
        let parent = rustix::io::dup(self.dir()?)?;
        let free = free_name(&parent, name)?;
        Ok(Aside {
            parent,
            name: Some(free),
            dir: None,
        })
    }
}

/// The places a merge replaces whole instead of merging into: a partial
/// restore's paths when it removes what the backup does not have.
#[derive(Debug, Default)]
struct Replace {
    whole: bool,
    below: std::collections::BTreeMap<OsString, Replace>,
}

impl Replace {
    fn add(&mut self, path: &[String]) {
        match path.split_first() {
            None => self.whole = true,
            Some((first, rest)) => self
                .below
                .entry(OsString::from(first))
                .or_default()
                .add(rest),
        }
    }

    fn child(&self, name: &OsStr) -> Option<&Replace> {
        self.below.get(name)
    }
}

/// Nothing replaced whole below.
static MERGE_ALL: Replace = Replace {
    whole: false,
    below: std::collections::BTreeMap::new(),
};

/// Moves `src`'s entries over `dest` recursively: directories present in both
/// are merged (taking the restored one's mode and owner), anything else in
/// `dest` that `src` also has is moved aside first, and so is a directory at
/// a place `replace` marks whole (so what the backup does not have there
/// goes too). Entries only in `dest` stay. Re-running after a crash
/// continues where it stopped, because every moved entry is gone from
/// `src`. A `dest` entry is only descended into after it was opened as a
/// directory without following links.
fn merge(
    src: &OwnedFd,
    dest: &OwnedFd,
    aside: &mut Aside,
    replace: &Replace,
) -> std::io::Result<()> {
    for name in entries(src)? {
        let from = rustix::fs::statat(src, &name, AtFlags::SYMLINK_NOFOLLOW)?;
        let from_is_dir = FileType::from_raw_mode(from.st_mode) == FileType::Directory;
        let below = replace.child(&name).unwrap_or(&MERGE_ALL);
        let dest_dir = if from_is_dir && !below.whole {
            match open_dir_at(dest, &name) {
                Ok(fd) => Some(fd),
                // Missing, not a directory, or a link (`O_NOFOLLOW`).
                Err(e)
                    if matches!(
                        rustix::io::Errno::from_io_error(&e),
                        Some(
                            rustix::io::Errno::NOENT
                                | rustix::io::Errno::NOTDIR
                                | rustix::io::Errno::LOOP
                        )
                    ) =>
                {
                    None
                }
                Err(e) => return Err(e),
            }
        } else {
            None
        };
        match dest_dir {
            Some(to) => {
                let from_dir = open_dir_at(src, &name)?;
                merge(&from_dir, &to, &mut aside.child(&name)?, below)?;
                rustix::fs::fchmod(&to, Mode::from_raw_mode(from.st_mode & 0o7777))?;
                rustix::fs::fchown(
                    &to,
                    Some(Uid::from_raw(from.st_uid)),
                    Some(Gid::from_raw(from.st_gid)),
                )?;
                drop(from_dir);
                rustix::fs::unlinkat(src, &name, AtFlags::REMOVEDIR)?;
            }
            None => {
                for attempt in 0.. {
                    if lstat_at(dest, &name)?.is_some() {
                        let old = aside.dir()?;
                        let free = free_name(old, &name)?;
                        match rustix::fs::renameat(dest, &name, old, &free) {
                            Ok(()) | Err(rustix::io::Errno::NOENT) => {}
                            Err(e) => return Err(e.into()),
                        }
                    }
                    match rustix::fs::renameat(src, &name, dest, &name) {
                        Ok(()) => break,
                        Err(e) if attempt < 3 && replaced_meanwhile(e) => continue,
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        }
    }
    Ok(())
}

/// A rename over a name that something took between our check and the
/// rename (a non-empty directory, or a directory where a file goes).
fn replaced_meanwhile(e: rustix::io::Errno) -> bool {
    use rustix::io::Errno;
    matches!(
        e,
        Errno::EXIST | Errno::NOTEMPTY | Errno::ISDIR | Errno::NOTDIR
    )
}

/// Opens a directory without following a symlink in its last component.
fn open_dir_at(dir: impl AsFd, path: impl rustix::path::Arg) -> std::io::Result<OwnedFd> {
    Ok(rustix::fs::openat(
        dir,
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// `dir/name` as a directory, created (mode 0700) if missing.
fn child_dir(dir: &OwnedFd, name: &OsStr) -> std::io::Result<OwnedFd> {
    match rustix::fs::mkdirat(dir, name, Mode::RWXU) {
        Ok(()) | Err(rustix::io::Errno::EXIST) => {}
        Err(e) => return Err(e.into()),
    }
    open_dir_at(dir, name)
}

/// The names in a directory (without `.` and `..`).
fn entries(dir: &OwnedFd) -> std::io::Result<Vec<OsString>> {
    let mut out = Vec::new();
    for entry in rustix::fs::Dir::read_from(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            out.push(OsStr::from_bytes(name).to_owned());
        }
    }
    Ok(out)
}

fn lstat_at(dir: &OwnedFd, name: &OsStr) -> std::io::Result<Option<rustix::fs::Stat>> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(rustix::io::Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// `name`, or `name.N` if that is taken in `dir`.
fn free_name(dir: &OwnedFd, name: &OsStr) -> std::io::Result<OsString> {
    if lstat_at(dir, name)?.is_none() {
        return Ok(name.to_owned());
    }
    for n in 1.. {
        let mut candidate = name.to_owned();
        candidate.push(format!(".{n}"));
        if lstat_at(dir, &candidate)?.is_none() {
            return Ok(candidate);
        }
    }
    unreachable!("some suffix is free")
}

/// Removes a folder tree without following symlinks in it (std's
/// `remove_dir_all` unlinks links, it does not descend through them).
fn remove_all(dir: &Path) -> std::io::Result<()> {
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Makes `dir` an agent-only folder (0700), refusing a symlink in its place.
pub fn ensure_private_dir(dir: &Path) -> std::io::Result<()> {
    match fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => fs::create_dir_all(dir)?,
        Err(e) => return Err(e),
    }
    let meta = fs::symlink_metadata(dir)?;
    if !meta.is_dir() {
        return Err(std::io::Error::other(format!(
            "{} is not a directory",
            dir.display()
        )));
    }
    if meta.mode() & 0o777 != 0o700 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Completes or rolls back restores a crash interrupted. Only the agent's
/// own work root is read; a work folder's name must be a server UUID and
/// names the server directory it belongs to.
pub fn repair(layout: &Layout) -> Vec<(ServerUuid, Phase)> {
    let root = layout.restore_work_root();
    let Ok(names) = fs::read_dir(&root) else {
        return Vec::new();
    };
    let mut repaired = Vec::new();
    for entry in names.flatten() {
        let name = entry.file_name();
        // A finished restore's old files, left by a stop before their
        // removal (a folder only the agent writes: removed, links unfollowed).
        if name.as_bytes().starts_with(TRASH_PREFIX.as_bytes()) {
            Trash(Some(entry.path())).remove();
            continue;
        }
        let Ok(server) = ServerUuid::parse(&name.to_string_lossy()) else {
            tracing::warn!(entry = %entry.path().display(), "unexpected entry in the restore work folder; left alone");
            continue;
        };
        let work = root.join(server.as_str());
        let journal = match fs::read(work.join("journal.json")) {
            Ok(bytes) => serde_json::from_slice::<Journal>(&bytes).map_err(|e| e.to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // Crashed before the first journal: nothing was touched.
                let _ = remove_all(&work);
                continue;
            }
            Err(e) => Err(e.to_string()),
        };
        let journal = match journal {
            Ok(j) => j,
            Err(e) => {
                tracing::error!(%server, error = %e, "unreadable restore journal; leaving it for an operator");
                continue;
            }
        };
        let swap = Swap {
            server_dir: layout.server_dir(&server),
            work,
            truncate: journal.truncate,
            only: journal.only.clone(),
        };
        match swap.resume(journal.phase) {
            Ok(()) => {
                tracing::warn!(%server, phase = ?journal.phase, "repaired an interrupted restore");
                repaired.push((server, journal.phase));
            }
            Err(e) => {
                tracing::error!(%server, phase = ?journal.phase, error = %e, "could not repair an interrupted restore; leaving it for an operator");
            }
        }
    }
    repaired
}

#[cfg(test)]
mod tests {
    use super::*;

    const UUID: &str = "0a1b2c3d-0000-4000-8000-00000000beef";

    fn tree(root: &Path, files: &[(&str, &str)]) {
        for (path, content) in files {
            let p = root.join(path);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, content).unwrap();
        }
    }

    fn read_tree(root: &Path) -> Vec<(String, String)> {
        let mut out = Vec::new();
        fn walk(base: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
            for e in fs::read_dir(dir).unwrap().flatten() {
                let p = e.path();
                let rel = p.strip_prefix(base).unwrap().display().to_string();
                let meta = fs::symlink_metadata(&p).unwrap();
                if meta.is_symlink() {
                    out.push((rel, format!("-> {}", fs::read_link(&p).unwrap().display())));
                } else if meta.is_dir() {
                    out.push((rel + "/", String::new()));
                    walk(base, &p, out);
                } else {
                    out.push((rel, fs::read_to_string(&p).unwrap()));
                }
            }
        }
        walk(root, root, &mut out);
        out.sort();
        out
    }

    fn layout(t: &tempfile::TempDir) -> Layout {
        Layout::new(
            t.path().join("volumes"),
            t.path().join("restic"),
            t.path().join("state"),
            crate::store::Store::Local {
                root: t.path().join("restic"),
            },
        )
    }

    fn setup(truncate: bool) -> (tempfile::TempDir, Layout, Swap) {
        let t = tempfile::tempdir().unwrap();
        let layout = layout(&t);
        let server = t.path().join("volumes").join(UUID);
        tree(
            &server,
            &[
                ("world/level.dat", "old level"),
                ("world/extra.dat", "only old"),
                ("old.txt", "old"),
            ],
        );
        let swap = Swap::plan(&layout, &ServerUuid::parse(UUID).unwrap(), truncate).unwrap();
        swap.begin().unwrap();
        tree(
            &swap.new_dir(),
            &[("world/level.dat", "new level"), ("new.txt", "new")],
        );
        (t, layout, swap)
    }

    /// What a crash in the middle of clearing leaves: one entry moved.
    fn crash_mid_clear(swap: &Swap) {
        swap.write_journal(Phase::Clearing).unwrap();
        fs::create_dir_all(swap.work.join("old")).unwrap();
        fs::rename(
            swap.server_dir.join("old.txt"),
            swap.work.join("old/old.txt"),
        )
        .unwrap();
    }

    /// A swap whose restored tree is `files` (in place of `setup`'s).
    fn restored(files: &[(&str, &str)]) -> (tempfile::TempDir, Swap) {
        let (t, _l, swap) = setup(true);
        remove_all(&swap.new_dir()).unwrap();
        fs::create_dir(swap.new_dir()).unwrap();
        tree(&swap.new_dir(), files);
        (t, swap)
    }

    #[test]
    fn a_snapshot_of_an_absolute_folder_is_hoisted_to_the_root() {
        let nested = "/var/lib/pterodactyl/volumes/0a1b2c3d";
        // The server's files include a folder named like the chain's first.
        let (_t, swap) = restored(&[
            (
                "var/lib/pterodactyl/volumes/0a1b2c3d/server.properties",
                "motd",
            ),
            ("var/lib/pterodactyl/volumes/0a1b2c3d/var/own.txt", "mine"),
        ]);
        assert!(swap.hoist_nested(nested).unwrap());
        assert_eq!(
            read_tree(&swap.new_dir()),
            [
                ("server.properties".into(), "motd".into()),
                ("var/".into(), String::new()),
                ("var/own.txt".into(), "mine".into())
            ]
        );
        assert!(!swap.work.join("nested").exists());
        swap.commit().unwrap();
        assert_eq!(
            fs::read_to_string(swap.server_dir.join("server.properties")).unwrap(),
            "motd"
        );
    }

    #[test]
    fn a_tree_at_the_root_is_left_and_half_the_layout_is_refused() {
        let nested = "/var/lib/pterodactyl/volumes/0a1b2c3d";
        let (_t, swap) = restored(&[("world/level.dat", "x"), ("var/y", "y")]);
        assert!(!swap.hoist_nested(nested).unwrap());
        assert_eq!(read_tree(&swap.new_dir()).len(), 4);
        // The chain, then something else beside its folder.
        let (_t, swap) = restored(&[
            ("var/lib/pterodactyl/volumes/0a1b2c3d/a", "a"),
            ("var/lib/other", "b"),
        ]);
        assert!(swap.hoist_nested(nested).is_err());
        // The chain's last part is a symlink: refused, not followed.
        let (_t, swap) = restored(&[("var/lib/pterodactyl/keep", "k")]);
        std::os::unix::fs::symlink("/etc", swap.new_dir().join("var/lib/pterodactyl/volumes"))
            .unwrap();
        fs::remove_file(swap.new_dir().join("var/lib/pterodactyl/keep")).unwrap();
        assert!(swap.hoist_nested(nested).is_err());
        for odd in ["/", "", "/var/../etc"] {
            let (_t, swap) = restored(&[("a", "a")]);
            assert!(!swap.hoist_nested(odd).unwrap(), "{odd}");
        }
    }

    #[test]
    fn truncating_swap_leaves_exactly_the_new_tree_in_the_same_directory() {
        let (_t, _l, swap) = setup(true);
        let inode = fs::metadata(&swap.server_dir).unwrap().ino();
        swap.commit().unwrap();
        assert_eq!(
            read_tree(&swap.server_dir),
            [
                ("new.txt".into(), "new".into()),
                ("world/".into(), String::new()),
                ("world/level.dat".into(), "new level".into())
            ]
        );
        assert_eq!(fs::metadata(&swap.server_dir).unwrap().ino(), inode);
        assert!(!swap.work.exists());
    }

    #[test]
    fn merging_swap_keeps_files_the_snapshot_does_not_have() {
        let (_t, _l, swap) = setup(false);
        swap.commit().unwrap();
        let got = read_tree(&swap.server_dir);
        assert!(got.contains(&("world/level.dat".into(), "new level".into())));
        assert!(got.contains(&("world/extra.dat".into(), "only old".into())));
        assert!(got.contains(&("old.txt".into(), "old".into())));
        assert!(got.contains(&("new.txt".into(), "new".into())));
    }

    #[test]
    fn a_partial_restore_replaces_only_its_paths_whole_when_truncating() {
        // Restored: only `world` (as restic does with --include=/world).
        let t = tempfile::tempdir().unwrap();
        let layout = layout(&t);
        let server = t.path().join("volumes").join(UUID);
        tree(
            &server,
            &[
                ("world/level.dat", "old level"),
                ("world/extra.dat", "only old"),
                ("plugins/a.jar", "a"),
                ("old.txt", "old"),
            ],
        );
        let only = vec![SnapshotPath::parse("world").unwrap()];
        let uuid = ServerUuid::parse(UUID).unwrap();
        let swap = Swap::plan(&layout, &uuid, true).unwrap().only(only.clone());
        swap.begin().unwrap();
        tree(&swap.new_dir(), &[("world/level.dat", "new level")]);
        // A crash right after the journal said `merging`: the start-up
        // repair finishes the same partial swap from the journal alone.
        swap.write_journal(Phase::Merging).unwrap();
        assert_eq!(repair(&layout), [(uuid.clone(), Phase::Merging)]);
        assert_eq!(
            read_tree(&server),
            [
                ("old.txt".into(), "old".into()),
                ("plugins/".into(), String::new()),
                ("plugins/a.jar".into(), "a".into()),
                ("world/".into(), String::new()),
                ("world/level.dat".into(), "new level".into()),
            ]
        );
        // Without truncate, files of the folder the backup lacks stay.
        tree(&server, &[("world/extra.dat", "only old")]);
        let swap = Swap::plan(&layout, &uuid, false).unwrap().only(only);
        swap.begin().unwrap();
        tree(&swap.new_dir(), &[("world/level.dat", "newer level")]);
        swap.commit().unwrap();
        let got = read_tree(&server);
        assert!(got.contains(&("world/extra.dat".into(), "only old".into())));
        assert!(got.contains(&("world/level.dat".into(), "newer level".into())));
        assert!(got.contains(&("plugins/a.jar".into(), "a".into())));
    }

    #[test]
    fn merging_moves_a_planted_link_aside_instead_of_following_it() {
        let (t, _l, swap) = setup(false);
        let victim = t.path().join("victim");
        tree(&victim, &[("level.dat", "host file")]);
        fs::remove_dir_all(swap.server_dir.join("world")).unwrap();
        std::os::unix::fs::symlink(&victim, swap.server_dir.join("world")).unwrap();
        swap.commit().unwrap();
        assert_eq!(
            read_tree(&victim),
            [("level.dat".into(), "host file".into())]
        );
        let got = read_tree(&swap.server_dir);
        assert!(got.contains(&("world/level.dat".into(), "new level".into())));
    }

    #[test]
    fn work_root_is_private() {
        let (t, _l, _swap) = setup(true);
        let meta = fs::symlink_metadata(t.path().join("volumes/.restic-restore")).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o700);
    }

    #[test]
    fn the_old_files_wait_out_of_the_way_and_go_with_the_trash_or_at_the_next_start() {
        let (_t, layout, swap) = setup(true);
        let trash = swap.commit_leaving_trash().unwrap();
        // The server has the new tree and nothing is pending.
        assert!(read_tree(&swap.server_dir).contains(&("new.txt".into(), "new".into())));
        assert!(!swap.work.exists() && !swap.has_pending());
        let root = layout.restore_work_root();
        let names = |root: &Path| -> Vec<String> {
            fs::read_dir(root)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        };
        let left = names(&root);
        assert_eq!(left.len(), 1, "{left:?}");
        assert!(left[0].starts_with(TRASH_PREFIX), "{left:?}");
        // The old content is there, journal and all, under the trash name.
        let old = root.join(&left[0]).join("old");
        assert!(read_tree(&old).contains(&("old.txt".into(), "old".into())));
        trash.remove();
        assert!(names(&root).is_empty());

        // A stop before the removal: the next start's repair removes it,
        // reporting nothing repaired.
        let (_t, layout, swap) = setup(true);
        let _forgotten = swap.commit_leaving_trash().unwrap();
        assert_eq!(names(&layout.restore_work_root()).len(), 1);
        assert!(repair(&layout).is_empty());
        assert!(names(&layout.restore_work_root()).is_empty());
    }

    #[test]
    fn repair_rolls_back_an_unfinished_restic_restore() {
        let (_t, layout, swap) = setup(true);
        let before = vec![
            ("old.txt".to_string(), "old".to_string()),
            ("world/".into(), String::new()),
            ("world/extra.dat".into(), "only old".into()),
            ("world/level.dat".into(), "old level".into()),
        ];
        let repaired = repair(&layout);
        assert_eq!(
            repaired,
            [(ServerUuid::parse(UUID).unwrap(), Phase::Restoring)]
        );
        assert_eq!(read_tree(&swap.server_dir), before);
        assert!(!swap.work.exists());
    }

    #[test]
    fn repair_finishes_a_swap_interrupted_half_way() {
        let (_t, layout, swap) = setup(true);
        crash_mid_clear(&swap);
        repair(&layout);
        assert_eq!(
            read_tree(&swap.server_dir),
            [
                ("new.txt".into(), "new".into()),
                ("world/".into(), String::new()),
                ("world/level.dat".into(), "new level".into())
            ]
        );
        assert!(!swap.work.exists());
    }

    #[test]
    fn a_failed_swap_is_finished_before_the_next_restore() {
        let (_t, _layout, swap) = setup(true);
        crash_mid_clear(&swap);
        assert_eq!(swap.finish_pending().unwrap(), Some(Phase::Clearing));
        assert!(read_tree(&swap.server_dir).contains(&("new.txt".into(), "new".into())));
        assert!(!swap.work.exists());
        assert_eq!(swap.finish_pending().unwrap(), None);
    }

    #[test]
    fn a_commit_that_failed_before_the_swap_began_is_reported_not_retried() {
        let (_t, _layout, swap) = setup(true);
        let before = read_tree(&swap.server_dir);
        let err = swap
            .retry_after_failure(std::io::Error::other("disk full"))
            .unwrap_err();
        assert_eq!(err.to_string(), "disk full");
        assert_eq!(read_tree(&swap.server_dir), before, "the old content stays");
        assert!(!swap.work.exists());
    }

    #[test]
    fn repair_finishes_an_interrupted_merge() {
        let (_t, layout, swap) = setup(false);
        swap.write_journal(Phase::Merging).unwrap();
        fs::rename(
            swap.new_dir().join("new.txt"),
            swap.server_dir.join("new.txt"),
        )
        .unwrap();
        repair(&layout);
        let got = read_tree(&swap.server_dir);
        assert!(got.contains(&("world/level.dat".into(), "new level".into())));
        assert!(got.contains(&("world/extra.dat".into(), "only old".into())));
        assert!(got.contains(&("new.txt".into(), "new".into())));
    }

    #[test]
    fn repair_ignores_journal_fields_naming_other_folders() {
        let (t, layout, swap) = setup(true);
        let victim = t.path().join("victim");
        tree(&victim, &[("important.conf", "original")]);
        let planted =
            serde_json::json!({"phase": "clearing", "server_dir": victim, "truncate": true});
        fs::write(swap.journal_path(), planted.to_string()).unwrap();
        repair(&layout);
        assert_eq!(
            read_tree(&victim),
            [("important.conf".into(), "original".into())]
        );
        assert!(read_tree(&swap.server_dir).contains(&("new.txt".into(), "new".into())));
    }
}

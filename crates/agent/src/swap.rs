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

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Name of the work folder when it has to live inside the server directory.
pub const INNER_WORK_NAME: &str = ".restic-restore";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Restoring,
    Clearing,
    Filling,
    Merging,
    Cleanup,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Journal {
    pub phase: Phase,
    pub server_dir: PathBuf,
    pub truncate: bool,
}

/// One restore's folders.
#[derive(Debug, Clone)]
pub struct Swap {
    pub server_dir: PathBuf,
    pub work: PathBuf,
    pub truncate: bool,
}

impl Swap {
    /// Picks the work folder: `<outer>/<uuid>` when that is on the same
    /// filesystem as the server directory, else inside the server directory.
    pub fn plan(
        server_dir: &Path,
        outer: &Path,
        name: &str,
        truncate: bool,
    ) -> std::io::Result<Self> {
        fs::create_dir_all(outer)?;
        let same_fs = fs::metadata(outer)?.dev() == fs::metadata(server_dir)?.dev();
        let work = if same_fs {
            outer.join(name)
        } else {
            server_dir.join(INNER_WORK_NAME)
        };
        Ok(Self {
            server_dir: server_dir.to_owned(),
            work,
            truncate,
        })
    }

    pub fn new_dir(&self) -> PathBuf {
        self.work.join("new")
    }

    fn old_dir(&self) -> PathBuf {
        self.work.join("old")
    }

    fn journal_path(&self) -> PathBuf {
        self.work.join("journal.json")
    }

    /// Starts a restore: an empty work folder and the `restoring` journal.
    pub fn begin(&self) -> std::io::Result<()> {
        if self.work.exists() {
            fs::remove_dir_all(&self.work)?;
        }
        fs::create_dir_all(&self.work)?;
        fs::set_permissions(&self.work, fs::Permissions::from_mode(0o700))?;
        self.write_journal(Phase::Restoring)
    }

    fn write_journal(&self, phase: Phase) -> std::io::Result<()> {
        let journal = Journal {
            phase,
            server_dir: self.server_dir.clone(),
            truncate: self.truncate,
        };
        let tmp = self.work.join("journal.json.tmp");
        let mut f = fs::File::create(&tmp)?;
        f.write_all(&serde_json::to_vec(&journal).map_err(std::io::Error::other)?)?;
        f.sync_all()?;
        fs::rename(&tmp, self.journal_path())?;
        fs::File::open(&self.work)?.sync_all()
    }

    /// Gives up before the swap began: the old content is untouched.
    pub fn abandon(&self) -> std::io::Result<()> {
        remove_all(&self.work)
    }

    /// Swaps the restored tree in. Call after restic restored into
    /// [`Swap::new_dir`] completely.
    pub fn commit(&self) -> std::io::Result<()> {
        if self.truncate {
            self.write_journal(Phase::Clearing)?;
            self.clear()?;
            crate::failpoint::hit("restore-after-clear");
            self.write_journal(Phase::Filling)?;
            self.fill()?;
        } else {
            self.write_journal(Phase::Merging)?;
            merge(&self.new_dir(), &self.server_dir, &self.old_dir())?;
        }
        self.write_journal(Phase::Cleanup)?;
        remove_all(&self.work)
    }

    fn resume(&self, phase: Phase) -> std::io::Result<()> {
        match phase {
            Phase::Restoring | Phase::Cleanup => remove_all(&self.work),
            Phase::Clearing => {
                self.clear()?;
                self.write_journal(Phase::Filling)?;
                self.fill()?;
                self.write_journal(Phase::Cleanup)?;
                remove_all(&self.work)
            }
            Phase::Filling => {
                self.fill()?;
                self.write_journal(Phase::Cleanup)?;
                remove_all(&self.work)
            }
            Phase::Merging => {
                merge(&self.new_dir(), &self.server_dir, &self.old_dir())?;
                self.write_journal(Phase::Cleanup)?;
                remove_all(&self.work)
            }
        }
    }

    /// Moves every entry of the server directory aside.
    fn clear(&self) -> std::io::Result<()> {
        let old = self.old_dir();
        fs::create_dir_all(&old)?;
        for entry in fs::read_dir(&self.server_dir)? {
            let entry = entry?;
            let name = entry.file_name();
            if self.work.starts_with(entry.path()) {
                continue;
            }
            fs::rename(entry.path(), free_name(&old, &name))?;
        }
        Ok(())
    }

    /// Moves every restored entry into the (cleared) server directory.
    fn fill(&self) -> std::io::Result<()> {
        let new = self.new_dir();
        if !new.exists() {
            return Ok(());
        }
        let old = self.old_dir();
        for entry in fs::read_dir(&new)? {
            let entry = entry?;
            let dest = self.server_dir.join(entry.file_name());
            // Something appeared meanwhile (the game server was running):
            // keep it aside rather than lose it.
            if fs::symlink_metadata(&dest).is_ok() {
                fs::create_dir_all(&old)?;
                fs::rename(&dest, free_name(&old, &entry.file_name()))?;
            }
            fs::rename(entry.path(), dest)?;
        }
        Ok(())
    }
}

/// `dir/name`, or `dir/name.N` if that is taken.
fn free_name(dir: &Path, name: &std::ffi::OsStr) -> PathBuf {
    let first = dir.join(name);
    if fs::symlink_metadata(&first).is_err() {
        return first;
    }
    (1..)
        .map(|n| {
            let mut s = name.to_owned();
            s.push(format!(".{n}"));
            dir.join(s)
        })
        .find(|p| fs::symlink_metadata(p).is_err())
        .expect("some suffix is free")
}

/// Moves `src`'s entries over `dest` recursively: directories present in both
/// are merged (taking the restored one's mode and owner), anything else in
/// `dest` that `src` also has is moved into `aside` first. Entries only in
/// `dest` stay. Re-running after a crash continues where it stopped, because
/// every moved entry is gone from `src`.
fn merge(src: &Path, dest: &Path, aside: &Path) -> std::io::Result<()> {
    if !src.exists() {
        return Ok(());
    }
    for entry in fs::read_dir(src)? {
        let entry = entry?;
        let from = entry.path();
        let to = dest.join(entry.file_name());
        let from_meta = fs::symlink_metadata(&from)?;
        match fs::symlink_metadata(&to) {
            Ok(to_meta) if to_meta.is_dir() && from_meta.is_dir() => {
                merge(&from, &to, &aside.join(entry.file_name()))?;
                fs::set_permissions(&to, from_meta.permissions())?;
                std::os::unix::fs::lchown(&to, Some(from_meta.uid()), Some(from_meta.gid()))?;
                fs::remove_dir(&from)?;
            }
            Ok(_) => {
                fs::create_dir_all(aside)?;
                fs::rename(&to, free_name(aside, &entry.file_name()))?;
                fs::rename(&from, &to)?;
            }
            Err(_) => fs::rename(&from, &to)?,
        }
    }
    Ok(())
}

fn remove_all(dir: &Path) -> std::io::Result<()> {
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Completes or rolls back restores a crash interrupted. `outer` holds the
/// work folders of the usual kind; `server_dirs` are checked for work folders
/// inside them.
pub fn repair(outer: &Path, server_dirs: &[PathBuf]) -> Vec<(PathBuf, Phase)> {
    let mut works: Vec<PathBuf> = fs::read_dir(outer)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    works.extend(server_dirs.iter().map(|d| d.join(INNER_WORK_NAME)));
    let mut repaired = Vec::new();
    for work in works {
        let Ok(bytes) = fs::read(work.join("journal.json")) else {
            continue;
        };
        let journal: Journal = match serde_json::from_slice(&bytes) {
            Ok(j) => j,
            Err(e) => {
                tracing::error!(work = %work.display(), error = %e, "unreadable restore journal; leaving it for an operator");
                continue;
            }
        };
        let swap = Swap {
            server_dir: journal.server_dir.clone(),
            work: work.clone(),
            truncate: journal.truncate,
        };
        match swap.resume(journal.phase) {
            Ok(()) => {
                tracing::warn!(server_dir = %journal.server_dir.display(), phase = ?journal.phase, "repaired an interrupted restore");
                repaired.push((journal.server_dir, journal.phase));
            }
            Err(e) => {
                tracing::error!(server_dir = %journal.server_dir.display(), error = %e, "could not repair an interrupted restore");
            }
        }
    }
    repaired
}

#[cfg(test)]
mod tests {
    use super::*;

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
                if p.is_dir() {
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

    fn setup(truncate: bool) -> (tempfile::TempDir, Swap) {
        let t = tempfile::tempdir().unwrap();
        let server = t.path().join("volumes/srv");
        tree(
            &server,
            &[
                ("world/level.dat", "old level"),
                ("world/extra.dat", "only old"),
                ("old.txt", "old"),
            ],
        );
        let swap = Swap::plan(
            &server,
            &t.path().join("volumes/.restic-restore"),
            "srv",
            truncate,
        )
        .unwrap();
        swap.begin().unwrap();
        tree(
            &swap.new_dir(),
            &[("world/level.dat", "new level"), ("new.txt", "new")],
        );
        (t, swap)
    }

    #[test]
    fn truncating_swap_leaves_exactly_the_new_tree_in_the_same_directory() {
        let (_t, swap) = setup(true);
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
        let (_t, swap) = setup(false);
        swap.commit().unwrap();
        let got = read_tree(&swap.server_dir);
        assert!(got.contains(&("world/level.dat".into(), "new level".into())));
        assert!(got.contains(&("world/extra.dat".into(), "only old".into())));
        assert!(got.contains(&("old.txt".into(), "old".into())));
        assert!(got.contains(&("new.txt".into(), "new".into())));
    }

    #[test]
    fn repair_rolls_back_an_unfinished_restic_restore() {
        let (t, swap) = setup(true);
        let before = vec![
            ("old.txt".to_string(), "old".to_string()),
            ("world/".into(), String::new()),
            ("world/extra.dat".into(), "only old".into()),
            ("world/level.dat".into(), "old level".into()),
        ];
        let repaired = repair(&t.path().join("volumes/.restic-restore"), &[]);
        assert_eq!(repaired, [(swap.server_dir.clone(), Phase::Restoring)]);
        assert_eq!(read_tree(&swap.server_dir), before);
        assert!(!swap.work.exists());
    }

    #[test]
    fn repair_finishes_a_swap_interrupted_half_way() {
        let (t, swap) = setup(true);
        // Simulate a crash in the middle of clearing: one entry moved.
        swap.write_journal(Phase::Clearing).unwrap();
        fs::create_dir_all(swap.old_dir()).unwrap();
        fs::rename(
            swap.server_dir.join("old.txt"),
            swap.old_dir().join("old.txt"),
        )
        .unwrap();
        repair(&t.path().join("volumes/.restic-restore"), &[]);
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
    fn repair_finishes_an_interrupted_merge() {
        let (t, swap) = setup(false);
        swap.write_journal(Phase::Merging).unwrap();
        fs::rename(
            swap.new_dir().join("new.txt"),
            swap.server_dir.join("new.txt"),
        )
        .unwrap();
        repair(&t.path().join("volumes/.restic-restore"), &[]);
        let got = read_tree(&swap.server_dir);
        assert!(got.contains(&("world/level.dat".into(), "new level".into())));
        assert!(got.contains(&("world/extra.dat".into(), "only old".into())));
        assert!(got.contains(&("new.txt".into(), "new".into())));
    }
}

//! The per-repository snapshot index. Listing reads this index; restic runs
//! only when the repository changed. A change is noticed by looking at the
//! repository's `snapshots/`, `index/` and `keys/` folders (cheap, needs no
//! key), so snapshots made or removed by hand with restic show up too. A
//! remote repository's `snapshots/` is listed by restic instead, at most
//! every `remote_recheck_secs` and after each change the agent
//! makes (see [`Fingerprint`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use api::agent::{BackupItem, BackupList, RepoStats};
use api::{SnapshotId, SnapshotRef, TimeRange};
use engine::Snapshot;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::AgentError;

/// The tag that marks a snapshot as locked.
pub const LOCKED_TAG: &str = "locked";

/// The state of one part of a repository, cheap to take.
///
/// For a local repository, a folder's identity and modification time.
/// Adding, removing or renaming an entry moves a folder's mtime, so that is
/// enough, except while the mtime is recent (a second change in the same
/// timestamp tick would not move it): then the names are hashed too, as
/// `git` does for racy entries.
///
/// For a remote repository, a hash of what a listing of the store returned
/// (and of the agent's own changes since), taken at most every
/// `remote_recheck_secs`.
#[derive(Debug, Clone)]
pub struct Fingerprint(Kind);

#[derive(Debug, Clone)]
enum Kind {
    Folder {
        dir: PathBuf,
        stat: [u8; 32],
        names: Option<[u8; 32]>,
    },
    Listed([u8; 32]),
}

/// An mtime this recent (ns) may still be shared by a later change.
const RACY_NANOS: i128 = 2_000_000_000;

fn names_hash(dir: &Path) -> std::io::Result<[u8; 32]> {
    let mut names: Vec<_> = match std::fs::read_dir(dir) {
        Ok(rd) => rd.filter_map(|e| e.ok()).map(|e| e.file_name()).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    names.sort();
    let mut h = Sha256::new();
    for n in names {
        h.update(n.as_encoded_bytes());
        h.update([0]);
    }
    Ok(h.finalize().into())
}

impl Fingerprint {
    fn read(dir: PathBuf) -> std::io::Result<Self> {
        use std::os::unix::fs::MetadataExt;
        let meta = match std::fs::metadata(&dir) {
            Ok(m) => Some(m),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let mut h = Sha256::new();
        let mut racy = false;
        if let Some(meta) = meta {
            let mtime = meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128;
            h.update(meta.ino().to_le_bytes());
            h.update(mtime.to_le_bytes());
            h.update(meta.size().to_le_bytes());
            racy = OffsetDateTime::now_utc().unix_timestamp_nanos() - mtime < RACY_NANOS;
        }
        let names = if racy { Some(names_hash(&dir)?) } else { None };
        Ok(Self(Kind::Folder {
            stat: h.finalize().into(),
            names,
            dir,
        }))
    }

    /// A fingerprint of listed names (a remote store's `snapshots/`) and
    /// of counters; the names in any order.
    pub fn listed<S: AsRef<str>>(names: &[S], counters: &[u64]) -> Self {
        let mut sorted: Vec<&str> = names.iter().map(AsRef::as_ref).collect();
        sorted.sort_unstable();
        let mut h = Sha256::new();
        for n in sorted {
            h.update(n.as_bytes());
            h.update([0]);
        }
        for c in counters {
            h.update(c.to_le_bytes());
        }
        Self(Kind::Listed(h.finalize().into()))
    }

    /// Whether the part is unchanged since `old` was taken. Reads a
    /// folder's names only when `old` was taken while the folder was racy.
    pub fn same_as(&self, old: &Fingerprint) -> bool {
        match (&self.0, &old.0) {
            (Kind::Listed(a), Kind::Listed(b)) => a == b,
            (
                Kind::Folder {
                    dir, stat, names, ..
                },
                Kind::Folder {
                    stat: old_stat,
                    names: old_names,
                    ..
                },
            ) => {
                if stat != old_stat {
                    return false;
                }
                match (names, old_names) {
                    (Some(a), Some(b)) => a == b,
                    // `old` was taken when the mtime was already settled.
                    (_, None) => true,
                    (None, Some(b)) => names_hash(dir).is_ok_and(|a| &a == b),
                }
            }
            _ => false,
        }
    }
}

/// Fingerprints of the folders that matter.
#[derive(Debug, Clone)]
pub struct RepoFingerprints {
    /// `snapshots/`: changes on backup, forget, tag.
    pub snapshots: Fingerprint,
    /// `index/`: changes when data is added or pruned.
    pub data: Fingerprint,
    /// `keys/`: changes when keys are added or removed.
    pub keys: Fingerprint,
}

impl RepoFingerprints {
    /// Reads the three folders of the repository at `repo` (blocking I/O).
    pub fn read(repo: &Path) -> std::io::Result<Self> {
        Ok(Self {
            snapshots: Fingerprint::read(repo.join("snapshots"))?,
            data: Fingerprint::read(repo.join("index"))?,
            keys: Fingerprint::read(repo.join("keys"))?,
        })
    }

    /// A remote repository's: the IDs in its `snapshots/` and the count of
    /// changes this agent made (any change may have touched data or keys).
    pub fn listed(snapshot_ids: &[String], changes: u64) -> Self {
        Self {
            snapshots: Fingerprint::listed(snapshot_ids, &[]),
            data: Fingerprint::listed(snapshot_ids, &[changes]),
            keys: Fingerprint::listed::<&str>(&[], &[changes]),
        }
    }
}

/// One snapshot as the agent shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Public ID, stable across lock and unlock.
    pub id: SnapshotId,
    /// The ID restic uses for it right now.
    pub current: SnapshotId,
    pub time: OffsetDateTime,
    pub tree: String,
    pub tags: Vec<String>,
    pub size: Option<u64>,
    /// For a snapshot another tool (the PHP extension) made of the absolute
    /// folder of the server's files: that folder, under which the files sit
    /// in the snapshot. `None` for this agent's snapshots (files at the root).
    pub nested: Option<String>,
}

impl Entry {
    pub fn locked(&self) -> bool {
        self.tags.iter().any(|t| t == LOCKED_TAG)
    }

    pub fn to_item(&self) -> BackupItem {
        BackupItem {
            id: self.id.clone(),
            short_id: self.id.short().to_owned(),
            time: self.time.into(),
            size: self.size,
            tags: self.tags.clone(),
            locked: self.locked(),
            note: None,
            copied: None,
            added: None,
            origin: None,
        }
    }

    /// Newest first; ties broken by ID so the order is total.
    fn order_key(&self) -> (i128, &str) {
        (self.time.unix_timestamp_nanos(), self.id.as_str())
    }
}

/// The index of one repository.
#[derive(Debug, Default)]
pub struct RepoIndex {
    /// Fingerprint of `snapshots/` the entries were read at.
    pub snapshots_fp: Option<Fingerprint>,
    keys_fp: Option<Fingerprint>,
    /// Newest first.
    entries: Vec<Entry>,
    /// MAC of the key that last opened the repository.
    verified_key: Option<[u8; 32]>,
    /// Cached statistics and the fingerprints they were measured at.
    stats: Option<((Fingerprint, Fingerprint), RepoStats)>,
    /// Restore sizes by root tree (a re-tag keeps the tree).
    pub sizes: HashMap<String, u64>,
    pub sizes_loaded: bool,
    /// The snapshots as listed, for updating the entries from the files
    /// that changed (see `Agent::read_changed_snapshots`).
    pub listed: Vec<Snapshot>,
}

impl RepoIndex {
    /// Forgets a verified key when the repository's keys changed.
    pub fn observe_keys(&mut self, keys_fp: &Fingerprint) {
        let same = self
            .keys_fp
            .as_ref()
            .is_some_and(|old| keys_fp.same_as(old));
        self.keys_fp = Some(keys_fp.clone());
        if !same {
            self.verified_key = None;
        }
    }

    pub fn key_verified(&self, mac: &[u8; 32]) -> bool {
        use subtle::ConstantTimeEq;
        self.verified_key
            .as_ref()
            .is_some_and(|k| bool::from(k.ct_eq(mac)))
    }

    pub fn set_verified_key(&mut self, mac: [u8; 32]) {
        self.verified_key = Some(mac);
    }

    /// Whether the entries are current and the key was seen; keeps the
    /// newer fingerprint when they are.
    pub fn is_fresh(&mut self, fp: &RepoFingerprints, mac: &[u8; 32]) -> bool {
        let same = self
            .snapshots_fp
            .as_ref()
            .is_some_and(|old| fp.snapshots.same_as(old));
        if same {
            self.snapshots_fp = Some(fp.snapshots.clone());
        }
        same && self.key_verified(mac)
    }

    /// Replaces the entries with what restic listed.
    /// `host` is the name this agent's snapshots of the server carry.
    pub fn replace(&mut self, snapshots: Vec<Snapshot>, snapshots_fp: &Fingerprint, host: &str) {
        self.listed = snapshots.clone();
        let mut entries: Vec<Entry> = snapshots
            .into_iter()
            .map(|s| {
                let size = s.size.or_else(|| self.sizes.get(&s.tree).copied());
                let nested = match s.paths.as_slice() {
                    [only] if s.hostname != host && only.starts_with('/') && only != "/" => {
                        Some(only.clone())
                    }
                    _ => None,
                };
                Entry {
                    nested,
                    id: s.stable_id().clone(),
                    current: s.id,
                    time: s.time,
                    tree: s.tree,
                    tags: s.tags,
                    size,
                }
            })
            .collect();
        for e in &entries {
            if let Some(size) = e.size {
                self.sizes.insert(e.tree.clone(), size);
            }
        }
        entries.sort_by(|a, b| b.order_key().cmp(&a.order_key()));
        self.entries = entries;
        self.snapshots_fp = Some(snapshots_fp.clone());
    }

    /// Records a size measured for a tree.
    pub fn set_size(&mut self, tree: &str, size: u64) {
        self.sizes.insert(tree.to_owned(), size);
        for e in self.entries.iter_mut().filter(|e| e.tree == tree) {
            e.size = Some(size);
        }
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Entries whose size is unknown (one per tree).
    pub fn without_size(&self) -> Vec<(SnapshotId, String)> {
        let mut seen = std::collections::HashSet::new();
        self.entries
            .iter()
            .filter(|e| e.size.is_none() && seen.insert(e.tree.clone()))
            .map(|e| (e.current.clone(), e.tree.clone()))
            .collect()
    }

    /// Finds the one entry a full ID or prefix names (public or current ID).
    pub fn resolve(&self, r: &SnapshotRef) -> Result<&Entry, AgentError> {
        let mut found = self
            .entries
            .iter()
            .filter(|e| r.matches(&e.id) || r.matches(&e.current));
        match (found.next(), found.next()) {
            (Some(e), None) => Ok(e),
            (None, _) => Err(AgentError::BackupNotFound),
            (Some(_), Some(_)) => Err(AgentError::bad_request(
                "ambiguous_id",
                "more than one backup starts with this ID; give more characters",
            )),
        }
    }

    pub fn by_stable_id(&self, id: &SnapshotId) -> Option<&Entry> {
        self.entries.iter().find(|e| &e.id == id)
    }

    /// Finds the snapshot a backup summary named (restic 0.14 prints a short ID).
    pub fn by_current_prefix(&self, prefix: &str) -> Option<&Entry> {
        self.entries
            .iter()
            .find(|e| e.current.as_str().starts_with(prefix))
    }

    /// One page, newest first, after `cursor`.
    /// A page of the entries in `range` (newest first) after `cursor`;
    /// a cursor stays valid whatever changed, as it names a place in the
    /// order, not an index.
    pub fn page(&self, limit: usize, cursor: Option<&Cursor>, range: &TimeRange) -> BackupList {
        // Newest first: the range is one slice.
        let newer = match range.to {
            Some(to) => self.entries.partition_point(|e| e.time >= to.time()),
            None => 0,
        };
        let older = match range.from {
            Some(from) => self.entries.partition_point(|e| e.time >= from.time()),
            None => self.entries.len(),
        };
        let within = &self.entries[newer..older.max(newer)];
        let start = match cursor {
            Some(c) => within
                .iter()
                .position(|e| e.order_key() < (c.time_nanos, c.id.as_str()))
                .unwrap_or(within.len()),
            None => 0,
        };
        let page: Vec<&Entry> = within[start..].iter().take(limit).collect();
        let next_cursor = match page.last() {
            Some(last) if start + page.len() < within.len() => Some(
                Cursor {
                    time_nanos: last.time.unix_timestamp_nanos(),
                    id: last.id.clone(),
                }
                .encode(),
            ),
            _ => None,
        };
        BackupList {
            backups: page.into_iter().map(Entry::to_item).collect(),
            next_cursor,
            total: within.len(),
        }
    }

    pub fn cached_stats(&mut self, fp: &RepoFingerprints) -> Option<RepoStats> {
        let (at, stats) = self.stats.as_mut()?;
        if fp.snapshots.same_as(&at.0) && fp.data.same_as(&at.1) {
            *at = (fp.snapshots.clone(), fp.data.clone());
            Some(stats.clone())
        } else {
            None
        }
    }

    pub fn set_stats(&mut self, fp: &RepoFingerprints, stats: RepoStats) {
        self.stats = Some(((fp.snapshots.clone(), fp.data.clone()), stats));
    }
}

/// Position in a listing: the last item of the previous page. Opaque to
/// clients (hex of `<unix nanos>.<id>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    time_nanos: i128,
    id: SnapshotId,
}

impl Cursor {
    pub fn encode(&self) -> String {
        api::hex::encode(format!("{}.{}", self.time_nanos, self.id).as_bytes())
    }

    pub fn decode(raw: &str) -> Result<Self, AgentError> {
        let bad = || {
            AgentError::bad_request(
                "invalid_cursor",
                "the cursor is not one this agent gave out",
            )
        };
        if raw.len() > 256 {
            return Err(bad());
        }
        let bytes = api::hex::decode(raw).ok_or_else(bad)?;
        let text = String::from_utf8(bytes).map_err(|_| bad())?;
        let (t, id) = text.split_once('.').ok_or_else(bad)?;
        Ok(Self {
            time_nanos: t.parse().map_err(|_| bad())?,
            id: SnapshotId::parse(id).map_err(|_| bad())?,
        })
    }
}

/// The tag of the safety snapshot a restore takes first.
pub const PRE_RESTORE_TAG: &str = "pre-restore";

/// How long a safety snapshot is exempt from the backup limit.
const PRE_RESTORE_GRACE: time::Duration = time::Duration::days(1);

impl Entry {
    /// A safety snapshot younger than a day: neither counted against the
    /// backup limit nor removed to make room.
    pub fn is_fresh_safety_snapshot(&self, now: OffsetDateTime) -> bool {
        self.tags.iter().any(|t| t == PRE_RESTORE_TAG) && now - self.time < PRE_RESTORE_GRACE
    }
}

/// Which snapshots a new backup must make room for under `max`: the oldest
/// unlocked ones. `Err(AllBackupsLocked)` when there are not enough unlocked
/// ones, in which case nothing may be removed.
pub fn plan_removals(
    entries: &[Entry],
    max: u32,
    incoming: usize,
    now: OffsetDateTime,
) -> Result<Vec<Entry>, AgentError> {
    let counted: Vec<&Entry> = entries
        .iter()
        .filter(|e| !e.is_fresh_safety_snapshot(now))
        .collect();
    let need = (counted.len() + incoming).saturating_sub(max as usize);
    if need == 0 {
        return Ok(Vec::new());
    }
    let removable: Vec<Entry> = counted
        .into_iter()
        .rev()
        .filter(|e| !e.locked())
        .take(need)
        .cloned()
        .collect();
    if removable.len() < need {
        return Err(AgentError::AllBackupsLocked);
    }
    Ok(removable)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sid(n: u8) -> SnapshotId {
        SnapshotId::parse(&format!("{:02x}", n).repeat(32)).unwrap()
    }

    fn snap(n: u8, secs: i64, tags: &[&str]) -> Snapshot {
        Snapshot {
            id: sid(n),
            original: None,
            time: OffsetDateTime::from_unix_timestamp(secs).unwrap(),
            tree: format!("tree{n}"),
            hostname: "h".into(),
            paths: vec![],
            tags: tags.iter().map(|t| t.to_string()).collect(),
            size: None,
        }
    }

    fn fingerprint() -> Fingerprint {
        Fingerprint::read(PathBuf::from("/nonexistent")).unwrap()
    }

    #[test]
    fn a_folder_change_is_seen_even_within_one_timestamp_tick() {
        let dir = tempfile::tempdir().unwrap();
        let fp = |d: &Path| Fingerprint::read(d.to_owned()).unwrap();
        let before = fp(dir.path());
        assert!(fp(dir.path()).same_as(&before));
        std::fs::write(dir.path().join("a"), "").unwrap();
        let after = fp(dir.path());
        assert!(!after.same_as(&before));
        // Racy now: the names decide, so a rename is noticed even if the
        // mtime did not move.
        let with_names = |fp: &Fingerprint, n: Option<[u8; 32]>| match &fp.0 {
            Kind::Folder { dir, stat, .. } => Fingerprint(Kind::Folder {
                dir: dir.clone(),
                stat: *stat,
                names: n,
            }),
            Kind::Listed(_) => panic!("a folder's fingerprint expected"),
        };
        assert!(matches!(after.0, Kind::Folder { names: Some(_), .. }));
        let forged = with_names(&after, Some([7; 32]));
        assert!(!after.same_as(&forged));
        // A settled folder compares by stat alone.
        let settled = with_names(&after, None);
        assert!(
            settled.same_as(&after),
            "same stat, names re-read and equal"
        );
        assert!(after.same_as(&settled));
    }

    #[test]
    fn listed_fingerprints_compare_names_in_any_order_and_counters() {
        let a = Fingerprint::listed(&["b", "a"], &[1]);
        assert!(a.same_as(&Fingerprint::listed(&["a", "b"], &[1])));
        assert!(!a.same_as(&Fingerprint::listed(&["a", "b"], &[2])));
        assert!(!a.same_as(&Fingerprint::listed(&["a"], &[1])));
        let dir = tempfile::tempdir().unwrap();
        assert!(!a.same_as(&Fingerprint::read(dir.path().to_owned()).unwrap()));
    }

    fn index(snaps: Vec<Snapshot>) -> RepoIndex {
        let mut idx = RepoIndex::default();
        idx.replace(snaps, &fingerprint(), "h");
        idx
    }

    #[test]
    fn pages_walk_newest_first_without_gaps_or_repeats() {
        let idx = index((1..=12).map(|n| snap(n, 1000 + n as i64, &[])).collect());
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let page = idx.page(5, cursor.as_ref(), &TimeRange::default());
            assert_eq!(page.total, 12);
            seen.extend(page.backups.iter().map(|b| b.id.clone()));
            match page.next_cursor {
                Some(c) => cursor = Some(Cursor::decode(&c).unwrap()),
                None => break,
            }
        }
        let expected: Vec<SnapshotId> = (1..=12).rev().map(sid).collect();
        assert_eq!(seen, expected);
    }

    #[test]
    fn cursor_survives_new_snapshots_arriving() {
        let mut idx = index((1..=6).map(|n| snap(n, 1000 + n as i64, &[])).collect());
        let first = idx.page(3, None, &TimeRange::default());
        let c = Cursor::decode(first.next_cursor.as_deref().unwrap()).unwrap();
        let mut snaps: Vec<Snapshot> = (1..=7).map(|n| snap(n, 1000 + n as i64, &[])).collect();
        snaps.push(snap(9, 5000, &[]));
        idx.replace(snaps, &fingerprint(), "h");
        let second = idx.page(3, Some(&c), &TimeRange::default());
        let ids: Vec<String> = second.backups.iter().map(|b| b.short_id.clone()).collect();
        assert_eq!(ids, ["03030303", "02020202", "01010101"]);
    }

    #[test]
    fn a_time_range_pages_its_slice_and_cursors_stay_valid() {
        let idx = index((1..=10).map(|n| snap(n, 1000 + n as i64, &[])).collect());
        let at = |s: i64| api::Timestamp::from_unix(s);
        // At or after 1003, before 1008: 7, 6, 5, 4, 3.
        let range = TimeRange {
            from: at(1003),
            to: at(1008),
        };
        let first = idx.page(2, None, &range);
        assert_eq!(first.total, 5);
        let ids = |p: &BackupList| {
            p.backups
                .iter()
                .map(|b| b.short_id.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&first), ["07070707", "06060606"]);
        let c = Cursor::decode(first.next_cursor.as_deref().unwrap()).unwrap();
        let second = idx.page(10, Some(&c), &range);
        assert_eq!(ids(&second), ["05050505", "04040404", "03030303"]);
        assert_eq!(second.next_cursor, None);
        // A cursor from the unfiltered list works in a range too.
        let whole = idx.page(1, None, &TimeRange::default());
        let c = Cursor::decode(whole.next_cursor.as_deref().unwrap()).unwrap();
        assert_eq!(ids(&idx.page(1, Some(&c), &range)), ["07070707"]);
        let empty = TimeRange {
            from: at(5000),
            to: None,
        };
        assert_eq!(idx.page(5, None, &empty).total, 0);
    }

    #[test]
    fn bad_cursors_are_refused() {
        for bad in ["zz", "abc", "2e", &"00".repeat(200), "31322e3334"] {
            assert!(Cursor::decode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn resolve_by_prefix_of_public_or_current_id() {
        let mut s = snap(0xab, 1, &["locked"]);
        s.original = Some(sid(0xcd));
        let idx = index(vec![s, snap(0xac, 2, &[])]);
        let e = idx
            .resolve(&SnapshotRef::parse("cdcdcdcd").unwrap())
            .unwrap();
        assert!(e.locked());
        assert_eq!(e.id, sid(0xcd));
        assert_eq!(
            idx.resolve(&SnapshotRef::parse("abababab").unwrap())
                .unwrap()
                .id,
            sid(0xcd)
        );
        assert!(matches!(
            idx.resolve(&SnapshotRef::parse("eeeeeeee").unwrap()),
            Err(AgentError::BackupNotFound)
        ));
    }

    #[test]
    fn removals_take_oldest_unlocked_or_refuse() {
        let idx = index(vec![
            snap(1, 1, &["locked"]),
            snap(2, 2, &[]),
            snap(3, 3, &[]),
            snap(4, 4, &["locked"]),
        ]);
        let now = OffsetDateTime::now_utc();
        let plan = plan_removals(idx.entries(), 4, 1, now).unwrap();
        assert_eq!(
            plan.iter().map(|e| e.id.clone()).collect::<Vec<_>>(),
            [sid(2)]
        );
        let plan = plan_removals(idx.entries(), 3, 1, now).unwrap();
        assert_eq!(plan.len(), 2);
        assert!(plan_removals(idx.entries(), 2, 1, now).is_err());
        assert!(plan_removals(idx.entries(), 5, 1, now).unwrap().is_empty());
    }

    #[test]
    fn fresh_safety_snapshots_are_exempt_from_the_limit_for_a_day() {
        let t0 = 1_000_000;
        let idx = index(vec![
            snap(1, t0, &[]),
            snap(2, t0 + 10, &["pre-restore"]),
            snap(3, t0 + 20, &[]),
        ]);
        let ids = |plan: Vec<Entry>| plan.into_iter().map(|e| e.id).collect::<Vec<_>>();
        let soon = OffsetDateTime::from_unix_timestamp(t0 + 3600).unwrap();
        // Two counted snapshots, limit 3: room for one more without removals.
        assert!(plan_removals(idx.entries(), 3, 1, soon).unwrap().is_empty());
        assert_eq!(
            ids(plan_removals(idx.entries(), 2, 1, soon).unwrap()),
            [sid(1)]
        );
        // After a day it is an ordinary snapshot again.
        let later = OffsetDateTime::from_unix_timestamp(t0 + 2 * 86_400).unwrap();
        assert_eq!(
            ids(plan_removals(idx.entries(), 3, 1, later).unwrap()),
            [sid(1)]
        );
        assert_eq!(
            ids(plan_removals(idx.entries(), 2, 1, later).unwrap()),
            [sid(1), sid(2)]
        );
    }
}

//! Snapshot listings for the file browser. A snapshot never changes, so
//! the agent lists it once (`restic ls --json`, streamed into a
//! [`Builder`]) and keeps a compact file per root tree in
//! `<state_dir>/listings/<uuid>/<tree>.list` (a re-tag keeps the tree, so
//! lock and unlock keep the listing). Later folder views read only that
//! file ([`Listing`]); it goes when no snapshot has the tree any more.
//!
//! Format (little-endian): the magic `RBLIST01`, the entry count (u32) and
//! the byte length of the names (u32), then one 32-byte record per entry
//! (name offset u32, name length u16, kind u8, 0 u8, mtime i64, size u64,
//! first child u32, child count u32) and the names. Entry 0 is the root;
//! the children of a folder are contiguous, folders first, then by name,
//! so a folder page is a slice and a name a binary search. Every read is
//! bounds-checked: a damaged file is an error (and is listed again), never
//! a panic. The files live in the agent's own state folder; nothing of a
//! server folder is read to build or read them.

use std::collections::HashMap;
use std::sync::Arc;

use api::files::{FileEntry, FileKind, FileList, SnapshotPath};
use engine::{LsNode, NodeKind};
use time::OffsetDateTime;

const MAGIC: &[u8; 8] = b"RBLIST01";
const HEADER: usize = 16;
const RECORD: usize = 32;

fn kind_byte(kind: NodeKind) -> u8 {
    match kind {
        NodeKind::Dir => 0,
        NodeKind::File => 1,
        NodeKind::Symlink => 2,
        NodeKind::Other => 3,
    }
}

fn file_kind(byte: u8) -> Option<FileKind> {
    Some(match byte {
        0 => FileKind::Dir,
        1 => FileKind::File,
        2 => FileKind::Symlink,
        3 => FileKind::Other,
        _ => return None,
    })
}

struct Node {
    name: String,
    kind: NodeKind,
    size: u64,
    mtime: i64,
    parent: u32,
    children: Vec<u32>,
}

/// The most entries one listing takes: about 150 MB while it is built.
/// A tenant can make millions of empty files; a bigger snapshot is
/// browsed with restic itself.
pub const MAX_ENTRIES: usize = 2_000_000;
/// The most bytes of names one listing takes.
const MAX_NAME_BYTES: usize = 128 << 20;

/// Turns `restic ls` nodes into a listing.
pub struct Builder {
    /// The absolute folder the snapshot keeps the server's files under
    /// (snapshots of the PHP extension), without a trailing `/`.
    prefix: Option<String>,
    nodes: Vec<Node>,
    /// A folder's child folder by name (names only, so memory grows with
    /// the names, not with the depth of the paths).
    dirs: HashMap<(u32, Box<str>), u32>,
    /// The folder the last entry went into: restic lists a folder's
    /// entries one after the other, so most lookups end here.
    last_dir: Option<(String, u32)>,
    name_bytes: usize,
    /// More entries came than [`MAX_ENTRIES`] (or names than their budget).
    full: bool,
}

impl Builder {
    pub fn new(nested: Option<&str>) -> Self {
        let root = Node {
            name: String::new(),
            kind: NodeKind::Dir,
            size: 0,
            mtime: 0,
            parent: 0,
            children: Vec::new(),
        };
        Self {
            prefix: nested
                .map(|p| p.trim_end_matches('/').to_owned())
                .filter(|p| !p.is_empty()),
            nodes: vec![root],
            dirs: HashMap::new(),
            last_dir: None,
            name_bytes: 0,
            full: false,
        }
    }

    /// Whether the snapshot holds more than a listing takes.
    pub fn is_full(&self) -> bool {
        self.full
    }

    /// The folder at `path` (relative, `""` for the root), its missing
    /// parts made (as folders of time 0) if restic did not list them first.
    fn dir(&mut self, path: &str) -> u32 {
        if let Some((last, i)) = &self.last_dir
            && last == path
        {
            return *i;
        }
        let mut at = 0;
        for part in path.split('/').filter(|p| !p.is_empty()) {
            at = match self.dirs.get(&(at, Box::from(part))) {
                Some(&i) => i,
                None => self.push(at, part, NodeKind::Dir, 0, 0),
            };
        }
        self.last_dir = Some((path.to_owned(), at));
        at
    }

    fn push(&mut self, parent: u32, name: &str, kind: NodeKind, size: u64, mtime: i64) -> u32 {
        let i = u32::try_from(self.nodes.len()).unwrap_or(u32::MAX);
        self.name_bytes += name.len();
        self.nodes.push(Node {
            name: name.to_owned(),
            kind,
            size,
            mtime,
            parent,
            children: Vec::new(),
        });
        self.nodes[parent as usize].children.push(i);
        if kind == NodeKind::Dir {
            self.dirs.insert((parent, Box::from(name)), i);
        }
        if self.nodes.len() > MAX_ENTRIES || self.name_bytes > MAX_NAME_BYTES {
            self.full = true;
        }
        i
    }

    pub fn add(&mut self, node: LsNode) {
        let rel = match &self.prefix {
            None => node.path.as_str(),
            Some(prefix) => match node.path.strip_prefix(prefix.as_str()) {
                Some(rest) if rest.is_empty() || rest.starts_with('/') => rest,
                _ => return,
            },
        };
        let rel = rel.trim_end_matches('/');
        if rel.is_empty() {
            if node.kind == NodeKind::Dir {
                self.nodes[0].mtime = node.mtime;
            }
            return;
        }
        if self.full {
            return;
        }
        let Some((parent, name)) = rel.rsplit_once('/') else {
            return;
        };
        if name.is_empty() || name == "." || name == ".." || name.len() > u16::MAX as usize {
            return;
        }
        let parent = self.dir(parent);
        if node.kind == NodeKind::Dir
            && let Some(&known) = self.dirs.get(&(parent, Box::from(name)))
        {
            // Made for a child listed first: it gets its real time.
            self.nodes[known as usize].mtime = node.mtime;
            return;
        }
        self.push(parent, name, node.kind, node.size, node.mtime);
    }

    /// The listing's bytes: folders in breadth-first order, each one's
    /// children folders first, then by name; folder sizes summed.
    pub fn finish(mut self) -> Vec<u8> {
        let nodes = &mut self.nodes;
        let mut sorted: Vec<Vec<u32>> = Vec::with_capacity(nodes.len());
        for i in 0..nodes.len() {
            let mut children = std::mem::take(&mut nodes[i].children);
            children.sort_by(|&a, &b| {
                let (a, b) = (&nodes[a as usize], &nodes[b as usize]);
                (a.kind != NodeKind::Dir, a.name.as_bytes())
                    .cmp(&(b.kind != NodeKind::Dir, b.name.as_bytes()))
            });
            sorted.push(children);
        }
        // Breadth-first order; a folder's children land side by side.
        let mut order: Vec<u32> = vec![0];
        let mut first_child = vec![0u32; nodes.len()];
        let mut at = 0;
        while at < order.len() {
            let i = order[at] as usize;
            first_child[i] = order.len() as u32;
            order.extend_from_slice(&sorted[i]);
            at += 1;
        }
        // Folder sizes: children come after their parent, so a reverse
        // walk adds each entry into its parent after its own total.
        for &i in order.iter().skip(1).rev() {
            let (size, parent) = (nodes[i as usize].size, nodes[i as usize].parent);
            let p = &mut nodes[parent as usize].size;
            *p = p.saturating_add(size);
        }
        let names_len: usize = order.iter().map(|&i| nodes[i as usize].name.len()).sum();
        let mut out = Vec::with_capacity(HEADER + order.len() * RECORD + names_len);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(order.len() as u32).to_le_bytes());
        out.extend_from_slice(&(names_len as u32).to_le_bytes());
        let mut name_off = 0u32;
        for &i in &order {
            let n = &nodes[i as usize];
            out.extend_from_slice(&name_off.to_le_bytes());
            out.extend_from_slice(&(n.name.len() as u16).to_le_bytes());
            out.push(kind_byte(n.kind));
            out.push(0);
            out.extend_from_slice(&n.mtime.to_le_bytes());
            out.extend_from_slice(&n.size.to_le_bytes());
            out.extend_from_slice(&first_child[i as usize].to_le_bytes());
            out.extend_from_slice(&(sorted[i as usize].len() as u32).to_le_bytes());
            name_off += n.name.len() as u32;
        }
        for &i in &order {
            out.extend_from_slice(nodes[i as usize].name.as_bytes());
        }
        out
    }
}

/// Why a listing could not answer.
#[derive(Debug, PartialEq, Eq)]
pub enum ListingError {
    /// No entry has this path.
    NotFound,
    /// The path names a file, not a folder.
    NotAFolder,
    /// The file is damaged (list the snapshot again).
    Damaged,
}

/// One entry of a listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Item<'a> {
    pub name: &'a str,
    pub kind: FileKind,
    pub size: u64,
    pub mtime: i64,
    first_child: u32,
    children: u32,
}

/// A listing read from its file.
pub struct Listing {
    bytes: Vec<u8>,
    count: u32,
    names_at: usize,
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

impl Listing {
    pub fn parse(bytes: Vec<u8>) -> Result<Self, ListingError> {
        if bytes.get(..8) != Some(MAGIC.as_slice()) {
            return Err(ListingError::Damaged);
        }
        let count = u32_at(&bytes, 8).ok_or(ListingError::Damaged)?;
        let names_len = u32_at(&bytes, 12).ok_or(ListingError::Damaged)? as usize;
        let names_at = HEADER + count as usize * RECORD;
        if count == 0 || bytes.len() != names_at + names_len {
            return Err(ListingError::Damaged);
        }
        Ok(Self {
            bytes,
            count,
            names_at,
        })
    }

    /// Bytes it takes (for the cache's budget).
    pub fn byte_len(&self) -> usize {
        self.bytes.len()
    }

    /// Entries, the root not counted.
    pub fn entries(&self) -> usize {
        self.count as usize - 1
    }

    fn item(&self, i: u32) -> Result<Item<'_>, ListingError> {
        if i >= self.count {
            return Err(ListingError::Damaged);
        }
        let b = &self.bytes;
        let at = HEADER + i as usize * RECORD;
        let rec = b.get(at..at + RECORD).ok_or(ListingError::Damaged)?;
        let name_off = u32_at(rec, 0).ok_or(ListingError::Damaged)? as usize;
        let name_len = u16::from_le_bytes([rec[4], rec[5]]) as usize;
        let kind = file_kind(rec[6]).ok_or(ListingError::Damaged)?;
        let name = b
            .get(self.names_at + name_off..self.names_at + name_off + name_len)
            .and_then(|n| std::str::from_utf8(n).ok())
            .ok_or(ListingError::Damaged)?;
        let first_child = u32_at(rec, 24).ok_or(ListingError::Damaged)?;
        let children = u32_at(rec, 28).ok_or(ListingError::Damaged)?;
        if u64::from(first_child) + u64::from(children) > u64::from(self.count) {
            return Err(ListingError::Damaged);
        }
        Ok(Item {
            name,
            kind,
            size: u64_at(rec, 16).ok_or(ListingError::Damaged)?,
            mtime: i64::from_le_bytes(rec[8..16].try_into().map_err(|_| ListingError::Damaged)?),
            first_child,
            children,
        })
    }

    /// The child of folder `dir` called `name`: folders first, then the
    /// rest, each sorted by name, so two binary searches.
    fn child(&self, dir: &Item<'_>, name: &str) -> Result<Option<u32>, ListingError> {
        let (start, end) = (dir.first_child, dir.first_child + dir.children);
        // Where the folders end.
        let (mut lo, mut hi) = (start, end);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.item(mid)?.kind == FileKind::Dir {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        let split = lo;
        for (mut lo, mut hi) in [(start, split), (split, end)] {
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                match self.item(mid)?.name.as_bytes().cmp(name.as_bytes()) {
                    std::cmp::Ordering::Equal => return Ok(Some(mid)),
                    std::cmp::Ordering::Less => lo = mid + 1,
                    std::cmp::Ordering::Greater => hi = mid,
                }
            }
        }
        Ok(None)
    }

    /// The entry at `path` (the root for `/`).
    pub fn find(&self, path: &SnapshotPath) -> Result<Item<'_>, ListingError> {
        let mut at = self.item(0)?;
        for part in path.components() {
            if at.kind != FileKind::Dir {
                return Err(ListingError::NotFound);
            }
            match self.child(&at, part)? {
                Some(i) => at = self.item(i)?,
                None => return Err(ListingError::NotFound),
            }
        }
        Ok(at)
    }

    /// One page of the folder at `path`: `limit` entries from `offset`.
    pub fn page(
        &self,
        path: &SnapshotPath,
        offset: usize,
        limit: usize,
    ) -> Result<FileList, ListingError> {
        let dir = self.find(path)?;
        if dir.kind != FileKind::Dir {
            return Err(ListingError::NotAFolder);
        }
        let total = dir.children as usize;
        let start = offset.min(total);
        let end = start.saturating_add(limit).min(total);
        let mut entries = Vec::with_capacity(end - start);
        for i in start..end {
            let item = self.item(dir.first_child + i as u32)?;
            entries.push(FileEntry {
                name: item.name.to_owned(),
                path: path.join(item.name),
                kind: item.kind,
                size: item.size,
                mtime: OffsetDateTime::from_unix_timestamp(item.mtime)
                    .unwrap_or(OffsetDateTime::UNIX_EPOCH)
                    .into(),
            });
        }
        Ok(FileList {
            path: path.clone(),
            entries,
            total,
            next_cursor: (end < total).then(|| end.to_string()),
        })
    }
}

/// The last listings read, shared by the agent's requests, within a byte
/// budget (a folder view then costs no file read at all).
pub struct Cache {
    budget: usize,
    /// Most recently used first.
    kept: std::sync::Mutex<Vec<(String, Arc<Listing>)>>,
}

impl Cache {
    pub fn new(budget: usize) -> Self {
        Self {
            budget,
            kept: std::sync::Mutex::new(Vec::new()),
        }
    }

    pub fn get(&self, key: &str) -> Option<Arc<Listing>> {
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        let at = kept.iter().position(|(k, _)| k == key)?;
        let hit = kept.remove(at);
        let listing = hit.1.clone();
        kept.insert(0, hit);
        Some(listing)
    }

    /// Keeps `listing` first; older ones go while over the budget (the
    /// newest stays even when it alone is bigger: its folder views would
    /// otherwise each read the whole file).
    pub fn put(&self, key: String, listing: Arc<Listing>) {
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        kept.retain(|(k, _)| *k != key);
        kept.insert(0, (key, listing));
        let mut used = 0;
        let mut first = true;
        kept.retain(|(_, l)| {
            used += l.byte_len();
            std::mem::take(&mut first) || used <= self.budget
        });
    }

    /// Drops what `keep` says no (a server's repository archived, a tree
    /// no snapshot has any more).
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        kept.retain(|(k, _)| keep(k));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(path: &str, kind: NodeKind, size: u64) -> LsNode {
        LsNode {
            path: path.to_owned(),
            kind,
            size,
            mtime: 1_700_000_000,
        }
    }

    fn sample(prefix: Option<&str>) -> Listing {
        let p = prefix.unwrap_or("");
        let mut b = Builder::new(prefix);
        for (path, kind, size) in [
            ("/world", NodeKind::Dir, 0),
            ("/world/level.dat", NodeKind::File, 10),
            ("/world/region", NodeKind::Dir, 0),
            ("/world/region/r.0.0.mca", NodeKind::File, 100),
            ("/world/region/r.0.1.mca", NodeKind::File, 200),
            ("/a-file", NodeKind::File, 1),
            ("/zz", NodeKind::Dir, 0),
            ("/link", NodeKind::Symlink, 0),
            ("/*", NodeKind::File, 5),
        ] {
            b.add(node(&format!("{p}{path}"), kind, size));
        }
        Listing::parse(b.finish()).unwrap()
    }

    fn names(list: &FileList) -> Vec<&str> {
        list.entries.iter().map(|e| e.name.as_str()).collect()
    }

    #[test]
    fn folders_come_first_then_names_and_sizes_add_up() {
        let l = sample(None);
        let root = l.page(&SnapshotPath::root(), 0, 100).unwrap();
        assert_eq!(names(&root), ["world", "zz", "*", "a-file", "link"]);
        assert_eq!(root.entries[0].size, 310);
        assert_eq!(root.entries[0].path.as_absolute(), "/world");
        let world = l
            .page(&SnapshotPath::parse("world").unwrap(), 0, 100)
            .unwrap();
        assert_eq!(names(&world), ["region", "level.dat"]);
        assert_eq!(world.entries[1].kind, FileKind::File);
        assert_eq!(world.entries[1].path.as_absolute(), "/world/level.dat");
        assert_eq!(
            l.find(&SnapshotPath::parse("/world/region/r.0.1.mca").unwrap())
                .unwrap()
                .size,
            200
        );
        assert_eq!(l.find(&SnapshotPath::parse("*").unwrap()).unwrap().size, 5);
        assert_eq!(l.entries(), 9);
    }

    #[test]
    fn pages_follow_cursors_and_errors_are_told_apart() {
        let l = sample(None);
        let first = l.page(&SnapshotPath::root(), 0, 2).unwrap();
        assert_eq!((names(&first), first.total), (vec!["world", "zz"], 5));
        let cursor: usize = first.next_cursor.unwrap().parse().unwrap();
        let rest = l.page(&SnapshotPath::root(), cursor, 10).unwrap();
        assert_eq!(names(&rest), ["*", "a-file", "link"]);
        assert_eq!(rest.next_cursor, None);
        assert!(
            l.page(&SnapshotPath::root(), 99, 10)
                .unwrap()
                .entries
                .is_empty()
        );
        let missing = SnapshotPath::parse("world/nope").unwrap();
        assert_eq!(l.page(&missing, 0, 1).err(), Some(ListingError::NotFound));
        let under_file = SnapshotPath::parse("a-file/x").unwrap();
        assert_eq!(l.find(&under_file).err(), Some(ListingError::NotFound));
        let file = SnapshotPath::parse("a-file").unwrap();
        assert_eq!(l.page(&file, 0, 1).err(), Some(ListingError::NotAFolder));
    }

    #[test]
    fn nested_snapshots_are_listed_from_their_folder() {
        let l = sample(Some("/var/lib/pterodactyl/volumes/x"));
        let root = l.page(&SnapshotPath::root(), 0, 100).unwrap();
        assert_eq!(names(&root), ["world", "zz", "*", "a-file", "link"]);
        // Entries outside the folder are not shown.
        let mut b = Builder::new(Some("/srv/x/"));
        b.add(node("/srv", NodeKind::Dir, 0));
        b.add(node("/srv/x", NodeKind::Dir, 0));
        b.add(node("/srv/xy", NodeKind::File, 3));
        b.add(node("/srv/x/a", NodeKind::File, 3));
        let l = Listing::parse(b.finish()).unwrap();
        assert_eq!(names(&l.page(&SnapshotPath::root(), 0, 9).unwrap()), ["a"]);
    }

    #[test]
    fn missing_parents_are_made_and_damage_is_an_error() {
        let mut b = Builder::new(None);
        b.add(node("/a/b/c", NodeKind::File, 7));
        b.add(node("/a", NodeKind::Dir, 0));
        let bytes = b.finish();
        let l = Listing::parse(bytes.clone()).unwrap();
        let a = l.page(&SnapshotPath::parse("a").unwrap(), 0, 9).unwrap();
        assert_eq!((names(&a), a.entries[0].size), (vec!["b"], 7));
        assert_eq!(
            l.find(&SnapshotPath::parse("a").unwrap()).unwrap().mtime,
            1_700_000_000
        );
        for cut in [0, 7, 15, bytes.len() - 1] {
            assert!(Listing::parse(bytes[..cut].to_vec()).is_err());
        }
        // A record pointing past the end is caught on use, not a panic.
        let mut bad = bytes.clone();
        bad[HEADER + 24..HEADER + 28].copy_from_slice(&1000u32.to_le_bytes());
        let l = Listing::parse(bad).unwrap();
        assert_eq!(
            l.page(&SnapshotPath::root(), 0, 9).err(),
            Some(ListingError::Damaged)
        );
    }

    #[test]
    fn the_cache_keeps_recent_listings_within_its_budget() {
        let one = Arc::new(sample(None));
        let size = one.byte_len();
        let cache = Cache::new(size * 2);
        cache.put("a".into(), one.clone());
        cache.put("b".into(), one.clone());
        assert!(cache.get("a").is_some());
        cache.put("c".into(), one.clone());
        assert!(cache.get("b").is_none(), "least recently used goes first");
        assert!(cache.get("a").is_some() && cache.get("c").is_some());
        cache.retain(|k| k != "a");
        assert!(cache.get("a").is_none());
        // A listing bigger than the budget is still kept, alone.
        let small = Cache::new(size / 2);
        small.put("x".into(), one.clone());
        assert!(small.get("x").is_some());
        small.put("y".into(), one.clone());
        assert!(small.get("x").is_none() && small.get("y").is_some());
    }

    #[test]
    fn a_snapshot_bigger_than_a_listing_takes_is_told() {
        let mut b = Builder::new(None);
        for i in 0..MAX_ENTRIES + 1 {
            b.add(node(&format!("/d/f{i}"), NodeKind::File, 1));
            if b.is_full() {
                assert_eq!(i, MAX_ENTRIES - 2, "the root and /d count too");
                return;
            }
        }
        panic!("never full");
    }
}

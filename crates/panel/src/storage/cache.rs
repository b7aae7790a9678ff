//! The rows every signed-in request reads again — its session and user, the
//! server, a subuser's permissions, the server's node and sealed key, the
//! origins and notes of a list page — kept in memory between requests, so
//! a busy list page costs no query.
//!
//! **When an answer may come from here.** Everything held is tagged with a
//! generation; it answers only while its generation is the current one.
//! The generation moves on (and everything is dropped):
//! - after every write this process makes through [`super::Storage`]
//!   (after the statement, or after the transaction's commit), whatever
//!   table it touched, so a change made through this panel is seen by the
//!   very next request;
//! - when another process changed a table read here (the admin commands, a
//!   second panel on the same PostgreSQL): triggers report it, see
//!   [`super::Storage::watch_changes`]. On PostgreSQL the report arrives at
//!   the other transaction's commit (LISTEN/NOTIFY); on SQLite the watcher
//!   reads a counter the triggers move, every [`SQLITE_POLL`].
//!
//! The cache answers only while the watcher runs and has confirmed it is
//! hearing reports within [`TRUST_FOR`]; a process that does not watch (the
//! admin commands, tests of storage alone), a watcher that lost its
//! database, or one that fell behind sends every read to the database.
//!
//! A read that began before a change and ends after it is not kept: it
//! takes a ticket (the generation) before asking the database and is
//! stored only if the generation is still the ticket's.
//!
//! Sealed keys stay sealed here; the cache holds what the database holds.
//! Every shelf is bounded ([`MAX_ENTRIES`]; a full shelf is emptied) and
//! misses of unknown sessions and servers are not kept, so guessed cookies
//! or UUIDs can not fill it.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use api::Permission;

use super::{Node, PageMarks, Server, Session, User};

/// How often the SQLite watcher reads the change counter: the longest a
/// change another process makes goes unseen here.
pub(super) const SQLITE_POLL: Duration = Duration::from_millis(100);
/// How often the PostgreSQL watcher sends itself a heartbeat.
pub(super) const BEAT: Duration = Duration::from_millis(250);
/// How long after the moment a confirmation vouches for (the SQLite poll's
/// start, the heartbeat's sending) the cache may answer: a watcher that
/// falls behind further sends every read to the database.
pub(super) const TRUST_FOR: Duration = Duration::from_secs(1);
/// Entries per shelf before it is emptied.
pub(super) const MAX_ENTRIES: usize = 20_000;
/// Bytes of page marks (snapshot IDs and notes, plus [`ENTRY_BYTES`] each)
/// held before that shelf is emptied: a page can name 100 snapshots with
/// 500-character notes.
pub(super) const MAX_MARK_BYTES: usize = 16 << 20;
/// What one held page of marks costs beyond its text (maps, key, slot).
const ENTRY_BYTES: usize = 192;

/// One kind of cached read.
pub(super) struct Shelf<K, V> {
    items: HashMap<K, V>,
    /// What the items weigh, by `weigh`; emptied when past `limit`.
    used: usize,
    limit: usize,
    weigh: fn(&K, &V) -> usize,
}

impl<K: Hash + Eq, V: Clone> Shelf<K, V> {
    /// A shelf of at most [`MAX_ENTRIES`] items.
    fn new() -> Self {
        Self::weighed(MAX_ENTRIES, |_, _| 1)
    }

    fn weighed(limit: usize, weigh: fn(&K, &V) -> usize) -> Self {
        Self {
            items: HashMap::new(),
            used: 0,
            limit,
            weigh,
        }
    }

    fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.items.get(key).cloned()
    }

    fn put(&mut self, key: K, value: V) {
        let weight = (self.weigh)(&key, &value);
        if weight > self.limit {
            return;
        }
        if let Some(old) = self.items.remove(&key) {
            self.used -= (self.weigh)(&key, &old);
        }
        if self.used + weight > self.limit || self.items.len() >= MAX_ENTRIES {
            self.items.clear();
            self.used = 0;
        }
        self.used += weight;
        self.items.insert(key, value);
    }
}

/// A node and the sealed key of one of its servers.
type NodeAndKey = (Node, Option<String>);

/// The shelves, one per cached read.
pub(super) struct Shelves {
    /// By session ID hash (found ones only).
    pub(super) sessions: Shelf<String, Option<(Session, User)>>,
    /// By UUID (found ones only).
    pub(super) servers: Shelf<String, Option<Server>>,
    /// By (server, user): `None` when the user is not a subuser there.
    pub(super) subusers: Shelf<(i64, i64), Option<Vec<Permission>>>,
    /// By (node, server): the node and the server's sealed key.
    pub(super) targets: Shelf<(i64, i64), Option<NodeAndKey>>,
    /// By server and the page's snapshot IDs.
    pub(super) marks: Shelf<(i64, String), PageMarks>,
}

impl Shelves {
    fn new() -> Self {
        Self {
            sessions: Shelf::new(),
            servers: Shelf::new(),
            subusers: Shelf::new(),
            targets: Shelf::new(),
            marks: Shelf::weighed(MAX_MARK_BYTES, |(_, ids), marks| {
                ENTRY_BYTES
                    + ids.len()
                    + marks.origins.keys().map(|id| id.len() + 16).sum::<usize>()
                    + marks
                        .notes
                        .iter()
                        .map(|(id, n)| id.len() + n.len())
                        .sum::<usize>()
            }),
        }
    }
}

struct State {
    generation: u64,
    /// Until when the watcher's last confirmation lets the cache answer.
    trusted_until: Option<Instant>,
    shelves: Shelves,
}

/// See the module documentation.
pub(super) struct ReadCache {
    state: Mutex<State>,
}

/// Proof of the generation a database read started in.
#[derive(Debug, Clone, Copy)]
pub(super) struct Ticket(u64);

/// What a lookup found.
pub(super) enum Lookup<V> {
    Hit(V),
    /// Not held (or not trusted now): read the database, then
    /// [`ReadCache::keep`] the answer with this ticket.
    Miss(Ticket),
}

impl ReadCache {
    /// Whether the cache may answer now.
    #[cfg(test)]
    pub(super) fn trusted(&self) -> bool {
        self.lock()
            .trusted_until
            .is_some_and(|t| Instant::now() < t)
    }

    pub(super) fn new() -> Self {
        Self {
            state: Mutex::new(State {
                generation: 0,
                trusted_until: None,
                shelves: Shelves::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Looks `key` up on the shelf `pick` chooses.
    pub(super) fn lookup<K, Q, V>(
        &self,
        pick: impl FnOnce(&mut Shelves) -> &mut Shelf<K, V>,
        key: &Q,
    ) -> Lookup<V>
    where
        K: Hash + Eq + std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        V: Clone,
    {
        let mut state = self.lock();
        let ticket = Ticket(state.generation);
        if state.trusted_until.is_none_or(|t| Instant::now() >= t) {
            return Lookup::Miss(ticket);
        }
        match pick(&mut state.shelves).get(key) {
            Some(v) => Lookup::Hit(v),
            None => Lookup::Miss(ticket),
        }
    }

    /// Keeps what a read that took `ticket` found, unless something
    /// changed since.
    pub(super) fn keep<K, V>(
        &self,
        ticket: Ticket,
        pick: impl FnOnce(&mut Shelves) -> &mut Shelf<K, V>,
        key: K,
        value: V,
    ) where
        K: Hash + Eq,
        V: Clone,
    {
        let mut state = self.lock();
        let trusted = state.trusted_until.is_some_and(|t| Instant::now() < t);
        if state.generation == ticket.0 && trusted {
            pick(&mut state.shelves).put(key, value);
        }
    }

    /// Something changed: nothing held is good any more.
    pub(super) fn changed(&self) {
        let old = {
            let mut state = self.lock();
            state.generation += 1;
            std::mem::replace(&mut state.shelves, Shelves::new())
        };
        // Freed outside the lock.
        drop(old);
    }

    /// The watcher has heard every change committed before `since` (the
    /// SQLite poll's start, the heartbeat's sending): answers may come
    /// from here until `since` + [`TRUST_FOR`].
    pub(super) fn confirmed(&self, since: Instant) {
        let mut state = self.lock();
        let until = since + TRUST_FOR;
        if state.trusted_until.is_none_or(|t| t < until) {
            state.trusted_until = Some(until);
        }
    }

    /// The watcher lost the database (or stopped): nothing is trusted
    /// until it confirms again, and what is held is dropped.
    pub(super) fn distrust(&self) {
        let old = {
            let mut state = self.lock();
            state.trusted_until = None;
            state.generation += 1;
            std::mem::replace(&mut state.shelves, Shelves::new())
        };
        drop(old);
    }

    /// This process moved a session's `last_seen_at` (not a change anyone
    /// else's cache needs to hear of): the held copy follows.
    pub(super) fn touched(&self, id_hash: &str, now: i64) {
        let mut state = self.lock();
        if let Some(Some((session, _))) = state.shelves.sessions.items.get_mut(id_hash) {
            session.last_seen_at = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn miss_ticket(c: &ReadCache, key: &str) -> Option<Ticket> {
        match c.lookup(|s| &mut s.servers, key) {
            Lookup::Hit(_) => None,
            Lookup::Miss(t) => Some(t),
        }
    }

    fn server(name: &str) -> Server {
        Server {
            id: 1,
            uuid: api::ServerUuid::parse("6f1c2a4e-7b3d-4e8f-9a0b-1c2d3e4f5a6b").unwrap(),
            name: name.into(),
            owner_id: 1,
            node_id: 1,
            backup_limit: 0,
            ptero_id: None,
        }
    }

    fn hit(c: &ReadCache, key: &str) -> Option<String> {
        match c.lookup(|s| &mut s.servers, key) {
            Lookup::Hit(s) => s.map(|s| s.name),
            Lookup::Miss(_) => None,
        }
    }

    #[test]
    fn nothing_is_kept_or_answered_until_the_watcher_confirms() {
        let c = ReadCache::new();
        let t = miss_ticket(&c, "a").unwrap();
        c.keep(t, |s| &mut s.servers, "a".into(), Some(server("one")));
        assert_eq!(hit(&c, "a"), None, "kept without a watcher");
        c.confirmed(Instant::now());
        let t = miss_ticket(&c, "a").unwrap();
        c.keep(t, |s| &mut s.servers, "a".into(), Some(server("one")));
        assert_eq!(hit(&c, "a").as_deref(), Some("one"));
        c.distrust();
        assert_eq!(
            hit(&c, "a"),
            None,
            "answered after the watcher lost the database"
        );
    }

    #[test]
    fn a_read_that_overlapped_a_change_is_not_kept() {
        let c = ReadCache::new();
        c.confirmed(Instant::now());
        let before = miss_ticket(&c, "a").unwrap();
        // A write lands while the read is at the database.
        c.changed();
        c.keep(before, |s| &mut s.servers, "a".into(), Some(server("old")));
        assert_eq!(hit(&c, "a"), None, "a read from before the change was kept");
        let after = miss_ticket(&c, "a").unwrap();
        c.keep(after, |s| &mut s.servers, "a".into(), Some(server("new")));
        assert_eq!(hit(&c, "a").as_deref(), Some("new"));
        c.changed();
        assert_eq!(hit(&c, "a"), None, "held across a change");
    }

    #[test]
    fn confirmations_expire() {
        let c = ReadCache::new();
        c.lock().trusted_until = Some(Instant::now());
        let t = miss_ticket(&c, "a").unwrap();
        c.keep(t, |s| &mut s.servers, "a".into(), Some(server("one")));
        assert_eq!(hit(&c, "a"), None, "answered past the confirmation");
    }

    #[test]
    fn a_full_shelf_is_emptied_not_grown() {
        let mut shelf: Shelf<u32, u32> = Shelf::new();
        for i in 0..(MAX_ENTRIES as u32 + 5) {
            shelf.put(i, i);
        }
        assert!(shelf.items.len() <= MAX_ENTRIES);
        assert_eq!(
            shelf.get(&(MAX_ENTRIES as u32 + 4)),
            Some(MAX_ENTRIES as u32 + 4)
        );
        // The same key again weighs once.
        let mut shelf: Shelf<u32, u32> = Shelf::new();
        for _ in 0..(MAX_ENTRIES + 5) {
            shelf.put(1, 1);
        }
        assert_eq!((shelf.used, shelf.items.len()), (1, 1));
    }

    #[test]
    fn page_marks_are_held_by_weight() {
        let mut shelves = Shelves::new();
        let note = "n".repeat(2000);
        let ids: Vec<String> = (0..100).map(|i| format!("{i:064}")).collect();
        let marks = PageMarks {
            origins: HashMap::new(),
            notes: ids.iter().map(|id| (id.clone(), note.clone())).collect(),
        };
        // ~200 KB a page: far fewer than MAX_ENTRIES fit.
        for server in 0..1000 {
            shelves.marks.put((server, ids.join(",")), marks.clone());
        }
        assert!(shelves.marks.used <= MAX_MARK_BYTES);
        assert!(
            shelves.marks.items.len() < 100,
            "{}",
            shelves.marks.items.len()
        );
        assert!(shelves.marks.get(&(999, ids.join(","))).is_some());
    }
}

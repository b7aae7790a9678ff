//! Logins and sessions. A session ID is 256 random bits, sent to the browser
//! once (in the cookie) and stored only as its SHA-256, so a database dump
//! can not be replayed as a login. Sessions end on logout, after
//! `idle` without use, or `absolute` after login. Failed logins are limited
//! per client address and per account.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use api::Secret;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use thiserror::Error;

use crate::password;
use crate::storage::{Storage, StorageError, User};

/// Failed attempts allowed in one window from one client address (any
/// accounts), and for one account from one address. There is no limit per
/// account alone: that would let anyone lock a user out from everywhere.
const MAX_FAILURES_PER_ADDRESS: usize = 30;
const MAX_FAILURES_PER_ACCOUNT_ADDRESS: usize = 10;
/// Failures for one account from all addresses that never logged in to it:
/// slows a distributed guesser down, while addresses the user logged in
/// from before keep working.
const MAX_FAILURES_PER_ACCOUNT_FROM_NEW_ADDRESSES: usize = 100;
/// (account, address) pairs remembered as known-good.
const MAX_KNOWN_GOOD: usize = 100_000;
const FAILURE_WINDOW_SECS: i64 = 15 * 60;
/// `last_seen_at` is written at most this often per session.
const TOUCH_EVERY_SECS: i64 = 60;
/// Password checks running at once (argon2id takes 19 MiB each) and waiting
/// for a turn; beyond that a login is answered 429 at once.
const MAX_VERIFYING: usize = 4;
const MAX_WAITING: usize = 64;

#[derive(Debug, Error)]
pub enum AuthError {
    #[error("wrong email or password")]
    InvalidCredentials,
    #[error("too many failed logins; try again later")]
    RateLimited,
    /// Too many logins at once (password checks are bounded).
    #[error("too many logins at once; try again in a moment")]
    Busy,
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// A session just created: the ID goes into the cookie, never anywhere else.
#[derive(Debug)]
pub struct NewSession {
    pub id: Secret,
    pub csrf_token: String,
    pub user: User,
}

/// A live session and its user.
#[derive(Debug, Clone)]
pub struct ActiveSession {
    pub user: User,
    pub csrf_token: String,
}

impl ActiveSession {
    /// Compares a presented CSRF token in constant time.
    pub fn csrf_ok(&self, presented: &str) -> bool {
        let a = Sha256::digest(presented.as_bytes());
        let b = Sha256::digest(self.csrf_token.as_bytes());
        bool::from(a.ct_eq(&b))
    }
}

#[derive(Default)]
struct Failures {
    by_key: HashMap<String, Vec<i64>>,
    /// `account|address` pairs that logged in successfully.
    known_good: std::collections::HashSet<String>,
    /// Size of `by_key` at which it is next pruned.
    prune_at: usize,
}

impl Failures {
    fn recent(&mut self, key: &str, now: i64) -> usize {
        let list = self.by_key.entry(key.to_owned()).or_default();
        list.retain(|t| now - *t < FAILURE_WINDOW_SECS);
        list.len()
    }

    /// Takes back one attempt recorded at `now` (a login that succeeded).
    fn release(&mut self, key: &str, now: i64) {
        if let Some(list) = self.by_key.get_mut(key)
            && let Some(i) = list.iter().rposition(|t| *t == now)
        {
            list.remove(i);
        }
    }

    fn add(&mut self, key: &str, now: i64) {
        self.by_key.entry(key.to_owned()).or_default().push(now);
        if self.by_key.len() > self.prune_at.max(100_000) {
            // Bounded memory under a flood: forget the quiet keys, and scan
            // again only once the map doubled.
            self.by_key
                .retain(|_, v| v.last().is_some_and(|t| now - *t < FAILURE_WINDOW_SECS));
            self.prune_at = self.by_key.len() * 2;
        }
    }
}

/// Sessions one user keeps when they are opened through Pterodactyl.
pub const MAX_SESSIONS_PER_USER: i64 = 20;

pub struct Sessions {
    storage: Storage,
    idle: Duration,
    absolute: Duration,
    failures: Mutex<Failures>,
    verifier: password::VerifyPool,
}

/// The address as limits count it: an IPv4-mapped IPv6 address as IPv4, an
/// IPv6 address by its /64 (one customer's whole network), anything else
/// as given.
fn address_key(client: &str) -> String {
    match client
        .parse::<std::net::IpAddr>()
        .map(|ip| ip.to_canonical())
    {
        Ok(std::net::IpAddr::V6(v6)) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        Ok(v4) => v4.to_string(),
        Err(_) => client.to_owned(),
    }
}

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    getrandom::getrandom(&mut b).expect("the system random number generator failed");
    api::hex::encode(&b)
}

fn hash_id(id: &str) -> String {
    api::hex::encode(&Sha256::digest(id.as_bytes()))
}

impl Sessions {
    pub fn new(storage: Storage, idle: Duration, absolute: Duration) -> Self {
        Self {
            storage,
            idle,
            absolute,
            failures: Mutex::new(Failures::default()),
            verifier: password::VerifyPool::new(MAX_VERIFYING, MAX_WAITING),
        }
    }

    fn failures(&self) -> std::sync::MutexGuard<'_, Failures> {
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Checks the credentials and opens a new session (always a new ID).
    /// `client` is the client's address (see `trusted_proxies`).
    pub async fn login(
        &self,
        email: &str,
        pass: &str,
        client: &str,
        now: i64,
    ) -> Result<NewSession, AuthError> {
        let email = email.trim().to_lowercase();
        let client = address_key(client);
        let pair = format!("{email}|{client}");
        // The attempt counts as failed until the password proved right, so
        // parallel guesses can not all pass the check before one failed.
        let keys = {
            let mut f = self.failures();
            let mut keys = vec![
                (format!("ip:{client}"), MAX_FAILURES_PER_ADDRESS),
                (format!("pair:{pair}"), MAX_FAILURES_PER_ACCOUNT_ADDRESS),
            ];
            if !f.known_good.contains(&pair) {
                keys.push((
                    format!("account:{email}"),
                    MAX_FAILURES_PER_ACCOUNT_FROM_NEW_ADDRESSES,
                ));
            }
            if keys.iter().any(|(k, max)| f.recent(k, now) >= *max) {
                return Err(AuthError::RateLimited);
            }
            for (k, _) in &keys {
                f.add(k, now);
            }
            keys
        };
        let ok = self.verify(&email, pass).await;
        let user = match ok {
            Ok(Some(user)) => user,
            Ok(None) => return Err(AuthError::InvalidCredentials),
            Err(e) => {
                let mut f = self.failures();
                for (k, _) in &keys {
                    f.release(k, now);
                }
                return Err(e);
            }
        };
        {
            let mut f = self.failures();
            for (k, _) in &keys {
                f.release(k, now);
            }
            if f.known_good.len() >= MAX_KNOWN_GOOD {
                f.known_good.clear();
            }
            f.known_good.insert(pair);
        }
        Ok(self.open(user, now).await?)
    }

    /// Opens a new session for a user whose identity was proven elsewhere
    /// (Pterodactyl's session). A user keeps at most
    /// [`MAX_SESSIONS_PER_USER`] sessions: a client that never keeps our
    /// cookie can not fill the table.
    pub async fn open_for(&self, user: User, now: i64) -> Result<NewSession, StorageError> {
        let session = self.open(user, now).await?;
        self.storage
            .trim_sessions(session.user.id, MAX_SESSIONS_PER_USER)
            .await?;
        Ok(session)
    }

    async fn open(&self, user: User, now: i64) -> Result<NewSession, StorageError> {
        let id = random_hex(32);
        let csrf_token = random_hex(32);
        self.storage
            .create_session(&hash_id(&id), user.id, &csrf_token, now)
            .await?;
        Ok(NewSession {
            id: Secret::new(id).expect("hex is a valid secret"),
            csrf_token,
            user,
        })
    }

    /// The user whose password this is, checked on the bounded password
    /// pool. Unknown accounts are checked against a decoy, so both failures
    /// take the same time.
    async fn verify(&self, email: &str, pass: &str) -> Result<Option<User>, AuthError> {
        // Accounts synced from Pterodactyl have no password here: they are
        // checked against the decoy like unknown ones, and never match.
        let user = self
            .storage
            .user_by_email(email)
            .await?
            .filter(|u| u.ptero_id.is_none());
        let hash = user
            .as_ref()
            .map_or(password::decoy_hash(), |u| u.password_hash.as_str());
        let ok = self
            .verifier
            .verify(pass, hash)
            .await
            .map_err(|_| AuthError::Busy)?;
        Ok(user.filter(|_| ok))
    }

    /// Ends every session of `user_id` but `keep` (a raw session ID): after
    /// a password change, other browsers must log in again.
    pub async fn end_sessions_of(
        &self,
        user_id: i64,
        keep: Option<&str>,
    ) -> Result<u64, StorageError> {
        self.storage
            .delete_sessions_of(user_id, keep.map(hash_id).as_deref())
            .await
    }

    /// The session behind a cookie value, if it is alive.
    pub async fn resolve(&self, id: &str, now: i64) -> Result<Option<ActiveSession>, StorageError> {
        if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        let id_hash = hash_id(id);
        let Some((mut session, mut user)) = self.storage.session_with_user(&id_hash).await? else {
            return Ok(None);
        };
        let idle = |s: &crate::storage::Session| now - s.last_seen_at >= self.idle.as_secs() as i64;
        if idle(&session) {
            // The cache's copy may be older than another panel's touch.
            let Some(fresh) = self.storage.session_with_user_fresh(&id_hash).await? else {
                return Ok(None);
            };
            (session, user) = fresh;
        }
        let too_old = now - session.created_at >= self.absolute.as_secs() as i64;
        if idle(&session) || too_old {
            self.storage.delete_session(&id_hash).await?;
            return Ok(None);
        }
        if now - session.last_seen_at >= TOUCH_EVERY_SECS {
            self.storage.touch_session(&id_hash, now).await?;
        }
        Ok(Some(ActiveSession {
            user,
            csrf_token: session.csrf_token,
        }))
    }

    /// Deletes the sessions that are past their idle or absolute limit.
    pub async fn sweep(&self, now: i64) -> Result<u64, StorageError> {
        let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
        self.storage
            .expire_sessions(
                now.saturating_sub(secs(self.idle)),
                now.saturating_sub(secs(self.absolute)),
            )
            .await
    }

    /// Ends the session on the server side.
    pub async fn logout(&self, id: &str) -> Result<(), StorageError> {
        self.storage.delete_session(&hash_id(id)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn setup() -> (tempfile::TempDir, Sessions, Storage) {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::connect(&format!("sqlite://{}", dir.path().join("p.db").display()))
            .await
            .unwrap();
        storage
            .create_user(
                "owner@example.com",
                &password::hash("right password"),
                false,
                0,
            )
            .await
            .unwrap();
        let sessions = Sessions::new(
            storage.clone(),
            Duration::from_secs(3600),
            Duration::from_secs(86400),
        );
        (dir, sessions, storage)
    }

    #[tokio::test]
    async fn login_gives_a_fresh_session_that_logout_ends() {
        let (_d, s, storage) = setup().await;
        let a = s
            .login("Owner@Example.com ", "right password", "1.2.3.4", 1000)
            .await
            .unwrap();
        let b = s
            .login("owner@example.com", "right password", "1.2.3.4", 1000)
            .await
            .unwrap();
        assert_ne!(a.id, b.id, "every login gets a new session ID");
        assert_eq!(a.id.expose().len(), 64);
        let live = s.resolve(a.id.expose(), 1001).await.unwrap().unwrap();
        assert_eq!(live.user.email, "owner@example.com");
        assert!(live.csrf_ok(&a.csrf_token));
        assert!(!live.csrf_ok("wrong"));
        assert!(!live.csrf_ok(""));
        // Only the hash is stored.
        assert!(storage.session(a.id.expose()).await.unwrap().is_none());
        s.logout(a.id.expose()).await.unwrap();
        assert!(s.resolve(a.id.expose(), 1002).await.unwrap().is_none());
        assert!(s.resolve(b.id.expose(), 1002).await.unwrap().is_some());
        assert!(s.resolve("../../etc", 1002).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn sessions_expire_when_idle_or_too_old() {
        let (_d, s, _) = setup().await;
        let a = s
            .login("owner@example.com", "right password", "ip", 0)
            .await
            .unwrap();
        // Used every 50 minutes: stays alive until the absolute limit.
        let mut t = 0;
        while t + 3000 < 86400 {
            t += 3000;
            assert!(
                s.resolve(a.id.expose(), t).await.unwrap().is_some(),
                "died at {t}"
            );
        }
        assert!(
            s.resolve(a.id.expose(), 86400).await.unwrap().is_none(),
            "absolute timeout"
        );
        let b = s
            .login("owner@example.com", "right password", "ip", 0)
            .await
            .unwrap();
        assert!(
            s.resolve(b.id.expose(), 3600).await.unwrap().is_none(),
            "idle timeout"
        );
    }

    #[tokio::test]
    async fn failed_logins_are_limited_per_account_and_address_and_per_address() {
        let (_d, s, _) = setup().await;
        for _ in 0..MAX_FAILURES_PER_ACCOUNT_ADDRESS {
            assert!(matches!(
                s.login("owner@example.com", "wrong", "9.9.9.9", 100).await,
                Err(AuthError::InvalidCredentials)
            ));
        }
        // That account from that address is locked, even with the right password…
        assert!(matches!(
            s.login("owner@example.com", "right password", "9.9.9.9", 101)
                .await,
            Err(AuthError::RateLimited)
        ));
        // …but the real user elsewhere is not locked out…
        assert!(
            s.login("owner@example.com", "right password", "5.5.5.5", 101)
                .await
                .is_ok()
        );
        // …and the lock ends with the window.
        assert!(
            s.login(
                "owner@example.com",
                "right password",
                "9.9.9.9",
                100 + FAILURE_WINDOW_SECS
            )
            .await
            .is_ok()
        );
        // Many accounts from one address hit the address limit.
        for i in 0..MAX_FAILURES_PER_ADDRESS {
            assert!(matches!(
                s.login(&format!("nobody{i}@example.com"), "x", "7.7.7.7", 5000)
                    .await,
                Err(AuthError::InvalidCredentials)
            ));
        }
        assert!(matches!(
            s.login("owner@example.com", "right password", "7.7.7.7", 5001)
                .await,
            Err(AuthError::RateLimited)
        ));
    }

    #[tokio::test]
    async fn an_ipv6_network_counts_as_one_address_and_new_addresses_are_capped_per_account() {
        let (_d, s, _) = setup().await;
        // Every guess from another address of one /64: they count as one.
        for i in 0..MAX_FAILURES_PER_ACCOUNT_ADDRESS {
            let ip = format!("2001:db8:1:2::{:x}", i + 1);
            assert!(matches!(
                s.login("owner@example.com", "wrong", &ip, 100).await,
                Err(AuthError::InvalidCredentials)
            ));
        }
        assert!(matches!(
            s.login(
                "owner@example.com",
                "right password",
                "2001:db8:1:2::ffff",
                101
            )
            .await,
            Err(AuthError::RateLimited)
        ));
        assert_eq!(address_key("::ffff:10.1.2.3"), "10.1.2.3");
        // The user logs in from home once; a distributed guesser then fills
        // the per-account budget for new addresses…
        assert!(
            s.login("owner@example.com", "right password", "9.9.9.1", 200)
                .await
                .is_ok()
        );
        for i in 0..MAX_FAILURES_PER_ACCOUNT_FROM_NEW_ADDRESSES {
            let ip = format!("10.0.{}.{}", i / 200, i % 200 + 1);
            let _ = s.login("owner@example.com", "guess", &ip, 300).await;
        }
        assert!(matches!(
            s.login("owner@example.com", "right password", "172.16.0.1", 301)
                .await,
            Err(AuthError::RateLimited)
        ));
        // …but home still works.
        assert!(
            s.login("owner@example.com", "right password", "9.9.9.1", 302)
                .await
                .is_ok()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn parallel_guesses_are_counted_before_they_are_checked() {
        let (_d, s, _) = setup().await;
        let s = std::sync::Arc::new(s);
        let guesses: Vec<_> = (0..40)
            .map(|i| {
                let s = s.clone();
                tokio::spawn(async move {
                    s.login("owner@example.com", &format!("guess {i}"), "6.6.6.6", 100)
                        .await
                })
            })
            .collect();
        let mut checked = 0;
        for g in guesses {
            match g.await.unwrap() {
                Err(AuthError::InvalidCredentials) => checked += 1,
                Err(AuthError::RateLimited | AuthError::Busy) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(
            checked, MAX_FAILURES_PER_ACCOUNT_ADDRESS,
            "guesses verified"
        );
    }
}

//! Sign-in with Pterodactyl: a visitor's Pterodactyl session cookie, or a
//! script's client API key, is shown to Pterodactyl's
//! `GET /api/client/account` (server to server), and the answer names the
//! synced user. Answers are cached for a minute by a hash of the credential
//! (never the credential itself); the credential is never logged or stored.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::ClientIdentity;
use crate::Panel;
use crate::PanelError;
use crate::storage::User;

/// How long an answer of Pterodactyl is reused.
const CACHE_FOR: Duration = Duration::from_secs(60);
/// Entries kept at most; the cache starts over when full.
const CACHE_MAX: usize = 10_000;
/// Questions to Pterodactyl in flight at once; more wait for none (the
/// visitor is not signed in this time).
pub(crate) const PARALLEL_LOOKUPS: usize = 8;

/// Pterodactyl's recent answers: credential hash → (Pterodactyl user id and
/// admin flag, or not signed in; when asked).
#[derive(Default)]
pub struct IdentityCache {
    entries: HashMap<[u8; 32], (Option<Known>, Instant)>,
}

/// A Pterodactyl user id and whether that user is a root admin there.
type Known = (u64, bool);

/// How long a sign-in waits for a free lookup.
const LOOKUP_WAIT: Duration = Duration::from_secs(3);

/// Whether a credential could be one Pterodactyl issued: a client key
/// (`ptlc_` and letters/digits), or Laravel's encrypted cookie (base64 JSON,
/// so `eyJ…`). Anything else is not worth asking about.
fn plausible(who: &ClientIdentity) -> bool {
    match who {
        ClientIdentity::ClientKey(k) => {
            let k = k.expose();
            k.len() <= 128
                && k.strip_prefix("ptlc_")
                    .is_some_and(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_alphanumeric()))
        }
        ClientIdentity::Session(c) => {
            let c = c.expose();
            c.starts_with("eyJ") && (16..=4096).contains(&c.len())
        }
    }
}

fn fingerprint(who: &ClientIdentity) -> [u8; 32] {
    let (kind, secret) = match who {
        ClientIdentity::Session(s) => ("session", s),
        ClientIdentity::ClientKey(s) => ("key", s),
    };
    let mut h = Sha256::new();
    h.update(kind.as_bytes());
    h.update([0]);
    h.update(secret.expose().as_bytes());
    h.finalize().into()
}

impl Panel {
    /// The synced user `who` is signed in as in Pterodactyl; `None` when
    /// Pterodactyl does not know the credential (signed out, 2FA not done,
    /// a revoked key) or the account is not synced yet. Pterodactyl's admin
    /// flag applies here at once (a demoted admin loses the admin pages at
    /// this sign-in, and their other sessions end).
    pub(crate) async fn pterodactyl_user(
        &self,
        who: &ClientIdentity,
    ) -> Result<Option<User>, PanelError> {
        let Some((found, fresh)) = self.pterodactyl_identity(who).await? else {
            return Ok(None);
        };
        self.synced_user(found, fresh).await
    }

    /// Whether `who` still names `user` in Pterodactyl with nothing to
    /// change here (no admin right to take away); asks the database only
    /// when it does not. `None` when Pterodactyl could not be asked.
    pub(crate) async fn pterodactyl_still(
        &self,
        who: &ClientIdentity,
        user: &User,
    ) -> Option<bool> {
        let (found, fresh) = self.pterodactyl_identity(who).await.ok()??;
        if let (Some((pid, admin)), Some(ours)) = (found, user.ptero_id)
            && i64::try_from(pid) == Ok(ours)
            && (admin || !user.root_admin)
        {
            return Some(true);
        }
        let now = self.synced_user(found, fresh).await.ok()?;
        Some(now.is_some_and(|u| u.id == user.id))
    }

    /// Pterodactyl's answer for `who` (its user id and admin flag, or not
    /// signed in) and whether it is fresh rather than cached; `None`
    /// outside Pterodactyl mode.
    async fn pterodactyl_identity(
        &self,
        who: &ClientIdentity,
    ) -> Result<Option<(Option<Known>, bool)>, PanelError> {
        let Some(setup) = self.pterodactyl() else {
            return Ok(None);
        };
        let key = fingerprint(who);
        let cached = {
            let cache = setup.identities.lock().unwrap_or_else(|p| p.into_inner());
            cache
                .entries
                .get(&key)
                .filter(|(_, at)| at.elapsed() < CACHE_FOR)
                .map(|(found, _)| *found)
        };
        let fresh = cached.is_none();
        let found = match cached {
            Some(found) => found,
            None => {
                if !plausible(who) {
                    return Ok(Some((None, true)));
                }
                // A flood of made-up credentials waits here; real ones get a
                // slot within a moment or are told to try again.
                let _slot = tokio::time::timeout(LOOKUP_WAIT, setup.lookups.acquire())
                    .await
                    .map_err(|_| PanelError::PterodactylUnavailable)?
                    .map_err(|_| PanelError::PterodactylUnavailable)?;
                let account = setup.client.account(who).await.map_err(|e| {
                    tracing::warn!(error = %e, "Pterodactyl sign-in not checked");
                    PanelError::PterodactylUnavailable
                })?;
                let found = account.map(|a| (a.id, a.admin));
                let mut cache = setup.identities.lock().unwrap_or_else(|p| p.into_inner());
                if cache.entries.len() >= CACHE_MAX {
                    cache.entries.clear();
                }
                cache.entries.insert(key, (found, Instant::now()));
                found
            }
        };
        Ok(Some((found, fresh)))
    }

    /// The synced user behind Pterodactyl's answer, its admin flag applied.
    async fn synced_user(
        &self,
        found: Option<Known>,
        fresh: bool,
    ) -> Result<Option<User>, PanelError> {
        let Some((ptero_id, admin)) = found else {
            return Ok(None);
        };
        let Ok(ptero_id) = i64::try_from(ptero_id) else {
            return Ok(None);
        };
        let storage = self.storage();
        let Some(mut user) = storage.user_by_ptero_id(ptero_id).await? else {
            tracing::info!(
                ptero_id,
                "Pterodactyl user signed in before the sync brought their account"
            );
            return Ok(None);
        };
        if user.email == crate::storage::parked_email(ptero_id) {
            // Parked by the sync (their e-mail is a local account's): no
            // access until that is resolved in Pterodactyl.
            return Ok(None);
        }
        // Pterodactyl's word on the admin flag: taken away at once, given
        // only from a fresh answer (a cached one may predate a sync that
        // took it away).
        if user.root_admin && !admin {
            storage
                .update_user(user.id, None, None, Some(false))
                .await?;
            storage.delete_sessions_of(user.id, None).await?;
            user.root_admin = false;
        } else if !user.root_admin && admin && fresh {
            storage.update_user(user.id, None, None, Some(true)).await?;
            user.root_admin = true;
        }
        Ok(Some(user))
    }
}

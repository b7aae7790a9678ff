//! Pterodactyl (1.11) as the source of users, nodes, servers and
//! permissions: typed, read-only clients for its Application and Client APIs.
//!
//! Facts this module is built on, from the source of pterodactyl/panel 1.11
//! (see also `/work/shared/PTERODACTYL.md`):
//!
//! - Authentication is Laravel Sanctum (`auth:sanctum` in the `api` middleware
//!   group, `app/Http/Kernel.php`): first the `web` session guard, then the
//!   bearer token (`ApiKey::findToken`). No credentials → `AuthenticationException`,
//!   rendered by `app/Exceptions/Handler.php` as 401
//!   `{"errors":[{"code":"AuthenticationException","status":"401","detail":"Unauthenticated."}]}`
//!   **only when the request expects JSON**; otherwise it is a 302 to
//!   `/auth/login`. Hence `Accept: application/json` on every request.
//! - Application API (`routes/api-application.php`): the key's user must be a
//!   root admin (`AuthenticateApplicationUser` → 403 otherwise), and an
//!   application key (`ptla_`) needs read access to the resource
//!   (`ApplicationApiRequest::authorize` → 403). A root admin's *client* key
//!   (`ptlc_`) is accepted there too; a non-admin's is 403.
//! - Client API (`routes/api-client.php`): an application key is refused with 403
//!   (`RequireClientApiKey`); a server the user may not see is 404
//!   (`AuthenticateServerAccess`); a missing `backup.*` permission is 403.
//! - Lists are paginated by Laravel and serialised by Fractal with
//!   `PterodactylSerializer`: `{"object":"list","data":[{"object":…,"attributes":…}],
//!   "meta":{"pagination":{"total","count","per_page","current_page","total_pages",
//!   "links":{"previous"?,"next"?}}}}`. The application list endpoints take
//!   `per_page` with **no upper bound** (default 50) and build `links` without
//!   `per_page`/`include`, so we follow `total_pages` with our own URLs and ask
//!   for `sort=id` (an allowed sort) so pages do not shift between requests.
//! - Includes sit *inside* `attributes`: `attributes.relationships.subusers`
//!   (`mergeIncludes` of `PterodactylSerializer`); a key without users-read
//!   gets `{"object":"null_resource","attributes":null}` there.
//! - Rate limits (`config/http.php`): 240 application and 720 client requests
//!   per minute per user by default; a 429 carries `Retry-After`.
//!
//! Secrets (application key, session cookie, client key, Wings token, signed
//! download links) only ever travel in headers or come back in bodies; they are
//! never put in a URL, never printed by `Debug`/`Display`, never part of an
//! error message.

mod api;
mod backups;
mod signin;
mod sync;

pub use api::*;
pub use sync::{Change, Setup, SyncOrigin, SyncReport};

use std::fmt;

use thiserror::Error;

/// Why a call to Pterodactyl failed. No message ever contains a key, cookie,
/// token or signed link; URLs are printed without credentials (a base URL with
/// credentials is refused up front).
#[derive(Debug, Error)]
pub enum PteroError {
    /// No answer: connection refused or timed out, or a proxy in front of
    /// Pterodactyl answered 502/503/504.
    #[error("Pterodactyl at {base} is unreachable: {reason}")]
    Unreachable { base: String, reason: String },
    /// An HTTP status this call does not expect.
    #[error("Pterodactyl answered HTTP {status} to GET {path}")]
    Status { status: u16, path: String },
    /// The body is not what Pterodactyl 1.11 sends (not JSON, a missing or
    /// mistyped field); `what` names the object and field, never a value.
    #[error("Pterodactyl's answer is not understood: {what}")]
    Malformed { what: String },
    /// The credentials were refused (401, or 403 for a key or account without
    /// the needed access); `hint` says what to check.
    #[error("Pterodactyl refused the credentials (HTTP {status}) for GET {path}: {hint}")]
    Unauthorized {
        status: u16,
        path: String,
        hint: &'static str,
    },
    /// A list changed while it was read page by page (its total moved, or an
    /// item showed up twice); nothing read should be applied.
    #[error("Pterodactyl's {what} changed while it was being read; try again")]
    Changed { what: String },
    /// A setting or argument this client cannot use (bad base URL, cookie
    /// name, identifier).
    #[error("invalid Pterodactyl setting: {what}")]
    Invalid { what: String },
}

/// Where Pterodactyl is: `http(s)://host[:port][/prefix]`, without
/// credentials, query or fragment, kept without a trailing slash.
#[derive(Clone, PartialEq, Eq)]
pub struct BaseUrl(String);

impl BaseUrl {
    pub fn parse(raw: &str) -> Result<Self, PteroError> {
        let invalid = |what: &str| PteroError::Invalid {
            what: format!("the Pterodactyl URL {what}"),
        };
        let url = reqwest::Url::parse(raw.trim()).map_err(|_| invalid("is not a URL"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid("must start with https:// or http://"));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(invalid("has no host"));
        }
        // Never echo the URL here: it is the credentials we refuse.
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid("must not contain a user name or password"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(invalid("must not have a query or fragment"));
        }
        Ok(Self(url.as_str().trim_end_matches('/').to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_https(&self) -> bool {
        self.0.starts_with("https://")
    }
}

impl fmt::Display for BaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for BaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BaseUrl({})", self.0)
    }
}

/// A download link signed by Pterodactyl (a Wings JWT or a presigned S3 URL):
/// whoever has it can download the backup for a while, so it is a secret.
/// May be longer than [`api::Secret::MAX_LEN`] (presigned S3 links are).
#[derive(Clone, PartialEq, Eq)]
pub struct SignedUrl(String);

impl SignedUrl {
    /// The link, to hand to the browser (a redirect) and nowhere else.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SignedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SignedUrl(<redacted>)")
    }
}

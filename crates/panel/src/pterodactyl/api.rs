//! The clients: [`ApplicationClient`] (the sync's view of users, nodes and
//! servers) and [`ClientApi`] (who a visitor is, and Pterodactyl's own backups
//! of a server, seen with the visitor's session or client key).
//!
//! Bodies are parsed tolerantly (fields we do not use are ignored, so Pelican's
//! additions do no harm) and strictly where it matters: ids, UUIDs, owners,
//! nodes, permissions and the pagination must be there and well typed, and an
//! error names the object and the field, never a value.

use std::collections::HashSet;
use std::fmt;
use std::time::Duration;

use api::{Secret, ServerUuid};
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, AUTHORIZATION, COOKIE, HeaderName, HeaderValue, RETRY_AFTER};
use serde_json::Value;

use super::{BaseUrl, PteroError, SignedUrl};

/// Items per page on the Application API. Pterodactyl 1.11 sets no upper
/// bound there (`->paginate($request->query('per_page') ?? 50)` in the
/// `UserController`, `NodeController` and `ServerController`); 100 keeps each
/// answer small for PHP while needing few requests.
pub const DEFAULT_PER_PAGE: u32 = 100;
/// What a refused application key needs (`AuthenticateApplicationUser`,
/// `ApplicationApiRequest::authorize`).
const APPLICATION_KEY_HINT: &str = "the application key must be valid, belong to a root admin and may read users, nodes and servers";
/// Our own bound for [`ApplicationClient::with_per_page`].
pub const MAX_PER_PAGE: u32 = 1000;
/// `config('session.cookie')`: `Str::slug(APP_NAME, '_') . '_session'` unless
/// `SESSION_COOKIE` is set, so `pterodactyl_session` on a default install.
pub const DEFAULT_SESSION_COOKIE: &str = "pterodactyl_session";
/// The client backups list caps `per_page` at 50
/// (`min($request->query('per_page') ?? 20, 50)` in `BackupController::index`).
const BACKUPS_PER_PAGE: u32 = 50;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// No Pterodactyl answer we read comes near this.
const MAX_BODY: usize = 32 << 20;
/// How often a 429 is waited out (the Application API allows 240 requests a
/// minute per user by default) and for how long at most each time.
const RATE_LIMIT_RETRIES: u32 = 5;
const MAX_RETRY_WAIT: Duration = Duration::from_secs(60);
/// More pages than this is not a real panel.
const MAX_PAGES: u64 = 1_000_000;

/// A user from `GET /api/application/users` (`UserTransformer`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PteroUser {
    pub id: u64,
    pub uuid: String,
    pub username: String,
    pub email: String,
    pub root_admin: bool,
    /// `2fa`: whether the user has TOTP enabled.
    pub two_factor: bool,
}

/// A node from `GET /api/application/nodes` (`NodeTransformer`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PteroNode {
    pub id: u64,
    pub uuid: String,
    pub name: String,
    pub fqdn: String,
    /// `http` or `https`.
    pub scheme: String,
    pub behind_proxy: bool,
    pub maintenance_mode: bool,
    /// Wings' port.
    pub daemon_listen: u16,
    pub daemon_base: Option<String>,
    /// Changes whenever the node is saved, including a token reset: a sync can
    /// refetch the configuration (one request per node) only when it moved.
    pub updated_at: Option<String>,
}

impl PteroNode {
    /// `scheme://fqdn:port`, e.g. the agent beside Wings on `agent_port`.
    pub fn url_with_port(&self, port: u16) -> String {
        if self.fqdn.contains(':') && !self.fqdn.starts_with('[') {
            format!("{}://[{}]:{port}", self.scheme, self.fqdn)
        } else {
            format!("{}://{}:{port}", self.scheme, self.fqdn)
        }
    }
}

/// What we use of `GET /api/application/nodes/{id}/configuration`
/// (`Node::getConfiguration`, Wings' `config.yml` as JSON).
#[derive(Clone, PartialEq, Eq)]
pub struct NodeConfiguration {
    pub uuid: String,
    pub token_id: String,
    /// Wings' token in clear: full control of the node.
    pub token: Secret,
    pub api_port: u16,
    /// `!behind_proxy && scheme == "https"`.
    pub ssl_enabled: bool,
    /// `system.data`: where the servers' volumes are.
    pub data_dir: String,
}

impl fmt::Debug for NodeConfiguration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeConfiguration")
            .field("uuid", &self.uuid)
            .field("token_id", &self.token_id)
            .field("token", &format_args!("<redacted>"))
            .field("api_port", &self.api_port)
            .field("ssl_enabled", &self.ssl_enabled)
            .field("data_dir", &self.data_dir)
            .finish()
    }
}

/// A server from `GET /api/application/servers?include=subusers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PteroServer {
    pub id: u64,
    pub uuid: ServerUuid,
    /// `uuidShort`: the first 8 characters of the UUID.
    pub identifier: String,
    pub name: String,
    /// `user`: the owner's user id.
    pub owner_id: u64,
    /// `node`: the node's id.
    pub node_id: u64,
    /// `feature_limits.backups`; 0 means "no built-in backups" to Pterodactyl.
    pub backup_limit: u64,
    pub suspended: bool,
    pub subusers: Vec<PteroSubuser>,
}

/// `attributes.relationships.subusers.data[].attributes` (`SubuserTransformer`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PteroSubuser {
    pub id: u64,
    pub user_id: u64,
    /// Such as `backup.read`, `backup.create`, `backup.download`.
    pub permissions: Vec<String>,
}

impl PteroSubuser {
    pub fn has(&self, permission: &str) -> bool {
        self.permissions.iter().any(|p| p == permission)
    }
}

/// The signed-in user, from `GET /api/client/account` (`AccountTransformer`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: u64,
    /// `root_admin`.
    pub admin: bool,
    pub username: String,
    pub email: String,
}

/// `meta` of `GET /api/client/servers/{uuid}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerAccess {
    pub is_owner: bool,
    /// `["*", …]` for the owner and root admins, else the subuser's list.
    pub permissions: Vec<String>,
}

/// One of Pterodactyl's own backups (client `BackupTransformer`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PteroBackup {
    pub uuid: String,
    pub name: String,
    pub is_successful: bool,
    pub is_locked: bool,
    pub checksum: Option<String>,
    pub bytes: u64,
    pub created_at: String,
    pub completed_at: Option<String>,
}

/// How a visitor proves who they are to Pterodactyl's Client API.
#[derive(Clone, PartialEq, Eq)]
pub enum ClientIdentity {
    /// The value of the browser's Pterodactyl session cookie, exactly as the
    /// browser sent it (still encrypted and URL-encoded by Laravel: pass it
    /// on byte for byte, never decode it).
    Session(Secret),
    /// A client API key (`ptlc_…`).
    ClientKey(Secret),
}

impl fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Session(_) => f.write_str("ClientIdentity::Session(<redacted>)"),
            Self::ClientKey(_) => f.write_str("ClientIdentity::ClientKey(<redacted>)"),
        }
    }
}

/// Read-only client for the Application API, authenticated with an
/// application key (`Authorization: Bearer ptla_…`).
#[derive(Clone)]
pub struct ApplicationClient {
    http: Http,
    key: Secret,
    per_page: u32,
}

impl fmt::Debug for ApplicationClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApplicationClient")
            .field("base", &self.http.base)
            .field("key", &format_args!("<redacted>"))
            .field("per_page", &self.per_page)
            .finish()
    }
}

impl ApplicationClient {
    /// `timeout` bounds each request; a 429 is waited out (its `Retry-After`,
    /// at most a minute, five times per request).
    pub fn new(
        base_url: &str,
        application_key: Secret,
        timeout: Duration,
    ) -> Result<Self, PteroError> {
        Ok(Self {
            http: Http::new(base_url, timeout, RATE_LIMIT_RETRIES)?,
            key: application_key,
            per_page: DEFAULT_PER_PAGE,
        })
    }

    /// Items per page, 1 to [`MAX_PER_PAGE`].
    pub fn with_per_page(mut self, per_page: u32) -> Self {
        self.per_page = per_page.clamp(1, MAX_PER_PAGE);
        self
    }

    pub fn base(&self) -> &BaseUrl {
        &self.http.base
    }

    /// Every user, all pages.
    pub async fn users(&self) -> Result<Vec<PteroUser>, PteroError> {
        self.list("users", "user", None, |f| {
            let id = f.id("id")?;
            let f = f.renamed(format!("user {id}"));
            Ok((
                id,
                PteroUser {
                    id,
                    uuid: f.uuid("uuid")?,
                    username: f.string("username")?,
                    email: f.string("email")?,
                    root_admin: f.bool("root_admin")?,
                    two_factor: f.opt_bool("2fa")?.unwrap_or(false),
                },
            ))
        })
        .await
    }

    /// Every node, all pages.
    pub async fn nodes(&self) -> Result<Vec<PteroNode>, PteroError> {
        self.list("nodes", "node", None, |f| {
            let id = f.id("id")?;
            let f = f.renamed(format!("node {id}"));
            let scheme = f.string("scheme")?;
            if scheme != "http" && scheme != "https" {
                return Err(f.bad("scheme", "`http` or `https`"));
            }
            Ok((
                id,
                PteroNode {
                    id,
                    uuid: f.uuid("uuid")?,
                    name: f.string("name")?,
                    fqdn: f.nonempty("fqdn")?,
                    scheme,
                    behind_proxy: f.opt_bool("behind_proxy")?.unwrap_or(false),
                    maintenance_mode: f.opt_bool("maintenance_mode")?.unwrap_or(false),
                    daemon_listen: f.port("daemon_listen")?,
                    daemon_base: f.opt_string("daemon_base")?,
                    updated_at: f.opt_string("updated_at")?,
                },
            ))
        })
        .await
    }

    /// The node's Wings configuration, including its token.
    pub async fn node_configuration(&self, node_id: u64) -> Result<NodeConfiguration, PteroError> {
        let path = format!("/api/application/nodes/{node_id}/configuration");
        let v = self.get_json(&path).await?;
        let f = Fields::new(&v, format!("configuration of node {node_id}"));
        if !v.is_object() {
            return Err(f.malformed("is not a JSON object"));
        }
        let token = f.nonempty("token")?;
        let token = Secret::new(token).map_err(|_| f.bad("token", "a usable token"))?;
        Ok(NodeConfiguration {
            uuid: f.uuid("uuid")?,
            token_id: f.nonempty("token_id")?,
            token,
            api_port: f.port("api.port")?,
            ssl_enabled: f.bool("api.ssl.enabled")?,
            data_dir: f.nonempty("system.data")?,
        })
    }

    /// Every server with its subusers (`?include=subusers`), all pages.
    pub async fn servers_with_subusers(&self) -> Result<Vec<PteroServer>, PteroError> {
        self.list("servers", "server", Some("subusers"), |f| {
            let id = f.id("id")?;
            let f = f.renamed(format!("server {id}"));
            let uuid =
                ServerUuid::parse(&f.string("uuid")?).map_err(|_| f.bad("uuid", "a UUID"))?;
            Ok((
                id,
                PteroServer {
                    id,
                    uuid,
                    identifier: f.string("identifier")?,
                    name: f.string("name")?,
                    owner_id: f.id("user")?,
                    node_id: f.id("node")?,
                    backup_limit: f.u64("feature_limits.backups")?,
                    suspended: f.opt_bool("suspended")?.unwrap_or(false),
                    subusers: subusers(&f, id)?,
                },
            ))
        })
        .await
    }

    async fn get_json(&self, path: &str) -> Result<Value, PteroError> {
        let (status, body) = self.http.get(path, &Credential::Bearer(&self.key)).await?;
        match status {
            StatusCode::OK => parse_json(&body, path),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(PteroError::Unauthorized {
                status: status.as_u16(),
                path: path.to_owned(),
                hint: APPLICATION_KEY_HINT,
            }),
            _ => Err(PteroError::Status {
                status: status.as_u16(),
                path: path.to_owned(),
            }),
        }
    }

    /// Reads `/api/application/{resource}` page by page, in id order. Each
    /// item is `{"object": object, "attributes": …}`; `parse` gets the
    /// attributes and returns the item's id and value. The total must not move
    /// between pages and no id may come twice, else [`PteroError::Changed`].
    async fn list<T>(
        &self,
        resource: &str,
        object: &str,
        include: Option<&str>,
        parse: impl Fn(&Fields<'_>) -> Result<(u64, T), PteroError>,
    ) -> Result<Vec<T>, PteroError> {
        let include = include.map(|i| format!("&include={i}")).unwrap_or_default();
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let mut first: Option<(u64, u64)> = None;
        let mut page = 1u64;
        loop {
            let path = format!(
                "/api/application/{resource}?page={page}&per_page={}&sort=id{include}",
                self.per_page
            );
            let v = self.get_json(&path).await?;
            let listed = ListPage::parse(&v, &format!("page {page} of {resource}"))?;
            if listed.current_page != page {
                return Err(PteroError::Malformed {
                    what: format!(
                        "page {page} of {resource} says it is page {}",
                        listed.current_page
                    ),
                });
            }
            let (total, total_pages) = *first.get_or_insert((listed.total, listed.total_pages));
            if listed.total != total || listed.total_pages != total_pages {
                return Err(PteroError::Changed {
                    what: format!("list of {resource}"),
                });
            }
            for (i, item) in listed.data.iter().enumerate() {
                let ctx = format!("{object} #{} on page {page} of {resource}", i + 1);
                let attributes = attributes(item, object, &ctx)?;
                let (id, value) = parse(&Fields::new(attributes, ctx))?;
                if !seen.insert(id) {
                    return Err(PteroError::Changed {
                        what: format!("list of {resource}"),
                    });
                }
                out.push(value);
            }
            if page >= total_pages {
                break;
            }
            page += 1;
        }
        let total = first.map_or(0, |(t, _)| t);
        if out.len() as u64 != total {
            return Err(PteroError::Changed {
                what: format!("list of {resource}"),
            });
        }
        Ok(out)
    }
}

fn subusers(f: &Fields<'_>, server_id: u64) -> Result<Vec<PteroSubuser>, PteroError> {
    let Some(rel) = f.get("relationships.subusers") else {
        return Err(
            f.malformed("has no `relationships.subusers` (was `include=subusers` ignored?)")
        );
    };
    match rel.get("object").and_then(Value::as_str) {
        Some("list") => {}
        Some("null_resource") => {
            return Err(f.malformed(
                "came with subusers as `null_resource`: the application key may not read users",
            ));
        }
        _ => return Err(f.bad("relationships.subusers.object", "`list`")),
    }
    let Some(data) = rel.get("data").and_then(Value::as_array) else {
        return Err(f.bad("relationships.subusers.data", "an array"));
    };
    let mut out = Vec::with_capacity(data.len());
    for (i, item) in data.iter().enumerate() {
        let ctx = format!("subuser #{} of {}", i + 1, f.ctx);
        let s = Fields::new(attributes(item, "subuser", &ctx)?, ctx);
        let id = s.id("id")?;
        let s = s.renamed(format!("subuser {id} of {}", f.ctx));
        if s.id("server_id")? != server_id {
            return Err(s.bad("server_id", "this server's id"));
        }
        let Some(list) = s.get("permissions").and_then(Value::as_array) else {
            return Err(s.bad("permissions", "an array"));
        };
        let permissions = list
            .iter()
            .map(|p| p.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| s.bad("permissions", "an array of strings"))?;
        out.push(PteroSubuser {
            id,
            user_id: s.id("user_id")?,
            permissions,
        });
    }
    Ok(out)
}

/// Client API calls with a visitor's session cookie or client key.
#[derive(Clone)]
pub struct ClientApi {
    http: Http,
    cookie_name: String,
}

impl fmt::Debug for ClientApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientApi")
            .field("base", &self.http.base)
            .field("cookie_name", &self.cookie_name)
            .finish()
    }
}

impl ClientApi {
    /// A 429 here is an error at once: a visitor is waiting.
    pub fn new(base_url: &str, timeout: Duration) -> Result<Self, PteroError> {
        Ok(Self {
            http: Http::new(base_url, timeout, 0)?,
            cookie_name: DEFAULT_SESSION_COOKIE.to_owned(),
        })
    }

    /// The session cookie's name when Pterodactyl's `APP_NAME` or
    /// `SESSION_COOKIE` changed it.
    pub fn with_session_cookie_name(mut self, name: &str) -> Result<Self, PteroError> {
        let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        if name.is_empty() || !name.bytes().all(token) {
            return Err(PteroError::Invalid {
                what: "the session cookie name is not a cookie name".into(),
            });
        }
        self.cookie_name = name.to_owned();
        Ok(self)
    }

    pub fn base(&self) -> &BaseUrl {
        &self.http.base
    }

    pub fn session_cookie_name(&self) -> &str {
        &self.cookie_name
    }

    /// Who the browser with this Pterodactyl session cookie is; `None` when
    /// not signed in (unknown or expired session, or 2FA not completed:
    /// Pterodactyl logs the user in only after the checkpoint).
    pub async fn account_from_cookie(
        &self,
        cookie_value: &Secret,
    ) -> Result<Option<Account>, PteroError> {
        self.account(&ClientIdentity::Session(cookie_value.clone()))
            .await
    }

    /// Whose client key this is; `None` for an unknown key or an application key.
    pub async fn account_from_client_key(
        &self,
        key: &Secret,
    ) -> Result<Option<Account>, PteroError> {
        self.account(&ClientIdentity::ClientKey(key.clone())).await
    }

    /// `GET /api/client/account`: `Ok(None)` for 401/403 (not signed in, or
    /// not a client credential), `Err` for anything else that is not a 200.
    pub async fn account(&self, who: &ClientIdentity) -> Result<Option<Account>, PteroError> {
        if let ClientIdentity::Session(value) = who
            && !is_cookie_value(value.expose())
        {
            // Nothing Laravel issues; not a session.
            return Ok(None);
        }
        let path = "/api/client/account";
        let (status, body) = self.http.get(path, &self.credential(who)).await?;
        match status {
            StatusCode::OK => {}
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => return Ok(None),
            _ => {
                return Err(PteroError::Status {
                    status: status.as_u16(),
                    path: path.into(),
                });
            }
        }
        let v = parse_json(&body, path)?;
        let f = Fields::new(attributes(&v, "user", "the account")?, "the account".into());
        Ok(Some(Account {
            id: f.id("id")?,
            admin: f.bool("admin")?,
            username: f.string("username")?,
            email: f.string("email")?,
        }))
    }

    /// `GET /api/client/servers/{uuid}`: whether the visitor owns the server
    /// and their permissions on it; `None` when they may not see it (404).
    pub async fn server_access(
        &self,
        who: &ClientIdentity,
        server: &ServerUuid,
    ) -> Result<Option<ServerAccess>, PteroError> {
        let path = format!("/api/client/servers/{server}");
        let v = match self.get_json(who, &path).await {
            Err(PteroError::Status { status: 404, .. }) => return Ok(None),
            other => other?,
        };
        let f = Fields::new(&v, format!("server {server}"));
        let Some(list) = f.get("meta.user_permissions").and_then(Value::as_array) else {
            return Err(f.bad("meta.user_permissions", "an array"));
        };
        let permissions = list
            .iter()
            .map(|p| p.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| f.bad("meta.user_permissions", "an array of strings"))?;
        Ok(Some(ServerAccess {
            is_owner: f.bool("meta.is_server_owner")?,
            permissions,
        }))
    }

    /// Pterodactyl's own backups of a server, all pages, as the visitor may
    /// see them (`backup.read`); refused → [`PteroError::Unauthorized`], a
    /// server they may not see → `Status { 404 }`.
    pub async fn server_backups(
        &self,
        who: &ClientIdentity,
        server: &ServerUuid,
    ) -> Result<Vec<PteroBackup>, PteroError> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let mut page = 1u64;
        loop {
            let path = format!(
                "/api/client/servers/{server}/backups?page={page}&per_page={BACKUPS_PER_PAGE}"
            );
            let v = self.get_json(who, &path).await?;
            let listed = ListPage::parse(&v, &format!("page {page} of the backups of {server}"))?;
            for (i, item) in listed.data.iter().enumerate() {
                let ctx = format!("backup #{} on page {page} of {server}", i + 1);
                let f = Fields::new(attributes(item, "backup", &ctx)?, ctx);
                let uuid = f.uuid("uuid")?;
                let f = f.renamed(format!("backup {uuid} of server {server}"));
                let backup = PteroBackup {
                    name: f.string("name")?,
                    is_successful: f.bool("is_successful")?,
                    is_locked: f.bool("is_locked")?,
                    checksum: f.opt_string("checksum")?,
                    bytes: f.u64("bytes")?,
                    created_at: f.string("created_at")?,
                    completed_at: f.opt_string("completed_at")?,
                    uuid,
                };
                // A backup made while paging shifts the pages: keep each once.
                if seen.insert(backup.uuid.clone()) {
                    out.push(backup);
                }
            }
            if page >= listed.total_pages.min(MAX_PAGES) || listed.data.is_empty() {
                break;
            }
            page += 1;
        }
        Ok(out)
    }

    /// A download link for one of Pterodactyl's backups, signed for the
    /// visitor (`backup.download`); hand it to their browser only.
    pub async fn backup_download_url(
        &self,
        who: &ClientIdentity,
        server: &ServerUuid,
        backup_uuid: &str,
    ) -> Result<SignedUrl, PteroError> {
        let backup = parse_uuid(backup_uuid).ok_or_else(|| PteroError::Invalid {
            what: "the backup id is not a UUID".into(),
        })?;
        let path = format!("/api/client/servers/{server}/backups/{backup}/download");
        let v = self.get_json(who, &path).await?;
        let ctx = format!("the download link of backup {backup}");
        let f = Fields::new(attributes(&v, "signed_url", &ctx)?, ctx);
        let url = f.nonempty("url")?;
        match reqwest::Url::parse(&url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(SignedUrl(url)),
            _ => Err(f.bad("url", "an http(s) URL")),
        }
    }

    fn credential<'a>(&'a self, who: &'a ClientIdentity) -> Credential<'a> {
        match who {
            ClientIdentity::Session(value) => Credential::Cookie {
                name: &self.cookie_name,
                value,
            },
            ClientIdentity::ClientKey(key) => Credential::Bearer(key),
        }
    }

    async fn get_json(&self, who: &ClientIdentity, path: &str) -> Result<Value, PteroError> {
        let (status, body) = self.http.get(path, &self.credential(who)).await?;
        match status {
            StatusCode::OK => parse_json(&body, path),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(PteroError::Unauthorized {
                status: status.as_u16(),
                path: path.to_owned(),
                hint: "the session or client key is not signed in, or lacks the permission",
            }),
            _ => Err(PteroError::Status {
                status: status.as_u16(),
                path: path.to_owned(),
            }),
        }
    }
}

/// How a request proves who it is. Both go in headers only.
enum Credential<'a> {
    /// `Authorization: Bearer <key>` (`ptla_…` or `ptlc_…`).
    Bearer(&'a Secret),
    /// `Cookie: <name>=<value>`. Pterodactyl's `EnsureStatefulRequests`
    /// treats a request as stateful (runs EncryptCookies, StartSession and
    /// VerifyCsrfToken, so the `web` guard sees the session) when Sanctum's
    /// `fromFrontend` matches the Referer/Origin against the stateful domains
    /// **or** the request simply carries `config('session.cookie')`. The
    /// cookie alone is therefore enough; Referer/Origin/X-Requested-With and
    /// an XSRF token are not needed for a GET (CSRF is checked on unsafe
    /// methods only). `Accept: application/json` is what turns "not signed
    /// in" into a 401 instead of a redirect to `/auth/login`.
    Cookie { name: &'a str, value: &'a Secret },
}

impl Credential<'_> {
    fn header(&self) -> Result<(HeaderName, HeaderValue), PteroError> {
        let (name, raw) = match self {
            Self::Bearer(key) => (AUTHORIZATION, format!("Bearer {}", key.expose())),
            Self::Cookie { name, value } => {
                if !is_cookie_value(value.expose()) {
                    return Err(PteroError::Invalid {
                        what: "the session cookie holds characters a cookie cannot".into(),
                    });
                }
                (COOKIE, format!("{name}={}", value.expose()))
            }
        };
        let mut value = HeaderValue::from_str(&raw).map_err(|_| PteroError::Invalid {
            what: "the credential holds characters an HTTP header cannot".into(),
        })?;
        value.set_sensitive(true);
        Ok((name, value))
    }
}

/// RFC 6265 cookie-octets: no space, quote, comma, semicolon or backslash, so
/// a visitor cannot smuggle a second cookie in.
fn is_cookie_value(v: &str) -> bool {
    !v.is_empty()
        && v.bytes()
            .all(|b| matches!(b, 0x21 | 0x23..=0x2b | 0x2d..=0x3a | 0x3c..=0x5b | 0x5d..=0x7e))
}

#[derive(Clone)]
struct Http {
    client: reqwest::Client,
    base: BaseUrl,
    timeout: Duration,
    rate_limit_retries: u32,
}

impl Http {
    fn new(base_url: &str, timeout: Duration, rate_limit_retries: u32) -> Result<Self, PteroError> {
        let base = BaseUrl::parse(base_url)?;
        let client = reqwest::Client::builder()
            .connect_timeout(timeout.min(CONNECT_TIMEOUT))
            .timeout(timeout)
            // A redirect is a misconfigured URL (http → https, a login page):
            // report it instead of carrying credentials along.
            .redirect(reqwest::redirect::Policy::none())
            .https_only(base.is_https())
            .user_agent(concat!("restic-backups-panel/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| PteroError::Invalid {
                what: format!("HTTP client: {e}"),
            })?;
        Ok(Self {
            client,
            base,
            timeout,
            rate_limit_retries,
        })
    }

    fn unreachable(&self, reason: String) -> PteroError {
        PteroError::Unreachable {
            base: self.base.to_string(),
            reason,
        }
    }

    fn transport(&self, e: &reqwest::Error) -> PteroError {
        // Only the innermost cause: reqwest's own text names the URL, which
        // holds nothing secret but is already in the message.
        let mut cause: &dyn std::error::Error = e;
        while let Some(inner) = cause.source() {
            cause = inner;
        }
        let reason = if e.is_timeout() {
            format!("no answer within {:.1} s", self.timeout.as_secs_f64())
        } else if e.is_connect() {
            format!("could not connect: {cause}")
        } else {
            format!("the request failed: {cause}")
        };
        self.unreachable(reason)
    }

    /// GET `path` (which starts with `/api/`) with `Accept: application/json`
    /// and the credential; waits out a 429 up to `rate_limit_retries` times.
    /// 502/503/504 (a proxy without its Pterodactyl, or maintenance mode) are
    /// [`PteroError::Unreachable`].
    async fn get(
        &self,
        path: &str,
        credential: &Credential<'_>,
    ) -> Result<(StatusCode, Vec<u8>), PteroError> {
        let url = format!("{}{path}", self.base);
        let (name, value) = credential.header()?;
        let mut retries = 0;
        loop {
            let mut res = self
                .client
                .get(&url)
                .header(ACCEPT, "application/json")
                .header(name.clone(), value.clone())
                .send()
                .await
                .map_err(|e| self.transport(&e))?;
            let status = res.status();
            if status == StatusCode::TOO_MANY_REQUESTS && retries < self.rate_limit_retries {
                retries += 1;
                let wait = res
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map_or(Duration::from_secs(1), Duration::from_secs)
                    .clamp(Duration::from_millis(100), MAX_RETRY_WAIT);
                tracing::info!(
                    path,
                    wait_s = wait.as_secs(),
                    "Pterodactyl rate limit; waiting"
                );
                tokio::time::sleep(wait).await;
                continue;
            }
            if matches!(
                status,
                StatusCode::BAD_GATEWAY
                    | StatusCode::SERVICE_UNAVAILABLE
                    | StatusCode::GATEWAY_TIMEOUT
            ) {
                return Err(self.unreachable(format!("HTTP {status} to GET {path}")));
            }
            let mut body = Vec::new();
            while let Some(chunk) = res.chunk().await.map_err(|e| self.transport(&e))? {
                if body.len() + chunk.len() > MAX_BODY {
                    return Err(PteroError::Malformed {
                        what: format!(
                            "the answer to GET {path} is larger than {} MiB",
                            MAX_BODY >> 20
                        ),
                    });
                }
                body.extend_from_slice(&chunk);
            }
            return Ok((status, body));
        }
    }
}

fn parse_json(body: &[u8], path: &str) -> Result<Value, PteroError> {
    serde_json::from_slice(body).map_err(|e| PteroError::Malformed {
        what: format!(
            "the answer to GET {path} is not JSON (line {}, column {})",
            e.line(),
            e.column()
        ),
    })
}

/// `{"object": object, "attributes": {…}}` → the attributes.
fn attributes<'a>(item: &'a Value, object: &str, ctx: &str) -> Result<&'a Value, PteroError> {
    if item.get("object").and_then(Value::as_str) != Some(object) {
        return Err(PteroError::Malformed {
            what: format!("{ctx}: `object` is missing or not `{object}`"),
        });
    }
    item.get("attributes")
        .filter(|a| a.is_object())
        .ok_or_else(|| PteroError::Malformed {
            what: format!("{ctx}: `attributes` is missing or not an object"),
        })
}

/// One page of a Fractal list with `meta.pagination`.
struct ListPage<'a> {
    data: &'a [Value],
    total: u64,
    total_pages: u64,
    current_page: u64,
}

impl<'a> ListPage<'a> {
    fn parse(v: &'a Value, ctx: &str) -> Result<Self, PteroError> {
        let f = Fields::new(v, ctx.to_owned());
        if f.string("object")? != "list" {
            return Err(f.bad("object", "`list`"));
        }
        let Some(data) = v.get("data").and_then(Value::as_array) else {
            return Err(f.bad("data", "an array"));
        };
        let total_pages = f.u64("meta.pagination.total_pages")?;
        if total_pages > MAX_PAGES {
            return Err(f.bad("meta.pagination.total_pages", "a sane number of pages"));
        }
        Ok(Self {
            data,
            total: f.u64("meta.pagination.total")?,
            total_pages,
            current_page: f.u64("meta.pagination.current_page")?,
        })
    }
}

/// Typed access to a JSON object's fields by dotted path; errors name the
/// object (`ctx`) and the field, never the value.
struct Fields<'a> {
    v: &'a Value,
    ctx: String,
}

impl<'a> Fields<'a> {
    fn new(v: &'a Value, ctx: String) -> Self {
        Self { v, ctx }
    }

    fn renamed(&self, ctx: String) -> Fields<'a> {
        Fields { v: self.v, ctx }
    }

    fn get(&self, path: &str) -> Option<&'a Value> {
        path.split('.').try_fold(self.v, |v, k| v.get(k))
    }

    fn malformed(&self, what: &str) -> PteroError {
        PteroError::Malformed {
            what: format!("{} {what}", self.ctx),
        }
    }

    fn bad(&self, path: &str, kind: &str) -> PteroError {
        PteroError::Malformed {
            what: format!("{}: `{path}` is missing or not {kind}", self.ctx),
        }
    }

    fn u64(&self, path: &str) -> Result<u64, PteroError> {
        self.get(path)
            .and_then(Value::as_u64)
            .ok_or_else(|| self.bad(path, "a non-negative integer"))
    }

    fn id(&self, path: &str) -> Result<u64, PteroError> {
        match self.get(path).and_then(Value::as_u64) {
            Some(id) if id > 0 => Ok(id),
            _ => Err(self.bad(path, "an id")),
        }
    }

    fn port(&self, path: &str) -> Result<u16, PteroError> {
        match self.get(path).and_then(Value::as_u64).map(u16::try_from) {
            Some(Ok(port)) if port > 0 => Ok(port),
            _ => Err(self.bad(path, "a port number")),
        }
    }

    fn string(&self, path: &str) -> Result<String, PteroError> {
        self.get(path)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| self.bad(path, "a string"))
    }

    fn nonempty(&self, path: &str) -> Result<String, PteroError> {
        self.string(path)
            .ok()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| self.bad(path, "a non-empty string"))
    }

    fn uuid(&self, path: &str) -> Result<String, PteroError> {
        self.get(path)
            .and_then(Value::as_str)
            .and_then(parse_uuid)
            .ok_or_else(|| self.bad(path, "a UUID"))
    }

    /// `true`/`false`, or 0/1 (a column Eloquent does not cast).
    fn bool(&self, path: &str) -> Result<bool, PteroError> {
        self.opt_bool(path)?
            .ok_or_else(|| self.bad(path, "a boolean"))
    }

    /// Absent or null → `None`; present but not a boolean → error.
    fn opt_bool(&self, path: &str) -> Result<Option<bool>, PteroError> {
        match self.get(path) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => match v.as_u64() {
                Some(0) => Ok(Some(false)),
                Some(1) => Ok(Some(true)),
                _ => Err(self.bad(path, "a boolean")),
            },
        }
    }

    fn opt_string(&self, path: &str) -> Result<Option<String>, PteroError> {
        match self.get(path) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(self.bad(path, "a string")),
        }
    }
}

/// A UUID in canonical `8-4-4-4-12` form, lower-cased.
fn parse_uuid(raw: &str) -> Option<String> {
    ServerUuid::parse(raw).ok().map(|u| u.as_str().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_refuses_credentials_and_queries_without_echoing_them() {
        for raw in [
            "https://admin:hunter2@panel.example.com",
            "https://panel.example.com/?key=hunter2",
            "ftp://panel.example.com",
            "hunter2",
        ] {
            let e = BaseUrl::parse(raw).unwrap_err().to_string();
            assert!(!e.contains("hunter2"), "{e}");
        }
        let b = BaseUrl::parse("https://panel.example.com/ptero/").unwrap();
        assert_eq!(b.as_str(), "https://panel.example.com/ptero");
    }

    #[test]
    fn cookie_values_cannot_smuggle_a_second_cookie() {
        assert!(is_cookie_value("eyJpdiI6IkFCQyJ9%3D"));
        for bad in ["a; remember_web=1", "a b", "a,b", "a\"b", ""] {
            assert!(!is_cookie_value(bad), "{bad}");
        }
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let c = NodeConfiguration {
            uuid: "x".into(),
            token_id: "id".into(),
            token: Secret::new("wings-token-hunter2").unwrap(),
            api_port: 8080,
            ssl_enabled: true,
            data_dir: "/var/lib/pterodactyl/volumes".into(),
        };
        assert!(format!("{c:?}").contains("<redacted>"));
        assert!(!format!("{c:?}").contains("hunter2"));
        let who = ClientIdentity::Session(Secret::new("cookie-hunter2").unwrap());
        assert!(!format!("{who:?}").contains("hunter2"));
        let key = Secret::new("ptla_hunter2").unwrap();
        let app =
            ApplicationClient::new("http://127.0.0.1:1", key, Duration::from_secs(1)).unwrap();
        assert!(!format!("{app:?}").contains("hunter2"));
        let url = SignedUrl("https://node/download/backup?token=hunter2".into());
        assert!(!format!("{url:?}").contains("hunter2"));
    }
}

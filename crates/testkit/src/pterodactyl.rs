//! A Pterodactyl 1.11 double: an in-process HTTP server answering the
//! Application and Client API endpoints the panel reads, with Pterodactyl's
//! shapes and authentication rules, and state a test changes between calls.
//!
//! Where each part comes from (pterodactyl/panel at v1.11.x):
//! - Item/list/include shapes: `app/Extensions/League/Fractal/Serializers/PterodactylSerializer.php`
//!   (`{"object","attributes"}`, `{"object":"list","data"}`, includes merged
//!   *into* `attributes.relationships`, `null_resource`) and
//!   `app/Extensions/Spatie/Fractalistic/Fractal.php` (resource names, paginator).
//! - `meta.pagination`: league/fractal 0.20.1 `ArraySerializer::paginator`
//!   (`total, count, per_page, current_page, total_pages, links` with
//!   `previous`/`next` only when they exist, `{}` otherwise) and Laravel's
//!   `LengthAwarePaginator::url` (links carry `page` only).
//! - Users: `app/Transformers/Api/Application/UserTransformer.php`.
//! - Nodes: `app/Transformers/Api/Application/NodeTransformer.php` (the node
//!   row, snake_cased, columns from `database/schema/mysql-schema.sql`,
//!   `daemon_token*` hidden) and `app/Models/Node.php` `getConfiguration`
//!   (served by `Nodes/NodeConfigurationController.php`).
//! - Servers and `include=subusers`: `app/Transformers/Api/Application/{ServerTransformer,SubuserTransformer}.php`
//!   (the include is `'subuser'` objects; a key without users-read gets `null_resource`).
//! - Paging: `Users/UserController`, `Nodes/NodeController`,
//!   `Servers/ServerController` (`paginate($request->query('per_page') ?? 50)`,
//!   no upper bound, `allowedSorts(['id', 'uuid'])`); Laravel's paginate
//!   (`per_page` 0 → the model's 15).
//! - Client: `app/Transformers/Api/Client/{AccountTransformer,ServerTransformer,BackupTransformer}.php`,
//!   `Client/Servers/ServerController.php` (`meta.is_server_owner`,
//!   `meta.user_permissions` from `GetUserPermissionsService`),
//!   `Client/Servers/BackupController.php` (list: `per_page` default 20, at most 50,
//!   `meta.backup_count`; download: `{"object":"signed_url","attributes":{"url"}}`,
//!   `DownloadLinkService`), `SubstituteClientBindings` (8 characters → identifier,
//!   else UUID), `AuthenticateServerAccess` (no access → 404), `ServerPolicy`.
//! - Auth: `app/Http/Kernel.php` (`api` group: `EnsureStatefulRequests`,
//!   `auth:sanctum`, …), `app/Http/Middleware/EnsureStatefulRequests.php` (the
//!   session cookie alone makes a request stateful), Sanctum 4's guard (session
//!   first, then the bearer token, `ApiKey::findToken`),
//!   `Api/Application/AuthenticateApplicationUser.php` (not a root admin → 403),
//!   `Requests/Api/Application/ApplicationApiRequest.php` (application keys need
//!   the resource's read permission, client keys of admins pass),
//!   `Api/Client/RequireClientApiKey.php` (application key → 403),
//!   `Auth/LoginController.php` (with TOTP the user is logged in only after the
//!   checkpoint, so a half-done 2FA session is no user).
//! - Errors: `app/Exceptions/Handler.php` (`{"errors":[{"code","status","detail"}]}`;
//!   unauthenticated and not expecting JSON → 302 to `/auth/login`).
//! - Rate limits: `config/http.php` and `RouteServiceProvider` (per user, 429
//!   `ThrottleRequestsException` with `Retry-After`); off unless a test sets one.
//!
//! Not modelled: filters (`filter[...]`), other includes, endpoints not listed
//! here (404), allowed IPs, suspended servers, the "require 2FA" setting.
//! Any request other than GET/HEAD is recorded and answered 405.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State as AxumState};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use serde::Serialize;
use serde_json::{Value, json};

const TIMESTAMP: &str = "2024-05-01T12:00:00+00:00";

/// A deterministic UUID for `(kind, id)`; its first 8 characters (a server's
/// identifier) are the id in hex, so they are unique per kind.
pub fn uuid_for(kind: u16, id: u64) -> String {
    format!("{:08x}-{kind:04x}-4000-8000-{:012x}", id & 0xffff_ffff, id)
}

#[derive(Debug, Clone)]
pub struct User {
    pub id: u64,
    pub uuid: String,
    pub username: String,
    pub email: String,
    pub root_admin: bool,
    pub use_totp: bool,
}

impl User {
    pub fn new(id: u64, username: &str) -> Self {
        Self {
            id,
            uuid: uuid_for(1, id),
            username: username.to_owned(),
            email: format!("{username}@example.com"),
            root_admin: false,
            use_totp: false,
        }
    }

    pub fn admin(mut self) -> Self {
        self.root_admin = true;
        self
    }
}

#[derive(Debug, Clone)]
pub struct Node {
    pub id: u64,
    pub uuid: String,
    pub name: String,
    pub fqdn: String,
    pub scheme: String,
    pub behind_proxy: bool,
    pub maintenance_mode: bool,
    pub daemon_listen: u16,
    pub daemon_sftp: u16,
    pub daemon_base: String,
    pub token_id: String,
    pub token: String,
}

impl Node {
    pub fn new(id: u64) -> Self {
        Self {
            id,
            uuid: uuid_for(2, id),
            name: format!("node-{id}"),
            fqdn: format!("node{id}.example.com"),
            scheme: "https".into(),
            behind_proxy: false,
            maintenance_mode: false,
            daemon_listen: 8080,
            daemon_sftp: 2022,
            daemon_base: "/var/lib/pterodactyl/volumes".into(),
            token_id: format!("tokid{id:011}"),
            token: format!("wings-token-{id:04}-{}", "x".repeat(48)),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Server {
    pub id: u64,
    pub uuid: String,
    pub name: String,
    pub owner_id: u64,
    pub node_id: u64,
    pub backup_limit: u64,
}

impl Server {
    pub fn new(id: u64, owner_id: u64, node_id: u64) -> Self {
        Self {
            id,
            uuid: uuid_for(3, id),
            name: format!("server-{id}"),
            owner_id,
            node_id,
            backup_limit: 3,
        }
    }

    /// `uuidShort`.
    pub fn identifier(&self) -> &str {
        &self.uuid[..8]
    }
}

#[derive(Debug, Clone)]
pub struct Subuser {
    pub id: u64,
    pub user_id: u64,
    pub server_id: u64,
    pub permissions: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Backup {
    pub uuid: String,
    pub name: String,
    pub is_successful: bool,
    pub is_locked: bool,
    pub checksum: Option<String>,
    pub bytes: u64,
    /// `completed_at` is set.
    pub completed: bool,
}

impl Backup {
    pub fn new(n: u64) -> Self {
        Self {
            uuid: uuid_for(4, n),
            name: format!("Backup {n}"),
            is_successful: true,
            is_locked: false,
            checksum: Some(format!("sha1:{n:040x}")),
            bytes: 1024 * n,
            completed: true,
        }
    }
}

/// What an application key may read (`r_users`, `r_nodes`, `r_servers`).
#[derive(Debug, Clone, Copy)]
pub struct AppRead {
    pub users: bool,
    pub nodes: bool,
    pub servers: bool,
}

impl AppRead {
    pub const ALL: AppRead = AppRead {
        users: true,
        nodes: true,
        servers: true,
    };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    /// `ptla_`, `ApiKey::TYPE_APPLICATION`.
    Application(AppReadBits),
    /// `ptlc_`, `ApiKey::TYPE_ACCOUNT`.
    Client,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct AppReadBits(u8);

impl From<AppRead> for AppReadBits {
    fn from(r: AppRead) -> Self {
        Self(u8::from(r.users) | u8::from(r.nodes) << 1 | u8::from(r.servers) << 2)
    }
}

#[derive(Debug, Clone)]
struct ApiKey {
    user_id: u64,
    kind: KeyKind,
}

#[derive(Debug, Clone)]
struct Session {
    user_id: u64,
    two_factor_pending: bool,
}

/// How the double answers, whatever the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Up,
    /// 502 from the "reverse proxy": Pterodactyl itself is down.
    Down,
    /// 200 with a body that is not JSON.
    Garbage,
    /// No answer for a minute.
    Hang,
}

#[derive(Debug, Clone, Copy)]
pub struct RateLimit {
    pub application: u32,
    pub client: u32,
    pub window: Duration,
}

type Hook = Arc<dyn Fn(&str, &mut State) + Send + Sync>;

/// Everything the double knows. Lists are kept sorted by id so a page is a
/// slice: serving one costs the page, not the total.
pub struct State {
    users: Vec<User>,
    nodes: Vec<Node>,
    servers: Vec<Server>,
    subusers: HashMap<u64, Vec<Subuser>>,
    next_subuser_id: u64,
    backups: HashMap<u64, Vec<Backup>>,
    keys: HashMap<String, ApiKey>,
    sessions: HashMap<String, Session>,
    next_secret: u64,
    application_key: String,
    cookie_name: String,
    mode: Mode,
    rate_limit: Option<RateLimit>,
    windows: HashMap<(bool, u64), (Instant, u32)>,
    requests: HashMap<String, u64>,
    writes: Vec<String>,
    hook: Option<Hook>,
}

fn upsert<T>(list: &mut Vec<T>, item: T, id: impl Fn(&T) -> u64) {
    match list.binary_search_by_key(&id(&item), &id) {
        Ok(i) => list[i] = item,
        Err(i) => list.insert(i, item),
    }
}

fn find<T>(list: &[T], key: u64, id: impl Fn(&T) -> u64) -> Option<&T> {
    list.binary_search_by_key(&key, id).ok().map(|i| &list[i])
}

impl State {
    fn secret(&mut self, prefix: &str) -> String {
        self.next_secret += 1;
        // Pterodactyl's keys: 16 characters of identifier (prefix included)
        // and 32 of token.
        format!(
            "{prefix}{:011x}{:032x}",
            self.next_secret,
            self.next_secret * 7919
        )
    }

    pub fn add_user(&mut self, user: User) {
        upsert(&mut self.users, user, |u| u.id);
    }

    pub fn user_mut(&mut self, id: u64) -> Option<&mut User> {
        let i = self.users.binary_search_by_key(&id, |u| u.id).ok()?;
        Some(&mut self.users[i])
    }

    /// Deletes the user, their keys and subuser rows (cascades); their
    /// sessions stay but no longer name a user.
    pub fn remove_user(&mut self, id: u64) {
        if let Ok(i) = self.users.binary_search_by_key(&id, |u| u.id) {
            self.users.remove(i);
        }
        self.keys.retain(|_, k| k.user_id != id);
        for list in self.subusers.values_mut() {
            list.retain(|s| s.user_id != id);
        }
    }

    pub fn add_node(&mut self, node: Node) {
        upsert(&mut self.nodes, node, |n| n.id);
    }

    pub fn node_mut(&mut self, id: u64) -> Option<&mut Node> {
        let i = self.nodes.binary_search_by_key(&id, |n| n.id).ok()?;
        Some(&mut self.nodes[i])
    }

    pub fn remove_node(&mut self, id: u64) {
        if let Ok(i) = self.nodes.binary_search_by_key(&id, |n| n.id) {
            self.nodes.remove(i);
        }
    }

    pub fn add_server(&mut self, server: Server) {
        upsert(&mut self.servers, server, |s| s.id);
    }

    pub fn server_mut(&mut self, id: u64) -> Option<&mut Server> {
        let i = self.servers.binary_search_by_key(&id, |s| s.id).ok()?;
        Some(&mut self.servers[i])
    }

    pub fn remove_server(&mut self, id: u64) {
        if let Ok(i) = self.servers.binary_search_by_key(&id, |s| s.id) {
            self.servers.remove(i);
        }
        self.subusers.remove(&id);
        self.backups.remove(&id);
    }

    /// Adds or replaces the user's subuser row on the server; returns its id.
    pub fn set_subuser(&mut self, server_id: u64, user_id: u64, permissions: &[&str]) -> u64 {
        let permissions: Vec<String> = permissions.iter().map(|p| (*p).to_owned()).collect();
        let list = self.subusers.entry(server_id).or_default();
        if let Some(s) = list.iter_mut().find(|s| s.user_id == user_id) {
            s.permissions = permissions;
            return s.id;
        }
        self.next_subuser_id += 1;
        list.push(Subuser {
            id: self.next_subuser_id,
            user_id,
            server_id,
            permissions,
        });
        self.next_subuser_id
    }

    pub fn remove_subuser(&mut self, server_id: u64, user_id: u64) {
        if let Some(list) = self.subusers.get_mut(&server_id) {
            list.retain(|s| s.user_id != user_id);
        }
    }

    pub fn add_backup(&mut self, server_id: u64, backup: Backup) {
        self.backups.entry(server_id).or_default().push(backup);
    }

    /// A new client key (`ptlc_…`) of the user.
    pub fn add_client_key(&mut self, user_id: u64) -> String {
        let key = self.secret("ptlc_");
        self.keys.insert(
            key.clone(),
            ApiKey {
                user_id,
                kind: KeyKind::Client,
            },
        );
        key
    }

    /// A new application key (`ptla_…`) created by the user.
    pub fn add_application_key(&mut self, user_id: u64, read: AppRead) -> String {
        let key = self.secret("ptla_");
        self.keys.insert(
            key.clone(),
            ApiKey {
                user_id,
                kind: KeyKind::Application(read.into()),
            },
        );
        key
    }

    pub fn revoke_key(&mut self, key: &str) {
        self.keys.remove(key);
    }

    /// A browser session of the user; returns the cookie's value. With
    /// `two_factor_pending` the password was right but the TOTP checkpoint
    /// was not passed: Pterodactyl has not logged the user in.
    pub fn add_session(&mut self, user_id: u64, two_factor_pending: bool) -> String {
        // Laravel's encrypted cookie: base64 JSON, `=` URL-encoded.
        let value = format!("eyJpdiI6I{}%3D", self.secret("session"));
        self.sessions.insert(
            value.clone(),
            Session {
                user_id,
                two_factor_pending,
            },
        );
        value
    }

    pub fn complete_two_factor(&mut self, cookie: &str) {
        if let Some(s) = self.sessions.get_mut(cookie) {
            s.two_factor_pending = false;
        }
    }

    pub fn remove_session(&mut self, cookie: &str) {
        self.sessions.remove(cookie);
    }
}

/// The running double. Clones share the state.
#[derive(Clone)]
pub struct Pterodactyl {
    state: Arc<Mutex<State>>,
    url: String,
}

impl Pterodactyl {
    /// Starts the double on 127.0.0.1 with one root admin (id 1, `admin`) who
    /// owns the application key.
    pub async fn start() -> Self {
        let mut state = State {
            users: Vec::new(),
            nodes: Vec::new(),
            servers: Vec::new(),
            subusers: HashMap::new(),
            next_subuser_id: 0,
            backups: HashMap::new(),
            keys: HashMap::new(),
            sessions: HashMap::new(),
            next_secret: 0,
            application_key: String::new(),
            cookie_name: "pterodactyl_session".into(),
            mode: Mode::Up,
            rate_limit: None,
            windows: HashMap::new(),
            requests: HashMap::new(),
            writes: Vec::new(),
            hook: None,
        };
        state.add_user(User::new(1, "admin").admin());
        state.application_key = state.add_application_key(1, AppRead::ALL);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the Pterodactyl double");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let me = Self {
            state: Arc::new(Mutex::new(state)),
            url,
        };
        let app = axum::Router::new().fallback(handle).with_state(me.clone());
        tokio::spawn(async move {
            axum::serve(listener, app).await.ok();
        });
        me
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn application_key(&self) -> String {
        self.lock().application_key.clone()
    }

    pub fn cookie_name(&self) -> String {
        self.lock().cookie_name.clone()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes the state under one lock (for bulk loads and odd edits).
    pub fn edit<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.lock())
    }

    pub fn add_user(&self, user: User) {
        self.lock().add_user(user);
    }

    pub fn remove_user(&self, id: u64) {
        self.lock().remove_user(id);
    }

    pub fn set_root_admin(&self, id: u64, admin: bool) {
        if let Some(u) = self.lock().user_mut(id) {
            u.root_admin = admin;
        }
    }

    pub fn add_node(&self, node: Node) {
        self.lock().add_node(node);
    }

    pub fn add_server(&self, server: Server) {
        self.lock().add_server(server);
    }

    pub fn remove_server(&self, id: u64) {
        self.lock().remove_server(id);
    }

    pub fn set_subuser(&self, server_id: u64, user_id: u64, permissions: &[&str]) -> u64 {
        self.lock().set_subuser(server_id, user_id, permissions)
    }

    pub fn add_backup(&self, server_id: u64, backup: Backup) {
        self.lock().add_backup(server_id, backup);
    }

    pub fn add_client_key(&self, user_id: u64) -> String {
        self.lock().add_client_key(user_id)
    }

    pub fn add_application_key(&self, user_id: u64, read: AppRead) -> String {
        self.lock().add_application_key(user_id, read)
    }

    pub fn add_session(&self, user_id: u64, two_factor_pending: bool) -> String {
        self.lock().add_session(user_id, two_factor_pending)
    }

    pub fn set_mode(&self, mode: Mode) {
        self.lock().mode = mode;
    }

    pub fn set_rate_limit(&self, limit: Option<RateLimit>) {
        let mut s = self.lock();
        s.rate_limit = limit;
        s.windows.clear();
    }

    /// Runs `f` with the request's path before each request is answered
    /// (to change the state between two pages, say).
    pub fn on_request(&self, f: impl Fn(&str, &mut State) + Send + Sync + 'static) {
        self.lock().hook = Some(Arc::new(f));
    }

    /// Requests received for `path` (without the query).
    pub fn requests(&self, path: &str) -> u64 {
        self.lock().requests.get(path).copied().unwrap_or(0)
    }

    pub fn total_requests(&self) -> u64 {
        self.lock().requests.values().sum()
    }

    /// Every request that was not a GET/HEAD, as `METHOD /path`.
    pub fn writes(&self) -> Vec<String> {
        self.lock().writes.clone()
    }

    pub fn reset_counters(&self) {
        let mut s = self.lock();
        s.requests.clear();
        s.writes.clear();
    }
}

enum Outcome {
    Answer(Response),
    Hang,
}

async fn handle(AxumState(p): AxumState<Pterodactyl>, req: Request) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().map(parse_query).unwrap_or_default();
    let headers = req.headers().clone();
    let outcome = {
        let mut s = p.lock();
        *s.requests.entry(path.clone()).or_default() += 1;
        if let Some(hook) = s.hook.clone() {
            hook(&path, &mut s);
        }
        if method != Method::GET && method != Method::HEAD {
            s.writes.push(format!("{method} {path}"));
            Outcome::Answer(error(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowedHttpException",
                &format!(
                    "The {method} method is not supported for route {}. Supported methods: GET, HEAD.",
                    path.trim_matches('/')
                ),
            ))
        } else {
            match s.mode {
                Mode::Down => Outcome::Answer(
                    Response::builder()
                        .status(StatusCode::BAD_GATEWAY)
                        .header(header::CONTENT_TYPE, "text/html")
                        .body(Body::from(
                            "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>",
                        ))
                        .unwrap(),
                ),
                Mode::Garbage => Outcome::Answer(
                    Response::builder()
                        .header(header::CONTENT_TYPE, "application/json")
                        .body(Body::from(r#"{"object":"list","data":[{"object":"user","attri"#))
                        .unwrap(),
                ),
                Mode::Hang => Outcome::Hang,
                Mode::Up => {
                    let host = headers
                        .get(header::HOST)
                        .and_then(|h| h.to_str().ok())
                        .map(|h| format!("http://{h}"))
                        .unwrap_or_else(|| p.url.clone());
                    let req = Req {
                        path: &path,
                        query: &query,
                        headers: &headers,
                        origin: &host,
                    };
                    Outcome::Answer(route(&mut s, &req))
                }
            }
        }
    };
    match outcome {
        Outcome::Answer(r) => r,
        Outcome::Hang => {
            tokio::time::sleep(Duration::from_secs(60)).await;
            error(StatusCode::GATEWAY_TIMEOUT, "Timeout", "late")
        }
    }
}

struct Req<'a> {
    path: &'a str,
    query: &'a HashMap<String, String>,
    headers: &'a HeaderMap,
    origin: &'a str,
}

impl Req<'_> {
    fn q(&self, k: &str) -> Option<&str> {
        self.query.get(k).map(String::as_str)
    }

    /// Laravel's `expectsJson()`: an XHR accepting anything, or an Accept
    /// naming JSON.
    fn wants_json(&self) -> bool {
        let accept = self
            .headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let wants = accept.contains("/json") || accept.contains("+json");
        let xhr = self
            .headers
            .get("x-requested-with")
            .is_some_and(|v| v == "XMLHttpRequest");
        let first = accept.split(',').next().unwrap_or("").trim();
        let any = accept.trim().is_empty() || first.starts_with("*/*") || first == "*";
        wants || (xhr && any)
    }
}

fn parse_query(q: &str) -> HashMap<String, String> {
    reqwest::Url::parse(&format!("http://double/?{q}"))
        .map(|u| u.query_pairs().into_owned().collect())
        .unwrap_or_default()
}

fn json_response(status: StatusCode, v: &Value) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(serde_json::to_vec(v).unwrap()))
        .unwrap()
}

/// `Handler::convertExceptionToArray` (debug off).
fn error(status: StatusCode, code: &str, detail: &str) -> Response {
    json_response(
        status,
        &json!({"errors": [{"code": code, "status": status.as_u16().to_string(), "detail": detail}]}),
    )
}

/// An exception as Laravel renders it: JSON when the request expects JSON,
/// else the HTML error page (or, unauthenticated, the login redirect).
fn fail(req: &Req<'_>, status: StatusCode, code: &str, detail: &str) -> Response {
    if req.wants_json() {
        return error(status, code, detail);
    }
    if status == StatusCode::UNAUTHORIZED {
        return Response::builder()
            .status(StatusCode::FOUND)
            .header(header::LOCATION, format!("{}/auth/login", req.origin))
            .body(Body::empty())
            .unwrap();
    }
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/html; charset=UTF-8")
        .body(Body::from(format!(
            "<!DOCTYPE html><html><body>{status}</body></html>"
        )))
        .unwrap()
}

fn not_found_model(req: &Req<'_>) -> Response {
    fail(
        req,
        StatusCode::NOT_FOUND,
        "NotFoundHttpException",
        "The requested resource could not be found on the server.",
    )
}

fn unauthorized_action(req: &Req<'_>) -> Response {
    fail(
        req,
        StatusCode::FORBIDDEN,
        "AccessDeniedHttpException",
        "This action is unauthorized.",
    )
}

#[derive(Clone, Copy)]
enum Token {
    /// A session (Sanctum's `TransientToken`).
    Transient,
    Key(KeyKind),
}

/// Sanctum's guard: the `web` session when the request is stateful (it
/// carries the session cookie), else the bearer token.
fn authenticate(s: &State, req: &Req<'_>) -> Option<(u64, Token)> {
    let cookie = req
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == s.cookie_name)
        .map(|(_, value)| value);
    if let Some(session) = cookie.and_then(|c| s.sessions.get(c))
        && !session.two_factor_pending
        && find(&s.users, session.user_id, |u| u.id).is_some()
    {
        return Some((session.user_id, Token::Transient));
    }
    // `Request::bearerToken()`: after the last "Bearer ", up to a comma.
    let auth = req.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let token = &auth[auth.rfind("Bearer ")? + 7..];
    let token = token.split(',').next().unwrap_or("");
    let key = s.keys.get(token)?;
    find(&s.users, key.user_id, |u| u.id)?;
    Some((key.user_id, Token::Key(key.kind)))
}

/// `throttle:api.*`, keyed by the user. `Err` is the 429.
fn throttle(
    s: &mut State,
    req: &Req<'_>,
    application: bool,
    user: u64,
) -> Result<Vec<(&'static str, String)>, Box<Response>> {
    let Some(limit) = s.rate_limit else {
        return Ok(Vec::new());
    };
    let max = if application {
        limit.application
    } else {
        limit.client
    };
    let now = Instant::now();
    let w = s.windows.entry((application, user)).or_insert((now, 0));
    if now.duration_since(w.0) >= limit.window {
        *w = (now, 0);
    }
    if w.1 >= max {
        let left = limit.window.saturating_sub(now.duration_since(w.0));
        let retry = left.as_secs() + u64::from(left.subsec_nanos() > 0);
        let mut r = fail(
            req,
            StatusCode::TOO_MANY_REQUESTS,
            "ThrottleRequestsException",
            "Too Many Attempts.",
        );
        let h = r.headers_mut();
        h.insert("retry-after", HeaderValue::from(retry));
        h.insert("x-ratelimit-limit", HeaderValue::from(max));
        h.insert("x-ratelimit-remaining", HeaderValue::from(0));
        return Err(Box::new(r));
    }
    w.1 += 1;
    Ok(vec![
        ("x-ratelimit-limit", max.to_string()),
        ("x-ratelimit-remaining", (max - w.1).to_string()),
    ])
}

fn route(s: &mut State, req: &Req<'_>) -> Response {
    // Laravel matches routes on the trimmed path.
    let segs: Vec<&str> = req.path.trim_matches('/').split('/').collect();
    let mut r = match segs.as_slice() {
        ["api", "application", rest @ ..] => match rest {
            ["users"] => application(s, req, AppRoute::Users),
            ["nodes"] => application(s, req, AppRoute::Nodes),
            ["nodes", id, "configuration"] => application(s, req, AppRoute::NodeConfiguration(id)),
            ["servers"] => application(s, req, AppRoute::Servers),
            _ => no_route(req),
        },
        ["api", "client", rest @ ..] => match rest {
            ["account"] => client(s, req, ClientRoute::Account),
            ["servers", server] => client(s, req, ClientRoute::Server(server)),
            ["servers", server, "backups"] => client(s, req, ClientRoute::Backups(server)),
            ["servers", server, "backups", backup, "download"] => {
                client(s, req, ClientRoute::Download(server, backup))
            }
            _ => no_route(req),
        },
        _ => no_route(req),
    };
    r.headers_mut().insert(
        "cache-control",
        HeaderValue::from_static("no-cache, private"),
    );
    r
}

fn no_route(req: &Req<'_>) -> Response {
    fail(
        req,
        StatusCode::NOT_FOUND,
        "NotFoundHttpException",
        &format!(
            "The route {} could not be found.",
            req.path.trim_matches('/')
        ),
    )
}

#[derive(Clone, Copy)]
enum AppRoute<'a> {
    Users,
    Nodes,
    NodeConfiguration(&'a str),
    Servers,
}

fn with_headers(mut r: Response, extra: Vec<(&'static str, String)>) -> Response {
    for (k, v) in extra {
        r.headers_mut()
            .insert(k, HeaderValue::from_str(&v).unwrap());
    }
    r
}

fn application(s: &mut State, req: &Req<'_>, route: AppRoute<'_>) -> Response {
    let Some((user_id, token)) = authenticate(s, req) else {
        return fail(
            req,
            StatusCode::UNAUTHORIZED,
            "AuthenticationException",
            "Unauthenticated.",
        );
    };
    let limits = match throttle(s, req, true, user_id) {
        Ok(h) => h,
        Err(r) => return *r,
    };
    // Route model binding (`{node:id}`).
    let node = match route {
        AppRoute::NodeConfiguration(id) => match id
            .parse::<u64>()
            .ok()
            .and_then(|id| find(&s.nodes, id, |n| n.id))
        {
            Some(n) => Some(n.clone()),
            None => return not_found_model(req),
        },
        _ => None,
    };
    let admin = find(&s.users, user_id, |u| u.id).is_some_and(|u| u.root_admin);
    if !admin {
        return fail(
            req,
            StatusCode::FORBIDDEN,
            "AccessDeniedHttpException",
            "This account does not have permission to access the API.",
        );
    }
    let read = match token {
        Token::Key(KeyKind::Application(bits)) => Some(bits.0),
        _ => None,
    };
    let may = |bit: u8| read.is_none_or(|r| r & bit != 0);
    let allowed = match route {
        AppRoute::Users => may(1),
        AppRoute::Nodes | AppRoute::NodeConfiguration(_) => may(2),
        AppRoute::Servers => may(4),
    };
    if !allowed {
        return unauthorized_action(req);
    }
    let r = match route {
        AppRoute::Users => list_page(
            req,
            &s.users,
            "user",
            |u| &u.uuid,
            |u| to_value(UserAttrs::from(u)),
        ),
        AppRoute::Nodes => list_page(
            req,
            &s.nodes,
            "node",
            |n| &n.uuid,
            |n| to_value(NodeAttrs::from(n)),
        ),
        AppRoute::NodeConfiguration(_) => json_response(
            StatusCode::OK,
            &node_configuration(&node.unwrap(), req.origin),
        ),
        AppRoute::Servers => {
            let include: Vec<&str> = req
                .q("include")
                .unwrap_or("")
                .split(',')
                .map(str::trim)
                .collect();
            let subusers = include.contains(&"subusers");
            // `BaseTransformer::authorize`: a session is never authorised to
            // include; an application key needs users-read; an admin's client key may.
            let may_include = match token {
                Token::Transient => false,
                Token::Key(KeyKind::Client) => true,
                Token::Key(KeyKind::Application(bits)) => bits.0 & 1 != 0,
            };
            list_page(
                req,
                &s.servers,
                "server",
                |sv| &sv.uuid,
                |sv| {
                    let mut v = to_value(AppServerAttrs::new(sv));
                    if subusers {
                        let rel = if may_include {
                            let data: Vec<Value> = s
                                .subusers
                                .get(&sv.id)
                                .map(|l| {
                                    l.iter()
                                        .map(|su| item("subuser", to_value(SubuserAttrs::from(su))))
                                        .collect()
                                })
                                .unwrap_or_default();
                            json!({"object": "list", "data": data})
                        } else {
                            json!({"object": "null_resource", "attributes": null})
                        };
                        v["relationships"] = json!({"subusers": rel});
                    }
                    v
                },
            )
        }
    };
    with_headers(r, limits)
}

fn item(object: &str, attributes: Value) -> Value {
    json!({"object": object, "attributes": attributes})
}

fn to_value(v: impl Serialize) -> Value {
    serde_json::to_value(v).unwrap()
}

/// `paginate($request->query('per_page') ?? 50)` on a query builder with
/// `allowedSorts(['id', 'uuid'])`, serialised by Fractal.
fn list_page<T>(
    req: &Req<'_>,
    all: &[T],
    object: &str,
    uuid: impl Fn(&T) -> &String,
    attrs: impl Fn(&T) -> Value,
) -> Response {
    let per_page: i64 = match req.q("per_page") {
        None => 50,
        Some(raw) => match raw.trim().parse::<i64>() {
            Ok(0) => 15,
            Ok(n) => n,
            // A non-numeric per_page is a TypeError in Laravel: a 500.
            Err(_) => {
                return fail(
                    req,
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "TypeError",
                    "An unexpected error was encountered while processing this request, please try again.",
                );
            }
        },
    };
    let page = current_page(req);
    // Ordering: the lists are kept by id; ids and UUIDs are unique, so the
    // first sort field decides.
    let sort: Vec<&str> = req
        .q("sort")
        .unwrap_or("")
        .split(',')
        .filter(|f| !f.is_empty())
        .collect();
    if let Some(bad) = sort
        .iter()
        .find(|f| !matches!(f.trim_start_matches('-'), "id" | "uuid"))
    {
        return fail(
            req,
            StatusCode::BAD_REQUEST,
            "InvalidSortQuery",
            &format!("Requested sort(s) `{bad}` is not allowed. Allowed sort(s) are `id, uuid`."),
        );
    }
    let order: Option<Vec<&T>> = match sort.first().copied() {
        None | Some("id") => None,
        Some("-id") => Some(all.iter().rev().collect()),
        Some(f) => {
            let mut refs: Vec<&T> = all.iter().collect();
            refs.sort_by(|a, b| uuid(a).cmp(uuid(b)));
            if f.starts_with('-') {
                refs.reverse();
            }
            Some(refs)
        }
    };
    let total = all.len();
    // A negative per_page sets no LIMIT and a last page of 1.
    let (start, take, last_page) = if per_page > 0 {
        let pp = per_page as usize;
        let last = total.div_ceil(pp).max(1);
        (page.saturating_sub(1).saturating_mul(pp), pp, last)
    } else {
        (0, total, 1)
    };
    let data: Vec<Value> = match &order {
        Some(refs) => refs
            .iter()
            .skip(start)
            .take(take)
            .map(|t| item(object, attrs(t)))
            .collect(),
        None => all
            .iter()
            .skip(start.min(total))
            .take(take)
            .map(|t| item(object, attrs(t)))
            .collect(),
    };
    let meta = pagination(req, total, data.len(), per_page, page, last_page);
    json_response(
        StatusCode::OK,
        &json!({"object": "list", "data": data, "meta": {"pagination": meta}}),
    )
}

/// `Paginator::resolveCurrentPage`: a positive integer, else 1.
fn current_page(req: &Req<'_>) -> usize {
    req.q("page")
        .and_then(|p| p.trim().parse::<usize>().ok())
        .filter(|p| *p >= 1)
        .unwrap_or(1)
}

/// Fractal's `ArraySerializer::paginator` with Laravel's page URLs (the
/// request URL without its query, plus `?page=N`).
fn pagination(
    req: &Req<'_>,
    total: usize,
    count: usize,
    per_page: i64,
    page: usize,
    last: usize,
) -> Value {
    let url = |n: usize| format!("{}/{}?page={n}", req.origin, req.path.trim_matches('/'));
    let mut links = serde_json::Map::new();
    if page > 1 {
        links.insert("previous".into(), Value::String(url(page - 1)));
    }
    if page < last {
        links.insert("next".into(), Value::String(url(page + 1)));
    }
    json!({
        "total": total,
        "count": count,
        "per_page": per_page,
        "current_page": page,
        "total_pages": last,
        "links": links,
    })
}

#[derive(Serialize)]
struct UserAttrs<'a> {
    id: u64,
    external_id: Option<&'a str>,
    uuid: &'a str,
    username: &'a str,
    email: &'a str,
    first_name: &'a str,
    last_name: &'a str,
    language: &'a str,
    root_admin: bool,
    #[serde(rename = "2fa")]
    two_factor: bool,
    created_at: &'a str,
    updated_at: &'a str,
}

impl<'a> From<&'a User> for UserAttrs<'a> {
    fn from(u: &'a User) -> Self {
        Self {
            id: u.id,
            external_id: None,
            uuid: &u.uuid,
            username: &u.username,
            email: &u.email,
            first_name: &u.username,
            last_name: "Tester",
            language: "en",
            root_admin: u.root_admin,
            two_factor: u.use_totp,
            created_at: TIMESTAMP,
            updated_at: TIMESTAMP,
        }
    }
}

#[derive(Serialize)]
struct Resources {
    memory: u64,
    disk: u64,
}

/// The `nodes` row in column order, snake_cased, tokens hidden.
#[derive(Serialize)]
struct NodeAttrs<'a> {
    id: u64,
    uuid: &'a str,
    public: bool,
    name: &'a str,
    description: Option<&'a str>,
    location_id: u64,
    fqdn: &'a str,
    scheme: &'a str,
    behind_proxy: bool,
    maintenance_mode: bool,
    memory: u64,
    memory_overallocate: i64,
    disk: u64,
    disk_overallocate: i64,
    upload_size: u64,
    daemon_listen: u16,
    daemon_sftp: u16,
    daemon_base: &'a str,
    created_at: &'a str,
    updated_at: &'a str,
    allocated_resources: Resources,
}

impl<'a> From<&'a Node> for NodeAttrs<'a> {
    // `allocated_resources` sums the node's servers' memory and disk; the
    // double reports 0 rather than scan every server for every node.
    fn from(n: &'a Node) -> Self {
        Self {
            id: n.id,
            uuid: &n.uuid,
            public: true,
            name: &n.name,
            description: None,
            location_id: 1,
            fqdn: &n.fqdn,
            scheme: &n.scheme,
            behind_proxy: n.behind_proxy,
            maintenance_mode: n.maintenance_mode,
            memory: 65536,
            memory_overallocate: 0,
            disk: 1_048_576,
            disk_overallocate: 0,
            upload_size: 100,
            daemon_listen: n.daemon_listen,
            daemon_sftp: n.daemon_sftp,
            daemon_base: &n.daemon_base,
            created_at: TIMESTAMP,
            updated_at: TIMESTAMP,
            allocated_resources: Resources { memory: 0, disk: 0 },
        }
    }
}

/// `Node::getConfiguration`.
fn node_configuration(n: &Node, origin: &str) -> Value {
    let fqdn = n.fqdn.to_lowercase();
    json!({
        "debug": false,
        "uuid": n.uuid,
        "token_id": n.token_id,
        "token": n.token,
        "api": {
            "host": "0.0.0.0",
            "port": n.daemon_listen,
            "ssl": {
                "enabled": !n.behind_proxy && n.scheme == "https",
                "cert": format!("/etc/letsencrypt/live/{fqdn}/fullchain.pem"),
                "key": format!("/etc/letsencrypt/live/{fqdn}/privkey.pem"),
            },
            "upload_limit": 100,
        },
        "system": {"data": n.daemon_base, "sftp": {"bind_port": n.daemon_sftp}},
        "allowed_mounts": [],
        "remote": origin,
    })
}

#[derive(Serialize)]
struct Limits {
    memory: u64,
    swap: i64,
    disk: u64,
    io: u64,
    cpu: u64,
    threads: Option<String>,
    oom_disabled: bool,
}

impl Limits {
    const DEFAULT: Limits = Limits {
        memory: 1024,
        swap: 0,
        disk: 10240,
        io: 500,
        cpu: 100,
        threads: None,
        oom_disabled: true,
    };
}

#[derive(Serialize)]
struct FeatureLimits {
    databases: u64,
    allocations: Option<u64>,
    backups: u64,
}

#[derive(Serialize)]
struct Container<'a> {
    startup_command: &'a str,
    image: &'a str,
    installed: u8,
    environment: HashMap<&'a str, String>,
}

/// Application `ServerTransformer::transform`.
#[derive(Serialize)]
struct AppServerAttrs<'a> {
    id: u64,
    external_id: Option<&'a str>,
    uuid: &'a str,
    identifier: &'a str,
    name: &'a str,
    description: &'a str,
    status: Option<&'a str>,
    suspended: bool,
    limits: Limits,
    feature_limits: FeatureLimits,
    user: u64,
    node: u64,
    allocation: u64,
    nest: u64,
    egg: u64,
    container: Container<'a>,
    updated_at: &'a str,
    created_at: &'a str,
}

impl<'a> AppServerAttrs<'a> {
    fn new(s: &'a Server) -> Self {
        let environment = HashMap::from([
            ("SERVER_JARFILE", "server.jar".to_owned()),
            ("STARTUP", "java -jar {{SERVER_JARFILE}}".to_owned()),
            ("P_SERVER_LOCATION", "Earth".to_owned()),
            ("P_SERVER_UUID", s.uuid.clone()),
            ("P_SERVER_ALLOCATION_LIMIT", "0".to_owned()),
        ]);
        Self {
            id: s.id,
            external_id: None,
            uuid: &s.uuid,
            identifier: s.identifier(),
            name: &s.name,
            description: "",
            status: None,
            suspended: false,
            limits: Limits::DEFAULT,
            feature_limits: FeatureLimits {
                databases: 0,
                allocations: Some(0),
                backups: s.backup_limit,
            },
            user: s.owner_id,
            node: s.node_id,
            allocation: s.id,
            nest: 1,
            egg: 1,
            container: Container {
                startup_command: "java -jar {{SERVER_JARFILE}}",
                image: "ghcr.io/pterodactyl/yolks:java_17",
                installed: 1,
                environment,
            },
            updated_at: TIMESTAMP,
            created_at: TIMESTAMP,
        }
    }
}

#[derive(Serialize)]
struct SubuserAttrs<'a> {
    id: u64,
    user_id: u64,
    server_id: u64,
    permissions: &'a [String],
    created_at: &'a str,
    updated_at: &'a str,
}

impl<'a> From<&'a Subuser> for SubuserAttrs<'a> {
    fn from(s: &'a Subuser) -> Self {
        Self {
            id: s.id,
            user_id: s.user_id,
            server_id: s.server_id,
            permissions: &s.permissions,
            created_at: TIMESTAMP,
            updated_at: TIMESTAMP,
        }
    }
}

#[derive(Clone, Copy)]
enum ClientRoute<'a> {
    Account,
    Server(&'a str),
    Backups(&'a str),
    Download(&'a str, &'a str),
}

fn client(s: &mut State, req: &Req<'_>, route: ClientRoute<'_>) -> Response {
    let Some((user_id, token)) = authenticate(s, req) else {
        return fail(
            req,
            StatusCode::UNAUTHORIZED,
            "AuthenticationException",
            "Unauthenticated.",
        );
    };
    let limits = match throttle(s, req, false, user_id) {
        Ok(h) => h,
        Err(r) => return *r,
    };
    // `SubstituteClientBindings`: 8 characters are an identifier, else a UUID;
    // the backup is bound by UUID within the server.
    let server = match &route {
        ClientRoute::Account => None,
        ClientRoute::Server(id) | ClientRoute::Backups(id) | ClientRoute::Download(id, _) => {
            let by_short = id.len() == 8;
            match s.servers.iter().find(|sv| {
                if by_short {
                    sv.identifier() == *id
                } else {
                    sv.uuid == *id
                }
            }) {
                Some(sv) => Some(sv.clone()),
                None => return not_found_model(req),
            }
        }
    };
    let backup = match &route {
        ClientRoute::Download(_, b) => {
            let sid = server.as_ref().map_or(0, |sv| sv.id);
            match s
                .backups
                .get(&sid)
                .and_then(|l| l.iter().find(|x| x.uuid == *b))
            {
                Some(x) => Some(x.clone()),
                None => return not_found_model(req),
            }
        }
        _ => None,
    };
    if matches!(token, Token::Key(KeyKind::Application(_))) {
        return fail(
            req,
            StatusCode::FORBIDDEN,
            "AccessDeniedHttpException",
            "You are attempting to use an application API key on an endpoint that requires a client API key.",
        );
    }
    let user = find(&s.users, user_id, |u| u.id)
        .cloned()
        .expect("authenticated user");
    let r = match route {
        ClientRoute::Account => json_response(
            StatusCode::OK,
            &item(
                "user",
                json!({
                    "id": user.id,
                    "admin": user.root_admin,
                    "username": user.username,
                    "email": user.email,
                    "first_name": user.username,
                    "last_name": "Tester",
                    "language": "en",
                }),
            ),
        ),
        ClientRoute::Server(_) | ClientRoute::Backups(_) | ClientRoute::Download(..) => {
            let server = server.expect("bound server");
            let subuser = s
                .subusers
                .get(&server.id)
                .and_then(|l| l.iter().find(|x| x.user_id == user.id));
            let owner = server.owner_id == user.id;
            // `AuthenticateServerAccess`.
            if !owner && !user.root_admin && subuser.is_none() {
                return fail(
                    req,
                    StatusCode::NOT_FOUND,
                    "NotFoundHttpException",
                    "The requested resource does not exist on this server.",
                );
            }
            // `ServerPolicy::before`.
            let can = |p: &str| {
                owner
                    || user.root_admin
                    || subuser.is_some_and(|x| x.permissions.iter().any(|q| q == p))
            };
            match route {
                ClientRoute::Server(_) => {
                    let mut permissions: Vec<String> = if owner || user.root_admin {
                        vec!["*".into()]
                    } else {
                        subuser.map(|x| x.permissions.clone()).unwrap_or_default()
                    };
                    if user.root_admin {
                        permissions.extend(
                            [
                                "admin.websocket.errors",
                                "admin.websocket.install",
                                "admin.websocket.transfer",
                            ]
                            .map(String::from),
                        );
                    }
                    let node = find(&s.nodes, server.node_id, |n| n.id).cloned();
                    let mut attrs = client_server(&server, node.as_ref(), owner);
                    attrs["relationships"] = json!({
                        "allocations": {"object": "list", "data": [item("allocation", json!({
                            "id": server.id, "ip": "0.0.0.0", "ip_alias": null,
                            "port": 25565, "notes": null, "is_default": true,
                        }))]},
                        "variables": if can("startup.read") {
                            json!({"object": "list", "data": []})
                        } else {
                            json!({"object": "null_resource", "attributes": null})
                        },
                    });
                    json_response(
                        StatusCode::OK,
                        &json!({
                            "object": "server",
                            "attributes": attrs,
                            "meta": {"is_server_owner": owner, "user_permissions": permissions},
                        }),
                    )
                }
                ClientRoute::Backups(_) => {
                    if !can("backup.read") {
                        return unauthorized_action(req);
                    }
                    backups_page(
                        req,
                        s.backups.get(&server.id).map_or(&[][..], Vec::as_slice),
                    )
                }
                ClientRoute::Download(..) => {
                    if !can("backup.download") {
                        return unauthorized_action(req);
                    }
                    let backup = backup.expect("bound backup");
                    let node = find(&s.nodes, server.node_id, |n| n.id)
                        .cloned()
                        .unwrap_or_else(|| Node::new(0));
                    let url = format!(
                        "{}://{}:{}/download/backup?token=eyJ0eXAiOiJKV1QifQ.{}.{}",
                        node.scheme, node.fqdn, node.daemon_listen, backup.uuid, user.id
                    );
                    json_response(
                        StatusCode::OK,
                        &json!({"object": "signed_url", "attributes": {"url": url}}),
                    )
                }
                ClientRoute::Account => unreachable!(),
            }
        }
    };
    with_headers(r, limits)
}

/// Client `ServerTransformer::transform`.
fn client_server(s: &Server, node: Option<&Node>, owner: bool) -> Value {
    json!({
        "server_owner": owner,
        "identifier": s.identifier(),
        "internal_id": s.id,
        "uuid": s.uuid,
        "name": s.name,
        "node": node.map_or("", |n| n.name.as_str()),
        "is_node_under_maintenance": node.is_some_and(|n| n.maintenance_mode),
        "sftp_details": {"ip": node.map_or("", |n| n.fqdn.as_str()), "port": node.map_or(2022, |n| n.daemon_sftp)},
        "description": "",
        "limits": Limits::DEFAULT,
        "invocation": "java -jar server.jar",
        "docker_image": "ghcr.io/pterodactyl/yolks:java_17",
        "egg_features": ["eula", "java_version"],
        "feature_limits": {"databases": 0, "allocations": 0, "backups": s.backup_limit},
        "status": null,
        "is_suspended": false,
        "is_installing": false,
        "is_transferring": false,
    })
}

/// `BackupController::index`: `min(per_page ?? 20, 50)`, `meta.backup_count`
/// counts the backups that did not fail.
fn backups_page(req: &Req<'_>, all: &[Backup]) -> Response {
    let per_page: i64 = match req.q("per_page").map(|p| p.trim().parse::<i64>()) {
        None => 20,
        Some(Ok(n)) => match n.min(50) {
            0 => 15,
            n => n,
        },
        // PHP 8 compares a non-numeric string with 50 as strings.
        Some(Err(_)) => 50,
    };
    let page = current_page(req);
    let total = all.len();
    let (start, take, last) = if per_page > 0 {
        let pp = per_page as usize;
        (
            page.saturating_sub(1).saturating_mul(pp),
            pp,
            total.div_ceil(pp).max(1),
        )
    } else {
        (0, total, 1)
    };
    let data: Vec<Value> = all
        .iter()
        .skip(start.min(total))
        .take(take)
        .map(|b| {
            item(
                "backup",
                json!({
                    "uuid": b.uuid,
                    "is_successful": b.is_successful,
                    "is_locked": b.is_locked,
                    "name": b.name,
                    "ignored_files": [],
                    "checksum": b.checksum,
                    "bytes": b.bytes,
                    "created_at": TIMESTAMP,
                    "completed_at": if b.completed { Value::from(TIMESTAMP) } else { Value::Null },
                }),
            )
        })
        .collect();
    let backup_count = all
        .iter()
        .filter(|b| !b.completed || b.is_successful)
        .count();
    let pagination = pagination(req, total, data.len(), per_page, page, last);
    json_response(
        StatusCode::OK,
        &json!({
            "object": "list",
            "data": data,
            "meta": {"backup_count": backup_count, "pagination": pagination},
        }),
    )
}

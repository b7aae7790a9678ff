//! Request parsing and the checks that run before any handler body: the
//! session (with CSRF for unsafe methods), the per-server permission, root
//! admin rights, path IDs and JSON bodies.

use std::collections::HashMap;
use std::sync::Arc;

use api::{JobId, ServerUuid, SnapshotRef};
use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::Response;
use serde::de::DeserializeOwned;

use super::AppState;
use crate::PanelError;
use crate::auth::ActiveSession;
use crate::error::Missing;
use crate::permissions::{Action, Authorized, RootAdmin, require_root_admin};
use crate::service::now;

pub const SESSION_COOKIE: &str = "rb_session";
pub const CSRF_HEADER: &str = "x-csrf-token";
pub const CSRF_FIELD: &str = "_csrf";

/// The session of the request (resolved once, by [`load_session`]).
#[derive(Clone)]
pub struct SessionCtx {
    /// The cookie value, needed to end the session at logout.
    pub id: Option<String>,
    pub session: Option<ActiveSession>,
}

/// The session cookie's value, if the request has one.
pub fn session_cookie(headers: &HeaderMap) -> Option<String> {
    cookie_named(headers, SESSION_COOKIE)
}

/// Every value sent for the cookie `name`, exactly as sent, in order (a
/// cookie set for a longer path elsewhere on the host comes first).
fn cookie_values(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(n, _)| *n == name)
        .map(|(_, value)| value.to_owned())
        .collect()
}

/// The value of the cookie `name`, the first one sent.
fn cookie_named(headers: &HeaderMap, name: &str) -> Option<String> {
    cookie_values(headers, name).into_iter().next()
}

/// A `Bearer` credential, if the request has one.
fn bearer(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(|t| t.trim().to_owned())
}

/// What the request says of Pterodactyl's session cookie.
enum PteroCookie {
    None,
    One(crate::pterodactyl::ClientIdentity),
    /// Several different values: someone else on this host (a sibling
    /// subdomain, another path) set one too. Trusted for nothing.
    Ambiguous,
}

fn ptero_cookie(setup: &crate::pterodactyl::Setup, headers: &HeaderMap) -> PteroCookie {
    let mut values = cookie_values(headers, &setup.cfg.session_cookie);
    values.dedup();
    match values.as_slice() {
        [] => PteroCookie::None,
        [one] => match api::Secret::new(one.clone()) {
            Ok(c) => PteroCookie::One(crate::pterodactyl::ClientIdentity::Session(c)),
            Err(_) => PteroCookie::None,
        },
        _ => PteroCookie::Ambiguous,
    }
}

/// Whether a session of a synced user still matches the browser's
/// Pterodactyl sign-in: `false` when Pterodactyl's cookie now names someone
/// else (another person signed in on this browser) or no one (signed out
/// there). Pterodactyl out of reach, or no cookie (a script), keeps it.
async fn still_pterodactyls(state: &AppState, s: &ActiveSession, headers: &HeaderMap) -> bool {
    let Some(setup) = state.panel.pterodactyl() else {
        return true;
    };
    if s.user.ptero_id.is_none() {
        return true;
    }
    let who = match ptero_cookie(setup, headers) {
        PteroCookie::One(who) => who,
        // Every session of a synced user began with Pterodactyl's cookie;
        // without it (a copied session ID) it ends.
        PteroCookie::None => return false,
        PteroCookie::Ambiguous => return true,
    };
    // Pterodactyl out of reach: kept.
    state
        .panel
        .pterodactyl_still(&who, &s.user)
        .await
        .unwrap_or(true)
}

/// Pterodactyl mode: the user behind a client API key (any method; no
/// cookie is involved, so no CSRF either), or, for a safe request without
/// a session of ours, behind Pterodactyl's session cookie — then a session
/// of ours is opened, its cookie returned with the answer.
async fn pterodactyl_sign_in(
    state: &AppState,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Option<(ActiveSession, Option<crate::auth::NewSession>)>, PanelError> {
    let Some(setup) = state.panel.pterodactyl() else {
        return Ok(None);
    };
    if let Some(key) = bearer(headers) {
        let Ok(key) = api::Secret::new(key) else {
            return Ok(None);
        };
        let who = crate::pterodactyl::ClientIdentity::ClientKey(key);
        return Ok(state.panel.pterodactyl_user(&who).await?.map(|user| {
            let s = ActiveSession {
                user,
                csrf_token: String::new(),
            };
            (s, None)
        }));
    }
    // Never on unsafe requests, nor on requests another site started (a
    // link or image elsewhere must not open sessions or start downloads).
    let cross = headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes() == b"cross-site");
    if is_unsafe(method) || cross {
        return Ok(None);
    }
    let PteroCookie::One(who) = ptero_cookie(setup, headers) else {
        return Ok(None);
    };
    let user = match state.panel.pterodactyl_user(&who).await {
        Ok(Some(user)) => user,
        Ok(None) => return Ok(None),
        // Pterodactyl is down: the visitor is simply not signed in here.
        Err(_) => return Ok(None),
    };
    let new = state.panel.sessions().open_for(user, now()).await?;
    tracing::info!(user = new.user.id, "sign-in through Pterodactyl");
    let s = ActiveSession {
        user: new.user.clone(),
        csrf_token: new.csrf_token.clone(),
    };
    Ok(Some((s, Some(new))))
}

/// The client's address: the peer, or, when the peer is a trusted proxy,
/// the rightmost `X-Forwarded-For` entry that is not one (proxies append
/// the address they saw, so entries left of it are the client's to forge).
pub fn client_addr(
    peer: std::net::IpAddr,
    headers: &HeaderMap,
    trusted: &[ipnet::IpNet],
) -> std::net::IpAddr {
    let peer = peer.to_canonical();
    let is_trusted = |ip: &std::net::IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let mut client = peer;
    let hops = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    for hop in hops.iter().rev() {
        match hop.parse::<std::net::IpAddr>() {
            Ok(ip) if is_trusted(&ip.to_canonical()) => client = ip.to_canonical(),
            Ok(ip) => return ip.to_canonical(),
            Err(_) => break,
        }
    }
    client
}

/// Whether a request comes from another site's page (a login CSRF): the
/// browser's `Sec-Fetch-Site`, or where that is missing, an `Origin` that
/// is not this host. Requests without either (scripts, curl) pass.
pub fn cross_site(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        return !matches!(site.as_bytes(), b"same-origin" | b"none");
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let origin_host = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    origin_host.is_none() || origin_host != host
}

fn is_unsafe(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Middleware: resolves the session cookie and, for unsafe methods of a
/// logged-in session, requires the CSRF token (header `X-CSRF-Token` or form
/// field `_csrf`). Login itself is exempt: it has no session yet.
pub async fn load_session(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, PanelError> {
    // The first of the values sent that is a live session (a value set for
    // a longer path elsewhere on the host must not shadow ours).
    let mut id = None;
    let mut session = None;
    for value in cookie_values(req.headers(), SESSION_COOKIE)
        .into_iter()
        .take(4)
    {
        if let Some(s) = state.panel.sessions().resolve(&value, now()).await? {
            id = Some(value);
            session = Some(s);
            break;
        }
    }
    if id.is_none() {
        id = session_cookie(req.headers());
    }
    // A session opened through Pterodactyl follows Pterodactyl's sign-in
    // (checked on safe requests; answers are cached for a minute).
    let mut ended = false;
    if let Some(s) = &session
        && !is_unsafe(req.method())
        && !still_pterodactyls(&state, s, req.headers()).await
    {
        if let Some(old) = &id {
            state.panel.sessions().logout(old).await?;
        }
        tracing::info!(
            user = s.user.id,
            "session ended: Pterodactyl's sign-in changed"
        );
        session = None;
        id = None;
        ended = true;
    }
    let mut by_key = false;
    let mut opened = None;
    if session.is_none()
        && let Some((s, new)) = pterodactyl_sign_in(&state, req.method(), req.headers()).await?
    {
        by_key = new.is_none();
        if let Some(new) = new {
            id = Some(new.id.expose().to_owned());
            opened = Some(new);
        }
        session = Some(s);
    }
    let mut req = req;
    if let Some(s) = &session
        && !by_key
        && is_unsafe(req.method())
        && req.uri().path() != "/auth/login"
    {
        let (ok, rebuilt) = csrf_presented_ok(s, req).await?;
        if !ok {
            // Refused, and audited as this user's.
            let mut res = axum::response::IntoResponse::into_response(PanelError::CsrfFailed);
            res.extensions_mut()
                .insert(super::audit::AuditActor(s.user.email.clone()));
            return Ok(res);
        }
        req = rebuilt;
    }
    let actor = session.as_ref().map(|s| s.user.email.clone());
    req.extensions_mut()
        .insert(Arc::new(SessionCtx { id, session }));
    let mut res = next.run(req).await;
    // Whose request it was, for the audit layer outside this one (a
    // handler that knows better, the login, set its own).
    if let Some(actor) = actor
        && res.extensions().get::<super::audit::AuditActor>().is_none()
    {
        res.extensions_mut().insert(super::audit::AuditActor(actor));
    }
    if let Some(new) = opened {
        res.headers_mut().append(
            header::SET_COOKIE,
            session_set_cookie(&state, new.id.expose(), state.session_max_age),
        );
    } else if ended {
        res.headers_mut()
            .append(header::SET_COOKIE, session_set_cookie(&state, "", 0));
    }
    Ok(res)
}

/// The `Set-Cookie` value of a session of ours.
pub fn session_set_cookie(state: &AppState, value: &str, max_age: i64) -> header::HeaderValue {
    let secure = if state.secure_cookies { "; Secure" } else { "" };
    let path = state.cookie_path();
    header::HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; Path={path}; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .expect("cookie values are hex and base_path is checked")
}

/// Checks the CSRF token of a request; a form body is read for `_csrf` and
/// put back for the handler.
async fn csrf_presented_ok(s: &ActiveSession, req: Request) -> Result<(bool, Request), PanelError> {
    if let Some(v) = req.headers().get(CSRF_HEADER) {
        let ok = v.to_str().is_ok_and(|t| s.csrf_ok(t));
        return Ok((ok, req));
    }
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Ok((false, req));
    }
    let (parts, body) = req.into_parts();
    let bytes = httpd::read_body(
        Request::from_parts(parts.clone(), body),
        super::MAX_BODY_BYTES,
    )
    .await
    .map_err(body_error)?;
    let ok = form_urlencoded_field(&bytes, CSRF_FIELD).is_some_and(|t| s.csrf_ok(&t));
    Ok((ok, Request::from_parts(parts, Body::from(bytes))))
}

fn form_urlencoded_field(body: &[u8], name: &str) -> Option<String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

fn ctx(parts: &Parts) -> Result<Arc<SessionCtx>, PanelError> {
    parts
        .extensions
        .get::<Arc<SessionCtx>>()
        .cloned()
        .ok_or_else(|| PanelError::Internal("session middleware missing".into()))
}

/// The logged-in user's session; 401 otherwise.
pub struct CurrentSession(pub ActiveSession);

impl<S: Send + Sync> FromRequestParts<S> for CurrentSession {
    type Rejection = PanelError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, PanelError> {
        ctx(parts)?
            .session
            .clone()
            .map(CurrentSession)
            .ok_or(PanelError::NotLoggedIn)
    }
}

async fn path_param(parts: &mut Parts, name: &str) -> Result<String, PanelError> {
    let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, &())
        .await
        .map_err(|_| {
            PanelError::bad_request("invalid_path", "the request path could not be read")
        })?;
    params
        .get(name)
        .cloned()
        .ok_or_else(|| PanelError::Internal(format!("route has no {name} parameter")))
}

/// The `{server}` of the path, checked for action `A`: 401 when logged out,
/// 404 when the user can not see the server (or it is not a UUID), 403
/// when a subuser lacks the permission.
pub struct Permit<A: Action>(pub Authorized<A>);

impl<A: Action> FromRequestParts<AppState> for Permit<A> {
    type Rejection = PanelError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, PanelError> {
        let CurrentSession(session) = CurrentSession::from_request_parts(parts, state).await?;
        let raw = path_param(parts, "server").await?;
        let uuid = ServerUuid::parse(&raw).map_err(|_| PanelError::NotFound(Missing::Server))?;
        Ok(Permit(
            state.panel.authorize::<A>(&session.user, &uuid).await?,
        ))
    }
}

/// The visitor's Pterodactyl credential (their session cookie, else a
/// client key), for calls made on their behalf; 409 `no_pterodactyl_session`
/// when the request has neither (a local account).
pub struct PteroCredential(pub crate::pterodactyl::ClientIdentity);

impl FromRequestParts<AppState> for PteroCredential {
    type Rejection = PanelError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, PanelError> {
        use crate::pterodactyl::ClientIdentity;
        let setup = state
            .panel
            .pterodactyl()
            .ok_or(PanelError::NotFound(Missing::PterodactylMode))?;
        let who = match bearer(&parts.headers) {
            Some(key) => api::Secret::new(key).ok().map(ClientIdentity::ClientKey),
            None => match ptero_cookie(setup, &parts.headers) {
                PteroCookie::One(who) => Some(who),
                PteroCookie::None | PteroCookie::Ambiguous => None,
            },
        };
        who.map(PteroCredential)
            .ok_or(PanelError::NoPterodactylSession)
    }
}

/// A root admin; 401 when logged out, 403 for everyone else.
pub struct Admin(pub RootAdmin);

impl<S: Send + Sync> FromRequestParts<S> for Admin {
    type Rejection = PanelError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, PanelError> {
        let CurrentSession(session) = CurrentSession::from_request_parts(parts, state).await?;
        Ok(Admin(require_root_admin(&session.user)?))
    }
}

/// May read `/metrics`: the `metrics_token` as a bearer token, or a root
/// admin's session. A bearer token that is not the metrics token is 403.
pub struct MetricsReader;

impl FromRequestParts<AppState> for MetricsReader {
    type Rejection = PanelError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, PanelError> {
        if let Some(presented) = bearer(&parts.headers) {
            use sha2::Digest;
            use subtle::ConstantTimeEq;
            let matches = state.metrics_token.as_ref().is_some_and(|t| {
                let a = sha2::Sha256::digest(presented.as_bytes());
                let b = sha2::Sha256::digest(t.expose().as_bytes());
                bool::from(a.ct_eq(&b))
            });
            return if matches {
                Ok(MetricsReader)
            } else {
                Err(PanelError::Forbidden)
            };
        }
        Admin::from_request_parts(parts, state).await?;
        Ok(MetricsReader)
    }
}

/// The query string as name → value; one that can not be read is 400
/// `invalid_query`.
pub struct QueryMap(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for QueryMap {
    type Rejection = PanelError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, PanelError> {
        axum::extract::Query::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map(|q| QueryMap(q.0))
            .map_err(|_| {
                PanelError::bad_request("invalid_query", "the query string could not be read")
            })
    }
}

/// `{id}` of the path: a snapshot ID or prefix.
pub struct Snapshot(pub SnapshotRef);

impl<S: Send + Sync> FromRequestParts<S> for Snapshot {
    type Rejection = PanelError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, PanelError> {
        let raw = path_param(parts, "id").await?;
        SnapshotRef::parse(&raw)
            .map(Snapshot)
            .map_err(|e| PanelError::bad_request("invalid_backup_id", e.to_string()))
    }
}

/// `{job}` of the path.
pub struct Job(pub JobId);

impl<S: Send + Sync> FromRequestParts<S> for Job {
    type Rejection = PanelError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, PanelError> {
        let raw = path_param(parts, "job").await?;
        JobId::parse(&raw)
            .map(Job)
            .map_err(|e| PanelError::bad_request("invalid_job_id", e.to_string()))
    }
}

/// `{task}` of an admin path: a panel task's ID.
pub struct TaskParam(pub JobId);

impl<S: Send + Sync> FromRequestParts<S> for TaskParam {
    type Rejection = PanelError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, PanelError> {
        let raw = path_param(parts, "task").await?;
        JobId::parse(&raw).map(TaskParam).map_err(|_| {
            PanelError::bad_request("invalid_task_id", "task IDs are 32 hexadecimal characters")
        })
    }
}

/// `{id}` of a notification channel's path.
pub struct ChannelParam(pub JobId);

impl<S: Send + Sync> FromRequestParts<S> for ChannelParam {
    type Rejection = PanelError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, PanelError> {
        let raw = path_param(parts, "id").await?;
        JobId::parse(&raw).map(ChannelParam).map_err(|_| {
            PanelError::bad_request(
                "invalid_channel_id",
                "channel IDs are 32 hexadecimal characters",
            )
        })
    }
}

/// `{server}` of an admin path: a UUID (400 otherwise).
pub struct ServerParam(pub ServerUuid);

impl<S: Send + Sync> FromRequestParts<S> for ServerParam {
    type Rejection = PanelError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, PanelError> {
        let raw = path_param(parts, "server").await?;
        ServerUuid::parse(&raw)
            .map(ServerParam)
            .map_err(|e| PanelError::bad_request("invalid_server_id", e.to_string()))
    }
}

/// `{user}` of an admin path: a user ID.
pub struct UserParam(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for UserParam {
    type Rejection = PanelError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, PanelError> {
        let raw = path_param(parts, "user").await?;
        raw.parse()
            .map(UserParam)
            .map_err(|_| PanelError::bad_request("invalid_user_id", "user IDs are numbers"))
    }
}

/// A text `{name}` of an admin path (node and archive names; looked up, never
/// used as a path).
pub struct NameParam(pub String);

impl<S: Send + Sync> FromRequestParts<S> for NameParam {
    type Rejection = PanelError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, PanelError> {
        path_param(parts, "name").await.map(NameParam)
    }
}

pub fn body_error(e: httpd::BodyError) -> PanelError {
    match e {
        httpd::BodyError::TooLarge => PanelError::PayloadTooLarge,
        httpd::BodyError::Unreadable => PanelError::bad_request("invalid_body", e.message()),
        httpd::BodyError::Syntax | httpd::BodyError::Shape => {
            PanelError::bad_request("invalid_json", e.message())
        }
    }
}

/// A JSON body (an empty body counts as `{}`). Messages never echo the body.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = PanelError;

    async fn from_request(req: Request, _: &S) -> Result<Self, PanelError> {
        let bytes = httpd::read_body(req, super::MAX_BODY_BYTES)
            .await
            .map_err(body_error)?;
        httpd::parse_json(&bytes).map(JsonBody).map_err(body_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn forwarded_addresses_count_only_behind_trusted_proxies() {
        let proxy: std::net::IpAddr = "10.0.0.5".parse().unwrap();
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 1.2.3.4, 10.0.0.7")]);
        assert_eq!(client_addr(proxy, &h, &trusted).to_string(), "1.2.3.4");
        // Not behind a trusted proxy: the header is the client's to forge.
        let stranger: std::net::IpAddr = "8.8.8.8".parse().unwrap();
        assert_eq!(client_addr(stranger, &h, &trusted), stranger);
        assert_eq!(client_addr(proxy, &h, &[]), proxy);
        assert_eq!(client_addr(proxy, &HeaderMap::new(), &trusted), proxy);
        let junk = headers(&[("x-forwarded-for", "garbage")]);
        assert_eq!(client_addr(proxy, &junk, &trusted), proxy);
    }

    #[test]
    fn cross_site_logins_are_recognised() {
        assert!(cross_site(&headers(&[("sec-fetch-site", "cross-site")])));
        assert!(cross_site(&headers(&[("sec-fetch-site", "same-site")])));
        assert!(!cross_site(&headers(&[("sec-fetch-site", "same-origin")])));
        assert!(!cross_site(&headers(&[("sec-fetch-site", "none")])));
        assert!(cross_site(&headers(&[
            ("origin", "https://evil.example"),
            ("host", "panel.example")
        ])));
        assert!(cross_site(&headers(&[
            ("origin", "null"),
            ("host", "panel.example")
        ])));
        assert!(!cross_site(&headers(&[
            ("origin", "https://panel.example"),
            ("host", "panel.example")
        ])));
        assert!(!cross_site(&HeaderMap::new()));
    }
}

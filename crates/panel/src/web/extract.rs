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
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.to_owned())
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
    let id = session_cookie(req.headers());
    let session = match &id {
        Some(id) => state.panel.sessions().resolve(id, now()).await?,
        None => None,
    };
    let mut req = req;
    if let Some(s) = &session
        && is_unsafe(req.method())
        && req.uri().path() != "/auth/login"
    {
        let (ok, rebuilt) = csrf_presented_ok(s, req).await?;
        if !ok {
            return Err(PanelError::CsrfFailed);
        }
        req = rebuilt;
    }
    req.extensions_mut()
        .insert(Arc::new(SessionCtx { id, session }));
    Ok(next.run(req).await)
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
        let uuid = ServerUuid::parse(&raw).map_err(|_| PanelError::NotFound("server"))?;
        Ok(Permit(
            state.panel.authorize::<A>(&session.user, &uuid).await?,
        ))
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

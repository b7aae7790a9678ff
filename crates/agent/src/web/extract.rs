//! Request parsing at the edge: path IDs, the repository key header, JSON
//! bodies and the node token. Everything becomes a validated type or a 4xx.

use std::collections::HashMap;

use api::agent::PASSWORD_HEADER;
use api::{JobId, Secret, ServerUuid, SnapshotRef};
use axum::extract::{FromRequest, FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::AppState;
use crate::AgentError;

async fn path_param<S: Send + Sync>(
    parts: &mut Parts,
    state: &S,
    name: &str,
) -> Result<String, AgentError> {
    let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, state)
        .await
        .map_err(|_| {
            AgentError::bad_request("invalid_path", "the request path could not be read")
        })?;
    params
        .get(name)
        .cloned()
        .ok_or_else(|| AgentError::Internal(format!("route has no {name} parameter")))
}

/// `{server}` of the path, a UUID.
pub struct Server(pub ServerUuid);

impl<S: Send + Sync> FromRequestParts<S> for Server {
    type Rejection = AgentError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AgentError> {
        let raw = path_param(parts, state, "server").await?;
        ServerUuid::parse(&raw)
            .map(Server)
            .map_err(|e| AgentError::bad_request("invalid_server_id", e.to_string()))
    }
}

/// The query string as name → value; one that can not be read is 400
/// `invalid_query`.
pub struct QueryMap(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for QueryMap {
    type Rejection = AgentError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AgentError> {
        axum::extract::Query::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map(|q| QueryMap(q.0))
            .map_err(|_| {
                AgentError::bad_request("invalid_query", "the query string could not be read")
            })
    }
}

/// `{id}` of the path, a snapshot ID or prefix.
pub struct Snapshot(pub SnapshotRef);

impl<S: Send + Sync> FromRequestParts<S> for Snapshot {
    type Rejection = AgentError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AgentError> {
        let raw = path_param(parts, state, "id").await?;
        SnapshotRef::parse(&raw)
            .map(Snapshot)
            .map_err(|e| AgentError::bad_request("invalid_backup_id", e.to_string()))
    }
}

/// `{job}` of the path.
pub struct Job(pub JobId);

impl<S: Send + Sync> FromRequestParts<S> for Job {
    type Rejection = AgentError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AgentError> {
        let raw = path_param(parts, state, "job").await?;
        JobId::parse(&raw)
            .map(Job)
            .map_err(|e| AgentError::bad_request("invalid_job_id", e.to_string()))
    }
}

/// The repository key from `X-Restic-Password`.
pub struct RepoKey(pub Secret);

impl<S: Send + Sync> FromRequestParts<S> for RepoKey {
    type Rejection = AgentError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, AgentError> {
        let value = parts.headers.get(PASSWORD_HEADER).ok_or_else(|| {
            AgentError::bad_request(
                "missing_key",
                format!("the {PASSWORD_HEADER} header is required"),
            )
        })?;
        let text = value.to_str().map_err(|_| {
            AgentError::bad_request("invalid_key", "the repository key must be printable ASCII")
        })?;
        Secret::new(text)
            .map(RepoKey)
            .map_err(|e| AgentError::bad_request("invalid_key", e.to_string()))
    }
}

/// The repository key when the request carries one (`X-Restic-Password`;
/// an empty header counts as none).
pub struct MaybeRepoKey(pub Option<Secret>);

impl<S: Send + Sync> FromRequestParts<S> for MaybeRepoKey {
    type Rejection = AgentError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AgentError> {
        if parts
            .headers
            .get(PASSWORD_HEADER)
            .is_some_and(|v| !v.is_empty())
        {
            let RepoKey(key) = RepoKey::from_request_parts(parts, state).await?;
            Ok(MaybeRepoKey(Some(key)))
        } else {
            Ok(MaybeRepoKey(None))
        }
    }
}

/// A JSON body; an empty body counts as `{}` (so all-optional bodies may be
/// left out). Error messages never echo the body (it may hold a key).
pub struct JsonBody<T>(pub T);

impl<T, S> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AgentError;

    async fn from_request(req: Request, _: &S) -> Result<Self, AgentError> {
        let bytes = httpd::read_body(req, super::MAX_BODY_BYTES)
            .await
            .map_err(body_error)?;
        httpd::parse_json(&bytes).map(JsonBody).map_err(body_error)
    }
}

fn body_error(e: httpd::BodyError) -> AgentError {
    match e {
        httpd::BodyError::TooLarge => AgentError::PayloadTooLarge,
        httpd::BodyError::Unreadable => AgentError::bad_request("invalid_body", e.message()),
        httpd::BodyError::Syntax | httpd::BodyError::Shape => {
            AgentError::bad_request("invalid_json", e.message())
        }
    }
}

/// The `Bearer` credential of the request.
fn presented(req: &Request) -> Result<&str, AgentError> {
    req.headers()
        .get(axum::http::header::AUTHORIZATION)
        .ok_or(AgentError::MissingToken)?
        .to_str()
        .ok()
        .and_then(|h| h.strip_prefix("Bearer "))
        .ok_or(AgentError::MissingToken)
}

/// Whether `presented` is `token`, compared in constant time (as digests,
/// so tokens of a different length take the same time too).
fn same(presented: &str, token: &Secret) -> bool {
    let a = Sha256::digest(presented.as_bytes());
    let b = Sha256::digest(token.expose().as_bytes());
    a.ct_eq(&b).into()
}

/// Checks `Authorization: Bearer <node token>` in constant time.
pub async fn require_token(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, AgentError> {
    if !same(presented(&req)?, &state.agent.node_token()) {
        return Err(AgentError::InvalidToken);
    }
    Ok(next.run(req).await)
}

/// `/metrics`: the node token, or `metrics_token` when one is set (so a
/// Prometheus server need not hold a token that controls the node).
pub async fn require_metrics_token(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, AgentError> {
    let presented = presented(&req)?;
    let node = same(presented, &state.agent.node_token());
    let metrics = state
        .agent
        .metrics_token()
        .is_some_and(|t| same(presented, &t));
    if !(node | metrics) {
        return Err(AgentError::InvalidToken);
    }
    Ok(next.run(req).await)
}

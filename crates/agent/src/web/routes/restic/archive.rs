//! `GET /api/restic/archive` → `{"archives": [{name, server_uuid, size_bytes, archived_at, store?}]}`
//! and `DELETE /api/restic/archive/{name}` → 204 (a remote repository
//! archived in place needs its key in `X-Restic-Password`).

use std::collections::HashMap;

use api::agent::ArchiveList;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use crate::AgentError;
use crate::web::AppState;
use crate::web::extract::MaybeRepoKey;

pub async fn list(State(state): State<AppState>) -> Result<Json<ArchiveList>, AgentError> {
    Ok(Json(ArchiveList {
        archives: state.agent.archives().await?,
    }))
}

pub async fn delete(
    State(state): State<AppState>,
    MaybeRepoKey(key): MaybeRepoKey,
    params: Result<Path<HashMap<String, String>>, axum::extract::rejection::PathRejection>,
) -> Result<StatusCode, AgentError> {
    let Path(params) = params.map_err(|_| {
        AgentError::bad_request("invalid_path", "the request path could not be read")
    })?;
    let name = params.get("name").map(String::as_str).unwrap_or_default();
    state.agent.delete_archive(name, key.as_ref()).await?;
    Ok(StatusCode::NO_CONTENT)
}

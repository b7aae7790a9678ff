//! `POST /api/servers/{server}/backups/restic/{id}/lock` and `/unlock`
//! → `{"id","locked"}`. The ID in the answer is the stable public ID.

use api::agent::LockState;
use axum::Json;
use axum::extract::State;

use crate::AgentError;
use crate::web::AppState;
use crate::web::extract::{RepoKey, Server, Snapshot};

pub async fn lock(
    State(state): State<AppState>,
    Server(server): Server,
    Snapshot(id): Snapshot,
    RepoKey(key): RepoKey,
) -> Result<Json<LockState>, AgentError> {
    Ok(Json(
        state.agent.set_locked(&server, &key, &id, true).await?,
    ))
}

pub async fn unlock(
    State(state): State<AppState>,
    Server(server): Server,
    Snapshot(id): Snapshot,
    RepoKey(key): RepoKey,
) -> Result<Json<LockState>, AgentError> {
    Ok(Json(
        state.agent.set_locked(&server, &key, &id, false).await?,
    ))
}

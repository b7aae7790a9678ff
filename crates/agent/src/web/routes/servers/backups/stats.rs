//! `GET /api/servers/{server}/backups/restic/stats` → [`RepoStats`]

use api::agent::{RepoStats, StorageHistory};
use axum::Json;
use axum::extract::State;

use crate::AgentError;
use crate::web::AppState;
use crate::web::extract::{RepoKey, Server};

pub async fn handler(
    State(state): State<AppState>,
    Server(server): Server,
    RepoKey(key): RepoKey,
) -> Result<Json<RepoStats>, AgentError> {
    Ok(Json(state.agent.stats(&server, &key).await?))
}

/// `GET /api/servers/{server}/backups/restic/stats/history` → [`StorageHistory`]
pub async fn history(
    State(state): State<AppState>,
    Server(server): Server,
    RepoKey(key): RepoKey,
) -> Result<Json<StorageHistory>, AgentError> {
    Ok(Json(state.agent.storage_history(&server, &key).await?))
}

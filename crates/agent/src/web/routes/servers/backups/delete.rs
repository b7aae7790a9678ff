//! `DELETE /api/servers/{server}/backups/restic/{id}` → 204; 409
//! `backup_locked` while locked.

use axum::extract::State;
use axum::http::StatusCode;

use crate::AgentError;
use crate::web::AppState;
use crate::web::extract::{RepoKey, Server, Snapshot};

pub async fn handler(
    State(state): State<AppState>,
    Server(server): Server,
    Snapshot(id): Snapshot,
    RepoKey(key): RepoKey,
) -> Result<StatusCode, AgentError> {
    state.agent.delete(&server, &key, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

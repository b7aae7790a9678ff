//! `POST /api/servers/{server}/backups/restic/archive` → 202 `{"job_id"}`:
//! the server is being deleted; keep its repository in the archive.

use api::agent::JobAccepted;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use crate::AgentError;
use crate::web::AppState;
use crate::web::extract::{RepoKey, Server};

pub async fn handler(
    State(state): State<AppState>,
    Server(server): Server,
    RepoKey(key): RepoKey,
) -> Result<(StatusCode, Json<JobAccepted>), AgentError> {
    let job = state.agent.archive(&server, &key).await?;
    Ok((StatusCode::ACCEPTED, Json(JobAccepted { job_id: job })))
}

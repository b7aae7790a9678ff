//! `POST /api/servers/{server}/backups/restic/prune` → 202 `{"job_id"}`:
//! removes the data of forgotten snapshots now instead of with the next
//! batch (409 `prune_queued` while one is queued or running).

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
    let job = state.agent.prune_now(&server, &key).await?;
    Ok((StatusCode::ACCEPTED, Json(JobAccepted { job_id: job })))
}

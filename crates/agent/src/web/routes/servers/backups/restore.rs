//! `POST /api/servers/{server}/backups/restic/{id}/restore`
//! `{"truncate": true, "stop_server": true}` → 202 `{"job_id"}`. With Wings'
//! settings the game server is stopped first (503 `wings_unavailable`,
//! `wings_refused` or `wings_error` when Wings does not answer as it should,
//! and nothing happens); a safety snapshot tagged `pre-restore` comes first.

use api::agent::{JobAccepted, RestoreRequest};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use crate::AgentError;
use crate::web::AppState;
use crate::web::extract::{JsonBody, RepoKey, Server, Snapshot};

pub async fn handler(
    State(state): State<AppState>,
    Server(server): Server,
    Snapshot(id): Snapshot,
    RepoKey(key): RepoKey,
    JsonBody(body): JsonBody<RestoreRequest>,
) -> Result<(StatusCode, Json<JobAccepted>), AgentError> {
    let job = state.agent.restore(&server, &key, &id, &body).await?;
    Ok((StatusCode::ACCEPTED, Json(JobAccepted { job_id: job })))
}

//! `POST /api/servers/{server}/backups/restic` `{"max_backups"?, "ignore"?}`
//! → 202 `{"job_id"}`

use api::agent::{CreateBackupRequest, JobAccepted};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use crate::AgentError;
use crate::web::AppState;
use crate::web::extract::{JsonBody, RepoKey, Server};

pub async fn handler(
    State(state): State<AppState>,
    Server(server): Server,
    RepoKey(key): RepoKey,
    JsonBody(body): JsonBody<CreateBackupRequest>,
) -> Result<(StatusCode, Json<JobAccepted>), AgentError> {
    let job = state.agent.create_backup(&server, &key, body).await?;
    Ok((StatusCode::ACCEPTED, Json(JobAccepted { job_id: job })))
}

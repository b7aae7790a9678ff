//! `GET /api/servers/{server}/backups/restic/jobs/{job}` → [`JobView`]
//!
//! Needs the node token only: a job's status holds no repository data.

use api::agent::JobView;
use axum::Json;
use axum::extract::State;

use crate::AgentError;
use crate::web::AppState;
use crate::web::extract::{Job, Server};

pub async fn handler(
    State(state): State<AppState>,
    Server(server): Server,
    Job(job): Job,
) -> Result<Json<JobView>, AgentError> {
    Ok(Json(state.agent.job(&server, &job)?))
}

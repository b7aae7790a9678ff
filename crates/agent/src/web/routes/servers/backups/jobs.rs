//! `GET /api/servers/{server}/backups/restic/jobs/{job}` → [`JobView`], and
//! `GET …/jobs?active=true` → [`JobList`] (the server's queued and running
//! jobs; without `active`, every job the agent remembers).
//!
//! Need the node token only: a job's status holds no repository data.

use api::agent::{JobList, JobView};
use axum::Json;
use axum::extract::State;

use crate::AgentError;
use crate::web::AppState;
use crate::web::extract::{Job, QueryMap, Server};

pub async fn handler(
    State(state): State<AppState>,
    Server(server): Server,
    Job(job): Job,
) -> Result<Json<JobView>, AgentError> {
    Ok(Json(state.agent.job(&server, &job)?))
}

pub async fn list(
    State(state): State<AppState>,
    Server(server): Server,
    QueryMap(query): QueryMap,
) -> Result<Json<JobList>, AgentError> {
    let active = api::agent::parse_active(query.get("active").map(String::as_str))
        .map_err(|m| AgentError::bad_request("invalid_active", m))?;
    Ok(Json(state.agent.jobs(&server, active)))
}

//! `GET /extensions/resticbackups/servers/{server}/backups/restic/jobs/{job}`,
//! and `GET …/jobs?active=true` (the server's queued and running jobs).

use std::collections::HashMap;

use api::agent::{JobList, JobView};
use axum::Json;
use axum::extract::{Query, State};

use crate::PanelError;
use crate::permissions::Read;
use crate::web::AppState;
use crate::web::extract::{Job, Permit};

pub async fn job(
    State(state): State<AppState>,
    Permit(p): Permit<Read>,
    Job(job): Job,
) -> Result<Json<JobView>, PanelError> {
    Ok(Json(state.panel.job(&p, &job).await?))
}

pub async fn jobs(
    State(state): State<AppState>,
    Permit(p): Permit<Read>,
    query: Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<JobList>, PanelError> {
    let Query(query) = query.map_err(|_| {
        PanelError::bad_request("invalid_query", "the query string could not be read")
    })?;
    let active = api::agent::parse_active(query.get("active").map(String::as_str))
        .map_err(|m| PanelError::bad_request("invalid_active", m))?;
    Ok(Json(state.panel.jobs(&p, active).await?))
}

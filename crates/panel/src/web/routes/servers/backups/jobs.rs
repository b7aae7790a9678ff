//! `GET /extensions/resticbackups/servers/{server}/backups/restic/jobs/{job}`,
//! and `GET …/jobs?active=true` (the server's queued and running jobs).

use api::agent::{JobList, JobView};
use axum::Json;
use axum::extract::State;

use crate::PanelError;
use crate::permissions::Read;
use crate::web::AppState;
use crate::web::extract::{Job, Permit, QueryMap};

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
    QueryMap(query): QueryMap,
) -> Result<Json<JobList>, PanelError> {
    let active = api::agent::parse_active(query.get("active").map(String::as_str))
        .map_err(|m| PanelError::bad_request("invalid_active", m))?;
    Ok(Json(state.panel.jobs(&p, active).await?))
}

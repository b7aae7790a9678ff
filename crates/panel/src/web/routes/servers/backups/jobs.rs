//! `GET /extensions/resticbackups/servers/{server}/backups/restic/jobs/{job}`.

use api::agent::JobView;
use axum::Json;
use axum::extract::State;

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

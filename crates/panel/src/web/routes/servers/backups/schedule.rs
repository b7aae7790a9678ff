//! `GET` / `POST /extensions/resticbackups/servers/{server}/backups/restic/schedule`.

use api::panel::{ScheduleRequest, ScheduleView};
use axum::Json;
use axum::extract::State;

use crate::PanelError;
use crate::permissions::{Create, Read};
use crate::web::AppState;
use crate::web::extract::{JsonBody, Permit};

pub async fn schedule(
    State(state): State<AppState>,
    Permit(p): Permit<Read>,
) -> Result<Json<ScheduleView>, PanelError> {
    Ok(Json(state.panel.schedule(&p).await?))
}

pub async fn save_schedule(
    State(state): State<AppState>,
    Permit(p): Permit<Create>,
    JsonBody(req): JsonBody<ScheduleRequest>,
) -> Result<Json<ScheduleView>, PanelError> {
    Ok(Json(
        state
            .panel
            .save_schedule(&p, req, crate::service::now())
            .await?,
    ))
}

/// `POST …/schedule/run` → 202 `{"job_id"}`: the schedule's backup now
/// (`backup.create`), its retention applied once it succeeded (for those
/// who also hold `backup.delete`).
pub async fn run_now(
    State(state): State<AppState>,
    Permit(p): Permit<Create>,
) -> Result<(axum::http::StatusCode, Json<api::agent::JobAccepted>), PanelError> {
    Ok((
        axum::http::StatusCode::ACCEPTED,
        Json(state.panel.run_schedule_now(&p).await?),
    ))
}

//! `POST /extensions/resticbackups/servers/{server}/backups/restic/{id}/restore`.

use api::agent::{JobAccepted, RestoreRequest};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use crate::PanelError;
use crate::permissions::Restore;
use crate::web::AppState;
use crate::web::extract::{JsonBody, Permit, Snapshot};

pub async fn restore(
    State(state): State<AppState>,
    Permit(p): Permit<Restore>,
    Snapshot(id): Snapshot,
    JsonBody(body): JsonBody<RestoreRequest>,
) -> Result<(StatusCode, Json<JobAccepted>), PanelError> {
    let job = state.panel.restore(&p, &id, body.truncate).await?;
    Ok((StatusCode::ACCEPTED, Json(job)))
}

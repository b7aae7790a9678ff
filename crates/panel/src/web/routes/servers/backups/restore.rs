//! `POST /extensions/resticbackups/servers/{server}/backups/restic/{id}/restore`
//! `{"truncate": true, "stop_server": true}` → 202 `{"job_id"}`; both are
//! passed to the node's agent as they came (`stop_server: false` restores
//! without stopping the game server through Wings).

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
    let job = state.panel.restore(&p, &id, &body).await?;
    Ok((StatusCode::ACCEPTED, Json(job)))
}

//! `POST /extensions/resticbackups/admin/servers/{server}/prune` → 202
//! `{"job_id"}`: reclaim the space of the server's forgotten backups now
//! (root admins; the job shows on the server's backups page).

use api::agent::JobAccepted;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use crate::PanelError;
use crate::web::AppState;
use crate::web::extract::{Admin, ServerParam};

pub async fn prune(
    State(state): State<AppState>,
    Admin(a): Admin,
    ServerParam(uuid): ServerParam,
) -> Result<(StatusCode, Json<JobAccepted>), PanelError> {
    Ok((
        StatusCode::ACCEPTED,
        Json(state.panel.prune_now(&a, &uuid).await?),
    ))
}

//! `DELETE /extensions/resticbackups/servers/{server}/backups/restic/{id}`.

use axum::extract::State;
use axum::http::StatusCode;

use crate::PanelError;
use crate::permissions::Delete;
use crate::web::AppState;
use crate::web::extract::{Permit, Snapshot};

pub async fn delete(
    State(state): State<AppState>,
    Permit(p): Permit<Delete>,
    Snapshot(id): Snapshot,
) -> Result<StatusCode, PanelError> {
    state.panel.delete_backup(&p, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

//! `POST /extensions/resticbackups/servers/{server}/backups/restic/{id}/lock` and `/unlock`.

use api::agent::LockState;
use axum::Json;
use axum::extract::State;

use crate::PanelError;
use crate::permissions::Delete;
use crate::web::AppState;
use crate::web::extract::{Permit, Snapshot};

pub async fn lock(
    State(state): State<AppState>,
    Permit(p): Permit<Delete>,
    Snapshot(id): Snapshot,
) -> Result<Json<LockState>, PanelError> {
    Ok(Json(state.panel.set_locked(&p, &id, true).await?))
}

pub async fn unlock(
    State(state): State<AppState>,
    Permit(p): Permit<Delete>,
    Snapshot(id): Snapshot,
) -> Result<Json<LockState>, PanelError> {
    Ok(Json(state.panel.set_locked(&p, &id, false).await?))
}

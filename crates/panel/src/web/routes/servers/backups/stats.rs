//! `GET /extensions/resticbackups/servers/{server}/backups/restic/stats`.

use api::agent::{RepoStats, StorageHistory};
use axum::Json;
use axum::extract::State;

use crate::PanelError;
use crate::permissions::Read;
use crate::web::AppState;
use crate::web::extract::Permit;

pub async fn stats(
    State(state): State<AppState>,
    Permit(p): Permit<Read>,
) -> Result<Json<RepoStats>, PanelError> {
    Ok(Json(state.panel.stats(&p).await?))
}

/// `GET …/stats/history`: per backup, bytes added and the repository's size after it.
pub async fn history(
    State(state): State<AppState>,
    Permit(p): Permit<Read>,
) -> Result<Json<StorageHistory>, PanelError> {
    Ok(Json(state.panel.storage_history(&p).await?))
}

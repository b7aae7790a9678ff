//! `GET /extensions/resticbackups/admin/pterodactyl/sync`: the last sync and
//! the recorded ones; `POST` runs one now and answers the same, with it as
//! `last`. 404 `not_found` on a stand-alone panel.

use api::panel::PteroSyncStatus;

use axum::Json;
use axum::extract::State;

use super::JsonResult;
use crate::pterodactyl::SyncOrigin;
use crate::web::AppState;
use crate::web::extract::Admin;

pub async fn status(State(state): State<AppState>, Admin(a): Admin) -> JsonResult<PteroSyncStatus> {
    Ok(Json(state.panel.pterodactyl_sync_status(&a).await?))
}

pub async fn run(State(state): State<AppState>, Admin(a): Admin) -> JsonResult<PteroSyncStatus> {
    state.panel.sync_pterodactyl(SyncOrigin::admin(&a)).await?;
    Ok(Json(state.panel.pterodactyl_sync_status(&a).await?))
}

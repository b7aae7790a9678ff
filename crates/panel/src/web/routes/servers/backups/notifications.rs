//! `/extensions/resticbackups/servers/{server}/backups/restic/notifications`
//! (`GET`, `PUT`, `DELETE`) and `…/notifications/test` (`POST`): the server
//! owner's own Discord webhook. Subusers get 403.

use api::panel::{ChannelTested, ServerChannel, ServerChannelRequest};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use crate::PanelError;
use crate::permissions::Read;
use crate::web::AppState;
use crate::web::extract::{JsonBody, Permit};

pub async fn get(
    State(state): State<AppState>,
    Permit(p): Permit<Read>,
) -> Result<Json<ServerChannel>, PanelError> {
    Ok(Json(state.panel.server_channel(&p).await?))
}

pub async fn put(
    State(state): State<AppState>,
    Permit(p): Permit<Read>,
    JsonBody(req): JsonBody<ServerChannelRequest>,
) -> Result<Json<ServerChannel>, PanelError> {
    Ok(Json(state.panel.set_server_channel(&p, req).await?))
}

pub async fn delete(
    State(state): State<AppState>,
    Permit(p): Permit<Read>,
) -> Result<StatusCode, PanelError> {
    state.panel.delete_server_channel(&p).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn test(
    State(state): State<AppState>,
    Permit(p): Permit<Read>,
) -> Result<Json<ChannelTested>, PanelError> {
    Ok(Json(state.panel.test_server_channel(&p).await?))
}

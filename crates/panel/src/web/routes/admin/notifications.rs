//! `/extensions/resticbackups/admin/notifications[/{id}[/test]]`:
//! notification channels (list, add, remove, send a test).

use api::panel::{ChannelTested, ChannelView, NewChannelRequest};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use super::JsonResult;
use crate::PanelError;
use crate::web::AppState;
use crate::web::extract::{Admin, ChannelParam, JsonBody};

pub async fn channels(
    State(state): State<AppState>,
    Admin(a): Admin,
) -> JsonResult<Vec<ChannelView>> {
    Ok(Json(state.panel.channels(&a).await?))
}

pub async fn add_channel(
    State(state): State<AppState>,
    Admin(a): Admin,
    JsonBody(req): JsonBody<NewChannelRequest>,
) -> Result<(StatusCode, Json<ChannelView>), PanelError> {
    Ok((
        StatusCode::CREATED,
        Json(state.panel.add_channel(&a, req).await?),
    ))
}

pub async fn delete_channel(
    State(state): State<AppState>,
    Admin(a): Admin,
    ChannelParam(id): ChannelParam,
) -> Result<StatusCode, PanelError> {
    state.panel.delete_channel(&a, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn test_channel(
    State(state): State<AppState>,
    Admin(a): Admin,
    ChannelParam(id): ChannelParam,
) -> JsonResult<ChannelTested> {
    Ok(Json(state.panel.test_channel(&a, &id).await?))
}

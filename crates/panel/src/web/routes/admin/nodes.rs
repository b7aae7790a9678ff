//! `GET`/`POST /extensions/resticbackups/admin/nodes`, `PATCH`/`DELETE /extensions/resticbackups/admin/nodes/{name}`.

use api::panel::{NewNodeRequest, NodeView, UpdateNodeRequest};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use super::JsonResult;
use crate::PanelError;
use crate::web::AppState;
use crate::web::extract::{Admin, JsonBody, NameParam};

pub async fn nodes(State(state): State<AppState>, Admin(a): Admin) -> JsonResult<Vec<NodeView>> {
    Ok(Json(state.panel.nodes(&a).await?))
}

pub async fn create_node(
    State(state): State<AppState>,
    Admin(a): Admin,
    JsonBody(req): JsonBody<NewNodeRequest>,
) -> Result<(StatusCode, Json<NodeView>), PanelError> {
    Ok((
        StatusCode::CREATED,
        Json(state.panel.create_node(&a, req).await?),
    ))
}

pub async fn update_node(
    State(state): State<AppState>,
    Admin(a): Admin,
    NameParam(name): NameParam,
    JsonBody(req): JsonBody<UpdateNodeRequest>,
) -> JsonResult<NodeView> {
    Ok(Json(state.panel.update_node(&a, &name, req).await?))
}

pub async fn delete_node(
    State(state): State<AppState>,
    Admin(a): Admin,
    NameParam(name): NameParam,
) -> Result<StatusCode, PanelError> {
    state.panel.delete_node(&a, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

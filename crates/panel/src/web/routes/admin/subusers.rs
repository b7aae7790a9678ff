//! `GET`/`PUT /extensions/resticbackups/admin/servers/{server}/subusers`, `DELETE …/subusers/{user}`.

use api::panel::{SetSubuserRequest, SubuserView};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use super::JsonResult;
use crate::PanelError;
use crate::web::AppState;
use crate::web::extract::{Admin, JsonBody, ServerParam, UserParam};

pub async fn subusers(
    State(state): State<AppState>,
    Admin(a): Admin,
    ServerParam(uuid): ServerParam,
) -> JsonResult<Vec<SubuserView>> {
    Ok(Json(state.panel.subusers(&a, &uuid).await?))
}

pub async fn set_subuser(
    State(state): State<AppState>,
    Admin(a): Admin,
    ServerParam(uuid): ServerParam,
    JsonBody(req): JsonBody<SetSubuserRequest>,
) -> Result<StatusCode, PanelError> {
    state.panel.set_subuser(&a, &uuid, req).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn remove_subuser(
    State(state): State<AppState>,
    Admin(a): Admin,
    ServerParam(uuid): ServerParam,
    UserParam(id): UserParam,
) -> Result<StatusCode, PanelError> {
    state.panel.remove_subuser(&a, &uuid, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

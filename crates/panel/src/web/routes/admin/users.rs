//! `GET`/`POST /extensions/resticbackups/admin/users`, `PATCH`/`DELETE /extensions/resticbackups/admin/users/{user}`.

use api::panel::{NewUserRequest, UpdateUserRequest, UserView};
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};

use super::JsonResult;
use crate::PanelError;
use crate::web::AppState;
use crate::web::extract::{Admin, JsonBody, SessionCtx, UserParam};

pub async fn users(State(state): State<AppState>, Admin(a): Admin) -> JsonResult<Vec<UserView>> {
    Ok(Json(state.panel.users(&a).await?))
}

pub async fn create_user(
    State(state): State<AppState>,
    Admin(a): Admin,
    JsonBody(req): JsonBody<NewUserRequest>,
) -> Result<(StatusCode, Json<UserView>), PanelError> {
    Ok((
        StatusCode::CREATED,
        Json(state.panel.create_user(&a, req).await?),
    ))
}

pub async fn update_user(
    State(state): State<AppState>,
    Admin(a): Admin,
    UserParam(id): UserParam,
    Extension(ctx): Extension<Arc<SessionCtx>>,
    JsonBody(req): JsonBody<UpdateUserRequest>,
) -> JsonResult<UserView> {
    Ok(Json(
        state
            .panel
            .update_user(&a, id, req, ctx.id.as_deref())
            .await?,
    ))
}

pub async fn delete_user(
    State(state): State<AppState>,
    Admin(a): Admin,
    UserParam(id): UserParam,
) -> Result<StatusCode, PanelError> {
    state.panel.delete_user(&a, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

//! `POST /extensions/resticbackups/admin/servers/{server}/key/regenerate`.

use api::panel::KeyRegenerated;

use axum::Json;
use axum::extract::State;

use super::JsonResult;
use crate::web::AppState;
use crate::web::extract::{Admin, ServerParam};

pub async fn regenerate_key(
    State(state): State<AppState>,
    Admin(a): Admin,
    ServerParam(uuid): ServerParam,
) -> JsonResult<KeyRegenerated> {
    Ok(Json(state.panel.regenerate_key(&a, &uuid).await?))
}

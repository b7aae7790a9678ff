//! `GET /extensions/resticbackups/admin/keys`.

use api::panel::ServerKeyList;

use axum::Json;
use axum::extract::State;

use super::JsonResult;
use crate::web::AppState;
use crate::web::extract::Admin;

pub async fn keys(State(state): State<AppState>, Admin(a): Admin) -> JsonResult<ServerKeyList> {
    Ok(Json(ServerKeyList {
        keys: state.panel.keys(&a).await?,
    }))
}

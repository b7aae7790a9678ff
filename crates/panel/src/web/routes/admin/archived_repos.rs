//! `GET /extensions/resticbackups/admin/archived-repos` and `DELETE /extensions/resticbackups/admin/archived-repos/{name}?node=`.

use api::panel::PanelArchiveList;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::Deserialize;

use super::JsonResult;
use crate::PanelError;
use crate::web::AppState;
use crate::web::extract::{Admin, NameParam};

pub async fn archived_repos(
    State(state): State<AppState>,
    Admin(a): Admin,
) -> JsonResult<PanelArchiveList> {
    Ok(Json(state.panel.archived_repos(&a).await?))
}

#[derive(Deserialize)]
pub struct NodeQuery {
    node: Option<String>,
}

pub async fn delete_archived_repo(
    State(state): State<AppState>,
    Admin(a): Admin,
    NameParam(name): NameParam,
    Query(q): Query<NodeQuery>,
) -> Result<StatusCode, PanelError> {
    state
        .panel
        .delete_archived_repo(&a, &name, q.node.as_deref())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

//! `GET`/`POST /extensions/resticbackups/admin/servers`, `PATCH`/`DELETE /extensions/resticbackups/admin/servers/{server}`
//! (`DELETE`: 204 when done at once, else 202 with the task that archives the
//! repository and then deletes the server, `Location: …/admin/tasks/{task}`).

use api::panel::{NewServerRequest, ServerView, UpdateServerRequest};

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::JsonResult;
use crate::PanelError;
use crate::service::Deletion;
use crate::web::AppState;
use crate::web::PREFIX;
use crate::web::extract::{Admin, JsonBody, ServerParam};

pub async fn servers(
    State(state): State<AppState>,
    Admin(a): Admin,
) -> JsonResult<Vec<ServerView>> {
    Ok(Json(state.panel.servers(&a).await?))
}

pub async fn create_server(
    State(state): State<AppState>,
    Admin(a): Admin,
    JsonBody(req): JsonBody<NewServerRequest>,
) -> Result<(StatusCode, Json<ServerView>), PanelError> {
    Ok((
        StatusCode::CREATED,
        Json(state.panel.create_server(&a, req).await?),
    ))
}

pub async fn update_server(
    State(state): State<AppState>,
    Admin(a): Admin,
    ServerParam(uuid): ServerParam,
    JsonBody(req): JsonBody<UpdateServerRequest>,
) -> JsonResult<ServerView> {
    Ok(Json(state.panel.update_server(&a, &uuid, req).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteServerQuery {
    /// The node is gone for good: delete without archiving, keys kept.
    #[serde(default)]
    force: bool,
}

pub async fn delete_server(
    State(state): State<AppState>,
    Admin(a): Admin,
    ServerParam(uuid): ServerParam,
    Query(q): Query<DeleteServerQuery>,
) -> Result<Response, PanelError> {
    Ok(match state.panel.delete_server(&a, &uuid, q.force).await? {
        Deletion::Done => StatusCode::NO_CONTENT.into_response(),
        // The node is archiving: the server goes once it has. The task's
        // URL says how it ended.
        Deletion::Started(task) => {
            let location = format!("{}{}/admin/tasks/{}", state.base, PREFIX, task.id);
            let mut res = (StatusCode::ACCEPTED, Json(task)).into_response();
            if let Ok(v) = HeaderValue::from_str(&location) {
                res.headers_mut().insert(header::LOCATION, v);
            }
            res
        }
    })
}

//! `/extensions/resticbackups/admin/...`: root admins only (the `Admin`
//! extractor checks before any body runs).

use api::panel::{
    KeyRegenerated, NewNodeRequest, NewServerRequest, NewUserRequest, NodeView, PanelArchiveList,
    ServerKeyList, ServerView, SetSubuserRequest, SubuserView, UpdateNodeRequest,
    UpdateServerRequest, UpdateUserRequest, UserView,
};
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;

use crate::PanelError;
use crate::web::AppState;
use crate::web::extract::{Admin, JsonBody, NameParam, ServerParam, SessionCtx, UserParam};

type JsonResult<T> = Result<Json<T>, PanelError>;

pub async fn keys(State(state): State<AppState>, Admin(a): Admin) -> JsonResult<ServerKeyList> {
    Ok(Json(ServerKeyList {
        keys: state.panel.keys(&a).await?,
    }))
}

pub async fn regenerate_key(
    State(state): State<AppState>,
    Admin(a): Admin,
    ServerParam(uuid): ServerParam,
) -> JsonResult<KeyRegenerated> {
    Ok(Json(state.panel.regenerate_key(&a, &uuid).await?))
}

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
) -> Result<StatusCode, PanelError> {
    state.panel.delete_server(&a, &uuid, q.force).await?;
    Ok(StatusCode::NO_CONTENT)
}

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

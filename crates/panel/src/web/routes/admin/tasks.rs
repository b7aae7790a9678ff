//! `GET /extensions/resticbackups/admin/tasks/{task}`: how a task the panel
//! carried on with after answering 202 stands (deleting a server).

use api::panel::TaskView;
use axum::Json;
use axum::extract::State;

use super::JsonResult;
use crate::web::AppState;
use crate::web::extract::{Admin, TaskParam};

pub async fn task(
    State(state): State<AppState>,
    Admin(a): Admin,
    TaskParam(id): TaskParam,
) -> JsonResult<TaskView> {
    Ok(Json(state.panel.task(&a, &id).await?))
}

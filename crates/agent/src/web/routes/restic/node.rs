//! `GET /api/restic/node` → `{store, repository, restic_version, agent_version}`:
//! where this node keeps repositories, without credentials.

use api::agent::NodeInfo;
use axum::Json;
use axum::extract::State;

use crate::web::AppState;

pub async fn info(State(state): State<AppState>) -> Json<NodeInfo> {
    Json(state.agent.node_info())
}

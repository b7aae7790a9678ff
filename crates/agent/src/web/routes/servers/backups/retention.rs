//! `POST /api/servers/{server}/backups/restic/retention` → 200
//! [`RetentionResult`]: forget what the policy does not keep.

use api::agent::{RetentionPolicy, RetentionResult};
use axum::Json;
use axum::extract::State;

use crate::AgentError;
use crate::web::AppState;
use crate::web::extract::{JsonBody, RepoKey, Server};

pub async fn handler(
    State(state): State<AppState>,
    Server(server): Server,
    RepoKey(key): RepoKey,
    JsonBody(policy): JsonBody<RetentionPolicy>,
) -> Result<Json<RetentionResult>, AgentError> {
    Ok(Json(
        state.agent.apply_retention(&server, &key, &policy).await?,
    ))
}

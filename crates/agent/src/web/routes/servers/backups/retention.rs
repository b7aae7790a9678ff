//! `POST /api/servers/{server}/backups/restic/retention` → 200
//! [`RetentionResult`]: forget what the policy does not keep.

use api::agent::{RetentionPolicy, RetentionPreview, RetentionResult};
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

/// `POST /api/servers/{server}/backups/restic/retention/preview` → 200
/// [`RetentionPreview`]: what the policy would forget now; nothing is.
pub async fn preview(
    State(state): State<AppState>,
    Server(server): Server,
    RepoKey(key): RepoKey,
    JsonBody(policy): JsonBody<RetentionPolicy>,
) -> Result<Json<RetentionPreview>, AgentError> {
    Ok(Json(
        state
            .agent
            .preview_retention(&server, &key, &policy)
            .await?,
    ))
}

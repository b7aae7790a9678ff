//! `POST /api/servers/{server}/backups/restic/key` `{"new_password"}` with the
//! current key in `X-Restic-Password` → 200 `{"key_id"}`.

use api::agent::{KeyRotated, RotateKeyRequest};
use axum::Json;
use axum::extract::State;

use crate::AgentError;
use crate::web::AppState;
use crate::web::extract::{JsonBody, RepoKey, Server};

pub async fn handler(
    State(state): State<AppState>,
    Server(server): Server,
    RepoKey(key): RepoKey,
    JsonBody(body): JsonBody<RotateKeyRequest>,
) -> Result<Json<KeyRotated>, AgentError> {
    Ok(Json(
        state
            .agent
            .rotate_key(&server, &key, &body.new_password)
            .await?,
    ))
}

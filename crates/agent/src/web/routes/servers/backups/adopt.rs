//! `POST /api/servers/{server}/backups/restic/adopt` `{"dry_run"}` with the
//! key in `X-Restic-Password` → 200 `{"adopted_from","left"}`; 404
//! `repository_not_found` when there is no repository to open, 403
//! `wrong_key` when the key opens none.

use api::agent::{AdoptAnswer, AdoptRequest};
use axum::Json;
use axum::extract::State;

use crate::AgentError;
use crate::web::AppState;
use crate::web::extract::{JsonBody, RepoKey, Server};

pub async fn handler(
    State(state): State<AppState>,
    Server(server): Server,
    RepoKey(key): RepoKey,
    JsonBody(body): JsonBody<AdoptRequest>,
) -> Result<Json<AdoptAnswer>, AgentError> {
    Ok(Json(state.agent.adopt(&server, &key, body.dry_run).await?))
}

//! `GET /api/servers/{server}/backups/restic?limit&cursor&from&to` → [`BackupList`]
//! (`from`/`to`: RFC 3339; at or after `from`, before `to`)

use api::agent::BackupList;
use axum::Json;
use axum::extract::State;

use crate::AgentError;
use crate::index::Cursor;
use crate::service::{DEFAULT_LIMIT, MAX_LIMIT};
use crate::web::AppState;
use crate::web::extract::{QueryMap, RepoKey, Server};

pub async fn handler(
    State(state): State<AppState>,
    Server(server): Server,
    RepoKey(key): RepoKey,
    QueryMap(query): QueryMap,
) -> Result<Json<BackupList>, AgentError> {
    let limit = match query.get("limit") {
        None => DEFAULT_LIMIT,
        Some(raw) => raw
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=MAX_LIMIT).contains(l))
            .ok_or_else(|| {
                AgentError::bad_request(
                    "invalid_limit",
                    format!("limit must be a whole number from 1 to {MAX_LIMIT}"),
                )
            })?,
    };
    let cursor = match query.get("cursor").filter(|c| !c.is_empty()) {
        Some(raw) => Some(Cursor::decode(raw)?),
        None => None,
    };
    let range = api::TimeRange::parse(
        query.get("from").map(String::as_str),
        query.get("to").map(String::as_str),
    )
    .map_err(|m| AgentError::bad_request("invalid_time", m))?;
    Ok(Json(
        state
            .agent
            .list(&server, &key, limit, cursor.as_ref(), &range)
            .await?,
    ))
}

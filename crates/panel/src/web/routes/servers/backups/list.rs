//! `GET /extensions/resticbackups/servers/{server}/backups/restic` (a page of backups) and `POST` (a new backup, 202).

use api::agent::JobAccepted;
use api::panel::{PanelBackupList, PanelCreateBackup};
use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::Deserialize;

use crate::PanelError;
use crate::permissions::{Create, Read};
use crate::web::AppState;
use crate::web::extract::{JsonBody, Permit};

/// Page size when none is asked for, and the largest allowed.
const DEFAULT_LIMIT: usize = 5;

const MAX_LIMIT: usize = 100;

#[derive(Deserialize)]
pub struct ListQuery {
    limit: Option<String>,
    cursor: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    Permit(p): Permit<Read>,
    Query(q): Query<ListQuery>,
) -> Result<Json<PanelBackupList>, PanelError> {
    let limit = match q.limit.as_deref() {
        None => DEFAULT_LIMIT,
        Some(raw) => raw
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                PanelError::bad_request(
                    "invalid_limit",
                    format!("limit must be a number from 1 to {MAX_LIMIT}"),
                )
            })?,
    };
    let cursor = q.cursor.filter(|c| !c.is_empty());
    if cursor.as_ref().is_some_and(|c| c.len() > 512) {
        return Err(PanelError::bad_request(
            "invalid_cursor",
            "the cursor is not valid",
        ));
    }
    let range = api::TimeRange::parse(q.from.as_deref(), q.to.as_deref())
        .map_err(|m| PanelError::bad_request("invalid_time", m))?;
    Ok(Json(
        state
            .panel
            .list_backups(&p, limit, cursor.as_deref(), &range)
            .await?,
    ))
}

pub async fn create(
    State(state): State<AppState>,
    Permit(p): Permit<Create>,
    JsonBody(body): JsonBody<PanelCreateBackup>,
) -> Result<(StatusCode, Json<JobAccepted>), PanelError> {
    let job = state
        .panel
        .create_backup(&p, body.ignore, body.note.as_deref())
        .await?;
    Ok((StatusCode::ACCEPTED, Json(job)))
}

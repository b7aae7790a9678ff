//! `GET /extensions/resticbackups/servers/{server}/backups/restic/{id}/files?path=&limit=&cursor=`:
//! one folder of a backup, folders first (`backup.read`).

use std::collections::HashMap;

use api::files::{FileList, FilesQuery};
use axum::Json;
use axum::extract::{Query, State};

use crate::PanelError;
use crate::permissions::Read;
use crate::web::AppState;
use crate::web::extract::{Permit, Snapshot};

pub async fn files(
    State(state): State<AppState>,
    Permit(p): Permit<Read>,
    Snapshot(id): Snapshot,
    query: Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<FileList>, PanelError> {
    let Query(query) = query.map_err(|_| {
        PanelError::bad_request("invalid_query", "the query string could not be read")
    })?;
    let q = FilesQuery::parse(|k| query.get(k).cloned())
        .map_err(|e| PanelError::bad_request(e.code, e.message))?;
    Ok(Json(state.panel.files(&p, &id, &q).await?))
}

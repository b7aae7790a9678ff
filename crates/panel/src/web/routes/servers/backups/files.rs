//! `GET /extensions/resticbackups/servers/{server}/backups/restic/{id}/files?path=&limit=&cursor=`:
//! one folder of a backup, folders first (`backup.read`).

use api::files::{FileList, FilesQuery};
use axum::Json;
use axum::extract::State;

use crate::PanelError;
use crate::permissions::Read;
use crate::web::AppState;
use crate::web::extract::{Permit, QueryMap, Snapshot};

pub async fn files(
    State(state): State<AppState>,
    Permit(p): Permit<Read>,
    Snapshot(id): Snapshot,
    QueryMap(query): QueryMap,
) -> Result<Json<FileList>, PanelError> {
    let q = FilesQuery::parse(|k| query.get(k).cloned())
        .map_err(|e| PanelError::bad_request(e.code, e.message))?;
    Ok(Json(state.panel.files(&p, &id, &q).await?))
}

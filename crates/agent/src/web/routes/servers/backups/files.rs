//! `GET /api/servers/{server}/backups/restic/{id}/files?path=&limit=&cursor=`
//! → [`FileList`]: one page of a folder of the snapshot, folders first.

use api::files::{FileList, FilesQuery};
use axum::Json;
use axum::extract::State;

use crate::AgentError;
use crate::web::AppState;
use crate::web::extract::{QueryMap, RepoKey, Server, Snapshot};

pub async fn handler(
    State(state): State<AppState>,
    Server(server): Server,
    Snapshot(id): Snapshot,
    RepoKey(key): RepoKey,
    QueryMap(query): QueryMap,
) -> Result<Json<FileList>, AgentError> {
    let q = FilesQuery::parse(|k| query.get(k).cloned())
        .map_err(|e| AgentError::bad_request(e.code, e.message))?;
    Ok(Json(
        state
            .agent
            .files(&server, &key, &id, &q.path, q.offset, q.limit)
            .await?,
    ))
}

//! `GET /api/servers/{server}/backups/restic/{id}/download?format=tar.gz|tar.zst|zip&path=`
//! → the snapshot (or the folder at `path`) as a streamed archive, or the
//! file at `path` as itself.

use api::download::DownloadFormat;
use api::files::SnapshotPath;
use axum::extract::State;
use axum::response::Response;

use crate::AgentError;
use crate::web::AppState;
use crate::web::extract::{QueryMap, RepoKey, Server, Snapshot};
use crate::web::routes::download::respond;

pub async fn handler(
    State(state): State<AppState>,
    Server(server): Server,
    Snapshot(id): Snapshot,
    RepoKey(key): RepoKey,
    QueryMap(query): QueryMap,
) -> Result<Response, AgentError> {
    let format = match query.get("format") {
        None => DownloadFormat::TarGz,
        Some(raw) => DownloadFormat::parse(raw).ok_or_else(|| {
            AgentError::bad_request("invalid_format", "format must be tar.gz, tar.zst or zip")
        })?,
    };
    let path = match query.get("path") {
        None => None,
        Some(raw) => Some(
            SnapshotPath::parse(raw)
                .map_err(|e| AgentError::bad_request("invalid_path", e.to_string()))?,
        ),
    };
    let download = state
        .agent
        .download(&server, &key, &id, format, path.as_ref())
        .await?;
    Ok(respond(download))
}

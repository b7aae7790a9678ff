//! `GET /extensions/resticbackups/servers/{server}/backups/restic/{id}/download?format=&path=`:
//! the backup, or one folder of it, as an archive; one file as itself.

use api::download::DownloadFormat;
use api::files::SnapshotPath;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::PanelError;
use crate::agent_client::Wanted;
use crate::permissions::Download;
use crate::service::DownloadAnswer;
use crate::web::AppState;
use crate::web::extract::{Permit, Snapshot};

#[derive(Deserialize)]
pub struct DownloadQuery {
    format: Option<String>,
    path: Option<String>,
}

pub async fn download(
    State(state): State<AppState>,
    Permit(p): Permit<Download>,
    Snapshot(id): Snapshot,
    Query(q): Query<DownloadQuery>,
) -> Result<Response, PanelError> {
    let format = match q.format.as_deref() {
        None => DownloadFormat::TarGz,
        Some(raw) => DownloadFormat::parse(raw).ok_or_else(|| {
            PanelError::bad_request("invalid_format", "format must be tar.gz, tar.zst or zip")
        })?,
    };
    let path = match q.path.as_deref() {
        None => None,
        Some(raw) => Some(
            SnapshotPath::parse(raw)
                .map_err(|e| PanelError::bad_request("invalid_path", e.to_string()))?,
        ),
    }
    .filter(|p| !p.is_root());
    let what = Wanted { format, path };
    match state.panel.download(&p, &id, &what).await? {
        DownloadAnswer::Redirect(url) => {
            let mut res = StatusCode::FOUND.into_response();
            let h = res.headers_mut();
            h.insert(
                header::LOCATION,
                HeaderValue::from_str(&url)
                    .map_err(|_| PanelError::Internal("download link is not a header".into()))?,
            );
            Ok(res)
        }
        DownloadAnswer::Stream(upstream) => {
            let passed: Vec<_> = [
                header::CONTENT_TYPE,
                header::CONTENT_DISPOSITION,
                header::CONTENT_LENGTH,
            ]
            .into_iter()
            .filter_map(|name| upstream_header(&upstream, &name).map(|v| (name, v)))
            .collect();
            let mut res = Response::new(Body::from_stream(upstream.bytes_stream()));
            res.headers_mut().extend(passed);
            Ok(res)
        }
    }
}

fn upstream_header(res: &reqwest::Response, name: &header::HeaderName) -> Option<HeaderValue> {
    res.headers()
        .get(name.as_str())
        .and_then(|v| HeaderValue::from_bytes(v.as_bytes()).ok())
}

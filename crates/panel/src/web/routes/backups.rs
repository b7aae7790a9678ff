//! `/extensions/resticbackups/servers/...`: a server's backups. Each handler
//! receives its permit from the extractor (checked before the body runs),
//! calls the service and maps the answer.

use api::agent::{JobAccepted, JobView, LockState, RepoStats, RestoreRequest};
use api::download::DownloadFormat;
use api::panel::{
    PanelBackupList, PanelCreateBackup, RunHistory, ScheduleRequest, ScheduleView,
    ServerSummaryList,
};
use axum::Json;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::PanelError;
use crate::permissions::{Create, Delete, Download, Read, Restore};
use crate::service::DownloadAnswer;
use crate::web::AppState;
use crate::web::extract::{CurrentSession, Job, JsonBody, Permit, Snapshot};

/// Page size when none is asked for, and the largest allowed.
const DEFAULT_LIMIT: usize = 5;
const MAX_LIMIT: usize = 100;

pub async fn my_servers(
    State(state): State<AppState>,
    CurrentSession(s): CurrentSession,
) -> Result<Json<ServerSummaryList>, PanelError> {
    Ok(Json(ServerSummaryList {
        servers: state.panel.servers_of(&s.user).await?,
    }))
}

#[derive(Deserialize)]
pub struct ListQuery {
    limit: Option<String>,
    cursor: Option<String>,
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
    Ok(Json(
        state
            .panel
            .list_backups(&p, limit, cursor.as_deref())
            .await?,
    ))
}

pub async fn create(
    State(state): State<AppState>,
    Permit(p): Permit<Create>,
    JsonBody(body): JsonBody<PanelCreateBackup>,
) -> Result<(StatusCode, Json<JobAccepted>), PanelError> {
    let job = state.panel.create_backup(&p, body.ignore).await?;
    Ok((StatusCode::ACCEPTED, Json(job)))
}

pub async fn stats(
    State(state): State<AppState>,
    Permit(p): Permit<Read>,
) -> Result<Json<RepoStats>, PanelError> {
    Ok(Json(state.panel.stats(&p).await?))
}

pub async fn job(
    State(state): State<AppState>,
    Permit(p): Permit<Read>,
    Job(job): Job,
) -> Result<Json<JobView>, PanelError> {
    Ok(Json(state.panel.job(&p, &job).await?))
}

pub async fn restore(
    State(state): State<AppState>,
    Permit(p): Permit<Restore>,
    Snapshot(id): Snapshot,
    JsonBody(body): JsonBody<RestoreRequest>,
) -> Result<(StatusCode, Json<JobAccepted>), PanelError> {
    let job = state.panel.restore(&p, &id, body.truncate).await?;
    Ok((StatusCode::ACCEPTED, Json(job)))
}

pub async fn lock(
    State(state): State<AppState>,
    Permit(p): Permit<Delete>,
    Snapshot(id): Snapshot,
) -> Result<Json<LockState>, PanelError> {
    Ok(Json(state.panel.set_locked(&p, &id, true).await?))
}

pub async fn unlock(
    State(state): State<AppState>,
    Permit(p): Permit<Delete>,
    Snapshot(id): Snapshot,
) -> Result<Json<LockState>, PanelError> {
    Ok(Json(state.panel.set_locked(&p, &id, false).await?))
}

pub async fn delete(
    State(state): State<AppState>,
    Permit(p): Permit<Delete>,
    Snapshot(id): Snapshot,
) -> Result<StatusCode, PanelError> {
    state.panel.delete_backup(&p, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
pub struct DownloadQuery {
    format: Option<String>,
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
    match state.panel.download(&p, &id, format).await? {
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
            let passed: Vec<_> = [header::CONTENT_TYPE, header::CONTENT_DISPOSITION]
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

pub async fn schedule(
    State(state): State<AppState>,
    Permit(p): Permit<Read>,
) -> Result<Json<ScheduleView>, PanelError> {
    Ok(Json(state.panel.schedule(&p).await?))
}

pub async fn save_schedule(
    State(state): State<AppState>,
    Permit(p): Permit<Create>,
    JsonBody(req): JsonBody<ScheduleRequest>,
) -> Result<Json<ScheduleView>, PanelError> {
    Ok(Json(
        state
            .panel
            .save_schedule(&p, req, crate::service::now())
            .await?,
    ))
}

pub async fn schedule_history(
    State(state): State<AppState>,
    Permit(p): Permit<Read>,
) -> Result<Json<RunHistory>, PanelError> {
    Ok(Json(RunHistory {
        runs: state.panel.run_history(&p).await?,
    }))
}

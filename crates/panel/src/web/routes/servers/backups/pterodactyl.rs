//! `GET /extensions/resticbackups/servers/{server}/backups/pterodactyl`:
//! Pterodactyl's own backups of the server (Pterodactyl mode), read with the
//! visitor's Pterodactyl sign-in; `…/pterodactyl/{backup}/download`
//! redirects to Pterodactyl's signed download link.

use api::panel::PteroBackupList;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::PanelError;
use crate::permissions::{Download, Read};
use crate::web::AppState;
use crate::web::extract::{Permit, PteroCredential};

pub async fn list(
    State(state): State<AppState>,
    Permit(p): Permit<Read>,
    PteroCredential(who): PteroCredential,
) -> Result<Json<PteroBackupList>, PanelError> {
    Ok(Json(PteroBackupList {
        backups: state.panel.pterodactyl_backups(&p, &who).await?,
    }))
}

pub async fn download(
    State(state): State<AppState>,
    Permit(p): Permit<Download>,
    PteroCredential(who): PteroCredential,
    Path((_, backup)): Path<(String, String)>,
) -> Result<Response, PanelError> {
    let link = state
        .panel
        .pterodactyl_backup_link(&p, &who, &backup)
        .await?;
    let mut res = StatusCode::FOUND.into_response();
    res.headers_mut().insert(
        header::LOCATION,
        HeaderValue::from_str(link.expose())
            .map_err(|_| PanelError::Internal("Pterodactyl's link is not a header".into()))?,
    );
    Ok(res)
}

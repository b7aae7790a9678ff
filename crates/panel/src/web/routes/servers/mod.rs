//! `GET /extensions/resticbackups/servers`: the servers the user can see.
//! Below it, `backups/` holds `/servers/{server}/backups/restic/...`, one
//! file per URL.

use api::panel::ServerSummaryList;
use axum::Json;
use axum::extract::State;

use crate::PanelError;
use crate::web::AppState;
use crate::web::extract::CurrentSession;

pub mod backups;

pub async fn my_servers(
    State(state): State<AppState>,
    CurrentSession(s): CurrentSession,
) -> Result<Json<ServerSummaryList>, PanelError> {
    Ok(Json(ServerSummaryList {
        servers: state.panel.servers_of(&s.user).await?,
    }))
}

//! `GET /extensions/resticbackups/servers/{server}/backups/restic/schedule/history`.

use api::panel::RunHistory;
use axum::Json;
use axum::extract::State;

use crate::PanelError;
use crate::permissions::Read;
use crate::web::AppState;
use crate::web::extract::Permit;

pub async fn schedule_history(
    State(state): State<AppState>,
    Permit(p): Permit<Read>,
) -> Result<Json<RunHistory>, PanelError> {
    Ok(Json(RunHistory {
        runs: state.panel.run_history(&p).await?,
    }))
}

//! `PUT /extensions/resticbackups/servers/{server}/backups/restic/{id}/note`
//! `{"note": "before 1.21 update"}` → [`NoteView`] (`backup.create`); an
//! empty note removes it.

use api::panel::{NoteRequest, NoteView};
use axum::Json;
use axum::extract::State;

use crate::PanelError;
use crate::permissions::Create;
use crate::web::AppState;
use crate::web::extract::{JsonBody, Permit, Snapshot};

pub async fn set(
    State(state): State<AppState>,
    Permit(p): Permit<Create>,
    Snapshot(id): Snapshot,
    JsonBody(body): JsonBody<NoteRequest>,
) -> Result<Json<NoteView>, PanelError> {
    Ok(Json(state.panel.set_note(&p, &id, &body.note).await?))
}

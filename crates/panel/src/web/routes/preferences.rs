//! `GET/PUT /extensions/resticbackups/preferences`: the signed-in user's
//! choices (Pterodactyl mode; 404 on a stand-alone panel).

use api::panel::Preferences;
use axum::Json;
use axum::extract::State;

use crate::PanelError;
use crate::web::AppState;
use crate::web::extract::{CurrentSession, JsonBody};

pub async fn get(
    State(state): State<AppState>,
    CurrentSession(s): CurrentSession,
) -> Result<Json<Preferences>, PanelError> {
    Ok(Json(state.panel.preferences(&s.user).await?))
}

pub async fn put(
    State(state): State<AppState>,
    CurrentSession(s): CurrentSession,
    JsonBody(p): JsonBody<Preferences>,
) -> Result<Json<Preferences>, PanelError> {
    Ok(Json(state.panel.set_preferences(&s.user, p).await?))
}

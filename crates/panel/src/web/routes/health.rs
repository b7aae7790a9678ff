//! `GET /healthz` (the process answers) and `GET /readyz` (database
//! reachable with current migrations, secret key right): unauthenticated,
//! for load balancers and monitors; they name failing checks, nothing more.

use api::health::Health;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use crate::web::AppState;

pub async fn healthz() -> Json<Health> {
    Json(Health::alive())
}

pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let health = Health::readiness(&state.panel.unready().await);
    let status = if health.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(health))
}

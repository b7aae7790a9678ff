//! `GET /metrics`: Prometheus metrics (the node token or `metrics_token`).

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use crate::web::AppState;

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        state.agent.metrics_text(),
    )
}

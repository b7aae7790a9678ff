//! `GET /metrics`: Prometheus metrics (the node token or `metrics_token`).

use axum::extract::State;
use axum::response::Response;

use crate::web::AppState;

pub async fn metrics(State(state): State<AppState>) -> Response {
    httpd::prometheus_answer(state.agent.metrics())
}

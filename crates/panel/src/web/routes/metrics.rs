//! `GET /metrics`: Prometheus metrics (the `metrics_token` or a root
//! admin's session).

use axum::extract::State;
use axum::response::Response;

use crate::web::AppState;
use crate::web::extract::MetricsReader;

pub async fn metrics(_: MetricsReader, State(state): State<AppState>) -> Response {
    httpd::prometheus_answer(state.panel.metrics().registry())
}

//! The agent's HTTP API. Handlers parse, call [`crate::Agent`] and map errors;
//! nothing here runs restic or touches repository files.

mod error;
mod extract;
mod routes;

use std::future::Future;

use api::routes::agent as route;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;

use crate::{Agent, AgentError};

/// Request bodies above this size are refused with 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub agent: Agent,
}

/// The whole API with authentication, body limits and JSON errors for
/// unknown routes.
pub fn router(state: AppState) -> Router {
    let api = routes::servers::backups::router()
        .merge(routes::restic::router())
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            extract::require_token,
        ));
    let metrics = Router::new()
        .route(route::METRICS, axum::routing::get(routes::metrics::metrics))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            extract::require_metrics_token,
        ));
    let app = Router::new()
        .merge(api)
        .merge(metrics)
        .route(
            route::DOWNLOAD_LINK,
            axum::routing::get(routes::download::handler),
        )
        .route(route::HEALTHZ, axum::routing::get(routes::health::healthz))
        .route(route::READYZ, axum::routing::get(routes::health::readyz))
        .route(
            route::OPENAPI,
            axum::routing::get(routes::openapi::document),
        )
        .fallback(|| async { AgentError::NoSuchEndpoint })
        .method_not_allowed_fallback(|| async { AgentError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES));
    // No HSTS, even over TLS: it would cover every port of the host, and
    // the agent shares its host with Wings.
    httpd::security_headers(httpd::catch_panics(app), false)
        .layer(middleware::from_fn(httpd::log_request))
        .with_state(state)
}

/// Serves until `shutdown` completes.
pub async fn serve(
    listener: std::net::TcpListener,
    tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
    limits: settings::ConnectionLimits,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = httpd::Limits {
        header_timeout: limits.header_timeout,
        max_connections: limits.max_connections,
        max_connections_per_address: limits.max_connections_per_address,
        write_timeout: limits.write_timeout,
        exempt: Vec::new(),
    };
    httpd::serve("agent", listener, tls, limits, router(state), shutdown).await
}

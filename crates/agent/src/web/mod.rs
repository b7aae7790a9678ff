//! The agent's HTTP API. Handlers parse, call [`crate::Agent`] and map errors;
//! nothing here runs restic or touches repository files.

mod error;
mod extract;
mod routes;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Instant;

use api::Secret;
use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::middleware::{self, Next};
use axum::response::Response;

use crate::{Agent, AgentError};

/// Request bodies above this size are refused with 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub agent: Agent,
    pub token: Secret,
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
    Router::new()
        .merge(api)
        .route(
            "/download/restic",
            axum::routing::get(routes::download::handler),
        )
        .fallback(|| async { AgentError::NoSuchEndpoint })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn(log_request))
        .with_state(state)
}

/// One debug line per request: method, route pattern, status, time. The
/// query string is left out (download tokens travel there).
async fn log_request(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "(unmatched)".to_owned());
    let started = Instant::now();
    let res = next.run(req).await;
    tracing::debug!(
        %method,
        route,
        status = res.status().as_u16(),
        ms = started.elapsed().as_millis() as u64,
        "request"
    );
    res
}

/// Serves until `shutdown` completes. Logs the bound address (useful with
/// port 0).
pub async fn serve(
    listen: SocketAddr,
    tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state);
    let listener = std::net::TcpListener::bind(listen)?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    match tls {
        None => {
            tracing::info!("agent listening on http://{addr}");
            let listener = tokio::net::TcpListener::from_std(listener)?;
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        }
        Some((cert, key)) => {
            let _ = rustls::crypto::ring::default_provider().install_default();
            let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(&cert, &key)
                .await
                .map_err(|e| {
                    std::io::Error::new(
                        e.kind(),
                        format!(
                            "TLS certificate {} or key {}: {e}",
                            cert.display(),
                            key.display()
                        ),
                    )
                })?;
            tracing::info!("agent listening on https://{addr}");
            let handle = axum_server::Handle::new();
            let h = handle.clone();
            tokio::spawn(async move {
                shutdown.await;
                h.graceful_shutdown(Some(std::time::Duration::from_secs(10)));
            });
            axum_server::from_tcp_rustls(listener, config)
                .handle(handle)
                .serve(app.into_make_service())
                .await
        }
    }
}

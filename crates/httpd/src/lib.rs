//! HTTP plumbing the agent and the panel share: binding, serving with
//! optional TLS and graceful shutdown, one log line per request, and reading
//! JSON bodies. Product behaviour and error shapes stay in each crate.

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use serde::de::DeserializeOwned;

/// Binds a listening socket (port 0 picks a free port; see `local_addr`).
pub fn bind(listen: SocketAddr) -> std::io::Result<TcpListener> {
    let listener = TcpListener::bind(listen)?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Serves `app` on `listener` until `shutdown` completes; with `tls` (PEM
/// certificate and key) over HTTPS. `name` only appears in the log.
pub async fn serve(
    name: &str,
    listener: TcpListener,
    tls: Option<(PathBuf, PathBuf)>,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    match tls {
        None => {
            tracing::info!("{name} listening on http://{addr}");
            let listener = tokio::net::TcpListener::from_std(listener)?;
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
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
            tracing::info!("{name} listening on https://{addr}");
            let handle = axum_server::Handle::new();
            let h = handle.clone();
            tokio::spawn(async move {
                shutdown.await;
                h.graceful_shutdown(Some(Duration::from_secs(10)));
            });
            axum_server::from_tcp_rustls(listener, config)
                .handle(handle)
                .serve(app.into_make_service_with_connect_info::<SocketAddr>())
                .await
        }
    }
}

/// Middleware: one debug line per request with method, route pattern,
/// status and time. Never the query string or headers (tokens and keys
/// travel there).
pub async fn log_request(req: Request, next: Next) -> Response {
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

/// Why a JSON body was refused. Messages never echo the body (it may hold a
/// key or a password).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    TooLarge,
    Unreadable,
    /// Not JSON at all.
    Syntax,
    /// JSON, but not the expected fields and types.
    Shape,
}

impl BodyError {
    pub fn message(self) -> &'static str {
        match self {
            BodyError::TooLarge => "the request body is too large",
            BodyError::Unreadable => "the request body could not be read",
            BodyError::Syntax => "the request body is not valid JSON",
            BodyError::Shape => "the request body does not have the expected fields and types",
        }
    }
}

/// How much of an oversized body is still read (and dropped) so the client
/// gets its 413 instead of a connection reset while it is still sending.
const DRAIN_LIMIT: usize = 1024 * 1024;

/// Reads the whole body, at most `max` bytes. A larger body is refused with
/// [`BodyError::TooLarge`] after reading the rest of it (up to about 1 MiB
/// more), so the refusal reaches a client that is still sending.
pub async fn read_body(req: Request, max: usize) -> Result<Bytes, BodyError> {
    use http_body_util::BodyExt;
    let announced = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if announced.is_some_and(|n| n > max + DRAIN_LIMIT) {
        return Err(BodyError::TooLarge);
    }
    let mut body = req.into_body();
    let mut buf = Vec::new();
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| BodyError::Unreadable)?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        total += data.len();
        if total > max + DRAIN_LIMIT {
            return Err(BodyError::TooLarge);
        }
        if total <= max {
            buf.extend_from_slice(&data);
        }
    }
    if total > max {
        return Err(BodyError::TooLarge);
    }
    Ok(Bytes::from(buf))
}

/// Parses JSON; an empty body counts as `{}` (so all-optional bodies may be
/// left out).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, BodyError> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    serde_json::from_slice(bytes).map_err(|e| {
        if e.is_syntax() || e.is_eof() {
            BodyError::Syntax
        } else {
            BodyError::Shape
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    struct Body {
        #[serde(default)]
        n: Option<u32>,
    }

    #[tokio::test]
    async fn bodies_over_the_limit_are_refused_after_being_read() {
        let req = |n: usize| Request::new(axum::body::Body::from(vec![b'x'; n]));
        assert_eq!(read_body(req(10), 10).await.unwrap().len(), 10);
        assert_eq!(read_body(req(11), 10).await, Err(BodyError::TooLarge));
        assert_eq!(
            read_body(req(3 * DRAIN_LIMIT), 10).await,
            Err(BodyError::TooLarge)
        );
    }

    #[test]
    fn json_bodies_parse_or_say_why_not() {
        assert_eq!(parse_json::<Body>(b"  ").unwrap().n, None);
        assert_eq!(parse_json::<Body>(br#"{"n":3}"#).unwrap().n, Some(3));
        assert_eq!(parse_json::<Body>(b"{").unwrap_err(), BodyError::Syntax);
        assert_eq!(
            parse_json::<Body>(br#"{"n":"x"}"#).unwrap_err(),
            BodyError::Shape
        );
    }
}

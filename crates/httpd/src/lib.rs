//! HTTP plumbing the agent and the panel share: binding, serving with
//! optional TLS and graceful shutdown, one log line per request, and reading
//! JSON bodies. Product behaviour and error shapes stay in each crate.

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
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

/// How a server protects itself from clients that hold connections.
#[derive(Debug, Clone)]
pub struct Limits {
    /// A connection must send a complete request head within this time,
    /// and an idle keep-alive connection is closed after it (hyper's header
    /// read timeout covers both). A TLS handshake gets the same time.
    pub header_timeout: Duration,
    /// Connections open at once; beyond it new ones are closed at once.
    pub max_connections: usize,
    /// Connections open at once from one client address (0: no such limit).
    pub max_connections_per_address: usize,
    /// Addresses the per-address limit does not apply to (reverse proxies).
    pub exempt: Vec<ipnet::IpNet>,
    /// A write to a client that makes no progress for this long closes the
    /// connection (a client that stopped reading a download holds nothing).
    pub write_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            max_connections: 4096,
            max_connections_per_address: 64,
            exempt: Vec::new(),
            write_timeout: Duration::from_secs(60),
        }
    }
}

/// Open connections, in all and per address.
struct Slots {
    limits: Limits,
    total: std::sync::atomic::AtomicUsize,
    per_address: std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>,
    closed: tokio::sync::Notify,
}

/// One connection's place in [`Slots`], given back when it closes.
struct Slot {
    slots: std::sync::Arc<Slots>,
    address: Option<std::net::IpAddr>,
}

impl Slots {
    fn take(self: &std::sync::Arc<Self>, peer: std::net::IpAddr) -> Option<Slot> {
        use std::sync::atomic::Ordering;
        let peer = peer.to_canonical();
        if self.total.fetch_add(1, Ordering::SeqCst) >= self.limits.max_connections {
            self.total.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        let per = self.limits.max_connections_per_address;
        let counted = per > 0 && !self.limits.exempt.iter().any(|n| n.contains(&peer));
        // An IPv6 client counts by its /64 (one customer's network).
        let peer = match peer {
            std::net::IpAddr::V6(v6) => std::net::IpAddr::V6(std::net::Ipv6Addr::from(
                u128::from(v6) & !((1u128 << 64) - 1),
            )),
            v4 => v4,
        };
        if counted {
            let mut map = self.per_address.lock().unwrap_or_else(|p| p.into_inner());
            let n = map.entry(peer).or_insert(0);
            if *n >= per {
                drop(map);
                self.total.fetch_sub(1, Ordering::SeqCst);
                return None;
            }
            *n += 1;
        }
        Some(Slot {
            slots: self.clone(),
            address: counted.then_some(peer),
        })
    }

    fn open(&self) -> usize {
        self.total.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(a) = self.address {
            let mut map = self
                .slots
                .per_address
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if let Some(n) = map.get_mut(&a) {
                *n -= 1;
                if *n == 0 {
                    map.remove(&a);
                }
            }
        }
        self.slots
            .total
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        self.slots.closed.notify_waiters();
    }
}

/// Reads a PEM certificate chain and key into a TLS acceptor.
fn tls_acceptor(cert: &Path, key: &Path) -> std::io::Result<tokio_rustls::TlsAcceptor> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let bad = |what: &Path, e: &dyn std::fmt::Display| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("TLS {}: {e}", what.display()),
        )
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| bad(cert, &e))?;
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| bad(key, &e))?;
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| bad(cert, &e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config)))
}

/// Serves `app` on `listener` until `shutdown` completes; with `tls` (PEM
/// certificate and key) over HTTPS. `name` only appears in the log.
/// Connections are bounded and must be quick to send their request heads
/// (see [`Limits`]); on shutdown, open connections finish their request
/// and close, for at most 10 seconds.
pub async fn serve(
    name: &str,
    listener: TcpListener,
    tls: Option<(PathBuf, PathBuf)>,
    limits: Limits,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    let acceptor = match &tls {
        Some((cert, key)) => Some(tls_acceptor(cert, key)?),
        None => None,
    };
    let scheme = if acceptor.is_some() { "https" } else { "http" };
    tracing::info!("{name} listening on {scheme}://{addr}");
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let (header_timeout, write_timeout) = (limits.header_timeout, limits.write_timeout);
    let slots = std::sync::Arc::new(Slots {
        limits,
        total: Default::default(),
        per_address: Default::default(),
        closed: tokio::sync::Notify::new(),
    });
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait, go on.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(slot) = slots.take(peer.ip()) else {
            tracing::debug!(%peer, "connection refused: too many open");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (app, acceptor, stop) = (app.clone(), acceptor.clone(), stop_rx.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let stream = WriteTimeout::new(stream, write_timeout);
            match acceptor {
                None => serve_connection(stream, peer, app, header_timeout, stop).await,
                Some(acceptor) => {
                    match tokio::time::timeout(header_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => serve_connection(tls, peer, app, header_timeout, stop).await,
                        _ => tracing::debug!(%peer, "TLS handshake failed or timed out"),
                    }
                }
            }
        });
    }
    let _ = stop_tx.send(true);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while slots.open() > 0 {
        let closed = slots.closed.notified();
        if slots.open() == 0 || tokio::time::timeout_at(deadline, closed).await.is_err() {
            break;
        }
    }
    Ok(())
}

/// A stream whose writes fail with `TimedOut` when one makes no progress
/// for `timeout` (the peer stopped reading). Reads pass through.
struct WriteTimeout<S> {
    inner: S,
    timeout: Duration,
    deadline: std::pin::Pin<Box<tokio::time::Sleep>>,
    armed: bool,
}

impl<S> WriteTimeout<S> {
    fn new(inner: S, timeout: Duration) -> Self {
        Self {
            inner,
            timeout,
            deadline: Box::pin(tokio::time::sleep(timeout)),
            armed: false,
        }
    }

    /// Called when the inner write is pending: starts the clock once, and
    /// says whether it ran out.
    fn expired(&mut self, cx: &mut std::task::Context<'_>) -> bool {
        if !self.armed {
            self.armed = true;
            let at = tokio::time::Instant::now() + self.timeout;
            self.deadline.as_mut().reset(at);
        }
        self.deadline.as_mut().poll(cx).is_ready()
    }

    fn settle<T>(
        &mut self,
        cx: &mut std::task::Context<'_>,
        polled: std::task::Poll<std::io::Result<T>>,
    ) -> std::task::Poll<std::io::Result<T>> {
        use std::task::Poll;
        match polled {
            Poll::Ready(r) => {
                self.armed = false;
                Poll::Ready(r)
            }
            Poll::Pending if self.expired(cx) => Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the client stopped reading",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for WriteTimeout<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for WriteTimeout<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_write(cx, buf);
        self.settle(cx, polled)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.settle(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_flush(cx);
        self.settle(cx, polled)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_shutdown(cx);
        self.settle(cx, polled)
    }
}

/// One HTTP/1.1 connection: requests carry the peer address as axum's
/// `ConnectInfo`; a shutdown lets the request in flight finish.
async fn serve_connection<S>(
    io: S,
    peer: SocketAddr,
    app: Router,
    header_timeout: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use tower::ServiceExt;
    let service =
        hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
            app.clone().oneshot(req.map(axum::body::Body::new))
        });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(header_timeout)
        .serve_connection(hyper_util::rt::TokioIo::new(io), service)
        .with_upgrades();
    let mut conn = std::pin::pin!(conn);
    loop {
        tokio::select! {
            _ = conn.as_mut() => return,
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.as_mut().await;
                    return;
                }
            }
        }
    }
}

/// A request's ID: the caller's `X-Request-Id` when it is a plain token (a
/// proxy in front may have set it), else a new one. Echoed on the answer
/// and carried by every log line the request causes.
fn request_id(req: &Request) -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    static SEED: std::sync::OnceLock<std::collections::hash_map::RandomState> =
        std::sync::OnceLock::new();
    let given = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            (1..=64).contains(&v.len())
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        });
    match given {
        Some(id) => id.to_owned(),
        None => {
            use std::hash::BuildHasher;
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let seed = SEED.get_or_init(std::collections::hash_map::RandomState::new);
            format!("{:016x}", seed.hash_one(n))
        }
    }
}

/// The request's ID, in its extensions for the layers inside
/// [`log_request`] (the panel's audit log records it).
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// Middleware: a request ID (see [`request_id`]) on the answer and on every
/// log line of the request, and one line per request with method, route
/// pattern, status and time: INFO, but DEBUG for health checks. Never the
/// query string or headers (tokens and keys travel there).
pub async fn log_request(mut req: Request, next: Next) -> Response {
    use tracing::Instrument;
    let id = request_id(&req);
    req.extensions_mut().insert(RequestId(id.clone()));
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "(unmatched)".to_owned());
    let started = Instant::now();
    let span = tracing::info_span!("request", request_id = %id);
    let mut res = next.run(req).instrument(span.clone()).await;
    if let Ok(v) = axum::http::HeaderValue::from_str(&id) {
        res.headers_mut().insert("x-request-id", v);
    }
    let status = res.status().as_u16();
    let ms = started.elapsed().as_millis() as u64;
    let _in = span.enter();
    // Their own target, so `RUST_LOG=info,request=warn` silences them.
    if matches!(route.as_str(), "/healthz" | "/readyz" | "/metrics") {
        tracing::debug!(target: "request", %method, route, status, ms, "request");
    } else {
        tracing::info!(target: "request", %method, route, status, ms, "request");
    }
    res
}

/// Headers every answer carries (tower-http): no sniffing, no framing, no
/// referrer (a download link must not leak through it), no caching unless
/// the handler set its own `Cache-Control`; over TLS also HSTS.
pub fn security_headers<S: Clone + Send + Sync + 'static>(
    router: axum::Router<S>,
    tls: bool,
) -> axum::Router<S> {
    use axum::http::{HeaderValue, header};
    use tower_http::set_header::SetResponseHeaderLayer;
    let router = router
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ));
    if tls {
        router.layer(SetResponseHeaderLayer::overriding(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        ))
    } else {
        router
    }
}

/// A 200 answer of JSON text that is already serialised.
pub fn json_text(body: &'static str) -> Response {
    use axum::response::IntoResponse;
    (
        [(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

/// A handler that panics answers 500 with the JSON error body (and the
/// panic is logged) instead of the connection being dropped (tower-http's
/// `CatchPanic`). Nothing of the panic's message reaches the client.
pub fn catch_panics<S: Clone + Send + Sync + 'static>(router: axum::Router<S>) -> axum::Router<S> {
    router.layer(tower_http::catch_panic::CatchPanicLayer::custom(
        panic_answer as fn(Box<dyn std::any::Any + Send + 'static>) -> Response,
    ))
}

fn panic_answer(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    use axum::response::IntoResponse;
    let detail = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    tracing::error!(%detail, "a request handler panicked");
    let body = serde_json::json!({"error": {
        "code": "internal_error",
        "message": "an internal error occurred; the log has the details",
    }});
    (
        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
        axum::Json(body),
    )
        .into_response()
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

/// A registry's metrics in Prometheus' text format (0.0.4).
pub fn prometheus_text(registry: &prometheus_client::registry::Registry) -> String {
    let mut out = String::with_capacity(64 * 1024);
    // Writing into a String does not fail; an error is a value the
    // encoder refused, which leaves the rest of the answer usable.
    if let Err(e) = prometheus_client::encoding::prometheus_text::encode(&mut out, registry) {
        tracing::error!(error = %e, "metrics could not be written");
    }
    out
}

/// The answer to a scrape of `registry`.
pub fn prometheus_answer(
    registry: &prometheus_client::registry::Registry,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        [(
            axum::http::header::CONTENT_TYPE,
            prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        )],
        prometheus_text(registry),
    )
        .into_response()
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

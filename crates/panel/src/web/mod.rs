//! The panel's HTTP API (SPEC §4 "Panel session" and "Panel"). Handlers are
//! thin: extractors parse and authorize, the service does the work, and
//! [`PanelError`] has one mapping to HTTP (`error.rs`).

mod error;
pub mod extract;
mod pages;
mod routes;

use std::future::Future;
use std::net::TcpListener;
use std::path::PathBuf;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{delete, get, post};

use crate::Panel;
use crate::error::Missing;

/// Request bodies above this size are refused with 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Prefix of the backups and admin API.
pub const PREFIX: &str = "/extensions/resticbackups";

#[derive(Clone)]
pub struct AppState {
    pub panel: Panel,
    /// Mark the session cookie `Secure` (served over TLS).
    pub secure_cookies: bool,
    /// Session cookie lifetime in seconds (the absolute session timeout).
    pub session_max_age: i64,
    /// Proxies whose `X-Forwarded-For` names the client (see
    /// [`extract::ClientAddr`]).
    pub trusted_proxies: std::sync::Arc<[ipnet::IpNet]>,
    /// `base_path` as a link prefix: `""` for `/`, else e.g.
    /// `/extensions/resticbackups`. Every route lives under it.
    pub base: std::sync::Arc<str>,
}

/// A 303 to `to` (a path this panel built).
pub(crate) fn see_other(to: &str) -> Response {
    use axum::response::IntoResponse;
    let mut res = axum::http::StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res
}

/// The link prefix, in every request's extensions (pages build links and
/// redirects with it).
#[derive(Clone)]
pub struct Base(pub std::sync::Arc<str>);

impl AppState {
    /// The path the session cookie is scoped to.
    pub fn cookie_path(&self) -> &str {
        if self.base.is_empty() {
            "/"
        } else {
            &self.base
        }
    }
}

fn api_routes() -> Router<AppState> {
    use axum::routing::patch;
    use routes::admin::{
        archived_repos, key_regenerate, keys, nodes, pterodactyl_sync, servers as admin_servers,
        subusers, users,
    };
    use routes::servers::{self, backups as b};
    let backups = "/servers/{server}/backups/restic";
    Router::new()
        .route("/servers", get(servers::my_servers))
        .route(backups, get(b::list::list).post(b::list::create))
        .route(&format!("{backups}/stats"), get(b::stats::stats))
        .route(
            "/servers/{server}/backups/pterodactyl",
            get(b::pterodactyl::list),
        )
        .route(
            "/servers/{server}/backups/pterodactyl/{backup}/download",
            get(b::pterodactyl::download),
        )
        .route(
            "/preferences",
            get(routes::preferences::get).put(routes::preferences::put),
        )
        .route(
            &format!("{backups}/schedule"),
            get(b::schedule::schedule).post(b::schedule::save_schedule),
        )
        .route(
            &format!("{backups}/schedule/history"),
            get(b::schedule_history::schedule_history),
        )
        .route(&format!("{backups}/jobs/{{job}}"), get(b::jobs::job))
        .route(&format!("{backups}/{{id}}"), delete(b::snapshot::delete))
        .route(
            &format!("{backups}/{{id}}/restore"),
            post(b::restore::restore),
        )
        .route(
            &format!("{backups}/{{id}}/download"),
            get(b::download::download),
        )
        .route(&format!("{backups}/{{id}}/lock"), post(b::lock::lock))
        .route(&format!("{backups}/{{id}}/unlock"), post(b::lock::unlock))
        .route("/admin/keys", get(keys::keys))
        .route(
            "/admin/pterodactyl/sync",
            get(pterodactyl_sync::status).post(pterodactyl_sync::run),
        )
        .route(
            "/admin/servers/{server}/key/regenerate",
            post(key_regenerate::regenerate_key),
        )
        .route("/admin/archived-repos", get(archived_repos::archived_repos))
        .route(
            "/admin/archived-repos/{name}",
            delete(archived_repos::delete_archived_repo),
        )
        .route("/admin/users", get(users::users).post(users::create_user))
        .route(
            "/admin/users/{user}",
            patch(users::update_user).delete(users::delete_user),
        )
        .route("/admin/nodes", get(nodes::nodes).post(nodes::create_node))
        .route(
            "/admin/nodes/{name}",
            patch(nodes::update_node).delete(nodes::delete_node),
        )
        .route(
            "/admin/servers",
            get(admin_servers::servers).post(admin_servers::create_server),
        )
        .route(
            "/admin/servers/{server}",
            patch(admin_servers::update_server).delete(admin_servers::delete_server),
        )
        .route(
            "/admin/servers/{server}/subusers",
            get(subusers::subusers).put(subusers::set_subuser),
        )
        .route(
            "/admin/servers/{server}/subusers/{user}",
            delete(subusers::remove_subuser),
        )
}

/// The whole panel: session API, backups API, admin API.
pub fn router(state: AppState) -> Router {
    let base = state.base.clone();
    let app = routes_of(state.clone());
    if base.is_empty() {
        return app;
    }
    // Everything under `base_path`; health checks stay at the root too, for
    // probes that reach the panel directly. Anything else outside it is 404.
    let tls = state.secure_cookies;
    Router::new()
        .route("/healthz", get(routes::health::healthz))
        .route("/readyz", get(routes::health::readyz))
        .fallback(|| async { crate::PanelError::NotFound(Missing::Page) })
        .layer(middleware::from_fn_with_state(tls, security_headers))
        .layer(middleware::from_fn(httpd::log_request))
        .with_state(state)
        .nest_service(&base, app)
}

fn routes_of(state: AppState) -> Router {
    let base = Base(state.base.clone());
    Router::new()
        .route("/auth/login", post(routes::auth::login))
        .route("/auth/session", get(routes::auth::session))
        .route("/auth/logout", post(routes::auth::logout))
        .nest(PREFIX, api_routes())
        .route("/", get(pages::my_servers))
        .route("/login", get(pages::login))
        .route("/servers/{server}", get(pages::backups))
        .route("/admin", get(pages::admin_home))
        .route("/admin/{section}", get(pages::admin))
        .fallback(pages::fallback)
        .method_not_allowed_fallback(|| async { crate::PanelError::MethodNotAllowed })
        .layer(middleware::from_fn_with_state(
            state.clone(),
            extract::load_session,
        ))
        // Assets and health checks need no session: added after that
        // layer, they skip its database lookup.
        .route("/static/app.css", get(pages::app_css))
        .route("/static/app.js", get(pages::app_js))
        .route("/healthz", get(routes::health::healthz))
        .route("/readyz", get(routes::health::readyz))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(
            state.secure_cookies,
            security_headers,
        ))
        .layer(middleware::from_fn(httpd::log_request))
        .layer(axum::Extension(base))
        .with_state(state)
}

/// Headers every answer carries: no sniffing, no framing, no referrer (a
/// download link must not leak through it) and no caching of API answers;
/// over TLS also HSTS.
async fn security_headers(
    axum::extract::State(tls): axum::extract::State<bool>,
    req: Request,
    next: Next,
) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    if tls {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    res
}

/// Serves until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    tls: Option<(PathBuf, PathBuf)>,
    limits: settings::ConnectionLimits,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Reverse proxies carry many clients on one address.
    let limits = httpd::Limits {
        header_timeout: limits.header_timeout,
        max_connections: limits.max_connections,
        max_connections_per_address: limits.max_connections_per_address,
        write_timeout: limits.write_timeout,
        exempt: state.trusted_proxies.to_vec(),
    };
    httpd::serve("panel", listener, tls, limits, router(state), shutdown).await
}

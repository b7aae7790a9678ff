//! The panel's HTTP API (SPEC §4 "Panel session" and "Panel"). Handlers are
//! thin: extractors parse and authorize, the service does the work, and
//! [`PanelError`] has one mapping to HTTP (`error.rs`).

pub mod audit;
mod error;
pub mod extract;
mod pages;
mod routes;

use std::future::Future;
use std::net::TcpListener;
use std::path::PathBuf;

use api::routes::panel as route;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, header};
use axum::middleware;
use axum::response::Response;
use axum::routing::{delete, get, post, put};

use crate::Panel;
use crate::error::Missing;

/// Request bodies above this size are refused with 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Prefix of the backups and admin API.
pub const PREFIX: &str = route::PREFIX;

#[derive(Clone)]
pub struct AppState {
    pub panel: Panel,
    /// A bearer token that reads `/metrics` only.
    pub metrics_token: Option<api::Secret>,
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
        archived_repos, audit, key_regenerate, keys, nodes, notifications, prune, pterodactyl_sync,
        servers as admin_servers, subusers, tasks, users,
    };
    use routes::servers::{self, backups as b};
    Router::new()
        .route(route::SERVERS, get(servers::my_servers))
        .route(route::BACKUPS, get(b::list::list).post(b::list::create))
        .route(route::STATS, get(b::stats::stats))
        .route(route::STATS_HISTORY, get(b::stats::history))
        .route(route::PTERO_BACKUPS, get(b::pterodactyl::list))
        .route(route::PTERO_DOWNLOAD, get(b::pterodactyl::download))
        .route(
            route::SERVER_NOTIFICATIONS,
            get(b::notifications::get)
                .put(b::notifications::put)
                .delete(b::notifications::delete),
        )
        .route(
            route::SERVER_NOTIFICATIONS_TEST,
            post(b::notifications::test),
        )
        .route(
            route::PREFERENCES,
            get(routes::preferences::get).put(routes::preferences::put),
        )
        .route(
            route::SCHEDULE,
            get(b::schedule::schedule).post(b::schedule::save_schedule),
        )
        .route(
            route::SCHEDULE_HISTORY,
            get(b::schedule_history::schedule_history),
        )
        .route(
            route::SCHEDULE_PREVIEW,
            get(b::schedule_preview::schedule_preview),
        )
        .route(route::SCHEDULE_RUN, post(b::schedule::run_now))
        .route(route::JOB, get(b::jobs::job))
        .route(route::JOBS, get(b::jobs::jobs))
        .route(route::SNAPSHOT, delete(b::snapshot::delete))
        .route(route::RESTORE, post(b::restore::restore))
        .route(route::DOWNLOAD, get(b::download::download))
        .route(route::FILES, get(b::files::files))
        .route(route::NOTE, put(b::note::set))
        .route(route::LOCK, post(b::lock::lock))
        .route(route::UNLOCK, post(b::lock::unlock))
        .route(route::ADMIN_KEYS, get(keys::keys))
        .route(
            route::ADMIN_SYNC,
            get(pterodactyl_sync::status).post(pterodactyl_sync::run),
        )
        .route(
            route::ADMIN_KEY_REGENERATE,
            post(key_regenerate::regenerate_key),
        )
        .route(route::ADMIN_PRUNE, post(prune::prune))
        .route(route::ADMIN_ARCHIVES, get(archived_repos::archived_repos))
        .route(
            route::ADMIN_ARCHIVE,
            delete(archived_repos::delete_archived_repo),
        )
        .route(
            route::ADMIN_USERS,
            get(users::users).post(users::create_user),
        )
        .route(
            route::ADMIN_USER,
            patch(users::update_user).delete(users::delete_user),
        )
        .route(
            route::ADMIN_NODES,
            get(nodes::nodes).post(nodes::create_node),
        )
        .route(
            route::ADMIN_NODE,
            patch(nodes::update_node).delete(nodes::delete_node),
        )
        .route(
            route::ADMIN_SERVERS,
            get(admin_servers::servers).post(admin_servers::create_server),
        )
        .route(
            route::ADMIN_SERVER,
            patch(admin_servers::update_server).delete(admin_servers::delete_server),
        )
        .route(
            route::ADMIN_SUBUSERS,
            get(subusers::subusers).put(subusers::set_subuser),
        )
        .route(route::ADMIN_SUBUSER, delete(subusers::remove_subuser))
        .route(route::ADMIN_TASK, get(tasks::task))
        .route(route::ADMIN_AUDIT, get(audit::audit_log))
        .route(
            route::ADMIN_NOTIFICATIONS,
            get(notifications::channels).post(notifications::add_channel),
        )
        .route(
            route::ADMIN_NOTIFICATION,
            delete(notifications::delete_channel),
        )
        .route(
            route::ADMIN_NOTIFICATION_TEST,
            post(notifications::test_channel),
        )
}

/// Middleware: counts every answer by method, route template and status,
/// with its latency (see [`crate::metrics`]).
async fn count_request(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: axum::extract::Request,
    next: middleware::Next,
) -> Response {
    let started = std::time::Instant::now();
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let res = next.run(req).await;
    state.panel.metrics().request(
        method.as_str(),
        route.as_deref().unwrap_or("unmatched"),
        res.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    res
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
    let outer = Router::new()
        .route(route::HEALTHZ, get(routes::health::healthz))
        .route(route::READYZ, get(routes::health::readyz))
        .fallback(|| async { crate::PanelError::NotFound(Missing::Page) });
    httpd::security_headers(httpd::catch_panics(outer), state.secure_cookies)
        .layer(middleware::from_fn(httpd::log_request))
        .with_state(state)
        .nest_service(&base, app)
}

fn routes_of(state: AppState) -> Router {
    let base = Base(state.base.clone());
    let app = Router::new()
        .route(route::LOGIN, post(routes::auth::login))
        .route(route::SESSION, get(routes::auth::session))
        .route(route::LOGOUT, post(routes::auth::logout))
        .route(route::METRICS, get(routes::metrics::metrics))
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
        // Outside the session layer, so its refusals (CSRF) are audited too.
        .layer(middleware::from_fn_with_state(state.clone(), audit::audit))
        // Assets and health checks need no session: added after that
        // layer, they skip its database lookup.
        .route("/static/app.css", get(pages::app_css))
        .route("/static/app.js", get(pages::app_js))
        .route(route::HEALTHZ, get(routes::health::healthz))
        .route(route::READYZ, get(routes::health::readyz))
        .route(route::OPENAPI, get(routes::openapi::document))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(state.clone(), count_request));
    httpd::security_headers(httpd::catch_panics(app), state.secure_cookies)
        .layer(middleware::from_fn(httpd::log_request))
        .layer(axum::Extension(base))
        .with_state(state)
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

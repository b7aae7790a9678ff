//! The web pages: server-rendered shells (layout, navigation, the CSRF token
//! in `<meta name="csrf-token">`, what the user may do) that `app.js` fills
//! through the JSON API. CSS and JavaScript are compiled into the binary.
//!
//! Markup is written with maud, which escapes every value it inserts: no
//! page builds HTML from strings.

use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

use api::ServerUuid;

use crate::auth::ActiveSession;
use crate::error::Missing;
use crate::permissions::{Action, Create};
use crate::web::extract::SessionCtx;
use crate::web::{AppState, see_other};

const APP_CSS: &str = include_str!("assets/app.css");
const APP_JS: &str = include_str!("assets/app.js");

/// Pages load only our own script and style; nothing may frame them.
const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
                   connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'";

/// The panel's `base_path` as a link prefix: `""` at the root, else e.g.
/// `/extensions/resticbackups`.
fn base_of(req: &Request) -> Arc<str> {
    req.extensions()
        .get::<super::Base>()
        .map_or_else(|| Arc::from(""), |b| b.0.clone())
}

fn session_of(req: &Request) -> Option<ActiveSession> {
    req.extensions()
        .get::<Arc<SessionCtx>>()
        .and_then(|c| c.session.clone())
}

fn html_response(status: StatusCode, body: Markup) -> Response {
    let mut res = (status, body.into_string()).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    res
}

/// To the login page, which returns to `req`'s page afterwards.
fn to_login(base: &str, req: &Request) -> Response {
    // Under `base_path` the router sees the path without it.
    let next = format!(
        "{base}{}",
        req.uri().path_and_query().map_or("/", |p| p.as_str())
    );
    see_other(&format!(
        "{base}/login?next={}",
        api::hex::percent_encode(&next, b"/")
    ))
}

struct Page<'a> {
    /// The link prefix (see [`base_of`]).
    base: &'a str,
    title: &'a str,
    /// `data-page` of `<body>`: which part of app.js runs.
    page: &'a str,
    session: Option<&'a ActiveSession>,
    /// `data-server`, `data-permissions`, `data-section` of `<body>`.
    server: Option<&'a str>,
    permissions: Option<String>,
    section: Option<&'a str>,
}

impl<'a> Page<'a> {
    fn new(
        base: &'a str,
        title: &'a str,
        page: &'a str,
        session: Option<&'a ActiveSession>,
    ) -> Self {
        Self {
            base,
            title,
            page,
            session,
            server: None,
            permissions: None,
            section: None,
        }
    }
}

fn render(p: Page<'_>, content: Markup) -> Markup {
    let csrf = p.session.map(|s| s.csrf_token.as_str()).unwrap_or("");
    let base = p.base;
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="csrf-token" content=(csrf);
                title { (p.title) " · Restic Backups" }
                link rel="icon" href="data:,";
                link rel="stylesheet" href={ (base) "/static/app.css" };
                script src={ (base) "/static/app.js" } defer {}
            }
            body data-base=(base) data-page=(p.page) data-server=[p.server] data-permissions=[p.permissions.as_deref()] data-section=[p.section] {
                header.top {
                    a.brand href={ (base) "/" } { "Restic Backups" }
                    @if let Some(s) = p.session {
                        nav aria-label="Main" {
                            a href={ (base) "/" } { "My servers" }
                            @if s.user.root_admin { a href={ (base) "/admin/keys" } { "Admin" } }
                        }
                        div.who {
                            span.email { (s.user.email) }
                            button type="button" id="logout" class="link" { "Log out" }
                        }
                    }
                }
                main id="main" {
                    div id="error" class="error" role="alert" hidden {}
                    (content)
                }
                dialog id="confirm" aria-labelledby="confirm-title" {
                    form method="dialog" {
                        h2 id="confirm-title" {}
                        p id="confirm-text" {}
                        div id="confirm-extra" {}
                        div.dialog-buttons {
                            button type="submit" value="cancel" class="secondary" { "Cancel" }
                            button type="submit" value="ok" id="confirm-ok" class="danger" { "Confirm" }
                        }
                    }
                }
            }
        }
    }
}

fn not_found_page(base: &str, session: Option<&ActiveSession>) -> Response {
    let content = html! {
        h1 { "Not found" }
        p { "There is nothing here, or you can not see it. " a href={ (base) "/" } { "Back to your servers" } "." }
    };
    html_response(
        StatusCode::NOT_FOUND,
        render(Page::new(base, "Not found", "none", session), content),
    )
}

pub async fn fallback(req: Request) -> Response {
    // Unknown API paths answer in JSON; everything else is a page.
    let path = req.uri().path();
    if path.starts_with(super::PREFIX) || path.starts_with("/auth/") {
        return crate::PanelError::NotFound(Missing::Page).into_response();
    }
    not_found_page(&base_of(&req), session_of(&req).as_ref())
}

pub async fn login(
    State(state): State<AppState>,
    Query(q): Query<std::collections::HashMap<String, String>>,
    req: Request,
) -> Response {
    let base = base_of(&req);
    if session_of(&req).is_some() {
        return see_other(&format!("{base}/"));
    }
    let message = match q.get("error").map(String::as_str) {
        Some("invalid") => "Wrong email or password.",
        Some("rate_limited") => "Too many failed logins; try again later.",
        _ => "",
    };
    // Pterodactyl mode: people sign in to Pterodactyl; this page is reached
    // only without a Pterodactyl session (local accounts still log in here).
    let pterodactyl = state
        .panel
        .pterodactyl()
        .map(|p| format!("{}/auth/login", p.cfg.url));
    let content = html! {
        @if let Some(link) = &pterodactyl {
            section.card.narrow id="pterodactyl-login" {
                h1 { "Sign in with Pterodactyl" }
                p { "This panel uses your Pterodactyl account. Sign in to Pterodactyl, then open this page again." }
                p { a class="button primary" href=(link) { "Sign in to Pterodactyl" } }
            }
        }
        section.card.narrow {
            h1 { @if pterodactyl.is_some() { "Local account" } @else { "Log in" } }
            p id="login-error" class="error" role="alert" hidden[message.is_empty()] { (message) }
            form id="login-form" method="post" action={ (base) "/auth/login" } {
                label for="email" { "Email" }
                input id="email" name="email" type="email" autocomplete="username" required autofocus;
                label for="password" { "Password" }
                input id="password" name="password" type="password" autocomplete="current-password" required;
                button type="submit" class="primary" id="login-submit" { "Log in" }
            }
        }
    };
    html_response(
        StatusCode::OK,
        render(Page::new(&base, "Log in", "login", None), content),
    )
}

pub async fn my_servers(req: Request) -> Response {
    let base = base_of(&req);
    let Some(s) = session_of(&req) else {
        return to_login(&base, &req);
    };
    let content = html! {
        h1 { "My servers" }
        ul id="server-list" class="server-list" aria-live="polite" {
            li.muted { "Loading…" }
        }
    };
    html_response(
        StatusCode::OK,
        render(Page::new(&base, "My servers", "servers", Some(&s)), content),
    )
}

pub async fn backups(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    req: Request,
) -> Result<Response, crate::PanelError> {
    let base = base_of(&req);
    let Some(s) = session_of(&req) else {
        return Ok(to_login(&base, &req));
    };
    let Ok(uuid) = ServerUuid::parse(&raw) else {
        return Ok(not_found_page(&base, Some(&s)));
    };
    let Some((server, perms)) = state.panel.backups_page(&s.user, &uuid).await? else {
        return Ok(not_found_page(&base, Some(&s)));
    };
    let can_create = perms.contains(&Create::PERMISSION);
    let ptero_mode = state.panel.pterodactyl().is_some();
    let content = html! {
        div.page-head {
            div {
                p.crumb { a href={ (base) "/" } { "My servers" } }
                h1 id="server-name" { (server.name) }
            }
            @if can_create {
                div.create {
                    input type="text" id="new-note" maxlength="500" placeholder="Note (optional)" aria-label="Note for the new backup";
                    button type="button" class="primary" id="create-backup" { "Create Restic Backup" }
                }
            }
        }
        div id="toast" class="toast" role="status" aria-live="polite" hidden {}
        div id="progress" class="progress" hidden {
            div.progress-label { span id="progress-kind" { "Working" } " " span id="progress-text" {} }
            div.bar role="progressbar" aria-labelledby="progress-kind" aria-valuemin="0" aria-valuemax="100" { span id="progress-fill" {} }
        }
        div.tabs role="tablist" {
            button type="button" role="tab" id="tab-backups" aria-controls="panel-backups" aria-selected="true" { "Backups" }
            button type="button" role="tab" id="tab-schedule" aria-controls="panel-schedule" aria-selected="false" tabindex="-1" { "Schedule" }
        }
        section id="panel-backups" role="tabpanel" aria-labelledby="tab-backups" {
            dl.stats {
                div { dt { "Size on disk" } dd id="stat-size" { "–" } }
                div { dt { "Uncompressed size" } dd id="stat-raw" { "–" } }
                div { dt { "Compression / dedup ratio" } dd id="stat-ratio" { "–" } }
                div { dt { "Backups" } dd id="stat-count" { "–" } }
            }
            figure id="storage" class="card storage" hidden {
                figcaption {
                    strong { "Storage over time" }
                    span.legend {
                        span.key.size { "size on disk" }
                        span.key.added { "added by each backup" }
                    }
                }
                div id="storage-chart" {}
                p.muted.small {
                    "Deleting a backup frees its space at the next clean-up of the repository (done in batches, at least daily while there is something to free), so the size on disk can stay up for a while."
                    @if s.user.root_admin {
                        " "
                        button type="button" id="reclaim" class="link" { "Reclaim space now" }
                    }
                }
            }
            table.backups {
                thead { tr {
                    th scope="col" { "Time" }
                    th scope="col" { "Size" }
                    th scope="col" { "ID" }
                    th scope="col" { span.sr-only { "Locked" } }
                    th scope="col" { span.sr-only { "Actions" } }
                } }
                tbody id="rows" {}
            }
            p id="empty" class="empty" hidden {
                "No backups yet."
                @if can_create { " Create the first one with “Create Restic Backup”." }
            }
            div.pager {
                button type="button" id="prev" class="secondary" { "Previous" }
                span id="page-info" aria-live="polite" tabindex="-1" {}
                button type="button" id="next" class="secondary" { "Next" }
            }
            p.muted.small id="limit-info" {}
            @if ptero_mode {
                div id="ptero-backups" class="card" {
                    label.check { input type="checkbox" id="show-ptero"; " Show Pterodactyl's own backups" }
                    div id="ptero-list" aria-live="polite" hidden {}
                }
            }
        }
        dialog id="browser" class="wide" aria-labelledby="browser-title" {
            div.dialog-head {
                h2 id="browser-title" { "Files in backup " span id="browser-snapshot" class="mono" {} }
                button type="button" id="browser-close" class="link" aria-label="Close" { "Close" }
            }
            nav id="browser-crumbs" class="crumbs" aria-label="Folder" {}
            div.browser-scroll {
                table.files {
                    thead { tr {
                        th scope="col" class="pick" { span.sr-only { "Select" } }
                        th scope="col" { "Name" }
                        th scope="col" class="num" { "Size" }
                        th scope="col" { "Modified" }
                    } }
                    tbody id="browser-rows" {}
                }
                p id="browser-status" class="muted" role="status" aria-live="polite" {}
                button type="button" id="browser-more" class="secondary" hidden { "Show more" }
            }
            div.dialog-buttons.browser-actions {
                span id="browser-selected" class="muted" aria-live="polite" {}
                button type="button" id="browser-download" class="secondary" disabled hidden { "Download selected" }
                button type="button" id="browser-restore" class="danger" disabled hidden { "Restore selected" }
            }
        }
        section id="panel-schedule" role="tabpanel" aria-labelledby="tab-schedule" hidden {
            form id="schedule-form" class="card" {
                label.check { input type="checkbox" id="s-enabled"; " Back up automatically" }
                div.row {
                    label for="s-repeat" { "Repeat" }
                    select id="s-repeat" {
                        option value="interval" { "at an interval" }
                        option value="daily" { "daily at a time" }
                        option value="weekly" { "weekly on chosen days" }
                    }
                }
                div.row id="s-interval-row" {
                    label for="s-value" { "Every" }
                    input id="s-value" type="number" min="1" required;
                    select id="s-unit" aria-label="Interval unit" {
                        option value="minutes" { "minutes" }
                        option value="hours" { "hours" }
                        option value="days" { "days" }
                    }
                }
                fieldset id="s-days" tabindex="-1" hidden {
                    legend { "On" }
                    div.days {
                        @for (value, name) in [("mon", "Mon"), ("tue", "Tue"), ("wed", "Wed"), ("thu", "Thu"), ("fri", "Fri"), ("sat", "Sat"), ("sun", "Sun")] {
                            label.check { input type="checkbox" name="s-day" value=(value); " " (name) }
                        }
                    }
                }
                div.row id="s-at-row" hidden {
                    label for="s-at" { "At" }
                    input id="s-at" type="time" required;
                    label for="s-tz" { "Time zone" }
                    input id="s-tz" type="text" list="s-tz-list" autocomplete="off" spellcheck="false" placeholder="e.g. Europe/Berlin";
                    datalist id="s-tz-list" {}
                }
                fieldset {
                    legend { "Keep (after each scheduled backup; locked backups are always kept)" }
                    div.grid {
                        label { "Last " input id="s-keep_last" type="number" min="0"; }
                        label { "Daily " input id="s-keep_daily" type="number" min="0"; }
                        label { "Weekly " input id="s-keep_weekly" type="number" min="0"; }
                        label { "Monthly " input id="s-keep_monthly" type="number" min="0"; }
                        label { "Yearly " input id="s-keep_yearly" type="number" min="0"; }
                        label { "Within " input id="s-keep_within" type="text" placeholder="e.g. 7d or 1y2m"; }
                    }
                    p id="s-preview" class="muted small" role="status" aria-live="polite" {}
                }
                @if can_create {
                    div.row {
                        button type="button" class="primary" id="schedule-save" { "Save schedule" }
                        button type="button" class="secondary" id="schedule-run" { "Run now" }
                    }
                } @else {
                    p.muted { "You can see this schedule but not change it." }
                }
                p id="schedule-saved" class="ok" role="status" hidden { "Schedule saved." }
            }
            dl.stats id="schedule-status" {
                div { dt { "Next run" } dd id="s-next" { "–" } }
                div { dt { "Last run" } dd id="s-last" { "–" } }
                div { dt { "Last result" } dd id="s-result" { "–" } }
            }
            h2 { "Recent runs" }
            ul id="runs" class="runs" {}
            // Filled for the server's owner only (subusers get 403).
            section id="owner-notify" class="card" hidden {
                h2 { "Discord notifications" }
                p.muted { "Your own Discord webhook: told when a scheduled backup fails, when there has been no backup for a day, when a restore starts and when the key is replaced." }
                p id="notify-current" {}
                label for="notify-url" { "Webhook URL" }
                input id="notify-url" type="url" placeholder="https://discord.com/api/webhooks/…" autocomplete="off";
                div.row {
                    button type="button" class="primary" id="notify-save" { "Save webhook" }
                    button type="button" class="secondary" id="notify-test" hidden { "Send test" }
                    button type="button" class="secondary" id="notify-remove" hidden { "Remove" }
                }
                p id="notify-status" role="status" {}
            }
        }
    };
    let page = Page {
        server: Some(server.uuid.as_str()),
        permissions: Some(api::vocab::join_permissions(&perms)),
        ..Page::new(&base, &server.name, "backups", Some(&s))
    };
    Ok(html_response(StatusCode::OK, render(page, content)))
}

/// `/admin/{section}`: keys, nodes, servers, users, archived-repos, audit.
pub async fn admin(
    State(state): State<AppState>,
    Path(section): Path<String>,
    req: Request,
) -> Response {
    let base = base_of(&req);
    let Some(s) = session_of(&req) else {
        return to_login(&base, &req);
    };
    let mut sections = vec![
        ("keys", "Keys"),
        ("nodes", "Nodes"),
        ("servers", "Servers"),
        ("users", "Users"),
        ("archived-repos", "Archived repositories"),
        ("notifications", "Notifications"),
        ("audit", "Audit log"),
    ];
    if state.panel.pterodactyl().is_some() {
        sections.push(("pterodactyl", "Pterodactyl sync"));
    }
    let Some((_, title)) = sections.iter().find(|(k, _)| *k == section) else {
        return not_found_page(&base, Some(&s));
    };
    if !s.user.root_admin {
        return not_found_page(&base, Some(&s));
    }
    let content = html! {
        nav.subnav aria-label="Admin" {
            @for (k, t) in &sections {
                a href={ (base) "/admin/" (k) } aria-current=[(*k == section).then_some("page")] { (t) }
            }
        }
        h1 { (title) }
        div id="admin-content" aria-live="polite" { p.muted { "Loading…" } }
    };
    let page = Page {
        section: Some(&section),
        ..Page::new(&base, title, "admin", Some(&s))
    };
    html_response(StatusCode::OK, render(page, content))
}

pub async fn admin_home(req: Request) -> Response {
    see_other(&format!("{}/admin/keys", base_of(&req)))
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut res = body.into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Short: a new binary brings new assets under the same names.
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    res
}

pub async fn app_css() -> Response {
    asset(APP_CSS, "text/css; charset=utf-8")
}

pub async fn app_js() -> Response {
    asset(APP_JS, "text/javascript; charset=utf-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_inserted_value_is_escaped() {
        let hostile = r#"<script>alert("x")</script>'&"#;
        let page = Page {
            server: Some(hostile),
            permissions: Some(hostile.to_owned()),
            ..Page::new("", hostile, hostile, None)
        };
        let out = render(page, html! { p { (hostile) } }).into_string();
        assert!(!out.contains("<script>alert"), "{out}");
        assert!(
            out.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"),
            "{out}"
        );
    }
}

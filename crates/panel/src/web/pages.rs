//! The web pages: server-rendered shells (layout, navigation, the CSRF token
//! in `<meta name="csrf-token">`, what the user may do) that `app.js` fills
//! through the JSON API. CSS and JavaScript are compiled into the binary.

use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use api::ServerUuid;

use crate::auth::ActiveSession;
use crate::permissions::allowed_permissions;
use crate::web::AppState;
use crate::web::extract::SessionCtx;

const APP_CSS: &str = include_str!("assets/app.css");
const APP_JS: &str = include_str!("assets/app.js");

/// Pages load only our own script and style; nothing may frame them.
const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
                   connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'";

/// Escapes text for HTML element content and quoted attributes.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn session_of(req: &Request) -> Option<ActiveSession> {
    req.extensions()
        .get::<Arc<SessionCtx>>()
        .and_then(|c| c.session.clone())
}

fn html(status: StatusCode, body: String) -> Response {
    let mut res = (status, body).into_response();
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

fn to_login() -> Response {
    let mut res = StatusCode::SEE_OTHER.into_response();
    res.headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static("/login"));
    res
}

struct Page<'a> {
    title: &'a str,
    /// `data-page` of `<body>`: which part of app.js runs.
    page: &'a str,
    /// Extra `data-*` attributes of `<body>` (already escaped values).
    data: Vec<(&'a str, String)>,
    session: Option<&'a ActiveSession>,
    content: String,
}

fn render(p: Page<'_>) -> String {
    let csrf = p.session.map(|s| s.csrf_token.as_str()).unwrap_or("");
    let data: String = p
        .data
        .iter()
        .map(|(k, v)| format!(" data-{k}=\"{v}\""))
        .collect();
    let nav = match p.session {
        None => String::new(),
        Some(s) => {
            let admin = if s.user.root_admin {
                r#"<a href="/admin/keys">Admin</a>"#
            } else {
                ""
            };
            format!(
                r#"<nav aria-label="Main"><a href="/">My servers</a>{admin}</nav>
<div class="who"><span class="email">{}</span><button type="button" id="logout" class="link">Log out</button></div>"#,
                esc(&s.user.email)
            )
        }
    };
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="csrf-token" content="{csrf}">
<title>{title} · Restic Backups</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/static/app.css">
<script src="/static/app.js" defer></script>
</head>
<body data-page="{page}"{data}>
<header class="top"><a class="brand" href="/">Restic Backups</a>{nav}</header>
<main id="main">
<div id="error" class="error" role="alert" hidden></div>
{content}
</main>
<dialog id="confirm" aria-labelledby="confirm-title">
<form method="dialog">
<h2 id="confirm-title"></h2>
<p id="confirm-text"></p>
<div class="dialog-buttons"><button type="submit" value="cancel" class="secondary">Cancel</button><button type="submit" value="ok" id="confirm-ok" class="danger">Confirm</button></div>
</form>
</dialog>
</body>
</html>
"#,
        title = esc(p.title),
        page = p.page,
        content = p.content,
    )
}

fn not_found_page(session: Option<&ActiveSession>) -> Response {
    html(
        StatusCode::NOT_FOUND,
        render(Page {
            title: "Not found",
            page: "none",
            data: vec![],
            session,
            content: r#"<h1>Not found</h1><p>There is nothing here, or you can not see it. <a href="/">Back to your servers</a>.</p>"#.into(),
        }),
    )
}

pub async fn fallback(req: Request) -> Response {
    // Unknown API paths answer in JSON; everything else is a page.
    let path = req.uri().path();
    if path.starts_with(super::PREFIX) || path.starts_with("/auth/") {
        return crate::PanelError::NotFound("page").into_response();
    }
    not_found_page(session_of(&req).as_ref())
}

pub async fn login(
    Query(q): Query<std::collections::HashMap<String, String>>,
    req: Request,
) -> Response {
    if session_of(&req).is_some() {
        let mut res = StatusCode::SEE_OTHER.into_response();
        res.headers_mut()
            .insert(header::LOCATION, HeaderValue::from_static("/"));
        return res;
    }
    let message = match q.get("error").map(String::as_str) {
        Some("invalid") => "Wrong email or password.",
        Some("rate_limited") => "Too many failed logins; try again later.",
        _ => "",
    };
    let hidden = if message.is_empty() { " hidden" } else { "" };
    html(
        StatusCode::OK,
        render(Page {
            title: "Log in",
            page: "login",
            data: vec![],
            session: None,
            content: format!(
                r#"<section class="card narrow">
<h1>Log in</h1>
<p id="login-error" class="error" role="alert"{hidden}>{message}</p>
<form id="login-form" method="post" action="/auth/login">
<label for="email">Email</label>
<input id="email" name="email" type="email" autocomplete="username" required autofocus>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit" class="primary" id="login-submit">Log in</button>
</form>
</section>"#
            ),
        }),
    )
}

pub async fn my_servers(req: Request) -> Response {
    let Some(s) = session_of(&req) else {
        return to_login();
    };
    html(
        StatusCode::OK,
        render(Page {
            title: "My servers",
            page: "servers",
            data: vec![],
            session: Some(&s),
            content: r#"<h1>My servers</h1>
<ul id="server-list" class="server-list" aria-live="polite"><li class="muted">Loading…</li></ul>"#
                .into(),
        }),
    )
}

pub async fn backups(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    req: Request,
) -> Result<Response, crate::PanelError> {
    let Some(s) = session_of(&req) else {
        return Ok(to_login());
    };
    let Ok(uuid) = ServerUuid::parse(&raw) else {
        return Ok(not_found_page(Some(&s)));
    };
    let storage = state.panel.storage();
    let Some(server) = storage.server_by_uuid(&uuid).await? else {
        return Ok(not_found_page(Some(&s)));
    };
    let Some(perms) = allowed_permissions(storage, &s.user, &server).await? else {
        return Ok(not_found_page(Some(&s)));
    };
    let can = |p: &str| perms.contains(&p);
    let create = if can("backup.create") {
        r#"<button type="button" class="primary" id="create-backup">Create Restic Backup</button>"#
    } else {
        ""
    };
    let content = format!(
        r#"<div class="page-head"><div><p class="crumb"><a href="/">My servers</a></p><h1 id="server-name">{name}</h1></div>{create}</div>
<div id="progress" class="progress" hidden>
<div class="progress-label"><span id="progress-kind">Working</span> <span id="progress-text"></span></div>
<div class="bar" role="progressbar" aria-labelledby="progress-kind" aria-valuemin="0" aria-valuemax="100"><span id="progress-fill"></span></div>
</div>
<div class="tabs" role="tablist">
<button type="button" role="tab" id="tab-backups" aria-controls="panel-backups" aria-selected="true">Backups</button>
<button type="button" role="tab" id="tab-schedule" aria-controls="panel-schedule" aria-selected="false" tabindex="-1">Schedule</button>
</div>
<section id="panel-backups" role="tabpanel" aria-labelledby="tab-backups">
<dl class="stats">
<div><dt>Size on disk</dt><dd id="stat-size">–</dd></div>
<div><dt>Uncompressed size</dt><dd id="stat-raw">–</dd></div>
<div><dt>Compression / dedup ratio</dt><dd id="stat-ratio">–</dd></div>
<div><dt>Backups</dt><dd id="stat-count">–</dd></div>
</dl>
<table class="backups">
<thead><tr><th scope="col">Time</th><th scope="col">Size</th><th scope="col">ID</th><th scope="col"><span class="sr-only">Locked</span></th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
<tbody id="rows"></tbody>
</table>
<p id="empty" class="empty" hidden>No backups yet.{empty_hint}</p>
<div class="pager"><button type="button" id="prev" class="secondary">Previous</button><span id="page-info" aria-live="polite"></span><button type="button" id="next" class="secondary">Next</button></div>
<p class="muted small" id="limit-info"></p>
</section>
<section id="panel-schedule" role="tabpanel" aria-labelledby="tab-schedule" hidden>
<form id="schedule-form" class="card">
<label class="check"><input type="checkbox" id="s-enabled"> Back up automatically</label>
<div class="row"><label for="s-value">Every</label><input id="s-value" type="number" min="1" required><select id="s-unit" aria-label="Interval unit"><option value="minutes">minutes</option><option value="hours">hours</option><option value="days">days</option></select></div>
<fieldset><legend>Keep (after each scheduled backup; locked backups are always kept)</legend>
<div class="grid">
<label>Last <input id="s-keep_last" type="number" min="0"></label>
<label>Daily <input id="s-keep_daily" type="number" min="0"></label>
<label>Weekly <input id="s-keep_weekly" type="number" min="0"></label>
<label>Monthly <input id="s-keep_monthly" type="number" min="0"></label>
<label>Yearly <input id="s-keep_yearly" type="number" min="0"></label>
<label>Within <input id="s-keep_within" type="text" placeholder="e.g. 7d or 1y2m"></label>
</div></fieldset>
{save}
<p id="schedule-saved" class="ok" role="status" hidden>Schedule saved.</p>
</form>
<dl class="stats" id="schedule-status">
<div><dt>Next run</dt><dd id="s-next">–</dd></div>
<div><dt>Last run</dt><dd id="s-last">–</dd></div>
<div><dt>Last result</dt><dd id="s-result">–</dd></div>
</dl>
<h2>Recent runs</h2>
<ul id="runs" class="runs"></ul>
</section>"#,
        name = esc(&server.name),
        empty_hint = if can("backup.create") {
            " Create the first one with “Create Restic Backup”."
        } else {
            ""
        },
        save = if can("backup.create") {
            r#"<button type="button" class="primary" id="schedule-save">Save schedule</button>"#
        } else {
            r#"<p class="muted">You can see this schedule but not change it.</p>"#
        },
    );
    Ok(html(
        StatusCode::OK,
        render(Page {
            title: &server.name,
            page: "backups",
            data: vec![
                ("server", esc(server.uuid.as_str())),
                ("permissions", esc(&perms.join(" "))),
            ],
            session: Some(&s),
            content,
        }),
    ))
}

/// `/admin/{section}`: keys, nodes, servers, users, archived-repos.
pub async fn admin(Path(section): Path<String>, req: Request) -> Response {
    let Some(s) = session_of(&req) else {
        return to_login();
    };
    let sections = [
        ("keys", "Keys"),
        ("nodes", "Nodes"),
        ("servers", "Servers"),
        ("users", "Users"),
        ("archived-repos", "Archived repositories"),
    ];
    let Some((_, title)) = sections.iter().find(|(k, _)| *k == section) else {
        return not_found_page(Some(&s));
    };
    if !s.user.root_admin {
        return not_found_page(Some(&s));
    }
    let tabs: String = sections
        .iter()
        .map(|(k, t)| {
            let current = if *k == section {
                r#" aria-current="page""#
            } else {
                ""
            };
            format!(r#"<a href="/admin/{k}"{current}>{t}</a>"#)
        })
        .collect();
    html(
        StatusCode::OK,
        render(Page {
            title,
            page: "admin",
            data: vec![("section", section.clone())],
            session: Some(&s),
            content: format!(
                r#"<nav class="subnav" aria-label="Admin">{tabs}</nav>
<h1>{title}</h1>
<div id="admin-content" aria-live="polite"><p class="muted">Loading…</p></div>"#
            ),
        }),
    )
}

pub async fn admin_home() -> Response {
    let mut res = StatusCode::SEE_OTHER.into_response();
    res.headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static("/admin/keys"));
    res
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
    fn escapes_what_html_needs() {
        assert_eq!(
            esc(r#"<b a="1">'&'</b>"#),
            "&lt;b a=&quot;1&quot;&gt;&#39;&amp;&#39;&lt;/b&gt;"
        );
    }
}

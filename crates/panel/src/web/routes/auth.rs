//! `/auth/login`, `/auth/session`, `/auth/logout` (SPEC "Panel session").

use std::net::SocketAddr;
use std::sync::Arc;

use api::panel::{SessionInfo, SessionUser};
use axum::Json;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::PanelError;
use crate::auth::{ActiveSession, AuthError};
use crate::metrics::LoginResult;
use crate::service::now;
use crate::storage::User;
use crate::web::audit::AuditActor;
use crate::web::extract::{
    CurrentSession, SessionCtx, body_error, client_addr, cross_site, session_set_cookie,
};
use crate::web::{AppState, see_other};

#[derive(Deserialize)]
struct Credentials {
    email: String,
    password: String,
}

fn info(user: &User, csrf_token: &str) -> SessionInfo {
    SessionInfo {
        user: SessionUser {
            email: user.email.clone(),
            root_admin: user.root_admin,
        },
        csrf_token: csrf_token.to_owned(),
    }
}

/// Form logins (no JavaScript) are answered with redirects; JSON logins
/// with JSON.
fn is_form(req: &Request) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"))
}

pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    let mut tried = None;
    let mut res = match login_as(&state, peer, req, &mut tried).await {
        Ok(res) => res,
        Err(e) => e.into_response(),
    };
    // The audit log names who tried, signed in or not.
    if let Some(email) = tried {
        res.extensions_mut().insert(AuditActor(email));
    }
    res
}

async fn login_as(
    state: &AppState,
    peer: SocketAddr,
    req: Request,
    tried: &mut Option<String>,
) -> Result<Response, PanelError> {
    let form = is_form(&req);
    if cross_site(req.headers()) {
        tracing::warn!(peer = %peer.ip(), "cross-site login refused");
        return Err(PanelError::ForbiddenBecause(
            "logins must come from the panel's own login page",
        ));
    }
    let client = client_addr(peer.ip(), req.headers(), &state.trusted_proxies);
    let old = req
        .extensions()
        .get::<Arc<SessionCtx>>()
        .and_then(|c| c.id.clone());
    let bytes = httpd::read_body(req, crate::web::MAX_BODY_BYTES)
        .await
        .map_err(body_error)?;
    let creds: Credentials = if form {
        serde_urlencoded::from_bytes(&bytes).map_err(|_| {
            PanelError::bad_request("invalid_form", "the form needs email and password")
        })?
    } else {
        httpd::parse_json(&bytes).map_err(body_error)?
    };
    // A password typed into the e-mail field must not reach the log.
    let email = creds.email.trim().to_lowercase();
    let looks_like_email = email.len() <= 254
        && email.matches('@').count() == 1
        && !email.starts_with('@')
        && !email.ends_with('@')
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    *tried = Some(if looks_like_email {
        email
    } else {
        "(not an e-mail address)".to_owned()
    });
    let result = state
        .panel
        .sessions()
        .login(&creds.email, &creds.password, &client.to_string(), now())
        .await;
    let counted = match &result {
        Ok(_) => Some(LoginResult::Ok),
        Err(AuthError::InvalidCredentials) => Some(LoginResult::Failed),
        Err(AuthError::RateLimited) => Some(LoginResult::Limited),
        Err(_) => None,
    };
    if let Some(counted) = counted {
        state.panel.metrics().login(counted);
    }
    if let Err(e @ (AuthError::InvalidCredentials | AuthError::RateLimited)) = &result {
        // One line per refusal, for fail2ban and friends.
        tracing::warn!(%client, reason = %e, "login failed");
    }
    let new = match result {
        Ok(new) => new,
        Err(e) if form => {
            let e = PanelError::from(e);
            let why = match e {
                PanelError::RateLimited => "rate_limited",
                PanelError::InvalidCredentials => "invalid",
                other => return Err(other),
            };
            return Ok(see_other(&format!("{}/login?error={why}", state.base)));
        }
        Err(e) => return Err(e.into()),
    };
    // A login always starts a fresh session; the one before it ends.
    if let Some(old) = old {
        state.panel.sessions().logout(&old).await?;
    }
    tracing::info!(user = new.user.id, "login");
    let mut res = if form {
        see_other(&format!("{}/", state.base))
    } else {
        Json(info(&new.user, &new.csrf_token)).into_response()
    };
    res.headers_mut().insert(
        header::SET_COOKIE,
        session_set_cookie(state, new.id.expose(), state.session_max_age),
    );
    Ok(res)
}

pub async fn session(CurrentSession(s): CurrentSession) -> Json<SessionInfo> {
    Json(info(&s.user, &s.csrf_token))
}

pub async fn logout(State(state): State<AppState>, req: Request) -> Result<Response, PanelError> {
    let ctx = req.extensions().get::<Arc<SessionCtx>>().cloned();
    if let Some(SessionCtx {
        id: Some(id),
        session: Some(ActiveSession { user, .. }),
    }) = ctx.as_deref()
    {
        state.panel.sessions().logout(id).await?;
        tracing::info!(user = user.id, "logout");
    }
    let mut res = StatusCode::NO_CONTENT.into_response();
    res.headers_mut()
        .insert(header::SET_COOKIE, session_set_cookie(&state, "", 0));
    Ok(res)
}

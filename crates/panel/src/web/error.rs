//! The one mapping from [`PanelError`] to an HTTP answer.

use api::agent::ErrorBody;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::PanelError;

pub fn status_and_code(e: &PanelError) -> (StatusCode, &str) {
    match e {
        PanelError::NotLoggedIn => (StatusCode::UNAUTHORIZED, "not_logged_in"),
        PanelError::CsrfFailed => (StatusCode::FORBIDDEN, "csrf_failed"),
        PanelError::InvalidCredentials => (StatusCode::UNAUTHORIZED, "invalid_credentials"),
        PanelError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
        PanelError::RateLimited | PanelError::LoginBusy => {
            (StatusCode::TOO_MANY_REQUESTS, "rate_limited")
        }
        PanelError::NotFound(what) => (StatusCode::NOT_FOUND, what.code()),
        PanelError::NoPterodactylSession => (StatusCode::CONFLICT, "no_pterodactyl_session"),
        PanelError::PterodactylUnavailable => (StatusCode::BAD_GATEWAY, "pterodactyl_unavailable"),
        PanelError::BackupsDisabled => (StatusCode::FORBIDDEN, "backups_disabled"),
        PanelError::Forbidden | PanelError::ForbiddenBecause(_) => {
            (StatusCode::FORBIDDEN, "forbidden")
        }
        PanelError::BadRequest { code, .. } => (StatusCode::BAD_REQUEST, code),
        PanelError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
        PanelError::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
        PanelError::NodeUnavailable => (StatusCode::BAD_GATEWAY, "node_unavailable"),
        PanelError::Agent { status, code, .. } => {
            // Only client errors and 503 are passed on; anything else from
            // an agent is the node failing.
            let status = StatusCode::from_u16(*status)
                .ok()
                .filter(|s| s.is_client_error() || *s == StatusCode::SERVICE_UNAVAILABLE)
                .unwrap_or(StatusCode::BAD_GATEWAY);
            (status, code.as_str())
        }
        PanelError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error"),
    }
}

impl IntoResponse for PanelError {
    fn into_response(self) -> Response {
        let (status, code) = status_and_code(&self);
        let message = match &self {
            PanelError::Internal(detail) => {
                tracing::error!(%detail, "request failed");
                "an internal error occurred; the panel log has the details".to_owned()
            }
            other => other.to_string(),
        };
        let mut res = (status, Json(ErrorBody::new(code, message))).into_response();
        let retry_after = match &self {
            PanelError::RateLimited => Some("60"),
            PanelError::LoginBusy => Some("2"),
            _ => None,
        };
        if let Some(secs) = retry_after {
            res.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static(secs),
            );
        }
        res
    }
}

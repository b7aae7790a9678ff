//! The one mapping from [`PanelError`] to an HTTP answer.

use api::agent::ErrorBody;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::PanelError;

pub fn status_and_code(e: &PanelError) -> (StatusCode, &str) {
    let status = match e {
        PanelError::NotLoggedIn | PanelError::InvalidCredentials => StatusCode::UNAUTHORIZED,
        PanelError::CsrfFailed
        | PanelError::BackupsDisabled
        | PanelError::Forbidden
        | PanelError::ForbiddenBecause(_) => StatusCode::FORBIDDEN,
        PanelError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        PanelError::RateLimited | PanelError::LoginBusy => StatusCode::TOO_MANY_REQUESTS,
        PanelError::NotFound(_) => StatusCode::NOT_FOUND,
        PanelError::NoPterodactylSession | PanelError::Conflict(_) => StatusCode::CONFLICT,
        PanelError::PterodactylUnavailable | PanelError::NodeUnavailable => StatusCode::BAD_GATEWAY,
        PanelError::BadRequest { .. } => StatusCode::BAD_REQUEST,
        PanelError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        // Only client errors and 503 are passed on; anything else from an
        // agent is the node failing.
        PanelError::Agent { status, .. } => StatusCode::from_u16(*status)
            .ok()
            .filter(|s| s.is_client_error() || *s == StatusCode::SERVICE_UNAVAILABLE)
            .unwrap_or(StatusCode::BAD_GATEWAY),
        PanelError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    (status, e.code())
}

impl IntoResponse for PanelError {
    fn into_response(self) -> Response {
        let (status, code) = status_and_code(&self);
        if let PanelError::Internal(detail) = &self {
            tracing::error!(%detail, "request failed");
        }
        let message = self.public_message();
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

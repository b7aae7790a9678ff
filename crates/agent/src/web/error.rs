//! The one mapping from [`AgentError`] to an HTTP answer.

use api::agent::ErrorBody;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::AgentError;

pub fn status_of(e: &AgentError) -> StatusCode {
    match e {
        AgentError::BadRequest { .. } => StatusCode::BAD_REQUEST,
        AgentError::Conflict { .. } => StatusCode::CONFLICT,
        AgentError::MissingToken => StatusCode::UNAUTHORIZED,
        AgentError::InvalidToken
        | AgentError::WrongKey
        | AgentError::InvalidLink
        | AgentError::LinkExpired
        | AgentError::LinkUsed => StatusCode::FORBIDDEN,
        AgentError::ServerNotFound
        | AgentError::RepoNotFound
        | AgentError::BackupNotFound
        | AgentError::JobNotFound
        | AgentError::PathNotFound
        | AgentError::ArchiveNotFound
        | AgentError::NoSuchEndpoint => StatusCode::NOT_FOUND,
        AgentError::BackupLocked
        | AgentError::AllBackupsLocked
        | AgentError::JobInProgress { .. }
        | AgentError::RepoLocked
        | AgentError::RestoreUnsupported
        | AgentError::ServerNotStopped => StatusCode::CONFLICT,
        AgentError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        AgentError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        AgentError::TooManyDownloads => StatusCode::TOO_MANY_REQUESTS,
        // Wings and the repository's store are services the operation
        // depends on; 503 (not 502) so the panel passes the code on to the
        // user instead of calling the node unavailable.
        AgentError::ResticUnavailable
        | AgentError::Store(_)
        | AgentError::ShuttingDown
        | AgentError::Interrupted
        | AgentError::WingsUnavailable
        | AgentError::WingsRefused
        | AgentError::WingsFailed { .. } => StatusCode::SERVICE_UNAVAILABLE,
        // Only ever a job's outcome, never an answer to a request.
        AgentError::ServerStopTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
        AgentError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for AgentError {
    fn into_response(self) -> Response {
        let status = status_of(&self);
        if let AgentError::Internal(detail) = &self {
            tracing::error!(%detail, "request failed");
        }
        let mut res = (
            status,
            Json(ErrorBody::new(self.code(), self.public_message())),
        )
            .into_response();
        if matches!(self, AgentError::TooManyDownloads) {
            res.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("10"),
            );
        }
        res
    }
}

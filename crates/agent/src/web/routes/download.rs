//! `GET /download/restic?token=…`: a one-time link the panel hands to the
//! browser. No bearer token: the link itself is signed with the node token.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use tokio_util::io::ReaderStream;

use crate::AgentError;
use crate::service::Download;
use crate::web::AppState;

/// Chunk size of the streamed body.
const CHUNK: usize = 64 * 1024;

pub async fn handler(
    State(state): State<AppState>,
    query: Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, AgentError> {
    let Query(query) = query.map_err(|_| AgentError::InvalidLink)?;
    let token = query.get("token").ok_or(AgentError::InvalidLink)?;
    let download = state.agent.download_with_token(token).await?;
    Ok(respond(download))
}

/// Streams a download as an attachment.
pub fn respond(d: Download) -> Response {
    let body = Body::from_stream(ReaderStream::with_capacity(d.body, CHUNK));
    let disposition = format!("attachment; filename=\"{}\"", d.filename);
    let mut res = body.into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(d.format.content_type()),
    );
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    res
}

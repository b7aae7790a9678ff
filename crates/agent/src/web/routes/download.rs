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
    let mut res = body.into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(d.content_type),
    );
    if let Some(len) = d.length {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    if let Ok(v) = HeaderValue::from_str(&content_disposition(&d.filename)) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    res
}

/// `attachment` with the name twice (RFC 6266): a plain ASCII one where
/// anything but letters, digits, `.`, `-` and `_` became `_`, and the
/// exact one percent-encoded. A file name comes from a tenant's server, so
/// it can never end the header or add a parameter.
pub fn content_disposition(filename: &str) -> String {
    let plain: String = filename
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let plain = match plain.trim_start_matches('.') {
        "" => "download".to_owned(),
        rest => rest.to_owned(),
    };
    let exact = api::hex::percent_encode(filename, b"");
    format!("attachment; filename=\"{plain}\"; filename*=UTF-8''{exact}")
}

#[cfg(test)]
mod tests {
    use super::content_disposition;

    #[test]
    fn a_hostile_file_name_stays_inside_its_parameter() {
        assert_eq!(
            content_disposition("level.dat"),
            "attachment; filename=\"level.dat\"; filename*=UTF-8''level.dat"
        );
        let d = content_disposition("a\"; filename=evil.sh\r\nX: y é");
        assert_eq!(
            d,
            "attachment; filename=\"a___filename_evil.sh__X__y__\"; filename*=UTF-8''a%22%3B%20filename%3Devil.sh%0D%0AX%3A%20y%20%C3%A9"
        );
        assert!(axum::http::HeaderValue::from_str(&d).is_ok());
        assert!(content_disposition("..").starts_with("attachment; filename=\"download\""));
    }
}

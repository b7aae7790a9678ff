//! `GET /openapi.json`: this API's OpenAPI document ([`api::openapi::agent`]).
//! Open, like the health checks: it describes, it holds nothing.

use axum::response::Response;

pub async fn document() -> Response {
    httpd::json_text(api::openapi::agent_json())
}

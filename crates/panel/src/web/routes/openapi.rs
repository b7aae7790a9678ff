//! `GET /openapi.json`: this API's OpenAPI document ([`api::openapi::panel`]).
//! Open, like the health checks: it describes, it holds nothing.

use axum::response::Response;

pub async fn document() -> Response {
    httpd::json_text(api::openapi::panel_json())
}

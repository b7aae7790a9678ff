//! `/api/restic/...`: node-wide endpoints.

mod archive;
mod node;

use api::routes::agent as route;
use axum::Router;
use axum::routing::{delete, get};

use crate::web::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(route::ARCHIVES, get(archive::list))
        .route(route::ARCHIVED, delete(archive::delete))
        .route(route::NODE, get(node::info))
}

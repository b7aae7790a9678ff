//! `/api/restic/...`: node-wide endpoints.

mod archive;
mod node;

use axum::Router;
use axum::routing::{delete, get};

use crate::web::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/restic/archive", get(archive::list))
        .route("/api/restic/archive/{name}", delete(archive::delete))
        .route("/api/restic/node", get(node::info))
}

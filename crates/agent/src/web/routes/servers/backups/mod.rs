//! `/api/servers/{server}/backups/restic/...`

mod adopt;
mod archive;
mod create;
mod delete;
mod download;
mod jobs;
mod key;
mod list;
mod lock;
mod restore;
mod retention;
mod stats;

use axum::Router;
use axum::routing::{delete, get, post};

use crate::web::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/servers/{server}/backups/restic",
            get(list::handler).post(create::handler),
        )
        .route(
            "/api/servers/{server}/backups/restic/stats",
            get(stats::handler),
        )
        .route(
            "/api/servers/{server}/backups/restic/adopt",
            post(adopt::handler),
        )
        .route(
            "/api/servers/{server}/backups/restic/archive",
            post(archive::handler),
        )
        .route(
            "/api/servers/{server}/backups/restic/key",
            post(key::handler),
        )
        .route(
            "/api/servers/{server}/backups/restic/retention",
            post(retention::handler),
        )
        .route(
            "/api/servers/{server}/backups/restic/jobs/{job}",
            get(jobs::handler),
        )
        .route(
            "/api/servers/{server}/backups/restic/{id}/lock",
            post(lock::lock),
        )
        .route(
            "/api/servers/{server}/backups/restic/{id}/unlock",
            post(lock::unlock),
        )
        .route(
            "/api/servers/{server}/backups/restic/{id}/download",
            get(download::handler),
        )
        .route(
            "/api/servers/{server}/backups/restic/{id}/restore",
            post(restore::handler),
        )
        .route(
            "/api/servers/{server}/backups/restic/{id}",
            delete(delete::handler),
        )
}

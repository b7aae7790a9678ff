//! `/api/servers/{server}/backups/restic/...`

mod adopt;
mod archive;
mod create;
mod delete;
mod download;
mod files;
mod jobs;
mod key;
mod list;
mod lock;
mod prune;
mod restore;
mod retention;
mod stats;

use api::routes::agent as route;
use axum::Router;
use axum::routing::{delete, get, post};

use crate::web::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(route::BACKUPS, get(list::handler).post(create::handler))
        .route(route::STATS, get(stats::handler))
        .route(route::STATS_HISTORY, get(stats::history))
        .route(route::ADOPT, post(adopt::handler))
        .route(route::ARCHIVE, post(archive::handler))
        .route(route::KEY, post(key::handler))
        .route(route::RETENTION, post(retention::handler))
        .route(route::RETENTION_PREVIEW, post(retention::preview))
        .route(route::PRUNE, post(prune::handler))
        .route(route::JOB, get(jobs::handler))
        .route(route::JOBS, get(jobs::list))
        .route(route::LOCK, post(lock::lock))
        .route(route::UNLOCK, post(lock::unlock))
        .route(route::DOWNLOAD, get(download::handler))
        .route(route::RESTORE, post(restore::handler))
        .route(route::FILES, get(files::handler))
        .route(route::SNAPSHOT, delete(delete::handler))
}

//! `/extensions/resticbackups/admin/...`: root admins only (the `Admin` extractor checks before any
//! body runs); one file per resource, named after the URL.

pub mod archived_repos;
pub mod audit;
pub mod key_regenerate;
pub mod keys;
pub mod nodes;
pub mod notifications;
pub mod prune;
pub mod pterodactyl_sync;
pub mod servers;
pub mod subusers;
pub mod tasks;
pub mod users;

use axum::Json;

use crate::PanelError;

pub type JsonResult<T> = Result<Json<T>, PanelError>;

//! `/extensions/resticbackups/servers/{server}/backups/restic/...`: one file per URL, named after its last part.

pub mod download;
pub mod files;
pub mod jobs;
pub mod list;
pub mod lock;
pub mod note;
pub mod notifications;
pub mod pterodactyl;
pub mod restore;
pub mod schedule;
pub mod schedule_history;
pub mod schedule_preview;
pub mod snapshot;
pub mod stats;

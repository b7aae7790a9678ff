//! Routes, one file per endpoint, laid out like the URL:
//! `/api/servers/{server}/backups/restic/...` lives in `servers/backups/`.

pub mod download;
pub mod health;
pub mod metrics;
pub mod openapi;
pub mod restic;
pub mod servers;

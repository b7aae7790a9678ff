//! `/api/servers/{server}/...`

pub mod backups;

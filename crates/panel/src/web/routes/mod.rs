//! Thin handlers, laid out like the URLs they serve (below the
//! `/extensions/resticbackups` prefix): `servers/backups/lock.rs` is
//! `POST /servers/{server}/backups/restic/{id}/lock`, `admin/nodes.rs` is
//! `/admin/nodes[/{name}]`; `auth.rs` is `/auth/*`, `health.rs` is
//! `/healthz` and `/readyz`.

pub mod admin;
pub mod auth;
pub mod health;
pub mod metrics;
pub mod openapi;
pub mod preferences;
pub mod servers;

//! Types shared by the agent and the panel: validated identifiers, secrets and
//! the JSON bodies of the agent API. No I/O lives here.

pub mod agent;
pub mod download;
pub mod files;
pub mod health;
pub mod hex;
pub mod ids;
pub mod openapi;
pub mod panel;
pub mod routes;
pub mod sealed;
pub mod secret;
pub mod timestamp;
pub mod vocab;

pub use ids::{IdError, JobId, ServerUuid, SnapshotId, SnapshotRef};
pub use secret::{Secret, SecretError};
pub use timestamp::{TimeRange, Timestamp};
pub use vocab::{
    AuditAction, AuditOutcome, ChannelKind, IntervalUnit, NotifyEvent, Permission, Repeat,
    RunOrigin, RunStatus, TaskKind, UnknownWord, Weekday,
};

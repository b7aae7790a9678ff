//! Request and response bodies of the node agent's HTTP API (SPEC.md §4, "Agent").
//! The panel deserialises exactly these types, so both sides stay in step.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ids::{JobId, SnapshotId};
use crate::timestamp::Timestamp;

/// Header that carries the server's repository key from the panel to the agent.
pub const PASSWORD_HEADER: &str = "X-Restic-Password";

/// `POST /api/servers/{uuid}/backups/restic`
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct CreateBackupRequest {
    /// Keep at most this many snapshots; the oldest unlocked ones are forgotten
    /// first. `None` or `0` means no limit.
    #[serde(default)]
    pub max_backups: Option<u32>,
    /// `.pteroignore`-style patterns, one per line.
    #[serde(default)]
    pub ignore: Option<String>,
}

/// `202 Accepted` answer of every request that starts a job.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct JobAccepted {
    pub job_id: JobId,
}

/// One snapshot in a listing.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct BackupItem {
    /// Stable public ID: restic's `original` when the snapshot was re-tagged.
    pub id: SnapshotId,
    pub short_id: String,
    pub time: Timestamp,
    /// Bytes of server files the snapshot holds; `None` while still being
    /// measured for snapshots made outside the agent.
    pub size: Option<u64>,
    pub tags: Vec<String>,
    pub locked: bool,
    /// The owner's note on it; set by the panel, never by the agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Whether the node's second copy (`copy_to`) holds it; absent without
    /// one, or while the copy's store can not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copied: Option<bool>,
    /// Bytes the backup added to the repository, when the node took it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub added: Option<u64>,
    /// Who started the backup (`manual` or `schedule`), when the panel's
    /// history knows; set by the panel, never by the agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<crate::RunOrigin>,
}

/// `GET /api/servers/{uuid}/backups/restic`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct BackupList {
    pub backups: Vec<BackupItem>,
    pub next_cursor: Option<String>,
    pub total: usize,
}

/// One backup in [`StorageHistory`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct StoragePoint {
    pub id: SnapshotId,
    pub time: Timestamp,
    /// Bytes the backup added to the repository (after deduplication and
    /// compression).
    pub added: u64,
    /// The repository's size on disk right after it (local repositories;
    /// `None` for remote ones).
    pub size: Option<u64>,
    /// Whether the backup is still there (deleted ones stay in the history;
    /// their space comes back at the next prune).
    pub kept: bool,
}

/// `GET /api/servers/{uuid}/backups/restic/stats/history`: the backups the
/// node took, oldest first (at most the last 1,000).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct StorageHistory {
    pub points: Vec<StoragePoint>,
}

/// `GET /api/servers/{uuid}/backups/restic/stats`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct RepoStats {
    /// Bytes on disk after compression and deduplication.
    pub total_size: u64,
    /// Restore size of all snapshots together.
    pub total_uncompressed_size: u64,
    pub snapshots_count: u64,
    pub dedup_ratio: f64,
    /// When the numbers were measured.
    pub computed_at: Timestamp,
}

/// Answer of lock and unlock.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct LockState {
    pub id: SnapshotId,
    pub locked: bool,
}

pub use crate::vocab::JobKind;

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
}

impl JobStatus {
    pub fn is_finished(self) -> bool {
        matches!(self, JobStatus::Succeeded | JobStatus::Failed)
    }
}

/// Progress as restic reports it; fields restic does not report stay `None`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct JobProgress {
    pub percent: Option<f64>,
    pub bytes_done: Option<u64>,
    pub total_bytes: Option<u64>,
    pub files_done: Option<u64>,
    pub total_files: Option<u64>,
    pub seconds_remaining: Option<u64>,
    /// The step a multi-step job (a restore) is in. Absent from older
    /// agents and job records, and from jobs of one step; the numbers
    /// above describe the current step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<JobPhase>,
}

/// The steps of a restore, in order. A newer agent's step this build does
/// not know reads as `Other`, so an older panel still reads the job.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobPhase {
    /// Asking Wings to stop the game server and waiting for `offline`.
    Stopping,
    /// Taking the `pre-restore` snapshot of the files as they are.
    SafetySnapshot,
    /// restic restores the snapshot and the agent swaps it in.
    Restoring,
    /// Asking Wings to start the game server again.
    Starting,
    #[serde(other)]
    Other,
}

/// `GET /api/servers/{uuid}/backups/restic/jobs/{job_id}`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct JobView {
    pub id: JobId,
    pub kind: JobKind,
    pub status: JobStatus,
    pub progress: JobProgress,
    /// Kind-specific outcome, e.g. `{"snapshot": BackupItem, "forgotten": [..]}`.
    pub result: Option<serde_json::Value>,
    pub error: Option<ErrorDetail>,
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
}

/// `GET /api/servers/{uuid}/backups/restic/jobs?active=true`: a server's
/// jobs, newest first (with `active`, only the queued and running ones).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct JobList {
    pub jobs: Vec<JobView>,
}

/// `?active=` of a job list: absent or `false` for every job the agent
/// remembers, `true` for the queued and running ones.
pub fn parse_active(raw: Option<&str>) -> Result<bool, &'static str> {
    match raw {
        None | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") => Ok(true),
        Some(_) => Err("active must be true or false"),
    }
}

/// The error body used by every endpoint of the agent and the panel.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
}

impl ErrorBody {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            error: ErrorDetail {
                code: code.into(),
                message: message.into(),
            },
        }
    }
}

/// `POST /api/servers/{uuid}/backups/restic/{id}/restore`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct RestoreRequest {
    /// Remove files the snapshot does not have (default `true`).
    #[serde(default = "yes")]
    pub truncate: bool,
    /// Stop the game server through Wings first and start it again after,
    /// if it was running (default `true`). Where the agent has Wings'
    /// settings and cannot reach it, a restore that asks for this is
    /// refused; `false` restores into the server as it is. Older agents
    /// ignore the field.
    #[serde(default = "yes")]
    pub stop_server: bool,
    /// Files and folders to bring back (at most 100); empty: everything.
    /// With `truncate`, each one becomes exactly what the backup has (files
    /// inside a restored folder that the backup lacks are removed); the
    /// rest of the server is left as it is either way.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<crate::files::SnapshotPath>,
}

fn yes() -> bool {
    true
}

impl Default for RestoreRequest {
    fn default() -> Self {
        Self {
            truncate: true,
            stop_server: true,
            paths: Vec::new(),
        }
    }
}

/// `POST /api/servers/{uuid}/backups/restic/key` (current key in the header).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct RotateKeyRequest {
    pub new_password: crate::Secret,
}

/// `POST /api/servers/{uuid}/backups/restic/adopt` (key in the header): the
/// importer's check that a key opens the server's repository. Where
/// `<repo_root>/<uuid>` does not exist, a repository the PHP extension left
/// as `<repo_root>/<uuid>+<owner>` that opens with the key is renamed into
/// place (unless `dry_run`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdoptRequest {
    #[serde(default)]
    pub dry_run: bool,
}

/// Answer of an adopt request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct AdoptAnswer {
    /// The extension's repository name that was (or would be) moved into
    /// place; `None` when the repository was in place already.
    pub adopted_from: Option<String>,
    /// Other `<uuid>+<owner>` repositories left where they are (earlier
    /// owners'); names only.
    pub left: Vec<String>,
}

/// Answer of a key rotation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct KeyRotated {
    /// restic's ID of the key now in use.
    pub key_id: String,
}

/// One archived repository (`GET /api/restic/archive`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct ArchivedRepo {
    /// `<uuid>-<YYYYMMDDTHHMMSSZ>`: the folder under `<repo_root>/archive`,
    /// or the record of a remote repository archived in place.
    pub name: String,
    pub server_uuid: String,
    pub size_bytes: u64,
    pub archived_at: Timestamp,
    /// A remote repository archived in place: where it is (no secrets).
    /// `None`: a folder on the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
}

/// `GET /api/restic/node`: where this node keeps repositories (no secrets).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct NodeInfo {
    /// `local`, `s3`, `sftp` or `rest`.
    pub store: String,
    /// `local` or the template with `{server_uuid}`, without credentials.
    pub repository: String,
    /// The second copy's template (`copy_to`), if the node keeps one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy_to: Option<String>,
    /// The installed restic.
    pub restic_version: String,
    /// This agent's version.
    pub agent_version: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct ArchiveList {
    pub archives: Vec<ArchivedRepo>,
}

/// `POST /api/servers/{uuid}/backups/restic/retention`: forget what a
/// policy does not keep (restic's `--keep-*` rules). Locked snapshots and
/// safety snapshots younger than a day are always kept.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetentionPolicy {
    #[serde(default)]
    pub keep_last: Option<u32>,
    #[serde(default)]
    pub keep_daily: Option<u32>,
    #[serde(default)]
    pub keep_weekly: Option<u32>,
    #[serde(default)]
    pub keep_monthly: Option<u32>,
    #[serde(default)]
    pub keep_yearly: Option<u32>,
    /// restic duration, e.g. `1y2m3d4h`, counted back from the newest
    /// snapshot. A zero duration (`0h`) is no rule, as in restic.
    #[serde(default)]
    pub keep_within: Option<String>,
    /// A snapshot kept whatever the rules say: a scheduled run passes the
    /// one it just took, so its own retention can never forget it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_snapshot: Option<String>,
}

/// `POST /api/servers/{uuid}/backups/restic/retention/preview`: what a
/// policy would forget now (nothing is forgotten).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct RetentionPreview {
    /// Newest first.
    pub would_remove: Vec<BackupItem>,
    pub kept: usize,
}

impl RetentionPolicy {
    /// True when no rule is set (such a policy keeps everything). A
    /// `keep_within` of zero length counts as set here; the agent treats it
    /// as no rule.
    pub fn is_empty(&self) -> bool {
        [
            self.keep_last,
            self.keep_daily,
            self.keep_weekly,
            self.keep_monthly,
            self.keep_yearly,
        ]
        .iter()
        .all(|n| n.unwrap_or(0) == 0)
            && self.keep_within.as_deref().is_none_or(str::is_empty)
    }
}

/// Answer of a retention run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct RetentionResult {
    /// Public IDs of the snapshots forgotten.
    pub forgotten: Vec<String>,
    /// Snapshots left.
    pub kept: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_progress_reads_records_without_a_phase_and_phases_it_does_not_know() {
        let old: JobProgress = serde_json::from_str(r#"{"percent":null,"bytes_done":null,"total_bytes":null,"files_done":null,"total_files":null,"seconds_remaining":null}"#).unwrap();
        assert_eq!(old.phase, None);
        let newer: JobProgress =
            serde_json::from_str(r#"{"percent":1.0,"phase":"defragmenting"}"#).unwrap();
        assert_eq!(newer.phase, Some(JobPhase::Other));
        let now = serde_json::to_value(JobProgress {
            phase: Some(JobPhase::SafetySnapshot),
            ..JobProgress::default()
        })
        .unwrap();
        assert_eq!(now["phase"], "safety_snapshot");
        assert!(
            serde_json::to_value(JobProgress::default())
                .unwrap()
                .get("phase")
                .is_none()
        );
    }

    #[test]
    fn restore_requests_stop_the_server_unless_they_say_not_to() {
        let r: RestoreRequest = serde_json::from_str("{}").unwrap();
        assert!(r.truncate && r.stop_server);
        let r: RestoreRequest = serde_json::from_str(r#"{"stop_server":false}"#).unwrap();
        assert!(r.truncate && !r.stop_server);
        assert!(serde_json::from_str::<RestoreRequest>(r#"{"stop_server":"no"}"#).is_err());
    }
}

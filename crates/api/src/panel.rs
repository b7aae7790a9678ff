//! Request and response bodies of the panel's session API (SPEC.md §4,
//! "Panel session" and "Panel"). The web UI and the tests use exactly these.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::agent::BackupItem;
use crate::agent::ErrorDetail;
use crate::ids::JobId;
use crate::ids::ServerUuid;
use crate::timestamp::Timestamp;
use crate::vocab::{
    AuditAction, AuditOutcome, ChannelKind, IntervalUnit, NotifyEvent, Permission, Repeat,
    RunOrigin, RunStatus, TaskKind, Weekday,
};

/// `GET /auth/session`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct SessionInfo {
    pub user: SessionUser,
    pub csrf_token: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct SessionUser {
    pub email: String,
    pub root_admin: bool,
}

/// One server the user can see (`GET /extensions/resticbackups/servers`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct ServerSummary {
    pub uuid: ServerUuid,
    pub name: String,
    pub backup_limit: i64,
    /// The backup permissions this user holds on it.
    pub permissions: Vec<Permission>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct ServerSummaryList {
    pub servers: Vec<ServerSummary>,
}

/// `GET .../servers/{server}/backups/restic`: the agent's page plus the limit.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct PanelBackupList {
    pub backups: Vec<BackupItem>,
    pub next_cursor: Option<String>,
    pub total: usize,
    /// Snapshots kept at most (0: no limit).
    pub backup_limit: i64,
}

/// `POST .../servers/{server}/backups/restic`
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PanelCreateBackup {
    /// `.pteroignore`-style patterns, one per line.
    #[serde(default)]
    pub ignore: Option<String>,
    /// A note for the new backup (see [`NoteRequest`]).
    #[serde(default)]
    pub note: Option<String>,
}

/// The longest note, in characters.
pub const MAX_NOTE_CHARS: usize = 500;

/// `PUT .../servers/{server}/backups/restic/{id}/note`
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoteRequest {
    /// One line, at most 500 characters; empty removes the note.
    pub note: String,
}

/// A backup's note after a change.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct NoteView {
    pub id: crate::SnapshotId,
    pub note: Option<String>,
}

/// A note as it is kept: trimmed, `None` when empty; refused when longer
/// than [`MAX_NOTE_CHARS`] or holding control characters (line breaks
/// included: a note is one line in the list).
pub fn clean_note(raw: &str) -> Result<Option<String>, &'static str> {
    let note = raw.trim();
    if note.chars().count() > MAX_NOTE_CHARS {
        return Err("a note is at most 500 characters");
    }
    // Control characters, and the invisible ones that reorder or hide
    // text (bidi overrides, zero-width), which could make a note read as
    // something else.
    let hidden = |c: char| matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}');
    if note.chars().any(|c| c.is_control() || hidden(c)) {
        return Err("a note is one line of visible characters");
    }
    Ok((!note.is_empty()).then(|| note.to_owned()))
}

/// One server's key on the admin keys page.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct ServerKey {
    pub server: String,
    pub name: String,
    pub node: String,
    pub key: String,
    /// Unix seconds the key was set.
    pub updated_at: Option<i64>,
    /// Keys the server has had, this one included.
    pub generations: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct ServerKeyList {
    pub keys: Vec<ServerKey>,
}

/// Answer of a key regeneration (the new key is on the keys page).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct KeyRegenerated {
    pub server: String,
    /// restic's ID of the new key; `None` when the server had no repository
    /// yet (the key was simply replaced).
    pub key_id: Option<String>,
}

/// An archived repository of a deleted server.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct PanelArchivedRepo {
    pub node: String,
    /// The node's name for it; for a server force-deleted while its node
    /// was gone, the server's UUID.
    pub name: String,
    pub server_uuid: String,
    /// The deleted server's name, when the panel recorded it.
    #[serde(default)]
    pub server_name: Option<String>,
    pub size_bytes: u64,
    pub archived_at: Timestamp,
    /// `on_node` (its node lists it), `node_unavailable` (its node did not
    /// answer just now), `unreachable_node` (force-deleted: the node was
    /// gone), `missing` (recorded, but its node no longer has it).
    #[serde(default)]
    pub location: String,
    /// A remote repository archived in place: where it is (no secrets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
    /// The key that opens it; `None` for archives made before keys were
    /// kept with archives.
    #[serde(default)]
    pub key: Option<String>,
    /// Keys it had before (oldest first), and a rotation's pending key:
    /// try them if `key` does not open it.
    #[serde(default)]
    pub other_keys: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct PanelArchiveList {
    pub archives: Vec<PanelArchivedRepo>,
    /// Nodes that could not be asked (their archives are missing above).
    pub unavailable_nodes: Vec<String>,
}

// ---- admin directory ----

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct UserView {
    pub id: i64,
    pub email: String,
    pub root_admin: bool,
    pub created_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUserRequest {
    pub email: String,
    pub password: crate::Secret,
    #[serde(default)]
    pub root_admin: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUserRequest {
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub password: Option<crate::Secret>,
    #[serde(default)]
    pub root_admin: Option<bool>,
}

/// A node as admins see it: never its token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct NodeView {
    pub id: i64,
    pub name: String,
    pub url: String,
    pub has_ca: bool,
    pub browser_downloads: bool,
    /// Where the node keeps repositories (`local` or a remote template
    /// without credentials), as its agent says; `None` when it did not
    /// answer just now (the list only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// Where the node's second copies go (`copy_to`), if it keeps them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy_to: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewNodeRequest {
    pub name: String,
    pub url: String,
    pub token: crate::Secret,
    #[serde(default)]
    pub ca_pem: Option<String>,
    #[serde(default = "yes")]
    pub browser_downloads: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateNodeRequest {
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub token: Option<crate::Secret>,
    /// `""` removes the CA.
    #[serde(default)]
    pub ca_pem: Option<String>,
    #[serde(default)]
    pub browser_downloads: Option<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct ServerView {
    pub uuid: ServerUuid,
    pub name: String,
    pub owner: String,
    pub node: String,
    pub backup_limit: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewServerRequest {
    /// Text, checked by the panel (so a malformed one is answered
    /// `invalid_input` with the reason).
    pub uuid: String,
    pub name: String,
    pub owner: String,
    pub node: String,
    #[serde(default)]
    pub backup_limit: i64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateServerRequest {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub backup_limit: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct SubuserView {
    pub user_id: i64,
    pub email: String,
    pub permissions: Vec<Permission>,
}

/// `PUT .../admin/servers/{server}/subusers`: exactly these permissions.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetSubuserRequest {
    pub email: String,
    /// Words, checked by the panel into [`Permission`]s, so an unknown one
    /// is answered `invalid_input` naming the known ones (a body that does
    /// not parse gets only a generic message, which never echoes input).
    pub permissions: Vec<String>,
}

// ---- schedules ----

/// What a schedule's last run came to.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct LastResult {
    pub status: RunStatus,
    pub message: Option<String>,
    pub snapshot_id: Option<String>,
}

/// `GET/POST .../servers/{server}/backups/restic/schedule`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct ScheduleView {
    pub enabled: bool,
    pub repeat: Repeat,
    /// The interval of `repeat: interval` (kept while another repeat is
    /// chosen, for switching back).
    pub interval_value: i64,
    pub interval_unit: IntervalUnit,
    /// `daily`/`weekly`: the time of day, `HH:MM` (24-hour), in `time_zone`.
    pub at: Option<String>,
    /// `weekly`: the days it runs on, Monday first; empty otherwise.
    pub weekdays: Vec<Weekday>,
    /// `daily`/`weekly`: the IANA time zone `at` is read in.
    pub time_zone: Option<String>,
    pub keep_last: Option<i64>,
    pub keep_daily: Option<i64>,
    pub keep_weekly: Option<i64>,
    pub keep_monthly: Option<i64>,
    pub keep_yearly: Option<i64>,
    pub keep_within: Option<String>,
    /// `None` while disabled.
    pub next_run_at: Option<Timestamp>,
    pub last_run_at: Option<Timestamp>,
    pub last_result: Option<LastResult>,
}

/// Body of `POST .../schedule`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleRequest {
    pub enabled: bool,
    /// `interval` (the default), `daily` or `weekly`.
    #[serde(default)]
    pub repeat: Option<String>,
    /// Needed with `repeat: interval`; kept (when given) with the others.
    #[serde(default)]
    pub interval_value: Option<i64>,
    #[serde(default)]
    pub interval_unit: Option<String>,
    /// `daily`/`weekly`: `HH:MM`, 24-hour.
    #[serde(default)]
    pub at: Option<String>,
    /// `weekly` only: `mon` … `sun`, at least one.
    #[serde(default)]
    pub weekdays: Option<Vec<String>>,
    /// `daily`/`weekly`: an IANA name such as `Europe/Berlin` (default `UTC`).
    #[serde(default)]
    pub time_zone: Option<String>,
    #[serde(default)]
    pub keep_last: Option<i64>,
    #[serde(default)]
    pub keep_daily: Option<i64>,
    #[serde(default)]
    pub keep_weekly: Option<i64>,
    #[serde(default)]
    pub keep_monthly: Option<i64>,
    #[serde(default)]
    pub keep_yearly: Option<i64>,
    #[serde(default)]
    pub keep_within: Option<String>,
}

/// One run in `GET .../schedule/history`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct RunRecord {
    /// A [`crate::agent::JobKind`], or the PHP extension's own job type for
    /// imported runs (shown as it was).
    pub kind: String,
    pub origin: RunOrigin,
    pub status: RunStatus,
    pub snapshot_id: Option<String>,
    pub error: Option<String>,
    pub started_at: Timestamp,
    pub finished_at: Option<Timestamp>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct RunHistory {
    pub runs: Vec<RunRecord>,
}

/// Rows added, changed and removed of one kind in a Pterodactyl sync.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct SyncChange {
    pub added: u64,
    pub updated: u64,
    pub removed: u64,
}

/// One Pterodactyl sync.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct PteroSync {
    /// `start`, `interval`, `admin` or `command`.
    pub origin: String,
    /// Unix seconds.
    pub started_at: i64,
    pub duration_ms: u64,
    pub ok: bool,
    pub rows_written: u64,
    /// Counts by kind (present for the last sync of this panel process).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users: Option<SyncChange>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<SyncChange>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub servers: Option<SyncChange>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subusers: Option<SyncChange>,
    pub summary: String,
    pub errors: Vec<String>,
}

/// `GET/POST /admin/pterodactyl/sync`: the last sync of this panel process
/// (or the one just run) and the recorded ones (syncs that changed something
/// or failed), newest first.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct PteroSyncStatus {
    pub last: Option<PteroSync>,
    pub recorded: Vec<PteroSync>,
}

/// One of Pterodactyl's own backups of a server (Pterodactyl mode).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct PteroBackupView {
    pub uuid: String,
    pub name: String,
    pub bytes: u64,
    /// As Pterodactyl wrote them (its own RFC 3339 form, passed on as is).
    pub created_at: String,
    pub completed_at: Option<String>,
    pub is_successful: bool,
    pub is_locked: bool,
}

/// `GET …/servers/{server}/backups/pterodactyl`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct PteroBackupList {
    pub backups: Vec<PteroBackupView>,
}

/// `GET/PUT /extensions/resticbackups/preferences`: the signed-in user's
/// choices, remembered per user.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Preferences {
    /// Show Pterodactyl's own backups on the backups page (the PHP
    /// extension's "Hide Pterodactyl backup system" switch, inverted).
    pub show_pterodactyl_backups: bool,
}

/// `202` answer of a request the panel carries on with (deleting a server),
/// and `GET .../admin/tasks/{task}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct TaskView {
    pub id: JobId,
    pub kind: TaskKind,
    pub server: ServerUuid,
    /// `running` until it ends `succeeded` or `failed`.
    pub status: RunStatus,
    pub error: Option<ErrorDetail>,
    pub created_at: Timestamp,
    pub finished_at: Option<Timestamp>,
}

/// One entry of the audit log (`GET .../admin/audit`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct AuditEntry {
    /// Increasing; the list's cursor.
    pub id: i64,
    pub at: Timestamp,
    pub action: AuditAction,
    pub outcome: AuditOutcome,
    /// The answer's HTTP status (0 for an operator's command).
    pub status: u16,
    /// Who: the signed-in user, the email a login tried, `operator` for
    /// the command line; `null` when nobody was signed in.
    pub actor: Option<String>,
    pub server: Option<ServerUuid>,
    /// What else the request named: a backup ID, a user, a node, an archive.
    pub target: Option<String>,
    /// The client's address (`trusted_proxies` applied).
    pub client: Option<String>,
    /// The request's `X-Request-Id`, as in the log.
    pub request_id: Option<String>,
}

/// `GET .../admin/audit`: newest first.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct AuditList {
    pub entries: Vec<AuditEntry>,
    /// Pass as `cursor` for the next (older) page; `null` at the end.
    pub next_cursor: Option<String>,
}

/// A notification channel as admins see it (`GET .../admin/notifications`);
/// the target's secret part (a webhook URL's path) is never shown again.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct ChannelView {
    pub id: JobId,
    pub name: String,
    pub kind: ChannelKind,
    /// `https://discord.com/…` for a webhook, the address for e-mail.
    pub target: String,
    pub events: Vec<NotifyEvent>,
    /// For `backup_missing`: hours without a successful backup.
    pub missing_hours: u32,
    pub created_at: Timestamp,
    /// The last delivery that failed for good, if any.
    pub last_error: Option<String>,
}

/// `POST .../admin/notifications`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewChannelRequest {
    pub name: String,
    /// `webhook`, `discord`, `slack` or `email` (checked by the panel).
    pub kind: String,
    /// The webhook URL, or the e-mail address.
    pub target: String,
    /// Events to send (`backup_failed`, `backup_missing`, `key_rotated`,
    /// `restored`); none given: all of them.
    #[serde(default)]
    pub events: Option<Vec<String>>,
    /// For `backup_missing` (1–720, default 26).
    #[serde(default)]
    pub missing_hours: Option<u32>,
}

/// `POST .../admin/notifications/{id}/test`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct ChannelTested {
    pub ok: bool,
    /// Why it failed (the receiver's status, a refused address, …).
    pub error: Option<String>,
}

/// `PUT …/backups/restic/notifications`: the server owner's own Discord
/// webhook.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerChannelRequest {
    /// `https://discord.com/api/webhooks/…`.
    pub url: String,
    /// As for admins' channels; none given: all of them.
    #[serde(default)]
    pub events: Option<Vec<String>>,
    #[serde(default)]
    pub missing_hours: Option<u32>,
}

/// `GET …/backups/restic/notifications`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct ServerChannel {
    /// `null` when the owner set none.
    pub channel: Option<ChannelView>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_are_one_visible_line() {
        assert_eq!(
            clean_note("  before 1.21 update ✓ "),
            Ok(Some("before 1.21 update ✓".into()))
        );
        assert_eq!(clean_note("   "), Ok(None));
        assert!(clean_note(&"n".repeat(501)).is_err());
        assert!(
            clean_note(&"é".repeat(500)).is_ok(),
            "characters, not bytes"
        );
        for bad in [
            "a\nb",
            "a\u{7}b",
            "safe\u{202E}exe.txt",
            "zero\u{200B}width",
            "\u{2066}x",
        ] {
            assert!(clean_note(bad).is_err(), "{bad:?}");
        }
    }
}

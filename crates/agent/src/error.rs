//! The agent's one error type. Its mapping to HTTP lives in `web::error`.

use engine::EngineError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum AgentError {
    /// Bad input; `code` is a stable snake_case word, `message` is safe to show.
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    /// The request is fine but the state on disk does not allow it (409).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("no node token was presented")]
    MissingToken,
    #[error("the node token is not valid")]
    InvalidToken,
    #[error("the repository key is wrong")]
    WrongKey,
    #[error("no server directory exists for this server")]
    ServerNotFound,
    #[error("this server has no backup repository yet")]
    RepoNotFound,
    #[error("no backup matches this ID")]
    BackupNotFound,
    #[error("no such file or folder in this backup")]
    PathNotFound,
    #[error("no such job for this server")]
    JobNotFound,
    #[error("no archived repository has this name")]
    ArchiveNotFound,
    #[error("no such endpoint")]
    NoSuchEndpoint,
    #[error("this method is not allowed here")]
    MethodNotAllowed,
    #[error("the backup is locked; unlock it first")]
    BackupLocked,
    #[error("the backup limit is reached and every backup is locked; unlock or delete one first")]
    AllBackupsLocked,
    #[error("another operation is running on this server's backups; try again when it finished")]
    JobInProgress { job_id: Option<String> },
    #[error("the repository is locked by another restic process")]
    RepoLocked,
    #[error("the request body is too large")]
    PayloadTooLarge,
    #[error("restic is not available on this node")]
    ResticUnavailable,
    /// The repository's store failed (remote store down, credentials
    /// refused, bucket missing, full).
    #[error("{0}; the node's operator can check the store and its settings")]
    Store(engine::StoreFailure),
    #[error("the operation was interrupted because the agent is shutting down")]
    ShuttingDown,
    #[error("the agent stopped while this job ran; the job did not finish")]
    Interrupted,
    #[error(
        "this node can not restore in place: the server directory is on another filesystem than the agent's restore folder (<data_dir>/.restic-restore)"
    )]
    RestoreUnsupported,
    #[error("too many downloads are running on this node; try again in a moment")]
    TooManyDownloads,
    #[error(
        "Wings (the node's daemon) could not be reached to stop the game server; nothing was restored. Check that Wings runs, or restore without stopping the server"
    )]
    WingsUnavailable,
    #[error(
        "Wings refused the agent's credentials (the token of Wings' config.yml); nothing was restored"
    )]
    WingsRefused,
    #[error("Wings answered HTTP {status} ({detail}); nothing was restored")]
    WingsFailed { status: u16, detail: String },
    #[error(
        "the game server did not stop within {seconds} s, so nothing was restored; if Wings stops it later, the agent starts it again"
    )]
    ServerStopTimeout { seconds: u64 },
    #[error(
        "the game server was started again while the restore ran, so the restored files were not swapped in; the server's files are unchanged"
    )]
    ServerNotStopped,
    #[error("the download link is not valid")]
    InvalidLink,
    #[error("the download link has expired; ask the panel for a new one")]
    LinkExpired,
    #[error("the download link was already used; ask the panel for a new one")]
    LinkUsed,
    /// Anything else; the detail goes to the log, never to the client.
    #[error("internal error: {0}")]
    Internal(String),
}

impl AgentError {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        AgentError::BadRequest {
            code,
            message: message.into(),
        }
    }
}

impl From<EngineError> for AgentError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::RepoNotFound => AgentError::RepoNotFound,
            EngineError::WrongKey => AgentError::WrongKey,
            EngineError::RepoLocked => AgentError::RepoLocked,
            EngineError::SnapshotNotFound => AgentError::BackupNotFound,
            EngineError::Store(failure) => AgentError::Store(failure),
            EngineError::ResticMissing { .. }
            | EngineError::ResticTooOld { .. }
            | EngineError::UnknownVersion { .. }
            | EngineError::Timeout { .. } => AgentError::ResticUnavailable,
            EngineError::Cancelled => AgentError::ShuttingDown,
            other => AgentError::Internal(other.to_string()),
        }
    }
}

impl From<std::io::Error> for AgentError {
    fn from(e: std::io::Error) -> Self {
        AgentError::Internal(e.to_string())
    }
}

impl AgentError {
    /// The stable snake_case code clients can branch on.
    pub fn code(&self) -> &'static str {
        match self {
            AgentError::BadRequest { code, .. } | AgentError::Conflict { code, .. } => code,
            AgentError::MissingToken => "missing_token",
            AgentError::InvalidToken => "invalid_token",
            AgentError::WrongKey => "wrong_key",
            AgentError::ServerNotFound => "server_not_found",
            AgentError::RepoNotFound => "repository_not_found",
            AgentError::BackupNotFound => "backup_not_found",
            AgentError::PathNotFound => "path_not_found",
            AgentError::JobNotFound => "job_not_found",
            AgentError::ArchiveNotFound => "archive_not_found",
            AgentError::NoSuchEndpoint => "not_found",
            AgentError::MethodNotAllowed => "method_not_allowed",
            AgentError::BackupLocked => "backup_locked",
            AgentError::AllBackupsLocked => "all_backups_locked",
            AgentError::JobInProgress { .. } => "job_in_progress",
            AgentError::RepoLocked => "repository_locked",
            AgentError::PayloadTooLarge => "payload_too_large",
            AgentError::ResticUnavailable => "restic_unavailable",
            AgentError::Store(failure) => match failure {
                engine::StoreFailure::Unreachable => "store_unreachable",
                engine::StoreFailure::AccessDenied => "store_access_denied",
                engine::StoreFailure::HostKeyMismatch => "store_host_key_mismatch",
                engine::StoreFailure::BucketMissing => "store_bucket_missing",
                engine::StoreFailure::Full => "store_full",
            },
            AgentError::ShuttingDown => "shutting_down",
            AgentError::Interrupted => "interrupted",
            AgentError::RestoreUnsupported => "restore_unsupported",
            AgentError::TooManyDownloads => "too_many_downloads",
            AgentError::WingsUnavailable => "wings_unavailable",
            AgentError::WingsRefused => "wings_refused",
            AgentError::WingsFailed { .. } => "wings_error",
            AgentError::ServerStopTimeout { .. } => "server_stop_timeout",
            AgentError::ServerNotStopped => "server_not_stopped",
            AgentError::InvalidLink => "invalid_link",
            AgentError::LinkExpired => "link_expired",
            AgentError::LinkUsed => "link_used",
            AgentError::Internal(_) => "internal_error",
        }
    }

    /// A message safe to show to a client: internal details stay in the log.
    pub fn public_message(&self) -> String {
        match self {
            AgentError::Internal(_) => {
                "an internal error occurred; the agent log has the details".to_owned()
            }
            AgentError::JobInProgress { job_id: Some(id) } => {
                format!("{self} (job {id})")
            }
            other => other.to_string(),
        }
    }
}

//! The panel's domain errors, one enum for the crate. The web layer maps
//! each to exactly one HTTP status and code (`web::error`).

use thiserror::Error;

use crate::admin::AdminError;
use crate::agent_client::ClientError;
use crate::auth::AuthError;
use crate::permissions::Denied;
use crate::seal::SealError;
use crate::storage::StorageError;

/// What a 404 says was not found: its `code` and message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    Server,
    Backup,
    User,
    Node,
    Subuser,
    ArchivedRepository,
    ServerKey,
    /// A panel task (an unknown ID, or one of another panel database).
    Task,
    /// A notification channel.
    Channel,
    Page,
    /// A Pterodactyl-mode route on a stand-alone panel.
    PterodactylMode,
}

impl Missing {
    /// The error `code` of the 404.
    pub fn code(self) -> &'static str {
        match self {
            Missing::Server => "server_not_found",
            Missing::Backup => "backup_not_found",
            Missing::User => "user_not_found",
            Missing::Node => "node_not_found",
            Missing::Subuser => "subuser_not_found",
            Missing::ArchivedRepository => "archive_not_found",
            Missing::Task => "task_not_found",
            Missing::Channel => "channel_not_found",
            Missing::ServerKey | Missing::Page | Missing::PterodactylMode => "not_found",
        }
    }

    /// What it is, in a sentence.
    pub fn noun(self) -> &'static str {
        match self {
            Missing::Server => "server",
            Missing::Backup => "backup",
            Missing::User => "user",
            Missing::Node => "node",
            Missing::Subuser => "subuser",
            Missing::ArchivedRepository => "archived repository",
            Missing::ServerKey => "key for server",
            Missing::Task => "task",
            Missing::Channel => "notification channel",
            Missing::Page => "page",
            Missing::PterodactylMode => "Pterodactyl mode",
        }
    }

    pub fn message(self) -> String {
        match self {
            Missing::PterodactylMode => "this panel does not run in Pterodactyl mode".into(),
            other => format!("no such {}", other.noun()),
        }
    }
}

#[derive(Debug, Error)]
pub enum PanelError {
    #[error("you are not logged in")]
    NotLoggedIn,
    #[error("the CSRF token is missing or wrong; reload the page")]
    CsrfFailed,
    #[error("wrong email or password")]
    InvalidCredentials,
    #[error("too many failed logins; try again later")]
    RateLimited,
    #[error("too many logins at once; try again in a moment")]
    LoginBusy,
    /// Unknown, or not visible to this user (the same answer on purpose).
    #[error("{}", .0.message())]
    NotFound(Missing),
    #[error("you do not have permission to do this")]
    Forbidden,
    /// Forbidden, saying which permission is missing.
    #[error("{0}")]
    ForbiddenBecause(&'static str),
    /// A call on the visitor's behalf to Pterodactyl, from a request that
    /// carries no Pterodactyl credential.
    #[error("this needs your Pterodactyl sign-in; open the panel from Pterodactyl")]
    NoPterodactylSession,
    /// Pterodactyl could not be asked who a visitor is.
    #[error("Pterodactyl can not be reached to check the sign-in; try again shortly")]
    PterodactylUnavailable,
    /// The server's backup limit is 0 and the host set that to mean no
    /// backups (`zero_backup_limit = "disabled"`).
    #[error("backups are disabled for this server (its backup limit is 0)")]
    BackupsDisabled,
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("{0}")]
    Conflict(String),
    #[error("the request body is too large")]
    PayloadTooLarge,
    #[error("this method is not allowed here")]
    MethodNotAllowed,
    /// The node's agent could not be reached, timed out or failed.
    #[error("the server's node is not reachable right now; try again in a moment")]
    NodeUnavailable,
    /// The agent refused; its status, code and message are passed on.
    #[error("{message}")]
    Agent {
        status: u16,
        code: String,
        message: String,
    },
    /// Anything the user can not act on; details go to the log only.
    #[error("internal error: {0}")]
    Internal(String),
}

impl PanelError {
    /// The machine-readable `code` of the error body.
    pub fn code(&self) -> &str {
        match self {
            PanelError::NotLoggedIn => "not_logged_in",
            PanelError::CsrfFailed => "csrf_failed",
            PanelError::InvalidCredentials => "invalid_credentials",
            PanelError::MethodNotAllowed => "method_not_allowed",
            PanelError::RateLimited | PanelError::LoginBusy => "rate_limited",
            PanelError::NotFound(what) => what.code(),
            PanelError::NoPterodactylSession => "no_pterodactyl_session",
            PanelError::PterodactylUnavailable => "pterodactyl_unavailable",
            PanelError::BackupsDisabled => "backups_disabled",
            PanelError::Forbidden | PanelError::ForbiddenBecause(_) => "forbidden",
            PanelError::BadRequest { code, .. } => code,
            PanelError::Conflict(_) => "conflict",
            PanelError::PayloadTooLarge => "payload_too_large",
            PanelError::NodeUnavailable => "node_unavailable",
            PanelError::Agent { code, .. } => code,
            PanelError::Internal(_) => "internal_error",
        }
    }

    /// The message a client may read: internal details stay in the log.
    pub fn public_message(&self) -> String {
        match self {
            PanelError::Internal(_) => {
                "an internal error occurred; the panel log has the details".to_owned()
            }
            other => other.to_string(),
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        PanelError::BadRequest {
            code,
            message: message.into(),
        }
    }
}

impl From<StorageError> for PanelError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Conflict(what) => PanelError::Conflict(format!("{what} already exists")),
            StorageError::InUse => {
                PanelError::Conflict("it is still in use; remove what refers to it first".into())
            }
            other => PanelError::Internal(other.to_string()),
        }
    }
}

impl From<SealError> for PanelError {
    fn from(e: SealError) -> Self {
        PanelError::Internal(format!("sealed secret: {e}"))
    }
}

impl From<Denied> for PanelError {
    fn from(e: Denied) -> Self {
        match e {
            Denied::NotFound => PanelError::NotFound(Missing::Server),
            Denied::Forbidden => PanelError::Forbidden,
            Denied::Storage(s) => s.into(),
        }
    }
}

impl From<AuthError> for PanelError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::InvalidCredentials => PanelError::InvalidCredentials,
            AuthError::RateLimited => PanelError::RateLimited,
            AuthError::Busy => PanelError::LoginBusy,
            AuthError::Storage(s) => s.into(),
        }
    }
}

impl From<AdminError> for PanelError {
    fn from(e: AdminError) -> Self {
        match e {
            AdminError::BadInput(m) => PanelError::bad_request("invalid_input", m),
            AdminError::NotFound(what) => PanelError::NotFound(what),
            AdminError::Storage(s) => s.into(),
            AdminError::Seal(s) => s.into(),
        }
    }
}

impl From<ClientError> for PanelError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Unavailable => PanelError::NodeUnavailable,
            // The agent refusing the panel's own token or the server's key
            // is a node/panel mismatch, not something the user did.
            ClientError::Agent { status, code, .. }
                if status == 401 || code == "invalid_token" || code == "missing_token" =>
            {
                tracing::error!(status, code, "the agent refused the node token");
                PanelError::NodeUnavailable
            }
            ClientError::Agent {
                status,
                code,
                message,
            } => PanelError::Agent {
                status,
                code,
                message,
            },
            ClientError::Config(m) => PanelError::Internal(format!("node configuration: {m}")),
        }
    }
}

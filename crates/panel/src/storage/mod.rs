//! The panel's database: SQLite (default, one file) or PostgreSQL (several
//! panels behind a load balancer), chosen once from the URL. The queries are
//! shared (portable SQL through sqlx's `Any` driver); each backend has its own
//! migration set, applied at start. This is the only module that knows SQL.
//!
//! Secrets (node tokens, server keys) arrive here already sealed (see
//! [`crate::seal`]); the database never sees them in the clear.

mod archived_keys;
mod migrate;

pub use archived_keys::{ArchivedKey, ArchivedKeyGeneration};

use api::ServerUuid;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};
use thiserror::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        }
    }
}

#[derive(Debug, Error)]
pub enum StorageError {
    #[error("database URL must start with sqlite:// or postgres://")]
    UnsupportedUrl,
    #[error("{0} already exists")]
    Conflict(&'static str),
    /// A row others still refer to (a node with servers, a server owner).
    #[error("it is still in use")]
    InUse,
    #[error("database error: {0}")]
    Database(String),
}

impl From<sqlx::Error> for StorageError {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e
            && db.is_unique_violation()
        {
            return StorageError::Conflict("a record with this name");
        }
        if let sqlx::Error::Database(db) = &e
            && db.is_foreign_key_violation()
        {
            return StorageError::InUse;
        }
        StorageError::Database(e.to_string())
    }
}

pub type Result<T> = std::result::Result<T, StorageError>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub email: String,
    pub password_hash: String,
    pub root_admin: bool,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub user_id: i64,
    pub csrf_token: String,
    pub created_at: i64,
    pub last_seen_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub id: i64,
    pub name: String,
    pub url: String,
    /// Sealed node token.
    pub token_enc: String,
    /// PEM of a custom CA for the agent's certificate.
    pub ca_pem: Option<String>,
    /// Whether browsers can reach the agent for direct download links.
    pub browser_downloads: bool,
}

#[derive(Debug, Clone)]
pub struct NewNode {
    pub name: String,
    pub url: String,
    pub token_enc: String,
    pub ca_pem: Option<String>,
    pub browser_downloads: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    pub id: i64,
    pub uuid: ServerUuid,
    pub name: String,
    pub owner_id: i64,
    pub node_id: i64,
    pub backup_limit: i64,
}

#[derive(Debug, Clone)]
pub struct NewServer {
    pub uuid: ServerUuid,
    pub name: String,
    pub owner_id: i64,
    pub node_id: i64,
    pub backup_limit: i64,
}

/// A server's schedule and retention (`restic_policies`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Policy {
    pub server_id: i64,
    pub enabled: bool,
    pub interval_value: i64,
    pub interval_unit: String,
    pub keep_last: Option<i64>,
    pub keep_daily: Option<i64>,
    pub keep_weekly: Option<i64>,
    pub keep_monthly: Option<i64>,
    pub keep_yearly: Option<i64>,
    pub keep_within: Option<String>,
    pub anchor_at: Option<i64>,
    pub next_run_at: Option<i64>,
    pub last_run_at: Option<i64>,
    pub last_status: Option<String>,
    pub last_message: Option<String>,
    pub last_snapshot_id: Option<String>,
    pub failures: i64,
    pub updated_at: i64,
}

/// How a run in the job history ended.
#[derive(Debug, Clone, Copy)]
pub struct JobEnd<'a> {
    pub status: &'a str,
    pub agent_job_id: Option<&'a str>,
    pub snapshot_id: Option<&'a str>,
    pub error: Option<&'a str>,
    pub now: i64,
}

/// One run in the job history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRecord {
    pub id: i64,
    pub server_id: i64,
    pub kind: String,
    pub origin: String,
    pub agent_job_id: Option<String>,
    pub status: String,
    pub snapshot_id: Option<String>,
    pub error: Option<String>,
    pub started_at: i64,
    pub finished_at: Option<i64>,
}

const POLICY_COLS: &str = "server_id, enabled, interval_value, interval_unit, keep_last, keep_daily, \
     keep_weekly, keep_monthly, keep_yearly, keep_within, anchor_at, next_run_at, last_run_at, \
     last_status, last_message, last_snapshot_id, failures, updated_at";
const JOB_COLS: &str = "id, server_id, kind, origin, agent_job_id, status, snapshot_id, error, started_at, finished_at";

fn policy_of(r: &AnyRow) -> Result<Policy> {
    Ok(Policy {
        server_id: r.try_get("server_id")?,
        enabled: r.try_get::<i64, _>("enabled")? != 0,
        interval_value: r.try_get("interval_value")?,
        interval_unit: r.try_get("interval_unit")?,
        keep_last: r.try_get("keep_last")?,
        keep_daily: r.try_get("keep_daily")?,
        keep_weekly: r.try_get("keep_weekly")?,
        keep_monthly: r.try_get("keep_monthly")?,
        keep_yearly: r.try_get("keep_yearly")?,
        keep_within: r.try_get("keep_within")?,
        anchor_at: r.try_get("anchor_at")?,
        next_run_at: r.try_get("next_run_at")?,
        last_run_at: r.try_get("last_run_at")?,
        last_status: r.try_get("last_status")?,
        last_message: r.try_get("last_message")?,
        last_snapshot_id: r.try_get("last_snapshot_id")?,
        failures: r.try_get("failures")?,
        updated_at: r.try_get("updated_at")?,
    })
}

fn job_of(r: &AnyRow) -> Result<JobRecord> {
    Ok(JobRecord {
        id: r.try_get("id")?,
        server_id: r.try_get("server_id")?,
        kind: r.try_get("kind")?,
        origin: r.try_get("origin")?,
        agent_job_id: r.try_get("agent_job_id")?,
        status: r.try_get("status")?,
        snapshot_id: r.try_get("snapshot_id")?,
        error: r.try_get("error")?,
        started_at: r.try_get("started_at")?,
        finished_at: r.try_get("finished_at")?,
    })
}

/// A handle on the database. Cheap to clone.
#[derive(Clone)]
pub struct Storage {
    pool: AnyPool,
    backend: Backend,
}

/// The URL without its password, for logs and errors.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

fn user_of(row: &AnyRow) -> Result<User> {
    Ok(User {
        id: row.try_get("id")?,
        email: row.try_get("email")?,
        password_hash: row.try_get("password_hash")?,
        root_admin: row.try_get::<i64, _>("root_admin")? != 0,
        created_at: row.try_get("created_at")?,
    })
}

fn node_of(row: &AnyRow) -> Result<Node> {
    Ok(Node {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        url: row.try_get("url")?,
        token_enc: row.try_get("token_enc")?,
        ca_pem: row.try_get("ca_pem")?,
        browser_downloads: row.try_get::<i64, _>("browser_downloads")? != 0,
    })
}

fn server_of(row: &AnyRow) -> Result<Server> {
    let uuid: String = row.try_get("uuid")?;
    Ok(Server {
        id: row.try_get("id")?,
        uuid: ServerUuid::parse(&uuid).map_err(|_| {
            StorageError::Database(format!("stored server uuid {uuid:?} is not a UUID"))
        })?,
        name: row.try_get("name")?,
        owner_id: row.try_get("owner_id")?,
        node_id: row.try_get("node_id")?,
        backup_limit: row.try_get("backup_limit")?,
    })
}

const USER_COLS: &str = "id, email, password_hash, root_admin, created_at";
const NODE_COLS: &str = "id, name, url, token_enc, ca_pem, browser_downloads";
const SERVER_COLS: &str = "id, uuid, name, owner_id, node_id, backup_limit";

/// The SQLite file and its journals: the panel's user only (0600).
fn restrict_sqlite_files(url: &str) {
    use std::os::unix::fs::PermissionsExt;
    let path = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:")
        .split('?')
        .next()
        .unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return;
    }
    for suffix in ["", "-wal", "-shm"] {
        let file = format!("{path}{suffix}");
        if std::path::Path::new(&file).exists() {
            let _ = std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600));
        }
    }
}

impl Storage {
    /// Opens (creating a SQLite file if needed) and migrates the database.
    pub async fn connect(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(StorageError::UnsupportedUrl);
        };
        let url = match backend {
            Backend::Sqlite if !url.contains('?') => format!("{url}?mode=rwc"),
            _ => url.to_owned(),
        };
        // sqlx opens SQLite with foreign keys on and a 5 s busy timeout. The
        // WAL journal lets reads go on during writes; `synchronous = NORMAL`
        // is the safe pairing with WAL (no corruption on power loss, only the
        // last commits may be lost) and spares an fsync per commit.
        let opts = AnyPoolOptions::new()
            .max_connections(match backend {
                Backend::Sqlite => 4,
                Backend::Postgres => 10,
            })
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        sqlx::Executor::execute(
                            &mut *conn,
                            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL",
                        )
                        .await?;
                    }
                    Ok(())
                })
            });
        // One connection first, with a deadline: an unreachable or refusing
        // database fails the start quickly, naming its own error (the pool
        // would only say it timed out, after 30 s).
        let first = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            <sqlx::AnyConnection as sqlx::Connection>::connect(&url),
        )
        .await;
        match first {
            Err(_) => {
                return Err(StorageError::Database(format!(
                    "could not reach {} within 5 s",
                    redact_url(&url)
                )));
            }
            Ok(Err(e)) => {
                return Err(StorageError::Database(format!(
                    "could not open {}: {e}",
                    redact_url(&url)
                )));
            }
            Ok(Ok(conn)) => {
                let _ = sqlx::Connection::close(conn).await;
            }
        }
        if backend == Backend::Sqlite {
            restrict_sqlite_files(&url);
        }
        let pool = opts.connect(&url).await.map_err(|e| {
            StorageError::Database(format!("could not open {}: {e}", redact_url(&url)))
        })?;
        let storage = Self { pool, backend };
        migrate::run(&storage.pool, backend).await?;
        Ok(storage)
    }

    /// Whether the database answers and has every migration this build
    /// knows applied.
    pub async fn ready(&self) -> bool {
        let applied: std::result::Result<i64, sqlx::Error> =
            sqlx::query("SELECT COALESCE(MAX(version), 0) AS v FROM schema_migrations")
                .fetch_one(&self.pool)
                .await
                .and_then(|r| r.try_get("v"));
        applied.is_ok_and(|v| v >= migrate::latest(self.backend))
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    // ---- users ----

    pub async fn create_user(
        &self,
        email: &str,
        password_hash: &str,
        root_admin: bool,
        now: i64,
    ) -> Result<User> {
        let row = sqlx::query(&format!(
            "INSERT INTO users (email, password_hash, root_admin, created_at) VALUES ($1, $2, $3, $4) RETURNING {USER_COLS}"
        ))
        .bind(email)
        .bind(password_hash)
        .bind(root_admin as i64)
        .bind(now)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| match StorageError::from(e) {
            StorageError::Conflict(_) => StorageError::Conflict("a user with this email"),
            other => other,
        })?;
        user_of(&row)
    }

    pub async fn user_by_email(&self, email: &str) -> Result<Option<User>> {
        sqlx::query(&format!("SELECT {USER_COLS} FROM users WHERE email = $1"))
            .bind(email)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(user_of)
            .transpose()
    }

    pub async fn user(&self, id: i64) -> Result<Option<User>> {
        sqlx::query(&format!("SELECT {USER_COLS} FROM users WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(user_of)
            .transpose()
    }

    pub async fn users(&self) -> Result<Vec<User>> {
        sqlx::query(&format!("SELECT {USER_COLS} FROM users ORDER BY id"))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(user_of)
            .collect()
    }

    /// Changes what is given; `false` when no such user.
    pub async fn update_user(
        &self,
        id: i64,
        email: Option<&str>,
        password_hash: Option<&str>,
        root_admin: Option<bool>,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE users SET email = COALESCE($1, email), password_hash = COALESCE($2, password_hash), \
             root_admin = COALESCE($3, root_admin) WHERE id = $4",
        )
        .bind(email)
        .bind(password_hash)
        .bind(root_admin.map(|b| b as i64))
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn delete_user(&self, id: i64) -> Result<bool> {
        let done = sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    // ---- sessions (stored by a hash of the session ID, never the ID) ----

    pub async fn create_session(
        &self,
        id_hash: &str,
        user_id: i64,
        csrf_token: &str,
        now: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO sessions (id_hash, user_id, csrf_token, created_at, last_seen_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id_hash)
        .bind(user_id)
        .bind(csrf_token)
        .bind(now)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn session(&self, id_hash: &str) -> Result<Option<Session>> {
        let row = sqlx::query(
            "SELECT user_id, csrf_token, created_at, last_seen_at FROM sessions WHERE id_hash = $1",
        )
        .bind(id_hash)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(Session {
                user_id: r.try_get("user_id")?,
                csrf_token: r.try_get("csrf_token")?,
                created_at: r.try_get("created_at")?,
                last_seen_at: r.try_get("last_seen_at")?,
            })
        })
        .transpose()
    }

    pub async fn touch_session(&self, id_hash: &str, now: i64) -> Result<()> {
        sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE id_hash = $2")
            .bind(now)
            .bind(id_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn delete_session(&self, id_hash: &str) -> Result<()> {
        sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Drops every session of a user but the one stored as `keep_hash`.
    pub async fn delete_sessions_of(&self, user_id: i64, keep_hash: Option<&str>) -> Result<u64> {
        let done = sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND id_hash <> $2")
            .bind(user_id)
            .bind(keep_hash.unwrap_or(""))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// Drops sessions idle since `idle_before` or created before `created_before`.
    pub async fn expire_sessions(&self, idle_before: i64, created_before: i64) -> Result<u64> {
        let done = sqlx::query("DELETE FROM sessions WHERE last_seen_at < $1 OR created_at < $2")
            .bind(idle_before)
            .bind(created_before)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    // ---- nodes ----

    pub async fn create_node(&self, n: &NewNode, now: i64) -> Result<Node> {
        let row = sqlx::query(&format!(
            "INSERT INTO nodes (name, url, token_enc, ca_pem, browser_downloads, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING {NODE_COLS}"
        ))
        .bind(&n.name)
        .bind(&n.url)
        .bind(&n.token_enc)
        .bind(n.ca_pem.as_deref())
        .bind(n.browser_downloads as i64)
        .bind(now)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| match StorageError::from(e) {
            StorageError::Conflict(_) => StorageError::Conflict("a node with this name"),
            other => other,
        })?;
        node_of(&row)
    }

    pub async fn node(&self, id: i64) -> Result<Option<Node>> {
        sqlx::query(&format!("SELECT {NODE_COLS} FROM nodes WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(node_of)
            .transpose()
    }

    pub async fn node_by_name(&self, name: &str) -> Result<Option<Node>> {
        sqlx::query(&format!("SELECT {NODE_COLS} FROM nodes WHERE name = $1"))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(node_of)
            .transpose()
    }

    pub async fn nodes(&self) -> Result<Vec<Node>> {
        sqlx::query(&format!("SELECT {NODE_COLS} FROM nodes ORDER BY id"))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(node_of)
            .collect()
    }

    /// Changes what is given; `ca_pem: Some(None)` removes the CA.
    pub async fn update_node(
        &self,
        id: i64,
        url: Option<&str>,
        token_enc: Option<&str>,
        ca_pem: Option<Option<&str>>,
        browser_downloads: Option<bool>,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE nodes SET url = COALESCE($1, url), token_enc = COALESCE($2, token_enc), \
             ca_pem = CASE WHEN $3 = 1 THEN $4 ELSE ca_pem END, \
             browser_downloads = COALESCE($5, browser_downloads) WHERE id = $6",
        )
        .bind(url)
        .bind(token_enc)
        .bind(ca_pem.is_some() as i64)
        .bind(ca_pem.flatten())
        .bind(browser_downloads.map(|b| b as i64))
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn delete_node(&self, id: i64) -> Result<bool> {
        let done = sqlx::query("DELETE FROM nodes WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    // ---- servers and their keys ----

    /// Creates a server together with its (sealed) repository key.
    pub async fn create_server(&self, s: &NewServer, key_enc: &str, now: i64) -> Result<Server> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(&format!(
            "INSERT INTO servers (uuid, name, owner_id, node_id, backup_limit, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING {SERVER_COLS}"
        ))
        .bind(s.uuid.as_str())
        .bind(&s.name)
        .bind(s.owner_id)
        .bind(s.node_id)
        .bind(s.backup_limit)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| match StorageError::from(e) {
            StorageError::Conflict(_) => StorageError::Conflict("a server with this UUID"),
            other => other,
        })?;
        let server = server_of(&row)?;
        sqlx::query(
            "INSERT INTO restic (server_id, encryption_key_enc, updated_at) VALUES ($1, $2, $3)",
        )
        .bind(server.id)
        .bind(key_enc)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO restic_key_history (server_id, encryption_key_enc, created_at) VALUES ($1, $2, $3)")
            .bind(server.id)
            .bind(key_enc)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(server)
    }

    pub async fn server(&self, id: i64) -> Result<Option<Server>> {
        sqlx::query(&format!("SELECT {SERVER_COLS} FROM servers WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(server_of)
            .transpose()
    }

    pub async fn server_by_uuid(&self, uuid: &ServerUuid) -> Result<Option<Server>> {
        sqlx::query(&format!(
            "SELECT {SERVER_COLS} FROM servers WHERE uuid = $1"
        ))
        .bind(uuid.as_str())
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(server_of)
        .transpose()
    }

    pub async fn servers(&self) -> Result<Vec<Server>> {
        sqlx::query(&format!(
            "SELECT {SERVER_COLS} FROM servers ORDER BY name, id"
        ))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(server_of)
        .collect()
    }

    /// Servers a user owns or is a subuser of.
    pub async fn servers_of_user(&self, user_id: i64) -> Result<Vec<Server>> {
        sqlx::query(&format!(
            "SELECT {SERVER_COLS} FROM servers WHERE owner_id = $1 \
             OR id IN (SELECT server_id FROM subusers WHERE user_id = $2) ORDER BY name, id"
        ))
        .bind(user_id)
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(server_of)
        .collect()
    }

    pub async fn set_backup_limit(&self, server_id: i64, limit: i64) -> Result<bool> {
        let done = sqlx::query("UPDATE servers SET backup_limit = $1 WHERE id = $2")
            .bind(limit)
            .bind(server_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Changes what is given; `false` when no such server.
    pub async fn update_server(
        &self,
        server_id: i64,
        name: Option<&str>,
        owner_id: Option<i64>,
        backup_limit: Option<i64>,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE servers SET name = COALESCE($1, name), owner_id = COALESCE($2, owner_id), \
             backup_limit = COALESCE($3, backup_limit) WHERE id = $4",
        )
        .bind(name)
        .bind(owner_id)
        .bind(backup_limit)
        .bind(server_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn delete_server(&self, server_id: i64) -> Result<bool> {
        let done = sqlx::query("DELETE FROM servers WHERE id = $1")
            .bind(server_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The server's current sealed key.
    pub async fn server_key(&self, server_id: i64) -> Result<Option<String>> {
        Ok(
            sqlx::query("SELECT encryption_key_enc FROM restic WHERE server_id = $1")
                .bind(server_id)
                .fetch_optional(&self.pool)
                .await?
                .map(|r| r.try_get("encryption_key_enc"))
                .transpose()?,
        )
    }

    /// The sealed key of a rotation not yet confirmed, if any.
    pub async fn pending_key(&self, server_id: i64) -> Result<Option<String>> {
        Ok(
            sqlx::query("SELECT pending_key_enc FROM restic WHERE server_id = $1")
                .bind(server_id)
                .fetch_optional(&self.pool)
                .await?
                .map(|r| r.try_get::<Option<String>, _>("pending_key_enc"))
                .transpose()?
                .flatten(),
        )
    }

    /// Remembers the key a rotation is about to put in place.
    pub async fn set_pending_key(&self, server_id: i64, key_enc: &str) -> Result<()> {
        sqlx::query("UPDATE restic SET pending_key_enc = $1 WHERE server_id = $2")
            .bind(key_enc)
            .bind(server_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// When the current key was last set.
    pub async fn key_updated_at(&self, server_id: i64) -> Result<Option<i64>> {
        Ok(
            sqlx::query("SELECT updated_at FROM restic WHERE server_id = $1")
                .bind(server_id)
                .fetch_optional(&self.pool)
                .await?
                .map(|r| r.try_get("updated_at"))
                .transpose()?,
        )
    }

    /// Stores a rotated key: the old history row is retired, a new one added,
    /// the pending key cleared.
    pub async fn replace_server_key(&self, server_id: i64, key_enc: &str, now: i64) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE restic SET encryption_key_enc = $1, pending_key_enc = NULL, updated_at = $2 \
             WHERE server_id = $3",
        )
        .bind(key_enc)
        .bind(now)
        .bind(server_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE restic_key_history SET retired_at = $1 WHERE server_id = $2 AND retired_at IS NULL")
            .bind(now)
            .bind(server_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO restic_key_history (server_id, encryption_key_enc, created_at) VALUES ($1, $2, $3)")
            .bind(server_id)
            .bind(key_enc)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every key a server has had, oldest first (the current one included).
    pub async fn key_history(&self, server_id: i64) -> Result<Vec<ArchivedKeyGeneration>> {
        sqlx::query(
            "SELECT encryption_key_enc, created_at, retired_at FROM restic_key_history \
             WHERE server_id = $1 ORDER BY created_at, id",
        )
        .bind(server_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(archived_keys::generation_of)
        .collect()
    }

    /// Number of keys a server has had (the current one included).
    pub async fn key_history_len(&self, server_id: i64) -> Result<i64> {
        Ok(
            sqlx::query("SELECT COUNT(*) AS n FROM restic_key_history WHERE server_id = $1")
                .bind(server_id)
                .fetch_one(&self.pool)
                .await?
                .try_get("n")?,
        )
    }

    // ---- subusers ----

    pub async fn set_subuser(
        &self,
        server_id: i64,
        user_id: i64,
        permissions: &[String],
    ) -> Result<()> {
        let perms = permissions.join(" ");
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM subusers WHERE server_id = $1 AND user_id = $2")
            .bind(server_id)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO subusers (server_id, user_id, permissions) VALUES ($1, $2, $3)")
            .bind(server_id)
            .bind(user_id)
            .bind(perms)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn remove_subuser(&self, server_id: i64, user_id: i64) -> Result<bool> {
        let done = sqlx::query("DELETE FROM subusers WHERE server_id = $1 AND user_id = $2")
            .bind(server_id)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    // ---- schedules (restic_policies) ----

    pub async fn policy(&self, server_id: i64) -> Result<Option<Policy>> {
        sqlx::query(&format!(
            "SELECT {POLICY_COLS} FROM restic_policies WHERE server_id = $1"
        ))
        .bind(server_id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(policy_of)
        .transpose()
    }

    /// Stores the settings of `p` (enabled, interval, retention, anchor and
    /// next run); the run record (last run, result, failures) is kept, except
    /// that failures start again from zero.
    pub async fn save_policy(&self, p: &Policy) -> Result<()> {
        sqlx::query(
            "INSERT INTO restic_policies (server_id, enabled, interval_value, interval_unit, \
             keep_last, keep_daily, keep_weekly, keep_monthly, keep_yearly, keep_within, anchor_at, \
             next_run_at, failures, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 0, $13) \
             ON CONFLICT (server_id) DO UPDATE SET enabled = excluded.enabled, \
             interval_value = excluded.interval_value, interval_unit = excluded.interval_unit, \
             keep_last = excluded.keep_last, keep_daily = excluded.keep_daily, \
             keep_weekly = excluded.keep_weekly, keep_monthly = excluded.keep_monthly, \
             keep_yearly = excluded.keep_yearly, keep_within = excluded.keep_within, \
             anchor_at = excluded.anchor_at, next_run_at = excluded.next_run_at, failures = 0, \
             updated_at = excluded.updated_at",
        )
        .bind(p.server_id)
        .bind(p.enabled as i64)
        .bind(p.interval_value)
        .bind(&p.interval_unit)
        .bind(p.keep_last)
        .bind(p.keep_daily)
        .bind(p.keep_weekly)
        .bind(p.keep_monthly)
        .bind(p.keep_yearly)
        .bind(p.keep_within.as_deref())
        .bind(p.anchor_at)
        .bind(p.next_run_at)
        .bind(p.updated_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Enabled schedules due at `now`, earliest first (whole rows, so the
    /// scheduler needs no second read).
    pub async fn due_policies(&self, now: i64, limit: i64) -> Result<Vec<Policy>> {
        sqlx::query(&format!(
            "SELECT {POLICY_COLS} FROM restic_policies \
             WHERE enabled = 1 AND next_run_at <= $1 ORDER BY next_run_at LIMIT $2"
        ))
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(policy_of)
        .collect()
    }

    /// Claims a due run: moves the next run from `due_at` to `next` only if
    /// nobody else did (or changed the schedule) meanwhile. `true` means
    /// this caller runs it.
    pub async fn claim_run(
        &self,
        server_id: i64,
        due_at: i64,
        next: i64,
        now: i64,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE restic_policies SET next_run_at = $1, last_run_at = $2, last_status = 'running', \
             last_message = NULL WHERE server_id = $3 AND enabled = 1 AND next_run_at = $4",
        )
        .bind(next)
        .bind(now)
        .bind(server_id)
        .bind(due_at)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records a run's outcome. On failure `retry_at` replaces the next run
    /// time if it is still the one the claim set (`claimed_next`).
    pub async fn finish_run(
        &self,
        server_id: i64,
        outcome: std::result::Result<Option<&str>, &str>,
        claimed_next: i64,
        retry_at: i64,
    ) -> Result<()> {
        match outcome {
            Ok(snapshot) => {
                sqlx::query(
                    "UPDATE restic_policies SET last_status = 'succeeded', last_message = NULL, \
                     last_snapshot_id = $1, failures = 0 WHERE server_id = $2",
                )
                .bind(snapshot)
                .bind(server_id)
                .execute(&self.pool)
                .await?;
            }
            Err(message) => {
                sqlx::query(
                    "UPDATE restic_policies SET last_status = 'failed', last_message = $1, \
                     last_snapshot_id = NULL, failures = failures + 1, \
                     next_run_at = CASE WHEN next_run_at = $2 THEN $3 ELSE next_run_at END \
                     WHERE server_id = $4",
                )
                .bind(message)
                .bind(claimed_next)
                .bind(retry_at)
                .bind(server_id)
                .execute(&self.pool)
                .await?;
            }
        }
        Ok(())
    }

    // ---- job history ----

    pub async fn start_job(
        &self,
        server_id: i64,
        kind: &str,
        origin: &str,
        now: i64,
    ) -> Result<i64> {
        Ok(sqlx::query(
            "INSERT INTO job_history (server_id, kind, origin, status, started_at) \
             VALUES ($1, $2, $3, 'running', $4) RETURNING id",
        )
        .bind(server_id)
        .bind(kind)
        .bind(origin)
        .bind(now)
        .fetch_one(&self.pool)
        .await?
        .try_get("id")?)
    }

    pub async fn finish_job(
        &self,
        id: i64,
        status: &str,
        agent_job_id: Option<&str>,
        snapshot_id: Option<&str>,
        error: Option<&str>,
        now: i64,
    ) -> Result<()> {
        let end = JobEnd {
            status,
            agent_job_id,
            snapshot_id,
            error,
            now,
        };
        self.end_job(id, &end, false).await.map(|_| ())
    }

    /// Ends a run that still reads `running` (reconciliation); false if
    /// someone else ended it meanwhile.
    pub async fn settle_job(&self, id: i64, end: &JobEnd<'_>) -> Result<bool> {
        self.end_job(id, end, true).await
    }

    async fn end_job(&self, id: i64, end: &JobEnd<'_>, only_running: bool) -> Result<bool> {
        let sql = if only_running {
            "UPDATE job_history SET status = $1, agent_job_id = $2, snapshot_id = $3, error = $4, \
             finished_at = $5 WHERE id = $6 AND status = 'running'"
        } else {
            "UPDATE job_history SET status = $1, agent_job_id = $2, snapshot_id = $3, error = $4, \
             finished_at = $5 WHERE id = $6"
        };
        let done = sqlx::query(sql)
            .bind(end.status)
            .bind(end.agent_job_id)
            .bind(end.snapshot_id)
            .bind(end.error)
            .bind(end.now)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Remembers the agent's job of a run as soon as the agent accepted it,
    /// so a run whose panel stopped can be reconciled with the agent.
    pub async fn set_job_agent_id(&self, id: i64, agent_job_id: &str) -> Result<()> {
        sqlx::query("UPDATE job_history SET agent_job_id = $1 WHERE id = $2")
            .bind(agent_job_id)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Runs recorded as running (by this panel or another, or by one that
    /// stopped), oldest first.
    pub async fn running_jobs(&self) -> Result<Vec<JobRecord>> {
        sqlx::query(&format!(
            "SELECT {JOB_COLS} FROM job_history WHERE status = 'running' ORDER BY started_at, id"
        ))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(job_of)
        .collect()
    }

    /// A server's most recent runs, newest first.
    pub async fn recent_jobs(&self, server_id: i64, limit: i64) -> Result<Vec<JobRecord>> {
        sqlx::query(&format!(
            "SELECT {JOB_COLS} FROM job_history WHERE server_id = $1 \
             ORDER BY started_at DESC, id DESC LIMIT $2"
        ))
        .bind(server_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(job_of)
        .collect()
    }

    /// Every subuser of a server with their permissions.
    pub async fn subusers_of(&self, server_id: i64) -> Result<Vec<(User, Vec<String>)>> {
        let cols = USER_COLS
            .split(", ")
            .map(|c| format!("u.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        sqlx::query(&format!(
            "SELECT {cols}, s.permissions FROM subusers s JOIN users u ON u.id = s.user_id \
             WHERE s.server_id = $1 ORDER BY u.email"
        ))
        .bind(server_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            let perms: String = r.try_get("permissions")?;
            Ok((
                user_of(r)?,
                perms.split_whitespace().map(str::to_owned).collect(),
            ))
        })
        .collect()
    }

    /// The subuser's permissions on a server, `None` if not a subuser.
    pub async fn subuser_permissions(
        &self,
        server_id: i64,
        user_id: i64,
    ) -> Result<Option<Vec<String>>> {
        let row =
            sqlx::query("SELECT permissions FROM subusers WHERE server_id = $1 AND user_id = $2")
                .bind(server_id)
                .bind(user_id)
                .fetch_optional(&self.pool)
                .await?;
        row.map(|r| {
            let perms: String = r.try_get("permissions")?;
            Ok(perms.split_whitespace().map(str::to_owned).collect())
        })
        .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords_in_urls() {
        assert_eq!(
            redact_url("postgres://panel:s3cret@db:5432/panel"),
            "postgres://panel:***@db:5432/panel"
        );
        assert_eq!(
            redact_url("sqlite:///var/lib/panel.db"),
            "sqlite:///var/lib/panel.db"
        );
    }
}

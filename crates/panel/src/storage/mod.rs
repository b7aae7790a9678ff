//! The panel's database: SQLite (default, one file) or PostgreSQL (several
//! panels behind a load balancer), chosen once from the URL. The queries are
//! shared (portable SQL through sqlx's `Any` driver); each backend has its own
//! migration set, applied at start. This is the only module that knows SQL.
//!
//! Secrets (node tokens, server keys) arrive here already sealed (see
//! [`crate::seal`]); the database never sees them in the clear.

mod archived_keys;
mod audit;
mod cache;
pub mod extension;
mod import;
mod jobs;
mod migrate;
mod nodes;
mod notifications;
mod policies;
mod pterodactyl;
mod servers;
mod sessions;
mod subusers;
mod tasks;
mod users;
mod watch;

pub use archived_keys::{ArchivedKey, ArchivedKeyGeneration};
pub use audit::{AuditFilter, AuditRecord, AuditRow};
pub use import::{ImportState, ImportWritten, ImportedJob, KeyRow, ServerImportWrite};
pub use jobs::{JobEnd, JobRecord, PageMarks};
pub use nodes::{NewNode, Node};
pub use notifications::{ChannelRow, OutboxRow, ScheduledServer};
pub use policies::Policy;
pub use pterodactyl::{
    NO_PASSWORD, SubuserRow, SyncNode, SyncRecord, SyncServer, SyncUser, parked_email,
};
pub use servers::{NewServer, Server};
pub use sessions::Session;
pub use tasks::Task;
pub use users::User;

use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;
use thiserror::Error;

/// The database's schema beside this build's (`db status`).
#[derive(Debug, Clone)]
pub struct SchemaStatus {
    pub backend: Backend,
    /// Version and description of each migration the database has.
    pub applied: Vec<(i64, String)>,
    /// Version and description of each migration this build has.
    pub known: Vec<(i64, &'static str)>,
}

impl SchemaStatus {
    /// Migrations this build would apply at its next start.
    pub fn pending(&self) -> Vec<(i64, &'static str)> {
        self.known
            .iter()
            .filter(|(v, _)| !self.applied.iter().any(|(a, _)| a == v))
            .copied()
            .collect()
    }

    /// Migrations the database has that this build does not know (a newer
    /// build wrote them: this one refuses to start).
    pub fn unknown(&self) -> Vec<(i64, String)> {
        self.applied
            .iter()
            .filter(|(v, _)| !self.known.iter().any(|(k, _)| k == v))
            .cloned()
            .collect()
    }
}

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

/// A handle on the database. Cheap to clone (clones share the pool and the
/// read cache).
#[derive(Clone)]
pub struct Storage {
    /// Reads only: every write goes through [`Storage::change`] or
    /// [`Storage::commit`], which tell the read cache (a test checks).
    pool: AnyPool,
    backend: Backend,
    cache: std::sync::Arc<cache::ReadCache>,
    /// Where the change watcher connects (PostgreSQL's LISTEN needs its own
    /// connection). Holds the password: never shown.
    url: std::sync::Arc<str>,
}

/// A statement that changes rows, run through [`Storage::change`].
type Statement<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

/// `statement.run_on(storage)`: [`Storage::change`] at the end of a query's
/// builder chain.
trait RunOn {
    async fn run_on(self, storage: &Storage) -> Result<sqlx::any::AnyQueryResult>;
    /// An `INSERT … RETURNING` of one row.
    async fn insert_returning(self, storage: &Storage) -> Result<sqlx::any::AnyRow>;
}

impl RunOn for Statement<'_> {
    async fn run_on(self, storage: &Storage) -> Result<sqlx::any::AnyQueryResult> {
        storage.change(self).await
    }

    async fn insert_returning(self, storage: &Storage) -> Result<sqlx::any::AnyRow> {
        let _changed = Changed(&storage.cache);
        Ok(self.fetch_one(&storage.pool).await?)
    }
}

/// Drops what the read cache holds when it goes out of scope: after a
/// write finished, and also when the write's future was dropped half way
/// (the statement may still commit; the watcher hears of it then).
struct Changed<'a>(&'a cache::ReadCache);

impl Drop for Changed<'_> {
    fn drop(&mut self) {
        self.0.changed();
    }
}

/// A column holding one of the API's closed words ([`api::vocab`]); a word
/// this build does not know is an error, never a guess.
pub(super) fn word<T>(r: &sqlx::any::AnyRow, column: &str) -> Result<T>
where
    T: std::str::FromStr<Err = api::UnknownWord>,
{
    use sqlx::Row;
    let raw: String = r.try_get(column)?;
    raw.parse()
        .map_err(|e: api::UnknownWord| StorageError::Database(format!("{column}: {e}")))
}

/// [`word`] of a column that may be NULL.
pub(super) fn maybe_word<T>(r: &sqlx::any::AnyRow, column: &str) -> Result<Option<T>>
where
    T: std::str::FromStr<Err = api::UnknownWord>,
{
    use sqlx::Row;
    let raw: Option<String> = r.try_get(column)?;
    raw.map(|raw| {
        raw.parse()
            .map_err(|e: api::UnknownWord| StorageError::Database(format!("{column}: {e}")))
    })
    .transpose()
}

/// The URL without its password, for logs and errors.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        // `scheme:anything`: nothing known to be safe to show.
        Ok(parsed) if parsed.cannot_be_a_base() => format!("{}:(hidden)", parsed.scheme()),
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                // Only fails for URLs that can not have a password.
                let _ = parsed.set_password(Some("***"));
            }
            // `?password=…` (libpq's way) too.
            if parsed.query().is_some() {
                let pairs: Vec<(String, String)> = parsed
                    .query_pairs()
                    .map(|(k, v)| {
                        let secret = ["password", "sslpassword"]
                            .iter()
                            .any(|p| k.eq_ignore_ascii_case(p));
                        let v = if secret { "***".into() } else { v.into_owned() };
                        (k.into_owned(), v)
                    })
                    .collect();
                parsed.query_pairs_mut().clear().extend_pairs(pairs);
            }
            parsed.to_string()
        }
        // Never echo what could not be read: it may hold a password.
        Err(_) => match url.split_once("://") {
            Some((scheme, _))
                if scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) =>
            {
                format!("{scheme}://(a URL that does not parse)")
            }
            _ => "(a URL that does not parse)".to_owned(),
        },
    }
}

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
        let storage = Self::open(url, false).await?;
        migrate::run(&storage.pool, storage.backend).await?;
        Ok(storage)
    }

    /// Opens the database as it is, changing nothing (`db status`): SQLite
    /// read-only (no file made, no journal mode set, modes untouched).
    pub async fn open_read_only(url: &str) -> Result<Self> {
        Self::open(url, true).await
    }

    /// Which migrations the database has and which this build knows.
    pub async fn schema_status(&self) -> Result<SchemaStatus> {
        Ok(SchemaStatus {
            backend: self.backend,
            applied: migrate::applied(&self.pool).await?,
            known: migrate::known(self.backend),
        })
    }

    async fn open(url: &str, read_only: bool) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(StorageError::UnsupportedUrl);
        };
        let url = match backend {
            Backend::Sqlite if read_only => {
                let path = url.split('?').next().unwrap_or(url);
                format!("{path}?mode=ro")
            }
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
                    if backend == Backend::Sqlite && !read_only {
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
        if backend == Backend::Sqlite && !read_only {
            restrict_sqlite_files(&url);
        }
        let pool = opts.connect(&url).await.map_err(|e| {
            StorageError::Database(format!("could not open {}: {e}", redact_url(&url)))
        })?;
        Ok(Self {
            pool,
            backend,
            cache: std::sync::Arc::new(cache::ReadCache::new()),
            url: url.into(),
        })
    }

    /// Runs a statement that changes rows; what the read cache holds is
    /// dropped after it (whatever it did).
    async fn change(&self, statement: Statement<'_>) -> Result<sqlx::any::AnyQueryResult> {
        let _changed = Changed(&self.cache);
        Ok(statement.execute(&self.pool).await?)
    }

    /// A read through the cache: `key` on the shelf `pick` names, else
    /// `read` from the database (kept when `keep` says so).
    async fn cached<K, Q, V, F>(
        &self,
        pick: fn(&mut cache::Shelves) -> &mut cache::Shelf<K, V>,
        key: &Q,
        keep: fn(&V) -> bool,
        read: F,
    ) -> Result<V>
    where
        K: std::hash::Hash + Eq + std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ToOwned<Owned = K> + ?Sized,
        V: Clone,
        F: std::future::Future<Output = Result<V>>,
    {
        let ticket = match self.cache.lookup(pick, key) {
            cache::Lookup::Hit(v) => return Ok(v),
            cache::Lookup::Miss(ticket) => ticket,
        };
        let value = read.await?;
        if keep(&value) {
            self.cache.keep(ticket, pick, key.to_owned(), value.clone());
        }
        Ok(value)
    }

    /// For the one write no cache needs to hear of: a session's
    /// `last_seen_at` (the held copy is moved by [`cache::ReadCache::touched`]).
    fn unannounced(&self) -> &AnyPool {
        &self.pool
    }

    /// Commits a transaction; what the read cache holds is dropped after it.
    async fn commit(&self, tx: sqlx::Transaction<'_, sqlx::Any>) -> Result<()> {
        let _changed = Changed(&self.cache);
        Ok(tx.commit().await?)
    }

    /// Whether the database answers and has every migration this build
    /// knows applied.
    pub async fn ready(&self) -> bool {
        migrate::applied_version(&self.pool)
            .await
            .is_ok_and(|v| v >= migrate::latest(self.backend))
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }
}

/// A node `n` and on it a server with the UUID
/// `1f0e2d3c-4b5a-6978-8796-a5b4c3d2e1f0` owned by `owner` (tests).
#[cfg(test)]
pub(crate) async fn test_server(db: &Storage, owner: &User, backup_limit: i64) -> Server {
    let node = db
        .create_node(
            &NewNode {
                name: "n".into(),
                url: "http://n".into(),
                token_enc: "t".into(),
                ca_pem: None,
                browser_downloads: true,
            },
            0,
        )
        .await
        .unwrap();
    let uuid = api::ServerUuid::parse("1f0e2d3c-4b5a-6978-8796-a5b4c3d2e1f0").unwrap();
    db.create_server(
        &NewServer {
            uuid,
            name: "s".into(),
            owner_id: owner.id,
            node_id: node.id,
            backup_limit,
        },
        "k",
        0,
    )
    .await
    .unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server's backup limit as `db` reads it.
    async fn limit(db: &Storage, uuid: &api::ServerUuid) -> i64 {
        db.server_by_uuid(uuid).await.unwrap().unwrap().backup_limit
    }

    /// Waits for the watcher's first confirmation.
    async fn watched(db: &Storage) -> tokio::task::JoinHandle<()> {
        let task = db.watch_changes();
        for _ in 0..100 {
            if db.cache.trusted() {
                return task;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("the watcher never confirmed");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reads_come_from_memory_while_watched_and_never_across_a_change() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("p.db").display());
        let db = Storage::connect(&url).await.unwrap();
        // Another process on the same database (an admin command).
        let other = Storage::connect(&url).await.unwrap();
        let owner = db.create_user("o@x", "h", false, 0).await.unwrap();
        let server = test_server(&db, &owner, 1).await;
        let uuid = server.uuid.clone();
        // A change no trigger reports, to see where answers come from.
        let unreported = |n: i64| {
            let other = other.clone();
            async move {
                let mut tx = other.pool.begin().await.unwrap();
                for sql in [
                    "DROP TRIGGER servers_updated",
                    "UPDATE servers SET backup_limit = $1",
                    "CREATE TRIGGER servers_updated AFTER UPDATE ON servers BEGIN \
                     UPDATE change_epoch SET n = n + 1 WHERE id = 1; END",
                ] {
                    sqlx::query(sql).bind(n).execute(&mut *tx).await.unwrap();
                }
                tx.commit().await.unwrap();
            }
        };

        // Not watched: every read goes to the database.
        assert_eq!(limit(&db, &uuid).await, 1);
        unreported(2).await;
        assert_eq!(limit(&db, &uuid).await, 2, "answered from memory unwatched");

        let watcher = watched(&db).await;
        assert_eq!(limit(&db, &uuid).await, 2);
        unreported(3).await;
        assert_eq!(
            limit(&db, &uuid).await,
            2,
            "a watched read was not kept in memory"
        );
        // A write through this handle: the next read is the database's.
        db.set_backup_limit(server.id, 4).await.unwrap();
        assert_eq!(limit(&db, &uuid).await, 4);
        unreported(5).await;
        assert_eq!(limit(&db, &uuid).await, 4);

        // Another process's write the triggers report: seen within the poll.
        other.set_backup_limit(server.id, 6).await.unwrap();
        let started = std::time::Instant::now();
        while limit(&db, &uuid).await != 6 {
            assert!(
                started.elapsed() < cache::SQLITE_POLL * 10,
                "another process's change unseen after {:?}",
                started.elapsed()
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }

        // A change with a trigger missing would go unseen: the watcher
        // does not start trusting while one is.
        watcher.abort();
        let _ = watcher.await;
        // One connection for the drop and the create (another one of the
        // pool could parse the create against the schema it read before).
        let mut conn = other.pool.acquire().await.unwrap();
        sqlx::query("DROP TRIGGER subusers_deleted")
            .execute(&mut *conn)
            .await
            .unwrap();
        let watcher = db.watch_changes();
        tokio::time::sleep(cache::SQLITE_POLL * 5).await;
        assert!(!db.cache.trusted(), "trusted with a trigger missing");
        sqlx::query(
            "CREATE TRIGGER subusers_deleted AFTER DELETE ON subusers BEGIN \
             UPDATE change_epoch SET n = n + 1 WHERE id = 1; END",
        )
        .execute(&mut *conn)
        .await
        .unwrap();
        drop(conn);
        let started = std::time::Instant::now();
        while !db.cache.trusted() {
            assert!(started.elapsed() < std::time::Duration::from_secs(10));
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }

        // The watcher gone: nothing is answered from memory.
        watcher.abort();
        let _ = watcher.await;
        unreported(7).await;
        assert_eq!(limit(&db, &uuid).await, 7, "trusted without a watcher");
    }

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
        assert_eq!(
            redact_url("postgres://panel:p%40ss@w@rd@db/panel"),
            "postgres://panel:***@db/panel"
        );
        assert_eq!(redact_url("mysql://:only@db:3306"), "mysql://:***@db:3306");
        assert_eq!(
            redact_url("postgres://panel@db/panel?sslmode=require&password=s3cret&PassWord=x"),
            "postgres://panel@db/panel?sslmode=require&password=***&PassWord=***"
        );
        assert_eq!(
            redact_url("postgres://panel:secret@[::1"),
            "postgres://(a URL that does not parse)"
        );
        assert_eq!(redact_url("sec:ret@nothing"), "sec:(hidden)");
        assert_eq!(redact_url("no url at all"), "(a URL that does not parse)");
    }
}

//! Each backend's migrations, embedded in the binary and applied at start by
//! sqlx's migrator (its `_sqlx_migrations` table, checksums, and on
//! PostgreSQL an advisory lock so two panels starting together apply each
//! migration once).
//!
//! The set is handed to sqlx as an embedded [`MigrationSource`] rather than
//! through the `migrate!` macro: the macro needs sqlx's proc-macro crate,
//! which compiles the whole driver stack a second time for the host, for
//! no gain over `include_str!`.
//!
//! Databases created before sqlx's migrator kept their record in
//! `schema_migrations`; the first start of this build moves that record
//! over once (see [`adopt_legacy_record`]).

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;

use sqlx::AnyPool;
use sqlx::Row;
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migrate, MigrateError, Migration, MigrationSource, MigrationType, Migrator};

use super::{Backend, Result, StorageError};

type Set = &'static [(i64, &'static str, &'static str)];

const SQLITE: Set = &[
    (
        1,
        "initial",
        include_str!("../../migrations/sqlite/0001_initial.sql"),
    ),
    (
        2,
        "archived keys",
        include_str!("../../migrations/sqlite/0002_archived_keys.sql"),
    ),
    (
        3,
        "pterodactyl",
        include_str!("../../migrations/sqlite/0003_pterodactyl.sql"),
    ),
    (
        4,
        "import",
        include_str!("../../migrations/sqlite/0004_import.sql"),
    ),
    (
        5,
        "tasks",
        include_str!("../../migrations/sqlite/0005_tasks.sql"),
    ),
    (
        6,
        "audit log",
        include_str!("../../migrations/sqlite/0006_audit.sql"),
    ),
    (
        7,
        "notifications",
        include_str!("../../migrations/sqlite/0007_notifications.sql"),
    ),
    (
        8,
        "notes",
        include_str!("../../migrations/sqlite/0008_notes.sql"),
    ),
    (
        9,
        "calendar schedules",
        include_str!("../../migrations/sqlite/0009_calendar_schedules.sql"),
    ),
    (
        10,
        "change reports",
        include_str!("../../migrations/sqlite/0010_change_reports.sql"),
    ),
];
const POSTGRES: Set = &[
    (
        1,
        "initial",
        include_str!("../../migrations/postgres/0001_initial.sql"),
    ),
    (
        2,
        "archived keys",
        include_str!("../../migrations/postgres/0002_archived_keys.sql"),
    ),
    (
        3,
        "pterodactyl",
        include_str!("../../migrations/postgres/0003_pterodactyl.sql"),
    ),
    (
        4,
        "import",
        include_str!("../../migrations/postgres/0004_import.sql"),
    ),
    (
        5,
        "tasks",
        include_str!("../../migrations/postgres/0005_tasks.sql"),
    ),
    (
        6,
        "audit log",
        include_str!("../../migrations/postgres/0006_audit.sql"),
    ),
    (
        7,
        "notifications",
        include_str!("../../migrations/postgres/0007_notifications.sql"),
    ),
    (
        8,
        "notes",
        include_str!("../../migrations/postgres/0008_notes.sql"),
    ),
    (
        9,
        "calendar schedules",
        include_str!("../../migrations/postgres/0009_calendar_schedules.sql"),
    ),
    (
        10,
        "change reports",
        include_str!("../../migrations/postgres/0010_change_reports.sql"),
    ),
];

fn set(backend: Backend) -> Set {
    match backend {
        Backend::Sqlite => SQLITE,
        Backend::Postgres => POSTGRES,
    }
}

/// The newest migration this build has for `backend`.
pub(super) fn latest(backend: Backend) -> i64 {
    set(backend).iter().map(|(v, _, _)| *v).max().unwrap_or(0)
}

#[derive(Debug)]
struct Embedded(Set);

impl MigrationSource<'static> for Embedded {
    fn resolve(
        self,
    ) -> Pin<Box<dyn Future<Output = std::result::Result<Vec<Migration>, BoxDynError>> + Send>>
    {
        let migrations = migrations(self.0);
        Box::pin(async move { Ok(migrations) })
    }
}

fn migrations(set: Set) -> Vec<Migration> {
    set.iter()
        .map(|(version, description, sql)| {
            Migration::new(
                *version,
                Cow::Borrowed(*description),
                MigrationType::Simple,
                Cow::Borrowed(*sql),
                false,
            )
        })
        .collect()
}

pub(super) async fn run(pool: &AnyPool, backend: Backend) -> Result<()> {
    let migrator = Migrator::new(Embedded(set(backend)))
        .await
        .map_err(explain)?;
    adopt_legacy_record(pool, backend).await?;
    let before = applied_version(pool).await.unwrap_or(0);
    migrator.run(pool).await.map_err(explain)?;
    let after = applied_version(pool).await?;
    if after != before {
        tracing::info!(from = before, to = after, "database migrated");
    }
    Ok(())
}

/// Every migration this build has for `backend`.
pub(super) fn known(backend: Backend) -> Vec<(i64, &'static str)> {
    set(backend).iter().map(|(v, d, _)| (*v, *d)).collect()
}

/// The migrations the database has applied (none for a new database; a
/// database still on the hand-written runner's record counts its rows).
pub(super) async fn applied(pool: &AnyPool) -> Result<Vec<(i64, String)>> {
    let rows = sqlx::query(
        "SELECT version, description FROM _sqlx_migrations WHERE success = TRUE ORDER BY version",
    )
    .fetch_all(pool)
    .await;
    match rows {
        Ok(rows) => rows
            .iter()
            .map(|r| Ok((r.try_get("version")?, r.try_get("description")?)))
            .collect(),
        Err(sqlx::Error::Database(_)) => {
            // No `_sqlx_migrations` yet: a new database, or one whose record
            // is still the old `schema_migrations` (adopted at the next start).
            let legacy = sqlx::query("SELECT version FROM schema_migrations ORDER BY version")
                .fetch_all(pool)
                .await;
            match legacy {
                Ok(rows) => rows
                    .iter()
                    .map(|r| Ok((r.try_get::<i64, _>("version")?, "(old record)".to_owned())))
                    .collect(),
                Err(_) => Ok(Vec::new()),
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// The newest migration applied, 0 for an empty database.
pub(super) async fn applied_version(pool: &AnyPool) -> std::result::Result<i64, sqlx::Error> {
    sqlx::query("SELECT COALESCE(MAX(version), 0) AS v FROM _sqlx_migrations WHERE success = TRUE")
        .fetch_one(pool)
        .await?
        .try_get("v")
}

fn explain(e: MigrateError) -> StorageError {
    StorageError::Database(match e {
        MigrateError::VersionMissing(v) => format!(
            "the database has schema version {v}, which this build does not know: it was \
             written by a newer restic-backups. Run that version (or restore the database \
             backup taken before the upgrade)"
        ),
        MigrateError::VersionMismatch(v) => format!(
            "schema migration {v} in the database differs from the one in this build; \
             the database was migrated by a different build"
        ),
        MigrateError::Dirty(v) => format!(
            "schema migration {v} failed part way earlier; restore the database backup \
             taken before the upgrade"
        ),
        other => format!("migrating the database failed: {other}"),
    })
}

/// Moves the record of a database migrated by the hand-written runner
/// (`schema_migrations`) into sqlx's table, with this build's checksums,
/// then drops the old table. Runs under the migrator's lock, in one
/// transaction, and does nothing once the old table is gone.
async fn adopt_legacy_record(pool: &AnyPool, backend: Backend) -> Result<()> {
    if !legacy_table_exists(pool, backend).await? {
        return Ok(());
    }
    let mut conn = pool.acquire().await?;
    conn.lock().await.map_err(explain)?;
    let adopted = async {
        conn.ensure_migrations_table().await.map_err(explain)?;
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        if legacy_table_exists(&mut *tx, backend).await? {
            let versions: Vec<i64> = sqlx::query("SELECT version FROM schema_migrations")
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| r.try_get("version"))
                .collect::<std::result::Result<_, _>>()?;
            let known = migrations(set(backend));
            for version in versions {
                let Some(m) = known.iter().find(|m| m.version == version) else {
                    return Err(explain(MigrateError::VersionMissing(version)));
                };
                sqlx::query(
                    "INSERT INTO _sqlx_migrations \
                     (version, description, success, checksum, execution_time) \
                     VALUES ($1, $2, TRUE, $3, 0)",
                )
                .bind(m.version)
                .bind(m.description.to_string())
                .bind(m.checksum.to_vec())
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query("DROP TABLE schema_migrations")
                .execute(&mut *tx)
                .await?;
            tracing::info!("database migration record moved to _sqlx_migrations");
        }
        tx.commit().await?;
        Ok(())
    }
    .await;
    let unlocked = conn.unlock().await.map_err(explain);
    adopted.and(unlocked)
}

async fn legacy_table_exists<'c, E>(db: E, backend: Backend) -> Result<bool>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    let sql = match backend {
        Backend::Sqlite => {
            "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
        }
        Backend::Postgres => {
            "SELECT COUNT(*) AS n FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_name = 'schema_migrations'"
        }
    };
    let n: i64 = sqlx::query(sql).fetch_one(db).await?.try_get("n")?;
    Ok(n > 0)
}

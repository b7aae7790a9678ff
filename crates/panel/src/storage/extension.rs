//! Reading the PHP/Go extension's tables from Pterodactyl's MySQL/MariaDB
//! database, for the importer. Read only: one `READ ONLY` transaction with a
//! consistent snapshot, rolled back at the end; nothing is ever written there.
//!
//! Every column is read by name as text (`CAST(... AS CHAR)`, times in UTC),
//! so the different column types old versions of the extension used all
//! arrive the same way; what the values mean is decided by
//! [`crate::import`].

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

use api::Secret;
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection};
use sqlx::{Connection, Row};

use super::{Result, StorageError, redact_url};

/// The extension's tables the importer reads, in the order it reads them.
pub const TABLES: [&str; 7] = [
    "restic",
    "restic_key_history",
    "restic_policies",
    "restic_schedules",
    "restic_pruning",
    "restic_backup_notes",
    "restic_job_history",
];

/// One row: column name → value as text (`None` for SQL NULL).
pub type SourceRow = BTreeMap<String, Option<String>>;

/// One table as it was found. Its `Debug` names columns and counts rows:
/// the rows hold repository keys.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SourceTable {
    pub name: String,
    /// Columns in their order in the table.
    pub columns: Vec<String>,
    pub rows: Vec<SourceRow>,
    /// Columns whose names cannot be quoted safely, left unread.
    pub odd_columns: Vec<String>,
}

impl std::fmt::Debug for SourceTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceTable")
            .field("name", &self.name)
            .field("columns", &self.columns)
            .field("rows", &self.rows.len())
            .field("odd_columns", &self.odd_columns)
            .finish()
    }
}

/// What the extension's database holds; a table the install never had is
/// absent from `tables`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtensionSource {
    pub database: String,
    pub tables: BTreeMap<String, SourceTable>,
}

impl ExtensionSource {
    pub fn table(&self, name: &str) -> Option<&SourceTable> {
        self.tables.get(name)
    }
}

fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn db_error(url: &str, e: sqlx::Error) -> StorageError {
    StorageError::Database(format!("{}: {e}", redact_url(url)))
}

/// Whether a MySQL host is this machine (the connection then never
/// crosses a network).
fn local_host(host: &str) -> bool {
    matches!(host, "localhost" | "127.0.0.1" | "::1" | "[::1]")
}

/// Reads the extension's tables from the database at `url`
/// (`mysql://user@host:port/database`), with `password` given apart so it
/// never sits in the URL, a command line or a log. The connection has no
/// TLS, so a database on another host is refused unless
/// `allow_plaintext` (an SSH tunnel to `127.0.0.1` is the safe way).
pub async fn read_extension(
    url: &str,
    password: Option<&Secret>,
    allow_plaintext: bool,
) -> Result<ExtensionSource> {
    if !(url.starts_with("mysql://") || url.starts_with("mariadb://")) {
        return Err(StorageError::Database(
            "the extension's database URL must start with mysql://".into(),
        ));
    }
    let url = url.replacen("mariadb://", "mysql://", 1);
    let authority = url["mysql://".len()..]
        .split('/')
        .next()
        .unwrap_or_default();
    if authority
        .rsplit_once('@')
        .is_some_and(|(userinfo, _)| userinfo.contains(':'))
    {
        return Err(StorageError::Database(
            "put the database password in a file or on standard input, not in the URL".into(),
        ));
    }
    let mut opts =
        MySqlConnectOptions::from_str(&url).map_err(|e| StorageError::Database(e.to_string()))?;
    let database = opts.get_database().unwrap_or_default().to_owned();
    if database.is_empty() {
        return Err(StorageError::Database(
            "name Pterodactyl's database in the URL (mysql://user@host/panel)".into(),
        ));
    }
    let host = opts.get_host().to_owned();
    if !local_host(&host) && opts.get_socket().is_none() && !allow_plaintext {
        return Err(StorageError::Database(format!(
            "the importer talks to MySQL without TLS; {host} is not this machine: run it on the database host, or through an SSH tunnel to 127.0.0.1, or pass --mysql-insecure-transport on a network you trust"
        )));
    }
    if let Some(p) = password {
        opts = opts.password(p.expose());
    }
    // TIMESTAMP columns come out in UTC; nothing this session does can write.
    opts = opts.timezone(Some(String::from("+00:00")));
    let mut conn = tokio::time::timeout(
        Duration::from_secs(10),
        MySqlConnection::connect_with(&opts),
    )
    .await
    .map_err(|_| {
        StorageError::Database(format!("could not reach {} within 10 s", redact_url(&url)))
    })?
    .map_err(|e| db_error(&url, e))?;
    sqlx::query("SET SESSION TRANSACTION READ ONLY")
        .execute(&mut conn)
        .await
        .map_err(|e| db_error(&url, e))?;
    sqlx::query("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
        .execute(&mut conn)
        .await
        .map_err(|e| db_error(&url, e))?;
    let read = read_tables(&mut conn, &database).await;
    let _ = sqlx::query("ROLLBACK").execute(&mut conn).await;
    let _ = conn.close().await;
    let tables = read.map_err(|e| db_error(&url, e))?;
    Ok(ExtensionSource { database, tables })
}

fn text(row: &sqlx::mysql::MySqlRow, i: usize) -> std::result::Result<Option<String>, sqlx::Error> {
    match row.try_get::<Option<String>, _>(i) {
        Ok(v) => Ok(v),
        // Binary collations arrive as bytes.
        Err(_) => Ok(row
            .try_get::<Option<Vec<u8>>, _>(i)?
            .map(|b| String::from_utf8_lossy(&b).into_owned())),
    }
}

async fn read_tables(
    conn: &mut MySqlConnection,
    database: &str,
) -> std::result::Result<BTreeMap<String, SourceTable>, sqlx::Error> {
    let mut out = BTreeMap::new();
    for name in TABLES {
        let columns = sqlx::query(
            "SELECT CAST(COLUMN_NAME AS CHAR) FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
        )
        .bind(database)
        .bind(name)
        .fetch_all(&mut *conn)
        .await?;
        if columns.is_empty() {
            continue;
        }
        let mut table = SourceTable {
            name: name.to_owned(),
            ..SourceTable::default()
        };
        for c in &columns {
            let column = text(c, 0)?.unwrap_or_default();
            if plain_name(&column) {
                table.columns.push(column);
            } else {
                table.odd_columns.push(column);
            }
        }
        if !table.columns.is_empty() {
            let select = table
                .columns
                .iter()
                .map(|c| format!("CAST(`{c}` AS CHAR)"))
                .collect::<Vec<_>>()
                .join(", ");
            let rows = sqlx::query(&format!("SELECT {select} FROM `{name}`"))
                .fetch_all(&mut *conn)
                .await?;
            for r in &rows {
                let mut row = SourceRow::new();
                for (i, c) in table.columns.iter().enumerate() {
                    row.insert(c.clone(), text(r, i)?);
                }
                table.rows.push(row);
            }
        }
        out.insert(name.to_owned(), table);
    }
    Ok(out)
}

//! The panel's start: its files are private, a wrong secret key is found at
//! once, and a database that can not be reached fails the start quickly,
//! naming why.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use testkit::panel::run_cli;

fn config(dir: &Path, database_url: &str, secret: &str) -> std::path::PathBuf {
    std::fs::write(dir.join("secret"), secret).unwrap();
    let config = dir.join("panel.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\nstate_dir = \"{}\"\ndatabase_url = \"{database_url}\"\nsecret_key_file = \"{}\"\n",
            dir.join("state").display(),
            dir.join("secret").display()
        ),
    )
    .unwrap();
    config
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn files_are_private_and_a_wrong_secret_key_stops_the_start() {
    let t = tempfile::tempdir().unwrap();
    let db = t.path().join("state/panel.db");
    let url = format!("sqlite://{}", db.display());
    let cfg = config(t.path(), &url, "the-right-secret-key-0123456789abcdef");
    let (ok, out) = run_cli(
        &cfg,
        &["user", "add", "--email", "a@example.com", "--admin"],
        "a password 123\n",
    );
    assert!(ok, "{out}");
    let (ok, out) = run_cli(
        &cfg,
        &["node", "add", "--name", "n1", "--url", "http://127.0.0.1:1"],
        "node-token-0123456789abcdef\n",
    );
    assert!(ok, "{out}");
    assert_eq!(mode(&t.path().join("state")), 0o700, "state folder");
    assert_eq!(mode(&db), 0o600, "panel.db");

    let cfg = config(t.path(), &url, "a-different-secret-key-0123456789abcd");
    let mut panel = Command::new(env!("CARGO_BIN_EXE_restic-backups"))
        .args(["panel", "--config"])
        .arg(&cfg)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while panel.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "the panel started with a wrong secret key"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = panel.wait_with_output().unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("secret key does not open"), "{text}");
}

#[test]
fn an_unreachable_database_fails_quickly_naming_the_cause() {
    let t = tempfile::tempdir().unwrap();
    // Nothing listens: refused at once.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let cfg = config(
        t.path(),
        &format!("postgres://nobody:pw@127.0.0.1:{port}/panel"),
        "a-secret-key-0123456789abcdefghijklmn",
    );
    let started = Instant::now();
    let (ok, out) = run_cli(
        &cfg,
        &["user", "add", "--email", "a@example.com"],
        "a password 123\n",
    );
    assert!(!ok);
    assert!(out.to_lowercase().contains("refused"), "{out}");
    assert!(!out.contains(":pw@"), "the password leaked: {out}");
    assert!(started.elapsed() < Duration::from_secs(5));

    // Something accepts but never answers: given up after 5 s.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let cfg = config(
        t.path(),
        &format!("postgres://nobody:pw@127.0.0.1:{port}/panel"),
        "a-secret-key-0123456789abcdefghijklmn",
    );
    let started = Instant::now();
    let (ok, out) = run_cli(
        &cfg,
        &["user", "add", "--email", "a@example.com"],
        "a password 123\n",
    );
    assert!(!ok);
    assert!(out.contains("within 5 s"), "{out}");
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "{:?}",
        started.elapsed()
    );
    drop(silent);
}

/// Runs SQL on a SQLite file with the `sqlite3` shell.
fn sqlite(db: &Path, sql: &str) -> String {
    let out = Command::new("sqlite3")
        .arg(db)
        .arg(sql)
        .output()
        .expect("sqlite3 runs");
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

const MIGRATIONS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../panel/migrations");

/// The schema and record the hand-written migration runner left before
/// sqlx's migrator took over, with one user in it.
fn legacy_schema_sql(backend: &str) -> String {
    let mut sql = String::new();
    for file in ["0001_initial.sql", "0002_archived_keys.sql"] {
        sql += &std::fs::read_to_string(format!("{MIGRATIONS}/{backend}/{file}")).unwrap();
        sql += ";\n";
    }
    sql += "CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL);\n\
            INSERT INTO schema_migrations VALUES (1, 1700000000), (2, 1700000000);\n\
            INSERT INTO users (email, password_hash, root_admin, created_at) \
            VALUES ('old@example.com', 'x', 1, 1700000000);\n";
    sql
}

/// Every migration version the panel has (`1,2,…,n`, from its files).
fn all_versions() -> String {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../panel/migrations/sqlite");
    let n = std::fs::read_dir(dir).unwrap().count();
    (1..=n).map(|v| v.to_string()).collect::<Vec<_>>().join(",")
}

#[test]
fn a_database_of_the_old_migration_runner_is_adopted_and_a_newer_schema_refuses() {
    // SQLite.
    let t = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(t.path().join("state")).unwrap();
    let db = t.path().join("state/panel.db");
    let cfg = config(
        t.path(),
        &format!("sqlite://{}", db.display()),
        "a-secret-key-0123456789abcdefghijklmn",
    );
    // `db status` changes nothing: no file is made for it.
    let (ok, out) = run_cli(&cfg, &["db", "status"], "");
    assert!(ok, "{out}");
    assert!(out.contains("schema: none yet"), "{out}");
    assert!(!db.exists(), "db status created the database");
    sqlite(&db, &legacy_schema_sql("sqlite"));
    let (ok, out) = run_cli(&cfg, &["db", "status"], "");
    assert!(ok, "{out}");
    assert!(out.contains("schema: version 2 ((old record))"), "{out}");
    assert!(
        out.contains("migration(s) to apply at the next start: 3 (pterodactyl)"),
        "{out}"
    );
    assert_eq!(
        sqlite(
            &db,
            "SELECT COUNT(*) FROM sqlite_master WHERE name = 'schema_migrations'"
        ),
        "1",
        "db status migrated"
    );
    let (ok, out) = run_cli(&cfg, &["user", "list"], "");
    assert!(ok, "{out}");
    assert!(out.contains("old@example.com"), "{out}");
    assert_eq!(
        sqlite(
            &db,
            "SELECT COUNT(*) FROM sqlite_master WHERE name = 'schema_migrations'"
        ),
        "0"
    );
    assert_eq!(
        sqlite(&db, "SELECT group_concat(version) FROM _sqlx_migrations"),
        all_versions()
    );
    // A second start finds nothing to do.
    let (ok, out) = run_cli(&cfg, &["user", "list"], "");
    assert!(ok, "{out}");
    let (ok, out) = run_cli(&cfg, &["db", "status"], "");
    assert!(ok, "{out}");
    assert!(out.contains("status: up to date"), "{out}");
    assert!(out.contains("users: 1, nodes: 0, servers: 0"), "{out}");
    // A database a newer build migrated: refused, saying so.
    sqlite(
        &db,
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (999, 'from the future', 1, x'00', 0)",
    );
    let (ok, out) = run_cli(&cfg, &["user", "list"], "");
    assert!(!ok);
    assert!(out.contains("schema version 999"), "{out}");
    assert!(out.contains("newer restic-backups"), "{out}");
    let (ok, out) = run_cli(&cfg, &["db", "status"], "");
    assert!(!ok, "{out}");
    assert!(
        out.contains("schema: version 999 (from the future)"),
        "{out}"
    );
    assert!(
        out.contains("does not know: 999 (from the future)"),
        "{out}"
    );

    // PostgreSQL.
    let url = testkit::panel::fresh_postgres("legacy");
    testkit::panel::psql(&url, &legacy_schema_sql("postgres"));
    let cfg = config(t.path(), &url, "a-secret-key-0123456789abcdefghijklmn");
    let (ok, out) = run_cli(&cfg, &["user", "list"], "");
    assert!(ok, "{out}");
    assert!(out.contains("old@example.com"), "{out}");
    assert_eq!(
        testkit::panel::psql(&url, "SELECT to_regclass('schema_migrations') IS NULL"),
        "t"
    );
    assert_eq!(
        testkit::panel::psql(
            &url,
            "SELECT string_agg(version::text, ',' ORDER BY version) FROM _sqlx_migrations"
        ),
        all_versions()
    );
    testkit::panel::psql(
        &url,
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (999, 'from the future', TRUE, '\\x00', 0)",
    );
    let (ok, out) = run_cli(&cfg, &["user", "list"], "");
    assert!(!ok);
    assert!(out.contains("schema version 999"), "{out}");
    let (ok, out) = run_cli(&cfg, &["db", "status"], "");
    assert!(!ok, "{out}");
    assert!(out.contains("backend: PostgreSQL"), "{out}");
    assert!(out.contains("does not know: 999"), "{out}");
}

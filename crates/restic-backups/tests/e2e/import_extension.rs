//! `import extension` against a real MariaDB server holding the PHP/Go
//! extension's tables (as its Laravel migrations create them, plus legacy
//! tables with odd column names), real repositories the extension's way
//! (`<repo_root>/<uuid>+<owner>`, snapshots of the absolute server folder),
//! the real agent and restic. `./scripts/test` starts MariaDB and sets
//! `TEST_MYSQL_URL` (`mysql://user:password@host:port`).

use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};
use testkit::mariadb::Maria;
use testkit::panel::{Client, Db, PASSWORD, TestPanel, run_cli};
use testkit::{TestAgent, new_uuid, restic};

const API: &str = "/extensions/resticbackups";

fn backups(server: &str) -> String {
    format!("{API}/servers/{server}/backups/restic")
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// MySQL's `YYYY-MM-DD HH:MM:SS` in UTC.
fn mysql_time(unix: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(unix).unwrap();
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A fresh database named like Pterodactyl's, with a SELECT-only user for
/// the importer; returns (database, user, password).
fn fresh_panel_db(m: &Maria) -> (String, String, String) {
    let n = format!(
        "{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    );
    let db = format!("panel_{n}");
    let user = format!("importer_{n}");
    let password = format!("pw{}", new_uuid().replace('-', ""));
    m.sql(None, &format!("CREATE DATABASE {db}"));
    m.sql(
        None,
        &format!("CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'"),
    );
    m.sql(None, &format!("GRANT SELECT ON {db}.* TO '{user}'@'%'"));
    (db, user, password)
}

/// The extension's tables, as its Laravel migrations create them on MySQL.
const EXTENSION_SCHEMA: &str = "
CREATE TABLE restic (id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
  server_uuid VARCHAR(36) NOT NULL UNIQUE, encryption_key VARCHAR(255) NOT NULL,
  created_at TIMESTAMP NULL, updated_at TIMESTAMP NULL);
CREATE TABLE restic_policies (id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
  server_uuid CHAR(36) NOT NULL UNIQUE, interval_value INT UNSIGNED NULL, interval_unit VARCHAR(16) NULL,
  schedule_enabled TINYINT(1) NOT NULL DEFAULT 0, schedule_last_run_at TIMESTAMP NULL,
  keep_last INT UNSIGNED NULL, keep_daily INT UNSIGNED NULL, keep_weekly INT UNSIGNED NULL,
  keep_monthly INT UNSIGNED NULL, keep_yearly INT UNSIGNED NULL, keep_within VARCHAR(64) NULL,
  pruning_enabled TINYINT(1) NOT NULL DEFAULT 0, pruning_last_run_at TIMESTAMP NULL,
  created_at TIMESTAMP NULL, updated_at TIMESTAMP NULL);
CREATE TABLE restic_key_history (id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
  server_uuid VARCHAR(36) NOT NULL, owner_username VARCHAR(191) NULL, encryption_key VARCHAR(255) NOT NULL,
  created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, INDEX (server_uuid, owner_username));
CREATE TABLE restic_job_history (id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
  server_uuid CHAR(36) NOT NULL, job_type VARCHAR(50) NOT NULL, status VARCHAR(20) NOT NULL,
  message TEXT NULL, details JSON NULL, started_at TIMESTAMP NULL, finished_at TIMESTAMP NULL,
  created_at TIMESTAMP NULL, updated_at TIMESTAMP NULL);
CREATE TABLE restic_backup_notes (id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
  server_uuid CHAR(36) NOT NULL, backup_id VARCHAR(64) NOT NULL, note TEXT NULL,
  created_at TIMESTAMP NULL, updated_at TIMESTAMP NULL, UNIQUE (server_uuid, backup_id));
CREATE TABLE restic_schedules (id INT AUTO_INCREMENT PRIMARY KEY, server_uuid VARCHAR(36) NOT NULL,
  is_enabled TINYINT(1) NULL, interval_hours INT NULL, last_run DATETIME NULL,
  cron_expression VARCHAR(64) NULL, updated_at TIMESTAMP NULL);
CREATE TABLE restic_pruning (id INT AUTO_INCREMENT PRIMARY KEY, server_uuid VARCHAR(36) NULL,
  enabled TINYINT(1) DEFAULT 0, keep_daily INT NULL, keep_weekly INT NULL, last_pruned_at DATETIME NULL);
";

fn key(c: char) -> String {
    std::iter::repeat_n(c, 64).collect()
}

fn snapshot_ids(repo: &std::path::Path, key: &str) -> Vec<String> {
    let listed: Value =
        serde_json::from_str(&restic(repo, key, None, &["snapshots", "--json"])).unwrap();
    listed
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect()
}

fn import(
    panel: &TestPanel,
    db: &str,
    user: &str,
    password: &str,
    extra: &[&str],
) -> (bool, String) {
    let m = Maria::from_env();
    let url = format!("mysql://{user}@{}:{}/{db}", m.host, m.port);
    let mut args = vec![
        "import",
        "extension",
        "--mysql-url",
        &url,
        "--mysql-password-stdin",
    ];
    args.extend_from_slice(extra);
    run_cli(
        &panel.dir.path().join("panel.toml"),
        &args,
        &format!("{password}\n"),
    )
}

async fn schedule(owner: &mut Client, server: &str) -> Value {
    let (s, v) = owner.get(&format!("{}/schedule", backups(server))).await;
    assert_eq!(s, 200, "{v}");
    v
}

fn unix(rfc3339: &Value) -> i64 {
    time::OffsetDateTime::parse(
        rfc3339.as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap()
    .unix_timestamp()
}

async fn carried_over(db_kind: Db) {
    let m = Maria::from_env();
    let (db, user, password) = fresh_panel_db(&m);
    m.sql(Some(&db), EXTENSION_SCHEMA);
    // The panel's own scheduler is off: `schedule run-due` below is the
    // only one running scheduled backups.
    let agent = TestAgent::start();
    let panel = TestPanel::start_with(db_kind, &["scheduler = false"]);
    let admin = panel.admin().await;
    panel.add_node(&admin, "node-1", &agent).await;
    panel.add_user(&admin, "owner@example.com").await;
    let [s1, s2, s3] = [agent.add_server(), agent.add_server(), agent.add_server()];
    for s in [&s1, &s2, &s3] {
        panel
            .add_server(&admin, s, "owner@example.com", "node-1", 0)
            .await;
    }
    let mut owner = panel.login("owner@example.com", PASSWORD).await;
    let unknown = new_uuid();
    let (k0, k1, k2, k3, other) = (key('0'), key('1'), key('2'), key('3'), key('9'));
    let t = now();

    // S1: the extension's repository under `<uuid>+<owner>`, two snapshots
    // of the absolute server folder; an earlier owner's repository beside it.
    let s1_dir = agent.data_dir().join(&s1);
    let ext_repo = agent.repo_root().join(format!("{s1}+steve"));
    restic(&ext_repo, &k1, None, &["init"]);
    let abs = s1_dir.to_str().unwrap();
    restic(
        &ext_repo,
        &k1,
        None,
        &["backup", "--tag", "pterodactyl", "--tag", &s1, abs],
    );
    std::fs::write(s1_dir.join("server.properties"), "motd=changed later\n").unwrap();
    restic(
        &ext_repo,
        &k1,
        None,
        &["backup", "--tag", "pterodactyl", "--tag", &s1, abs],
    );
    let ids = snapshot_ids(&ext_repo, &k1);
    assert_eq!(ids.len(), 2);
    let old_owner_repo = agent.repo_root().join(format!("{s1}+alex"));
    restic(&old_owner_repo, &k0, None, &["init"]);
    // S3: a repository the extension's key does not open.
    restic(&agent.repo(&s3), &other, None, &["init"]);

    let last_run = t - 20 * 3600;
    let legacy_saved = t - 3600;
    m.sql(
        Some(&db),
        &format!(
            "INSERT INTO restic (server_uuid, encryption_key, created_at, updated_at) VALUES
               ('{s1}', '{k1}', '2025-06-01 10:00:00', '2025-06-01 10:00:00'),
               ('{s2}', '{k2}', NULL, NULL),
               ('{s3}', '{k3}', '2025-01-01 00:00:00', NULL),
               ('{unknown}', '{k0}', NULL, NULL);
             INSERT INTO restic_key_history (server_uuid, owner_username, encryption_key, created_at) VALUES
               ('{s1}', 'alex', '{k0}', '2025-01-01 00:00:00'),
               ('{s1}', 'steve', '{k1}', '2025-06-01 10:00:00'),
               ('{s2}', NULL, '{k2}', '2025-07-01 00:00:00');
             INSERT INTO restic_policies (server_uuid, interval_value, interval_unit, schedule_enabled,
               schedule_last_run_at, keep_last, keep_daily, keep_weekly, keep_monthly, keep_yearly, keep_within,
               pruning_enabled, pruning_last_run_at, created_at, updated_at) VALUES
               ('{s1}', 6, 'hours', 1, '{}', 5, NULL, NULL, NULL, NULL, NULL, 1, NULL, NULL, NULL),
               ('{s3}', NULL, NULL, 0, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0, NULL, NULL, NULL);
             INSERT INTO restic_schedules (server_uuid, is_enabled, interval_hours, last_run, cron_expression, updated_at) VALUES
               ('{s2}', 1, 12, NULL, '0 */12 * * *', '{}'),
               ('{s1}', 1, 1, NULL, NULL, NULL);
             INSERT INTO restic_pruning (server_uuid, enabled, keep_daily, keep_weekly, last_pruned_at) VALUES
               ('{s2}', 1, 7, NULL, NULL);
             INSERT INTO restic_backup_notes (server_uuid, backup_id, note) VALUES
               ('{s1}', '{}', 'before the 1.21 update'),
               ('{s1}', '{}', 'after the update'),
               ('{s1}', 'not-an-id', 'lost'),
               ('{s2}', 'abcdef12', NULL),
               ('{unknown}', 'abcdef12', 'x');
             INSERT INTO restic_job_history (server_uuid, job_type, status, message, details, started_at, finished_at, created_at) VALUES
               ('{s1}', 'backup', 'failed', 'disk full', '{{\"code\":28}}', '2025-08-01 00:00:00', '2025-08-01 00:01:00', NULL),
               ('{s1}', 'restore', 'queued', NULL, NULL, NULL, NULL, '2025-08-02 00:00:00');",
            mysql_time(last_run),
            mysql_time(legacy_saved),
            ids[0],
            &ids[1][..8],
        ),
    );
    let checksum = || {
        m.sql(Some(&db), "CHECKSUM TABLE restic, restic_key_history, restic_policies, restic_schedules, restic_pruning, restic_backup_notes, restic_job_history")
    };
    let before = checksum();
    let key_before = panel.key_of(&admin, &s1).await;

    // A dry run checks everything and changes nothing.
    let (ok, out) = import(&panel, &db, &user, &password, &["--dry-run"]);
    assert!(!ok, "problems make the exit status non-zero: {out}");
    assert!(out.contains("dry run: nothing was written"), "{out}");
    assert!(
        out.contains(&format!("{s1}+steve, which would be moved into place")),
        "{out}"
    );
    assert!(
        ext_repo.exists() && !agent.repo(&s1).exists(),
        "a dry run moves nothing"
    );
    assert_eq!(panel.key_of(&admin, &s1).await, key_before);

    let (ok, out) = import(&panel, &db, &user, &password, &[]);
    assert!(!ok, "{out}");
    for expected in [
        "import finished",
        &format!("{s1}+steve, moved into place"),
        "key imported (no repository yet)",
        "KEY DOES NOT OPEN THE REPOSITORY",
        &format!("unknown server {unknown} (restic, restic_backup_notes)"),
        "restic_schedules.cron_expression",
        "schedule: imported from restic_policies: every 6 hours, on, keep last 5",
        "schedule: imported from restic_schedules/restic_pruning: every 12 hours, on, keep daily 7",
        "not a snapshot ID",
        "\"queued\"",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
    assert!(
        !out.contains(&k1) && !out.contains(&password),
        "no secrets in the output"
    );

    // Keys: the ones that open (or create) their repository are current.
    assert_eq!(panel.key_of(&admin, &s1).await, k1);
    assert_eq!(panel.key_of(&admin, &s2).await, k2);
    assert_ne!(panel.key_of(&admin, &s3).await, k3);
    assert!(agent.repo(&s1).exists() && !ext_repo.exists());
    assert!(
        old_owner_repo.exists(),
        "an earlier owner's repository stays where it was"
    );
    let (ok, exported) = run_cli(&panel.dir.path().join("panel.toml"), &["key", "export"], "");
    assert!(ok, "{exported}");
    assert!(exported.contains(&k0), "the earlier key is in the history");

    // The repository lists and backs up through the API, with its notes.
    let (s, list) = owner.get(&backups(&s1)).await;
    assert_eq!(s, 200, "{list}");
    let listed = list["backups"].as_array().unwrap();
    assert_eq!(listed.len(), 2, "{list}");
    let note_of = |id: &str| {
        listed
            .iter()
            .find(|b| b["id"] == id)
            .map(|b| b["note"].clone())
            .unwrap()
    };
    assert_eq!(note_of(&ids[0]), "before the 1.21 update");
    assert_eq!(note_of(&ids[1]), "after the update");

    // Restoring the extension's older snapshot puts its files back at the
    // server folder's root (not under var/…/<uuid>).
    let (s, b) = owner
        .post(
            &format!("{}/{}/restore", backups(&s1), ids[0]),
            json!({"truncate": true}),
        )
        .await;
    assert_eq!(s, 202, "{b}");
    let view = owner.wait_job(&s1, b["job_id"].as_str().unwrap()).await;
    assert_eq!(view["status"], "succeeded", "{view}");
    assert_eq!(
        std::fs::read_to_string(s1_dir.join("server.properties")).unwrap(),
        "motd=A test server\nmax-players=20\n"
    );
    assert!(s1_dir.join("world/level.dat").is_file());
    let first = abs.trim_start_matches('/').split('/').next().unwrap();
    assert!(!s1_dir.join(first).exists(), "no nested absolute path left");

    owner.backup(&s1).await;
    owner.backup(&s2).await;
    assert_eq!(
        snapshot_ids(&agent.repo(&s2), &k2).len(),
        1,
        "S2's repository was made with the extension's key"
    );

    // Schedules continue where the extension left them.
    let v = schedule(&mut owner, &s1).await;
    assert_eq!(
        (
            v["enabled"].as_bool(),
            v["interval_value"].as_i64(),
            v["interval_unit"].as_str()
        ),
        (Some(true), Some(6), Some("hours")),
        "{v}"
    );
    assert_eq!(v["keep_last"], 5);
    assert_eq!(
        unix(&v["next_run_at"]),
        last_run + 18 * 3600,
        "the missed slot, on the grid, due now"
    );
    let v = schedule(&mut owner, &s2).await;
    assert_eq!(
        (
            v["enabled"].as_bool(),
            v["interval_value"].as_i64(),
            v["keep_daily"].as_i64()
        ),
        (Some(true), Some(12), Some(7)),
        "{v}"
    );
    assert_eq!(unix(&v["next_run_at"]), legacy_saved + 12 * 3600);
    let v = schedule(&mut owner, &s3).await;
    assert_eq!(v["enabled"], false, "{v}");

    // The due run happens once and the grid goes on.
    let (ok, ran) = run_cli(
        &panel.dir.path().join("panel.toml"),
        &["schedule", "run-due"],
        "",
    );
    assert!(ok && ran.contains("scheduled backups run: 1"), "{ran}");
    let v = schedule(&mut owner, &s1).await;
    assert_eq!(unix(&v["next_run_at"]), last_run + 24 * 3600, "{v}");

    // The job history shows the extension's runs.
    let (s, h) = owner
        .get(&format!("{}/schedule/history", backups(&s1)))
        .await;
    assert_eq!(s, 200, "{h}");
    let text = h.to_string();
    assert!(
        text.contains("disk full") && text.contains("imported"),
        "{h}"
    );

    // A second run changes nothing, and MySQL was never written to.
    let (_, again) = import(&panel, &db, &user, &password, &[]);
    assert!(again.contains("nothing to change"), "{again}");
    assert_eq!(checksum(), before);
    m.sql(None, &format!("DROP DATABASE {db}"));
}

testkit::on_both_databases!(carried_over);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_sources_are_refused_clearly() {
    let panel = TestPanel::start(Db::Sqlite);
    let config = panel.dir.path().join("panel.toml");
    let m = Maria::from_env();

    let (ok, out) = run_cli(
        &config,
        &[
            "import",
            "extension",
            "--mysql-url",
            &format!("mysql://u:secret@{}:{}/panel", m.host, m.port),
        ],
        "",
    );
    assert!(
        !ok && out.contains("not in the URL") && !out.contains("secret"),
        "{out}"
    );

    let (ok, out) = run_cli(
        &config,
        &["import", "extension", "--mysql-url", "postgres://x/y"],
        "",
    );
    assert!(!ok && out.contains("must start with mysql://"), "{out}");

    let (ok, out) = run_cli(
        &config,
        &[
            "import",
            "extension",
            "--mysql-url",
            &format!("mysql://{}@{}:{}", m.user, m.host, m.port),
            "--mysql-password-stdin",
        ],
        &format!("{}\n", m.password),
    );
    assert!(!ok && out.contains("name Pterodactyl's database"), "{out}");

    // A wrong password: the server's refusal, without the password.
    let (db, user, _) = fresh_panel_db(&m);
    let (ok, out) = import(&panel, &db, &user, "wrong-password", &[]);
    assert!(
        !ok && out.contains("Access denied") && !out.contains("wrong-password"),
        "{out}"
    );

    // A database without the extension's tables says so.
    let (db, user, password) = fresh_panel_db(&m);
    let (ok, out) = import(&panel, &db, &user, &password, &[]);
    assert!(
        !ok && out.contains("neither `restic` nor `restic_policies`"),
        "{out}"
    );

    // Another host: refused without TLS unless the operator says so.
    let (ok, out) = run_cli(
        &config,
        &[
            "import",
            "extension",
            "--mysql-url",
            "mysql://u@db.example.net:3306/panel",
        ],
        "",
    );
    assert!(
        !ok && out.contains("without TLS") && out.contains("SSH tunnel"),
        "{out}"
    );

    // Nothing listens there.
    let (ok, out) = run_cli(
        &config,
        &[
            "import",
            "extension",
            "--mysql-url",
            "mysql://u@127.0.0.1:1/panel",
        ],
        "",
    );
    assert!(!ok && out.contains("127.0.0.1:1"), "{out}");
}

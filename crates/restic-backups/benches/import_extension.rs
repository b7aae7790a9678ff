//! The importer at a large host's size: BENCH_SERVERS (5,000) servers in the
//! PHP extension's tables in a real MariaDB (each with a key, two key history
//! rows, a policy, two notes and two job rows; every tenth one legacy-only,
//! in `restic_schedules`/`restic_pruning`), BENCH_REPOS (50) of them with a
//! real repository the extension's way (`<uuid>+<owner>`), the real agent
//! and restic, the panel on SQLite.
//!
//! Per round (median of BENCH_ROUNDS): reading the tables alone (the
//! baseline: what any import must do), a dry run, the import into a fresh
//! panel, and a second run that changes nothing.
//!
//! `TEST_MYSQL_URL=mysql://user:password@127.0.0.1:3306 BENCH_SERVERS=5000 \
//!  cargo bench -p restic-backups --bench import_extension`

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use api::{Secret, ServerUuid};
use panel::permissions::Operator;
use support::{Agent, TOKEN, env_num, ms};
use testkit::mariadb::Maria;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn uuid_of(i: usize) -> String {
    format!("{:08x}-0000-4000-8000-{:012x}", i, i)
}

fn key_of(i: usize) -> String {
    format!("{:064x}", i + 1)
}

const SCHEMA: &str = "
CREATE TABLE restic (id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, server_uuid VARCHAR(36) NOT NULL UNIQUE,
  encryption_key VARCHAR(255) NOT NULL, created_at TIMESTAMP NULL, updated_at TIMESTAMP NULL);
CREATE TABLE restic_policies (id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, server_uuid CHAR(36) NOT NULL UNIQUE,
  interval_value INT UNSIGNED NULL, interval_unit VARCHAR(16) NULL, schedule_enabled TINYINT(1) NOT NULL DEFAULT 0,
  schedule_last_run_at TIMESTAMP NULL, keep_last INT UNSIGNED NULL, keep_daily INT UNSIGNED NULL,
  keep_weekly INT UNSIGNED NULL, keep_monthly INT UNSIGNED NULL, keep_yearly INT UNSIGNED NULL,
  keep_within VARCHAR(64) NULL, pruning_enabled TINYINT(1) NOT NULL DEFAULT 0, pruning_last_run_at TIMESTAMP NULL,
  created_at TIMESTAMP NULL, updated_at TIMESTAMP NULL);
CREATE TABLE restic_key_history (id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, server_uuid VARCHAR(36) NOT NULL,
  owner_username VARCHAR(191) NULL, encryption_key VARCHAR(255) NOT NULL,
  created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP);
CREATE TABLE restic_job_history (id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, server_uuid CHAR(36) NOT NULL,
  job_type VARCHAR(50) NOT NULL, status VARCHAR(20) NOT NULL, message TEXT NULL, details JSON NULL,
  started_at TIMESTAMP NULL, finished_at TIMESTAMP NULL, created_at TIMESTAMP NULL, updated_at TIMESTAMP NULL);
CREATE TABLE restic_backup_notes (id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, server_uuid CHAR(36) NOT NULL,
  backup_id VARCHAR(64) NOT NULL, note TEXT NULL, created_at TIMESTAMP NULL, updated_at TIMESTAMP NULL,
  UNIQUE (server_uuid, backup_id));
CREATE TABLE restic_schedules (id INT AUTO_INCREMENT PRIMARY KEY, server_uuid VARCHAR(36) NOT NULL,
  enabled TINYINT(1) NULL, interval_value INT NULL, interval_unit VARCHAR(16) NULL, last_run_at DATETIME NULL,
  updated_at TIMESTAMP NULL);
CREATE TABLE restic_pruning (id INT AUTO_INCREMENT PRIMARY KEY, server_uuid VARCHAR(36) NULL,
  enabled TINYINT(1) DEFAULT 0, keep_daily INT NULL, keep_weekly INT NULL);
";

/// The extension's rows for `n` servers, as multi-row INSERTs.
fn rows(n: usize) -> String {
    let mut keys = Vec::new();
    let mut history = Vec::new();
    let mut policies = Vec::new();
    let mut legacy = Vec::new();
    let mut pruning = Vec::new();
    let mut notes = Vec::new();
    let mut jobs = Vec::new();
    for i in 0..n {
        let (u, k) = (uuid_of(i), key_of(i));
        keys.push(format!(
            "('{u}','{k}','2025-06-01 10:00:00','2025-06-01 10:00:00')"
        ));
        history.push(format!(
            "('{u}','old{i}','{:064x}','2025-01-01 00:00:00')",
            i + 1_000_000
        ));
        history.push(format!("('{u}','owner{i}','{k}','2025-06-01 10:00:00')"));
        if i % 10 == 9 {
            legacy.push(format!("('{u}',1,12,'hours','2026-11-26 00:00:00',NULL)"));
            pruning.push(format!("('{u}',1,7,4)"));
        } else {
            policies.push(format!(
                "('{u}',6,'hours',1,'2026-11-26 12:00:00',10,7,NULL,NULL,NULL,NULL,1)"
            ));
        }
        for k in 0..2 {
            notes.push(format!("('{u}','{:08x}{k}','note {k} of server {i}')", i));
            jobs.push(format!(
                "('{u}','backup','failed','disk full','2025-08-0{} 00:00:00','2025-08-0{} 00:01:00')",
                k + 1,
                k + 1
            ));
        }
    }
    [
        ("restic (server_uuid, encryption_key, created_at, updated_at)", keys),
        ("restic_key_history (server_uuid, owner_username, encryption_key, created_at)", history),
        (
            "restic_policies (server_uuid, interval_value, interval_unit, schedule_enabled, schedule_last_run_at, \
             keep_last, keep_daily, keep_weekly, keep_monthly, keep_yearly, keep_within, pruning_enabled)",
            policies,
        ),
        (
            "restic_schedules (server_uuid, enabled, interval_value, interval_unit, last_run_at, updated_at)",
            legacy,
        ),
        ("restic_pruning (server_uuid, enabled, keep_daily, keep_weekly)", pruning),
        ("restic_backup_notes (server_uuid, backup_id, note)", notes),
        (
            "restic_job_history (server_uuid, job_type, status, message, started_at, finished_at)",
            jobs,
        ),
    ]
    .into_iter()
    .filter(|(_, v)| !v.is_empty())
    .map(|(table, v)| format!("INSERT INTO {table} VALUES {};\n", v.join(",")))
    .collect()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let servers = env_num("BENCH_SERVERS", 5_000);
    let repos = env_num("BENCH_REPOS", 50).min(servers);
    let rounds = env_num("BENCH_ROUNDS", 3);
    let m = Maria::from_env();
    let db = format!("bench_panel_{}", std::process::id());
    m.sql(None, &format!("CREATE DATABASE {db}"));
    m.sql(Some(&db), SCHEMA);
    m.sql(Some(&db), &rows(servers));
    println!(
        "extension tables: {servers} servers ({} legacy-only), {repos} with a real repository; {rounds} rounds; restic {}",
        servers / 10,
        support::restic_version()
    );
    let url = format!("mysql://{}@{}:{}/{db}", m.user, m.host, m.port);
    let password = Secret::new(m.password.clone()).unwrap();

    // One repository per key, made once and copied into place each round.
    let templates = tempfile::tempdir().unwrap();
    for i in 0..repos {
        let repo = templates.path().join(uuid_of(i));
        let out = Command::new("restic")
            .args(["init", "--repository-version=2"])
            .env("RESTIC_REPOSITORY", &repo)
            .env("RESTIC_PASSWORD", key_of(i))
            .output()
            .unwrap();
        assert!(out.status.success(), "restic init");
    }

    let operator = Operator::at_the_host_shell();
    let (mut read, mut dry, mut full, mut again) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let started = Instant::now();
        let source = panel::storage::extension::read_extension(&url, Some(&password), false)
            .await
            .unwrap();
        read.push(started.elapsed());

        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("volumes")).unwrap();
        std::fs::create_dir_all(root.join("restic")).unwrap();
        for i in 0..repos {
            let to = root.join("restic").join(format!("{}+owner{i}", uuid_of(i)));
            let ok = Command::new("cp")
                .arg("-a")
                .arg(templates.path().join(uuid_of(i)))
                .arg(&to)
                .status()
                .unwrap()
                .success();
            assert!(ok);
        }
        let agent = Agent::start(root);
        std::fs::write(
            root.join("secret"),
            "bench-secret-key-0123456789abcdefghijkl",
        )
        .unwrap();
        std::fs::write(
            root.join("panel.toml"),
            format!(
                "listen = \"127.0.0.1:0\"\nstate_dir = \"{0}/state\"\nsecret_key_file = \"{0}/secret\"\n",
                root.display()
            ),
        )
        .unwrap();
        let cfg =
            panel::config::PanelConfig::load(Some(&root.join("panel.toml")), &|_| None).unwrap();
        let p = panel::open(&cfg).await.unwrap();
        let admin = p.operator(&operator);
        admin
            .add_user("owner@example.com", "a long enough password", false)
            .await
            .unwrap();
        admin
            .add_node(
                "node-1",
                &agent.url,
                &Secret::new(TOKEN).unwrap(),
                None,
                true,
            )
            .await
            .unwrap();
        for i in 0..servers {
            let uuid = ServerUuid::parse(&uuid_of(i)).unwrap();
            admin
                .add_server(
                    &uuid,
                    &format!("server {i}"),
                    "owner@example.com",
                    "node-1",
                    0,
                )
                .await
                .unwrap();
        }

        let report = p.import_extension(&operator, &source, true).await.unwrap();
        dry.push(Duration::from_millis(report.duration_ms as u64));
        let report = p.import_extension(&operator, &source, false).await.unwrap();
        full.push(Duration::from_millis(report.duration_ms as u64));
        assert_eq!(report.servers.len(), servers);
        assert!(report.unknown.is_empty());
        let moved = report
            .servers
            .iter()
            .filter(|s| {
                matches!(
                    s.key,
                    panel::service::import::KeyOutcome::Imported { moved: Some(_) }
                )
            })
            .count();
        assert_eq!(
            moved, repos,
            "every extension repository was moved into place"
        );
        let report = p.import_extension(&operator, &source, false).await.unwrap();
        assert_eq!(report.changes(), 0, "a second run changed something");
        again.push(Duration::from_millis(report.duration_ms as u64));
        eprintln!("round {} done", round + 1);
    }
    m.sql(None, &format!("DROP DATABASE {db}"));
    let (read, dry, full, again) = (median(read), median(dry), median(full), median(again));
    println!(
        "read the tables    median {:>9.1} ms   (baseline)",
        ms(read)
    );
    println!(
        "dry run            median {:>9.1} ms   ratio to baseline {:.2}",
        ms(dry),
        ms(dry) / ms(read)
    );
    println!(
        "import             median {:>9.1} ms   ratio to baseline {:.2}",
        ms(full),
        ms(full) / ms(read)
    );
    println!(
        "second run         median {:>9.1} ms   ratio to baseline {:.2}   (0 changes)",
        ms(again),
        ms(again) / ms(read)
    );
}

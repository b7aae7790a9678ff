//! README "Disaster recovery", step by step: back up the panel's database
//! while it runs (SQLite's online backup, `pg_dump`) and its secret key,
//! export the keys, then lose everything: a server's files come back with
//! plain restic and the exported key, and a new panel on the restored
//! database opens every key again.

use std::path::Path;
use std::process::Command;

use testkit::panel::{Db, World, psql, run_cli};

fn ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The old panel's settings with another database URL and the kept
/// secret key.
fn settings_with(old: &str, dir: &Path, database_url: &str, secret: &Path) -> std::path::PathBuf {
    let mut out: Vec<String> = old
        .lines()
        .filter(|l| {
            !l.starts_with("database_url")
                && !l.starts_with("state_dir")
                && !l.starts_with("secret_key_file")
        })
        .map(str::to_owned)
        .collect();
    out.push(format!("database_url = \"{database_url}\""));
    out.push(format!("state_dir = \"{}\"", dir.join("state").display()));
    out.push(format!("secret_key_file = \"{}\"", secret.display()));
    let path = dir.join("panel.toml");
    std::fs::write(&path, out.join("\n") + "\n").unwrap();
    path
}

async fn recovery(db: Db) {
    let mut w = World::new(db, 1, 10).await;
    let server = w.servers[0].clone();
    let files = w.agent.data_dir().join(&server);
    std::fs::write(files.join("world/level.dat"), b"the world before the fire").unwrap();
    w.owner.backup(&server).await;
    let config = w.panel.dir.path().join("panel.toml");
    let settings = std::fs::read_to_string(&config).unwrap();
    let database_url = settings
        .lines()
        .find_map(|l| l.strip_prefix("database_url = \""))
        .unwrap()
        .trim_end_matches('"')
        .to_owned();
    let safe = tempfile::tempdir().unwrap();
    // The secret key, kept apart.
    let secret_file = settings
        .lines()
        .find_map(|l| l.strip_prefix("secret_key_file = \""))
        .unwrap()
        .trim_end_matches('"');
    let kept_secret = safe.path().join("panel.secret");
    std::fs::copy(secret_file, &kept_secret).unwrap();

    // 1. The database, while the panel runs.
    let restored_url = match db {
        Db::Sqlite => {
            let live = database_url.strip_prefix("sqlite://").unwrap();
            let copy = safe.path().join("panel-backup.db");
            ok(Command::new("sqlite3")
                .arg(live)
                .arg(format!(".backup '{}'", copy.display())));
            std::fs::create_dir_all(safe.path().join("restored")).unwrap();
            let restored = safe.path().join("restored/panel.db");
            std::fs::copy(&copy, &restored).unwrap();
            format!("sqlite://{}", restored.display())
        }
        Db::Postgres => {
            let dump = ok(Command::new("pg_dump").arg("--no-owner").arg(&database_url));
            let fresh = testkit::panel::fresh_postgres("recovered");
            std::fs::write(safe.path().join("panel.sql"), &dump).unwrap();
            ok(Command::new("psql")
                .arg(&fresh)
                .args(["-q", "-v", "ON_ERROR_STOP=1", "-f"])
                .arg(safe.path().join("panel.sql")));
            fresh
        }
    };
    // 2. The keys, as the operator exports them.
    let (done, keys) = run_cli(&config, &["key", "export"], "");
    assert!(done, "{keys}");
    let key = keys
        .lines()
        .find(|l| l.starts_with(&server) && l.split('\t').nth(1) == Some("current"))
        .and_then(|l| l.split('\t').nth(4))
        .unwrap_or_else(|| panic!("no current key for {server}: {keys}"))
        .to_owned();

    // 3. Everything is gone but the repositories and what was kept safe.
    let repo = w.agent.repo(&server);
    drop(w.panel);
    std::fs::remove_dir_all(&files).unwrap();
    // The server's files with plain restic and the exported key.
    let password_file = safe.path().join("server.key");
    std::fs::write(&password_file, &key).unwrap();
    let target = safe.path().join("restore");
    ok(Command::new("restic")
        .arg("-r")
        .arg(&repo)
        .arg("--password-file")
        .arg(&password_file)
        .args(["restore", "latest", "--target"])
        .arg(&target));
    let mut found = None;
    for entry in walk(&target) {
        if entry.ends_with("world/level.dat") {
            found = Some(std::fs::read(&entry).unwrap());
        }
    }
    assert_eq!(found.as_deref(), Some(&b"the world before the fire"[..]));

    // 4. A new panel on the restored database and the kept secret key.
    let new_dir = tempfile::tempdir().unwrap();
    let new_config = settings_with(&settings, new_dir.path(), &restored_url, &kept_secret);
    let (done, out) = run_cli(&new_config, &["db", "status"], "");
    assert!(done, "{out}");
    assert!(out.contains("status: up to date"), "{out}");
    let (done, again) = run_cli(&new_config, &["key", "export"], "");
    assert!(done, "{again}");
    assert!(
        again.contains(&key),
        "the restored panel lost the key:\n{again}"
    );
    if db == Db::Postgres {
        assert_eq!(psql(&restored_url, "SELECT COUNT(*) FROM servers"), "1");
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

testkit::on_both_databases!(recovery);

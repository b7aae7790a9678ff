//! The panel's start: its files are private, a wrong secret key is found at
//! once, and a database that can not be reached fails the start quickly,
//! naming why.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::panel::run_cli;

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

//! The admin commands against the panel's database, on SQLite and on
//! PostgreSQL: secrets come from stdin and never reach the database in clear.

use testkit::panel::{fresh_postgres, postgres_admin_url, psql, run_cli};

const SECRET: &str = "panel-secret-key-for-cli-tests-0123456789";

struct Panel {
    dir: tempfile::TempDir,
    database_url: String,
}

impl Panel {
    fn run(&self, args: &[&str], stdin: &str) -> (bool, String) {
        let config = self.dir.path().join("panel.toml");
        std::fs::write(
            &config,
            format!(
                "state_dir = \"{}\"\ndatabase_url = \"{}\"\nsecret_key_file = \"{}\"\n",
                self.dir.path().join("state").display(),
                self.database_url,
                self.dir.path().join("secret").display()
            ),
        )
        .unwrap();
        std::fs::write(self.dir.path().join("secret"), SECRET).unwrap();
        run_cli(&config, args, stdin)
    }
}

fn story(panel: &Panel) {
    let ok = |args: &[&str], stdin: &str| {
        let (ok, out) = panel.run(args, stdin);
        assert!(ok, "{args:?} failed: {out}");
        out
    };
    let fails = |args: &[&str], stdin: &str, expected: &str| {
        let (ok, out) = panel.run(args, stdin);
        assert!(!ok, "{args:?} should fail");
        assert!(out.contains(expected), "{args:?}: {out}");
        out
    };
    ok(
        &["user", "add", "--email", "Owner@Example.com"],
        "owner password 1\n",
    );
    ok(
        &["user", "add", "--email", "admin@example.com", "--admin"],
        "admin password 1\n",
    );
    ok(
        &["user", "add", "--email", "sub@example.com"],
        "sub password 12\n",
    );
    fails(
        &["user", "add", "--email", "owner@example.com"],
        "another password\n",
        "already exists",
    );
    fails(
        &["user", "add", "--email", "short@example.com"],
        "short\n",
        "at least 10 characters",
    );
    fails(
        &["user", "add", "--email", "x@example.com"],
        "",
        "standard input",
    );
    fails(
        &["user", "add", "--email", "not an email"],
        "long enough pw\n",
        "not valid",
    );

    let out = ok(
        &[
            "node",
            "add",
            "--name",
            "node-1",
            "--url",
            "http://127.0.0.1:8090",
        ],
        "cli-node-token-must-stay-secret\n",
    );
    assert!(!out.contains("cli-node-token"), "{out}");
    fails(
        &["node", "add", "--name", "../x", "--url", "http://x"],
        "cli-node-token-0123456789\n",
        "node names",
    );
    fails(
        &["node", "add", "--name", "n2", "--url", "ftp://x"],
        "cli-node-token-0123456789\n",
        "https://",
    );

    let uuid = "5e1d7a0c-8f3b-4c2e-9a6d-0b1c2d3e4f50";
    ok(
        &[
            "server",
            "add",
            "--uuid",
            uuid,
            "--name",
            "Survival",
            "--owner",
            "owner@example.com",
            "--node",
            "node-1",
            "--backup-limit",
            "5",
        ],
        "",
    );
    fails(
        &[
            "server",
            "add",
            "--uuid",
            "--password-command=sh",
            "--name",
            "x",
            "--owner",
            "owner@example.com",
            "--node",
            "node-1",
        ],
        "",
        "UUID",
    );
    fails(
        &[
            "server",
            "add",
            "--uuid",
            "1f0e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
            "--name",
            "x",
            "--owner",
            "nobody@example.com",
            "--node",
            "node-1",
        ],
        "",
        "no user",
    );
    fails(
        &[
            "server",
            "add",
            "--uuid",
            uuid,
            "--name",
            "Again",
            "--owner",
            "owner@example.com",
            "--node",
            "node-1",
        ],
        "",
        "already exists",
    );

    ok(
        &[
            "subuser",
            "set",
            "--server",
            uuid,
            "--email",
            "sub@example.com",
            "--permissions",
            "backup.read,backup.download",
        ],
        "",
    );
    fails(
        &[
            "subuser",
            "set",
            "--server",
            uuid,
            "--email",
            "sub@example.com",
            "--permissions",
            "backup.all",
        ],
        "",
        "unknown permission",
    );
}

#[test]
fn admin_commands_work_on_sqlite_and_keep_secrets_sealed() {
    let dir = tempfile::tempdir().unwrap();
    let database_url = format!("sqlite://{}", dir.path().join("state/panel.db").display());
    let panel = Panel { dir, database_url };
    story(&panel);
    let mut dump = Vec::new();
    for entry in std::fs::read_dir(panel.dir.path().join("state"))
        .unwrap()
        .flatten()
    {
        dump.extend(std::fs::read(entry.path()).unwrap());
    }
    let dump = String::from_utf8_lossy(&dump);
    assert!(dump.contains("owner@example.com"), "the dump is readable");
    for secret in [
        "cli-node-token-must-stay-secret",
        "owner password 1",
        SECRET,
    ] {
        assert!(!dump.contains(secret), "{secret} is in the database file");
    }
}

#[test]
fn admin_commands_work_on_postgres() {
    let db_url = fresh_postgres("panel_cli");
    let panel = Panel {
        dir: tempfile::tempdir().unwrap(),
        database_url: db_url.clone(),
    };
    story(&panel);
    let q = |sql: &str| psql(&db_url, sql);
    assert_eq!(q("SELECT count(*) FROM users"), "3");
    let tokens = q("SELECT token_enc FROM nodes");
    assert!(tokens.starts_with("v1.") && !tokens.contains("cli-node-token"));
    assert_eq!(
        q("SELECT permissions FROM subusers"),
        "backup.read backup.download"
    );
    let name = db_url.rsplit_once('/').unwrap().1;
    psql(
        &postgres_admin_url(),
        &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
    );
}

//! `restic-backups config check agent|panel` reads settings exactly as the
//! servers do and prints them without secrets; `--version` names the build.

use std::process::Command;

/// Runs `config check <side>` on `toml`; exit status, stdout, stderr.
fn check(side: &str, toml: &str, env: &[(&str, &str)]) -> (bool, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("settings.toml");
    std::fs::write(
        &config,
        toml.replace("{dir}", &dir.path().display().to_string()),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("secret"),
        "panel-secret-key-0123456789abcdef-xyz",
    )
    .unwrap();
    std::fs::write(dir.path().join("s3-secret"), "s3-secret-value-987654").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_restic-backups"))
        .args(["config", "check", side, "--config"])
        .arg(&config)
        .env("RESTIC_BACKUPS_AGENT_WINGS_CONFIG", "/dev/null")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_agent_settings_are_checked_and_shown_without_secrets() {
    let (ok, out, err) = check(
        "agent",
        "listen = \"127.0.0.1:0\"\ntoken = \"check-token-0123456789\"\nrepo_root = \"{dir}/restic\"\n\
         repository = \"s3:https://s3.example.com/bucket/{server_uuid}\"\n\
         s3_access_key_id = \"AKIDEXAMPLE\"\ns3_secret_access_key_file = \"{dir}/s3-secret\"\n",
        &[("RESTIC_BACKUPS_AGENT_MAX_PARALLEL_JOBS", "3")],
    );
    assert!(ok, "{out}{err}");
    assert!(out.starts_with("agent settings are valid:\n"), "{out}");
    for line in [
        "  token = the token setting",
        "  repository = s3:https://s3.example.com/bucket/{server_uuid}",
        "  max_parallel_jobs = 3",
        "  copy_to = none",
    ] {
        assert!(out.contains(line), "{line:?} missing from:\n{out}");
    }
    for secret in ["check-token-0123456789", "s3-secret-value-987654"] {
        assert!(
            !out.contains(secret) && !err.contains(secret),
            "{secret} shown"
        );
    }

    // A misspelt key, a bad number: refused, said once, non-zero.
    let (ok, out, err) = check("agent", "listen = \"127.0.0.1:0\"\ntokn = \"x\"\n", &[]);
    assert!(!ok && out.is_empty(), "{out}");
    assert!(err.contains("unknown field `tokn`"), "{err}");
    assert_eq!(err.matches("unknown field").count(), 1, "said once: {err}");
    let (ok, _, err) = check(
        "agent",
        "token = \"check-token-0123456789\"\nmax_parallel_jobs = 0\n",
        &[],
    );
    assert!(!ok, "{err}");
    assert!(err.contains("max_parallel_jobs"), "{err}");
}

#[test]
fn the_panel_settings_are_checked_and_the_database_password_hidden() {
    let (ok, out, err) = check(
        "panel",
        "listen = \"127.0.0.1:0\"\ndatabase_url = \"postgres://panel:db-pass-123@db.example:5432/panel\"\n\
         state_dir = \"{dir}/state\"\nsecret_key_file = \"{dir}/secret\"\n",
        &[],
    );
    assert!(ok, "{out}{err}");
    assert!(out.starts_with("panel settings are valid:\n"), "{out}");
    assert!(
        out.contains("  database_url = postgres://panel:***@db.example:5432/panel"),
        "{out}"
    );
    assert!(out.contains("  secret_key = set"), "{out}");
    for secret in ["db-pass-123", "panel-secret-key-0123456789abcdef-xyz"] {
        assert!(
            !out.contains(secret) && !err.contains(secret),
            "{secret} shown"
        );
    }
    let (ok, _, err) = check("panel", "listen = \"127.0.0.1:0\"\n", &[]);
    assert!(!ok);
    assert!(err.contains("no secret key configured"), "{err}");
}

#[test]
fn version_names_the_commit() {
    let out = Command::new(env!("CARGO_BIN_EXE_restic-backups"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let commit = text
        .trim()
        .strip_prefix(concat!(
            "restic-backups ",
            env!("CARGO_PKG_VERSION"),
            " (commit "
        ))
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        commit == "unknown"
            || (commit.len() == 12 && commit.bytes().all(|b| b.is_ascii_hexdigit())),
        "{text}"
    );
}

/// The setting names in the first column of the settings table that
/// follows `part` ("## The agent") in the README.
fn documented_keys(readme: &str, part: &str) -> Vec<String> {
    let from = readme.find(part).expect("the README part");
    let rest = &readme[from..];
    let table = &rest[rest.find("### Settings").expect("its settings")..];
    let table = &table[..table[4..].find("\n### ").map_or(table.len(), |n| n + 4)];
    let mut keys = Vec::new();
    for row in table.lines().filter(|l| l.starts_with("| `")) {
        let first = row.split('|').nth(1).unwrap_or_default();
        for (i, token) in first.split('`').enumerate() {
            // `[pterodactyl] url`, `[smtp] host`: the key inside its table.
            let token = token.split_once("] ").map_or(token, |(_, key)| key);
            if i % 2 == 1 && !token.starts_with('_') {
                keys.push(token.to_owned());
            }
        }
    }
    keys
}

#[test]
fn the_deploy_examples_are_valid_and_name_every_documented_key() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    for (side, file, part, secret) in [
        (
            "agent",
            "deploy/agent.toml.example",
            "## The agent",
            "agent.token",
        ),
        (
            "panel",
            "deploy/panel.toml.example",
            "## The panel",
            "panel.secret",
        ),
    ] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        let keys = documented_keys(&readme, part);
        assert!(keys.len() > 15, "{side}: too few documented keys: {keys:?}");
        for key in &keys {
            assert!(text.contains(key.as_str()), "{file} does not name {key}");
        }
        // As installed: its secret files in /etc/restic-backups.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(secret),
            "example-secret-0123456789abcdef-0123456789",
        )
        .unwrap();
        let here = text.replace(
            "/etc/restic-backups/",
            &format!("{}/", dir.path().display()),
        );
        let (ok, out, err) = check(side, &here, &[]);
        assert!(ok, "{file}: {out}{err}");
    }
}

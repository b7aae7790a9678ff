//! The agent refuses to start with a clear message when restic or its
//! settings are not usable.

use std::process::Command;

fn agent_with(toml: &str, env: &[(&str, &str)]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agent.toml");
    std::fs::write(&config, toml).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_restic-backups"))
        .arg("agent")
        .arg("--config")
        .arg(&config)
        .env("RESTIC_BACKUPS_AGENT_WINGS_CONFIG", "/dev/null")
        .env("RESTIC_BACKUPS_AGENT_REPO_ROOT", dir.path().join("restic"))
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_missing_or_old_restic_stops_the_agent_with_a_clear_message() {
    let token = "token = \"startup-token-0123456789\"\nlisten = \"127.0.0.1:0\"\n";
    let (ok, err) = agent_with(
        &format!("{token}restic_bin = \"/nonexistent/restic\"\n"),
        &[],
    );
    assert!(!ok);
    assert!(
        err.contains("restic was not found at /nonexistent/restic"),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("restic");
    std::fs::write(
        &old,
        "#!/bin/sh\necho 'restic 0.12.1 compiled with go1.16 on linux/amd64'\n",
    )
    .unwrap();
    std::fs::set_permissions(&old, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let (ok, err) = agent_with(&format!("{token}restic_bin = \"{}\"\n", old.display()), &[]);
    assert!(!ok);
    assert!(
        err.contains("restic 0.12.1 is too old; version 0.14.0 or newer is required"),
        "{err}"
    );
}

#[test]
fn bad_settings_stop_the_agent_with_a_clear_message() {
    let (ok, err) = agent_with("listen = \"127.0.0.1:0\"\n", &[]);
    assert!(!ok);
    assert!(err.contains("no node token configured"), "{err}");
    let (ok, err) = agent_with(
        "token = \"startup-token-0123456789\"\nlisten = \"nowhere\"\n",
        &[],
    );
    assert!(!ok);
    assert!(err.contains("setting listen"), "{err}");
    let (ok, err) = agent_with(
        "token = \"startup-token-0123456789\"\n",
        &[("RESTIC_BACKUPS_AGENT_MAX_PARALLEL_JOBS", "many")],
    );
    assert!(!ok);
    assert!(err.contains("max_parallel_jobs"), "{err}");
    assert!(
        !err.contains("startup-token-0123456789"),
        "the token is in an error: {err}"
    );
}

//! A game server's owner controls everything inside their server directory
//! (files, symlinks, fake journals) and may be hostile, while the agent runs
//! as root. Each test plants what such an owner could plant and proves that
//! nothing outside the server directory changes.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use testkit::{TestAgent, manifest};

const KEY: &str = "tenant-safety-key-81f2";

/// A host folder outside every server directory, with a file worth
/// protecting.
fn host_folder(agent: &TestAgent) -> PathBuf {
    let victim = agent.dir.path().join("victim");
    fs::create_dir_all(victim.join("nested")).unwrap();
    fs::write(victim.join("important.conf"), "original\n").unwrap();
    fs::write(victim.join("nested/keep.txt"), "keep\n").unwrap();
    victim
}

/// What a tenant writes into their own server directory from SFTP.
fn plant_inner_journal(server_dir: &Path, journal: serde_json::Value) -> PathBuf {
    let work = server_dir.join(".restic-restore");
    fs::create_dir_all(&work).unwrap();
    fs::write(work.join("journal.json"), journal.to_string()).unwrap();
    work
}

#[tokio::test]
async fn a_journal_planted_in_the_server_directory_is_never_read() {
    let agent = TestAgent::start();
    let server = agent.add_server();
    let dir = agent.data_dir().join(&server);
    let victim = host_folder(&agent);
    let work = plant_inner_journal(
        &dir,
        json!({"phase": "clearing", "server_dir": victim, "truncate": true}),
    );
    fs::create_dir_all(work.join("new")).unwrap();
    fs::write(work.join("new/important.conf"), "attacker\n").unwrap();
    let (victim_before, server_before) = (manifest(&victim), manifest(&dir));

    let agent = agent.restart();
    assert_eq!(manifest(&victim), victim_before, "a host folder changed");
    assert_eq!(
        fs::read_to_string(victim.join("important.conf")).unwrap(),
        "original\n"
    );
    assert_eq!(manifest(&dir), server_before, "the planted files moved");
    assert!(!agent.log().contains("repaired an interrupted restore"));
}

#[tokio::test]
async fn a_planted_journal_with_a_symlinked_staging_folder_pulls_in_nothing() {
    let agent = TestAgent::start();
    let server = agent.add_server();
    let dir = agent.data_dir().join(&server);
    let victim = host_folder(&agent);
    let work = plant_inner_journal(
        &dir,
        json!({"phase": "filling", "server_dir": dir, "truncate": true}),
    );
    symlink(&victim, work.join("new")).unwrap();
    let (victim_before, server_before) = (manifest(&victim), manifest(&dir));

    let agent = agent.restart();
    assert_eq!(manifest(&victim), victim_before, "host files were moved");
    assert_eq!(manifest(&dir), server_before);
    assert!(!dir.join("important.conf").exists());
    drop(agent);
}

#[tokio::test]
async fn a_symlinked_server_directory_is_refused_and_its_target_untouched() {
    let agent = TestAgent::start();
    let server = agent.add_server();
    let dir = agent.data_dir().join(&server);
    let id = agent.backup(&server, KEY).await;
    let victim = host_folder(&agent);
    fs::remove_dir_all(&dir).unwrap();
    symlink(&victim, &dir).unwrap();
    let victim_before = manifest(&victim);

    let base = agent.backups_url(&server);
    for (method, url, body) in [
        (Method::POST, base.clone(), json!({})),
        (
            Method::POST,
            format!("{base}/{id}/restore"),
            json!({"truncate": true}),
        ),
        (
            Method::POST,
            format!("{base}/{id}/restore"),
            json!({"truncate": false}),
        ),
    ] {
        let (status, code) = agent.refusal(method, &url, KEY, Some(body)).await;
        assert_eq!((status, code.as_str()), (404, "server_not_found"), "{url}");
    }
    assert_eq!(manifest(&victim), victim_before);
}

#[tokio::test]
async fn a_crashed_restore_is_not_completed_through_a_server_directory_turned_symlink() {
    let mut agent = TestAgent::start_with_env(
        &[],
        &[("RESTIC_BACKUPS_AGENT_FAILPOINT", "restore-after-clear")],
    );
    let server = agent.add_server();
    let dir = agent.data_dir().join(&server);
    let id = agent.backup(&server, KEY).await;
    let url = format!("{}/{id}/restore", agent.backups_url(&server));
    let (status, _) = agent.call(Method::POST, &url, KEY, Some(json!({}))).await;
    assert_eq!(status, 202);
    assert!(agent.wait_exit(Duration::from_secs(120)), "no crash");

    // While the agent is down the directory becomes a link to a host folder.
    let victim = host_folder(&agent);
    fs::remove_dir(&dir).unwrap();
    symlink(&victim, &dir).unwrap();
    let victim_before = manifest(&victim);
    let agent = agent.restart();
    assert_eq!(
        manifest(&victim),
        victim_before,
        "the repair wrote through a link"
    );
    assert!(
        agent
            .log()
            .contains("could not repair an interrupted restore")
    );
}

#[tokio::test]
async fn a_merging_restore_does_not_write_through_a_planted_folder_link() {
    let agent = TestAgent::start();
    let server = agent.add_server();
    let dir = agent.data_dir().join(&server);
    let id = agent.backup(&server, KEY).await;
    let snapshot_world = manifest(&dir.join("world"));
    // The tenant swaps `world` for a link to a host folder.
    let victim = host_folder(&agent);
    fs::remove_dir_all(dir.join("world")).unwrap();
    symlink(&victim, dir.join("world")).unwrap();
    let victim_before = manifest(&victim);

    let url = format!("{}/{id}/restore", agent.backups_url(&server));
    let (status, res) = agent
        .call(Method::POST, &url, KEY, Some(json!({"truncate": false})))
        .await;
    assert_eq!(status, 202, "{res}");
    let view = agent
        .wait_job(&server, res["job_id"].as_str().unwrap())
        .await;
    assert_eq!(view["status"], "succeeded", "{view}");
    assert_eq!(
        manifest(&victim),
        victim_before,
        "the restore wrote into a host folder"
    );
    assert!(fs::symlink_metadata(dir.join("world")).unwrap().is_dir());
    assert_eq!(manifest(&dir.join("world")), snapshot_world);
}

#[tokio::test]
async fn restore_staging_is_agent_only() {
    use std::os::unix::fs::PermissionsExt;
    let agent = TestAgent::start();
    let server = agent.add_server();
    let id = agent.backup(&server, KEY).await;
    let url = format!("{}/{id}/restore", agent.backups_url(&server));
    let (status, res) = agent.call(Method::POST, &url, KEY, Some(json!({}))).await;
    assert_eq!(status, 202, "{res}");
    agent
        .wait_job(&server, res["job_id"].as_str().unwrap())
        .await;
    let root = agent.data_dir().join(".restic-restore");
    let meta = fs::symlink_metadata(&root).unwrap();
    assert!(meta.is_dir());
    assert_eq!(meta.permissions().mode() & 0o777, 0o700);
    assert!(
        !agent
            .data_dir()
            .join(&server)
            .join(".restic-restore")
            .exists()
    );
}

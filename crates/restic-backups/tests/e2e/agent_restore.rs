//! Restore through the agent: exact content and metadata, a safety snapshot
//! first, and crash safety (killed agent, crash in the middle of the swap).

use std::fs;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use testkit::{TestAgent, manifest};

const KEY: &str = "restore-key-5a4b3c2d";
const GIB: u64 = 1 << 30;

fn chown(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).unwrap();
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// A server directory with the awkward parts of a real one.
fn fill_tricky(dir: &Path, big_len: u64) {
    fs::create_dir_all(dir.join("world/region")).unwrap();
    fs::create_dir_all(dir.join("plugins/empty")).unwrap();
    fs::create_dir_all(dir.join("logs")).unwrap();
    fs::create_dir_all(dir.join("wörld ✓/ñ")).unwrap();
    fs::write(dir.join("server.properties"), "motd=Hi\n").unwrap();
    fs::write(
        dir.join("world/level.dat"),
        testkit::pseudo_random(3, 200_000),
    )
    .unwrap();
    fs::write(
        dir.join("start.sh"),
        "#!/bin/sh\nexec java -jar server.jar\n",
    )
    .unwrap();
    chmod(&dir.join("start.sh"), 0o755);
    fs::write(dir.join("secret.txt"), "rcon.password=x\n").unwrap();
    chmod(&dir.join("secret.txt"), 0o600);
    chown(&dir.join("secret.txt"), 1234, 5678);
    chown(&dir.join("plugins"), 999, 998);
    fs::write(dir.join("wörld ✓/ñ/ключ 日本.txt"), "unicode").unwrap();
    fs::write(dir.join("logs/2026.log"), "log line\n").unwrap();
    symlink("logs/2026.log", dir.join("latest.log")).unwrap();
    symlink("/nonexistent/target", dir.join("broken-link")).unwrap();
    // A large file, mostly holes, with data at both ends and the middle.
    let big = fs::File::create(dir.join("world/region/r.0.0.mca")).unwrap();
    big.set_len(big_len).unwrap();
    big.write_all_at(b"head", 0).unwrap();
    big.write_all_at(&testkit::pseudo_random(4, 1 << 20), big_len / 2)
        .unwrap();
    big.write_all_at(b"tail", big_len - 4).unwrap();
}

async fn restore(agent: &TestAgent, server: &str, id: &str, body: Value) -> Value {
    agent.restore(server, KEY, id, body).await
}

#[tokio::test]
async fn restore_brings_back_exact_content_and_metadata_and_can_be_undone() {
    let agent = TestAgent::start();
    let server = testkit::new_uuid();
    let dir = agent.data_dir().join(&server);
    fs::create_dir_all(&dir).unwrap();
    fill_tricky(&dir, GIB);
    chmod(&dir, 0o751);
    chown(&dir, 4321, 4321);
    let inode = fs::metadata(&dir).unwrap().ino();
    let id = agent.backup(&server, KEY).await;
    let original = manifest(&dir);

    // A player wrecks the server.
    fs::remove_file(dir.join("start.sh")).unwrap();
    fs::write(dir.join("world/level.dat"), "corrupted").unwrap();
    fs::write(dir.join("junk.txt"), "junk").unwrap();
    chmod(&dir.join("secret.txt"), 0o644);
    fs::remove_dir(dir.join("plugins/empty")).unwrap();
    fs::remove_file(dir.join("latest.log")).unwrap();
    symlink("elsewhere", dir.join("latest.log")).unwrap();
    fs::File::options()
        .write(true)
        .open(dir.join("world/region/r.0.0.mca"))
        .unwrap()
        .write_all_at(b"XXXX", 12345)
        .unwrap();
    let wrecked = manifest(&dir);
    assert_ne!(wrecked, original);

    let view = restore(&agent, &server, &id, json!({})).await;
    assert_eq!(manifest(&dir), original, "the restored tree differs");
    // Without Wings' settings the game server is not stopped (or started).
    assert_eq!(
        view["result"]["game_server"],
        json!({"stop": "no_wings", "started_again": false})
    );
    assert_eq!(view["progress"]["phase"], "restoring");
    let meta = fs::metadata(&dir).unwrap();
    assert_eq!(
        (meta.ino(), meta.mode() & 0o7777, meta.uid(), meta.gid()),
        (inode, 0o751, 4321, 4321)
    );
    assert!(
        !work_folder(&agent, &server).exists(),
        "work folder left behind"
    );

    // The safety snapshot holds the wrecked state and undoes the restore.
    let safety = view["result"]["safety_snapshot"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let list = agent.list(&server, KEY).await;
    let safety_item = list["backups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["id"] == safety.as_str())
        .unwrap();
    assert_eq!(safety_item["tags"], json!(["pre-restore"]));
    restore(&agent, &server, &safety, json!({"truncate": true})).await;
    assert_eq!(
        manifest(&dir),
        wrecked,
        "undo did not bring back the previous state"
    );
}

#[tokio::test]
async fn restore_without_truncate_keeps_files_the_snapshot_lacks() {
    let agent = TestAgent::start();
    let server = agent.add_server();
    let dir = agent.data_dir().join(&server);
    let id = agent.backup(&server, KEY).await;
    let level = fs::read(dir.join("world/level.dat")).unwrap();
    fs::write(dir.join("world/level.dat"), "changed").unwrap();
    fs::write(dir.join("world/new-region.mca"), "kept").unwrap();
    restore(&agent, &server, &id[..8], json!({"truncate": false})).await;
    assert_eq!(fs::read(dir.join("world/level.dat")).unwrap(), level);
    assert_eq!(
        fs::read_to_string(dir.join("world/new-region.mca")).unwrap(),
        "kept"
    );

    restore(&agent, &server, &id, json!({"truncate": true})).await;
    assert!(!dir.join("world/new-region.mca").exists());
}

/// The files are gone (an emptied server folder): nothing to keep, so no
/// safety snapshot (restic refuses one of nothing), and the restore brings
/// them back. A backup of the empty folder is refused, saying why.
#[tokio::test]
async fn an_emptied_server_folder_is_restored_without_a_safety_snapshot() {
    let agent = TestAgent::start();
    let server = agent.add_server();
    let dir = agent.data_dir().join(&server);
    let id = agent.backup(&server, KEY).await;
    let level = fs::read(dir.join("world/level.dat")).unwrap();
    for entry in fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            fs::remove_dir_all(&path).unwrap();
        } else {
            fs::remove_file(&path).unwrap();
        }
    }
    let (status, body) = agent
        .call(
            Method::POST,
            &agent.backups_url(&server),
            KEY,
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "nothing_to_back_up", "{body}");
    let view = restore(&agent, &server, &id, json!({})).await;
    assert_eq!(view["result"]["safety_snapshot"], Value::Null, "{view}");
    assert_eq!(fs::read(dir.join("world/level.dat")).unwrap(), level);
    assert_eq!(agent.list(&server, KEY).await["total"], 1);
}

#[tokio::test]
async fn restore_refuses_unknown_snapshots_and_bad_bodies() {
    let agent = TestAgent::start();
    let server = agent.add_server();
    let id = agent.backup(&server, KEY).await;
    let base = agent.backups_url(&server);
    let unknown = "ab".repeat(8);
    for (target, key, body, expected) in [
        (unknown.as_str(), KEY, json!({}), (404, "backup_not_found")),
        (
            id.as_str(),
            KEY,
            json!({"truncate": "yes"}),
            (400, "invalid_json"),
        ),
        (id.as_str(), "wrong-key", json!({}), (403, "wrong_key")),
    ] {
        let url = format!("{base}/{target}/restore");
        let (status, code) = agent.refusal(Method::POST, &url, key, Some(body)).await;
        assert_eq!((status, code.as_str()), expected, "{url}");
    }
}

/// Where the agent stages a restore of `server` (gone when none runs).
fn work_folder(agent: &TestAgent, server: &str) -> PathBuf {
    agent.data_dir().join(".restic-restore").join(server)
}

/// A server with a big region file, backed up, then changed: its ID, its
/// folder, the backup's ID, the restore's URL and where restic stages the
/// big file.
async fn big_backup_then_changed(
    agent: &TestAgent,
    seed: u64,
    len: usize,
) -> (String, PathBuf, String, String, PathBuf) {
    let server = agent.add_server();
    let dir = agent.data_dir().join(&server);
    fs::write(dir.join("world/big.mca"), testkit::pseudo_random(seed, len)).unwrap();
    let id = agent.backup(&server, KEY).await;
    fs::write(dir.join("world/big.mca"), "the new state").unwrap();
    let url = format!("{}/{id}/restore", agent.backups_url(&server));
    let staged = work_folder(agent, &server).join("new/world/big.mca");
    (server, dir, id, url, staged)
}

#[tokio::test]
async fn an_agent_killed_while_restic_restores_leaves_the_old_content() {
    let mut agent = TestAgent::start();
    let (server, dir, id, url, staged) = big_backup_then_changed(&agent, 11, 400 << 20).await;
    fs::write(dir.join("added-later.txt"), "x").unwrap();
    let before = manifest(&dir);

    let (status, _) = agent.call(Method::POST, &url, KEY, Some(json!({}))).await;
    assert_eq!(status, 202);
    let deadline = Instant::now() + Duration::from_secs(120);
    while fs::metadata(&staged).map(|m| m.len()).unwrap_or(0) == 0 {
        assert!(
            Instant::now() < deadline,
            "restic never started writing the restore"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    agent.kill_hard();
    assert_eq!(
        manifest(&dir),
        before,
        "the server directory changed before the swap"
    );

    let agent = agent.restart();
    assert_eq!(manifest(&dir), before, "the repair touched the old content");
    assert!(!work_folder(&agent, &server).exists());
    assert!(agent.log().contains("repaired an interrupted restore"));
    // And a restore after that works.
    restore(&agent, &server, &id, json!({})).await;
    assert!(!dir.join("added-later.txt").exists());
}

/// restic restores into the work folder while the safety snapshot is
/// taken; when the safety snapshot fails, restic's restore is stopped at
/// once, its work folder goes, and the server directory is as it was.
#[tokio::test]
async fn a_failed_safety_snapshot_stops_the_restore_running_beside_it() {
    let agent = TestAgent::start_with_env(
        &[],
        &[("RESTIC_BACKUPS_AGENT_FAILPOINT", "safety-snapshot")],
    );
    let (server, dir, _, url, staged) = big_backup_then_changed(&agent, 12, 600 << 20).await;
    let before = manifest(&dir);

    let started = Instant::now();
    let (status, res) = agent.call(Method::POST, &url, KEY, Some(json!({}))).await;
    assert_eq!(status, 202, "{res}");
    let job_url = format!(
        "{}/jobs/{}",
        agent.backups_url(&server),
        res["job_id"].as_str().unwrap()
    );
    let mut saw_restic_writing = false;
    let view = loop {
        saw_restic_writing |= fs::metadata(&staged).is_ok_and(|m| m.len() > 0);
        let (_, view) = agent.call(Method::GET, &job_url, "unused", None).await;
        if view["status"] == "failed" || view["status"] == "succeeded" {
            break view;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "{view}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(view["status"], "failed", "{view}");
    assert_eq!(view["error"]["code"], "store_full", "{view}");
    assert!(
        saw_restic_writing,
        "restic's restore ran beside the safety snapshot"
    );
    assert_eq!(manifest(&dir), before, "the server directory changed");
    assert!(
        !work_folder(&agent, &server).exists(),
        "the work folder was left"
    );
    let repo = agent.repo_root().join(&server);
    assert_eq!(
        fs::read_dir(repo.join("locks")).unwrap().count(),
        0,
        "restic left a lock"
    );
}

#[tokio::test]
async fn a_crash_in_the_middle_of_the_swap_is_completed_at_the_next_start() {
    let mut agent = TestAgent::start_with_env(
        &[],
        &[("RESTIC_BACKUPS_AGENT_FAILPOINT", "restore-after-clear")],
    );
    let server = agent.add_server();
    let dir = agent.data_dir().join(&server);
    let id = agent.backup(&server, KEY).await;
    let snapshot_state = manifest(&dir);
    fs::write(dir.join("world/level.dat"), "changed").unwrap();
    fs::write(dir.join("junk.txt"), "junk").unwrap();

    let url = format!("{}/{id}/restore", agent.backups_url(&server));
    let (status, res) = agent.call(Method::POST, &url, KEY, Some(json!({}))).await;
    assert_eq!(status, 202);
    let job = res["job_id"].as_str().unwrap().to_owned();
    assert!(
        agent.wait_exit(Duration::from_secs(120)),
        "the failpoint did not stop the agent"
    );
    assert!(
        manifest(&dir).is_empty(),
        "the crash should have come with the directory cleared"
    );

    let agent = agent.restart();
    assert_eq!(
        manifest(&dir),
        snapshot_state,
        "the interrupted swap was not completed"
    );
    assert!(!work_folder(&agent, &server).exists());
    // The job reads as what happened: the restore was completed.
    let view = agent.wait_job(&server, &job).await;
    assert_eq!(view["status"], "succeeded", "{view}");
    assert_eq!(view["result"]["completed_at_restart"], true);
}

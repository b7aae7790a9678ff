//! Repositories on remote stores (issue 15): the agent keeps each server's
//! repository on a real S3 server (Garage), an SFTP server (OpenSSH) or a
//! restic REST server (rclone), and every feature works there. Each test
//! runs its story on all three.

use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use testkit::TestAgent;
use testkit::panel::{Db, World};
use testkit::stores::{self, Kind, TestStore};

const KEY: &str = "offsite-key-4f3e2d1c0b";
const NEW_KEY: &str = "offsite-rotated-9a8b7c6d5e";

fn agent_on(store: &TestStore, extra: &[&str]) -> TestAgent {
    let mut lines: Vec<&str> = store.agent_toml.iter().map(String::as_str).collect();
    lines.extend_from_slice(extra);
    TestAgent::start_with(&lines)
}

async fn job(agent: &TestAgent, server: &str, res: &Value) -> Value {
    agent
        .wait_job(server, res["job_id"].as_str().expect("a job"))
        .await
}

fn snapshot_count(store: &TestStore, server: &str, key: &str) -> usize {
    let out = store.restic(server, key, None, &["snapshots", "--json", "--no-lock"]);
    serde_json::from_str::<Vec<Value>>(&out).unwrap().len()
}

fn restic_runs(agent: &TestAgent) -> usize {
    agent.log().matches("running restic").count()
}

/// The whole story on one store.
async fn story(kind: Kind) {
    let store = TestStore::start(kind);
    let agent = agent_on(&store, &["remote_recheck_secs = 5"]);
    let server = agent.add_server();
    let base = agent.backups_url(&server);
    let dir = agent.data_dir().join(&server);

    // Nothing yet: the repository is created by the first backup.
    let (status, code) = agent.refusal(Method::GET, &base, KEY, None).await;
    assert_eq!((status, code.as_str()), (404, "repository_not_found"));
    let first = agent.backup(&server, KEY).await;
    assert_eq!(snapshot_count(&store, &server, KEY), 1, "{kind:?}");
    assert!(
        !agent.repo_root().join(&server).exists(),
        "nothing on the node's disk"
    );

    // The importer's key check works on the store: the key opens it, a
    // wrong one is refused, nothing is moved.
    let (status, res) = agent
        .call(
            Method::POST,
            &format!("{base}/adopt"),
            KEY,
            Some(json!({"dry_run": false})),
        )
        .await;
    assert_eq!(status, 200, "{res}");
    assert_eq!(res["adopted_from"], Value::Null, "{res}");
    let (status, code) = agent
        .refusal(
            Method::POST,
            &format!("{base}/adopt"),
            "not-the-key-123456",
            Some(json!({"dry_run": true})),
        )
        .await;
    assert_eq!((status, code.as_str()), (403, "wrong_key"));

    // Lock, refused delete, unlock.
    let (status, body) = agent
        .call(Method::POST, &format!("{base}/{first}/lock"), KEY, None)
        .await;
    assert_eq!((status, &body["locked"]), (200, &json!(true)), "{body}");
    let list = agent.list(&server, KEY).await;
    assert_eq!(list["backups"][0]["locked"], true, "{list}");
    let (status, code) = agent
        .refusal(Method::DELETE, &format!("{base}/{first}"), KEY, None)
        .await;
    assert_eq!((status, code.as_str()), (409, "backup_locked"));
    let (status, _) = agent
        .call(Method::POST, &format!("{base}/{first}/unlock"), KEY, None)
        .await;
    assert_eq!(status, 200);

    // A second backup of changed files; stats.
    std::fs::write(dir.join("server.properties"), "motd=changed\n").unwrap();
    let second = agent.backup(&server, KEY).await;
    let (status, stats) = agent
        .call(Method::GET, &format!("{base}/stats"), KEY, None)
        .await;
    assert_eq!(status, 200, "{stats}");
    assert_eq!(stats["snapshots_count"], 2, "{stats}");
    assert!(stats["total_size"].as_u64().unwrap() > 0, "{stats}");

    // The list is served without asking the store again...
    agent.list(&server, KEY).await;
    let runs = restic_runs(&agent);
    for _ in 0..5 {
        agent.list(&server, KEY).await;
    }
    assert_eq!(restic_runs(&agent), runs, "a fresh list asked the store");
    // ...and a snapshot made by hand shows within remote_recheck_secs.
    store.restic(
        &server,
        KEY,
        Some(&dir),
        &["backup", "--host", "by-hand", "."],
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if agent.list(&server, KEY).await["total"] == 3 {
            break;
        }
        assert!(Instant::now() < deadline, "hand-made snapshot never listed");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // Download the first snapshot and find the original file in it.
    let res = agent
        .req(
            Method::GET,
            &format!("{base}/{first}/download?format=tar.gz"),
            KEY,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let unpacked = tempfile::tempdir().unwrap();
    let archive = unpacked.path().join("backup.tar.gz");
    std::fs::write(&archive, res.bytes().await.unwrap()).unwrap();
    let ok = std::process::Command::new("tar")
        .arg("-xzf")
        .arg(&archive)
        .arg("-C")
        .arg(unpacked.path())
        .status()
        .unwrap();
    assert!(ok.success());
    assert_eq!(
        std::fs::read_to_string(unpacked.path().join("server.properties")).unwrap(),
        "motd=A test server\nmax-players=20\n"
    );

    // Restore the first snapshot in place.
    let (status, res) = agent
        .call(
            Method::POST,
            &format!("{base}/{first}/restore"),
            KEY,
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 202, "{res}");
    let view = job(&agent, &server, &res).await;
    assert_eq!(view["status"], "succeeded", "{view}");
    assert_eq!(
        std::fs::read_to_string(dir.join("server.properties")).unwrap(),
        "motd=A test server\nmax-players=20\n"
    );

    // Retention keeps the newest; safety snapshots and locked ones stay.
    let (status, res) = agent
        .call(
            Method::POST,
            &format!("{base}/retention"),
            KEY,
            Some(json!({"keep_last": 1})),
        )
        .await;
    assert_eq!(status, 200, "{res}");
    let after = agent.list(&server, KEY).await;
    let ids: Vec<&str> = after["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap())
        .collect();
    assert!(!ids.contains(&second.as_str()), "{after}");
    assert_eq!(
        after["total"].as_u64().unwrap() as usize,
        snapshot_count(&store, &server, KEY)
    );

    // Key rotation: the new key opens it, the old one no longer does.
    let (status, res) = agent
        .call(
            Method::POST,
            &format!("{base}/key"),
            KEY,
            Some(json!({"new_password": NEW_KEY})),
        )
        .await;
    assert_eq!(status, 200, "{res}");
    agent.list(&server, NEW_KEY).await;
    let (status, code) = agent.refusal(Method::GET, &base, KEY, None).await;
    assert_eq!((status, code.as_str()), (403, "wrong_key"));

    // Archive on server deletion: in place, listed with where it is, and
    // emptied when deleted.
    let (status, res) = agent
        .call(Method::POST, &format!("{base}/archive"), NEW_KEY, None)
        .await;
    assert_eq!(status, 202, "{res}");
    let view = job(&agent, &server, &res).await;
    assert_eq!(view["status"], "succeeded", "{view}");
    let archives_url = format!("{}/api/restic/archive", agent.url);
    let (_, list) = agent.call(Method::GET, &archives_url, "", None).await;
    let archived = &list["archives"][0];
    assert_eq!(archived["server_uuid"], server.as_str(), "{list}");
    let shown = archived["store"].as_str().unwrap();
    assert!(
        shown.starts_with(store.name()) && shown.contains(&server),
        "{shown}"
    );
    for secret in &store.secrets {
        assert!(!list.to_string().contains(secret.as_str()));
    }
    let name = archived["name"].as_str().unwrap().to_owned();
    let (status, code) = agent
        .refusal(Method::DELETE, &format!("{archives_url}/{name}"), "", None)
        .await;
    assert_eq!((status, code.as_str()), (400, "missing_key"));
    let delete = agent
        .http
        .delete(format!("{archives_url}/{name}"))
        .bearer_auth(testkit::TOKEN)
        .header("X-Restic-Password", NEW_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status(), 204);
    assert_eq!(snapshot_count(&store, &server, NEW_KEY), 0);
    let (_, list) = agent.call(Method::GET, &archives_url, "", None).await;
    assert_eq!(list["archives"], json!([]));

    // No secret of the store in the agent's log.
    let log = agent.log();
    for secret in &store.secrets {
        assert!(!log.contains(secret.as_str()), "{kind:?} secret in the log");
    }
}

#[tokio::test]
async fn every_feature_works_on_s3() {
    story(Kind::S3).await;
}

#[tokio::test]
async fn every_feature_works_on_sftp() {
    story(Kind::Sftp).await;
}

#[tokio::test]
async fn every_feature_works_on_a_rest_server() {
    story(Kind::Rest).await;
}

/// Through the panel: the nodes page says where repositories live, a
/// deleted server's remote repository is archived in place and listed with
/// its store and key, and deleting the archive empties it with that key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_panel_shows_the_store_and_archives_in_place() {
    const API: &str = "/extensions/resticbackups";
    let store = TestStore::start(Kind::Rest);
    let agent = agent_on(&store, &[]);
    let mut w = World::with_agent(Db::Sqlite, agent, 1, 0).await;
    let server = w.servers[0].clone();
    w.owner.backup(&server).await;
    let key = w.panel.key_of(&w.admin, &server).await;
    assert_eq!(snapshot_count(&store, &server, &key), 1);

    let (s, nodes) = w.admin.get(&format!("{API}/admin/nodes")).await;
    assert_eq!(s, 200, "{nodes}");
    // The template as configured (with the trailing slash restic's REST
    // backend wants), no credentials.
    let template = store.agent_toml[0]
        .trim_start_matches("repository = \"")
        .trim_end_matches('"')
        .to_owned()
        + "/";
    assert_eq!(nodes[0]["repository"], template.as_str(), "{nodes}");

    let (s, v) = w.admin.delete_server(&server).await;
    assert_eq!((s, v["status"].as_str()), (202, Some("succeeded")), "{v}");
    let (_, list) = w.admin.get(&format!("{API}/admin/archived-repos")).await;
    let archive = &list["archives"][0];
    assert_eq!(archive["server_uuid"], server.as_str(), "{list}");
    assert_eq!(archive["key"], key.as_str());
    let shown = archive["store"].as_str().unwrap();
    assert!(shown.starts_with("rest:http://127.0.0.1:") && shown.contains(&server));
    assert!(!list.to_string().contains(store.secrets[0].as_str()));
    // Archived in place: the final snapshot is there, tagged.
    assert_eq!(snapshot_count(&store, &server, &key), 2);

    let name = archive["name"].as_str().unwrap().to_owned();
    let (s, v) = w
        .admin
        .send(
            Method::DELETE,
            &format!("{API}/admin/archived-repos/{name}"),
            None,
        )
        .await;
    assert_eq!(s, 204, "{v}");
    assert_eq!(snapshot_count(&store, &server, &key), 0);
    let (_, list) = w.admin.get(&format!("{API}/admin/archived-repos")).await;
    assert_eq!(list["archives"], json!([]));
}

/// A second copy (3-2-1): SFTP primary, REST copy. Each backup copies its
/// snapshot there (the copy made with the primary's chunker parameters),
/// the list says which snapshots are copied, and a key rotation rotates
/// both.
#[tokio::test]
async fn backups_are_copied_to_a_second_store() {
    let mut primary = TestStore::start(Kind::Sftp);
    let copy = TestStore::start(Kind::Rest);
    let copy_lines = copy.copy_toml();
    let mut extra: Vec<&str> = copy_lines.iter().map(String::as_str).collect();
    extra.push("remote_recheck_secs = 2");
    let agent = agent_on(&primary, &extra);
    let server = agent.add_server();
    let base = agent.backups_url(&server);
    let dir = agent.data_dir().join(&server);

    let job_id = agent.start_backup(&server, KEY, json!({})).await;
    let view = agent.wait_job(&server, &job_id).await;
    assert_eq!(view["status"], "succeeded", "{view}");
    assert_eq!(view["result"]["copy"]["ok"], true, "{view}");
    let first = view["result"]["snapshot"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(snapshot_count(&copy, &server, KEY), 1);
    let chunker = |store: &TestStore| {
        let config: Value =
            serde_json::from_str(&store.restic(&server, KEY, None, &["cat", "config"])).unwrap();
        config["chunker_polynomial"].clone()
    };
    assert_eq!(chunker(&primary), chunker(&copy), "same chunker parameters");
    let list = agent.list(&server, KEY).await;
    assert_eq!(list["backups"][0]["copied"], true, "{list}");

    // A snapshot made by hand on the primary is not copied until the next
    // backup copies it along.
    primary.restic(
        &server,
        KEY,
        Some(&dir),
        &["backup", "--host", "by-hand", "."],
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let list = agent.list(&server, KEY).await;
    let by_hand = list["backups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["id"] != first.as_str())
        .expect("hand-made snapshot listed")
        .clone();
    assert_eq!(by_hand["copied"], false, "{list}");
    agent.backup(&server, KEY).await;
    let list = agent.list(&server, KEY).await;
    assert!(
        list["backups"]
            .as_array()
            .unwrap()
            .iter()
            .all(|b| b["copied"] == true),
        "{list}"
    );
    assert_eq!(snapshot_count(&copy, &server, KEY), 3);

    // A backup deleted through the agent is forgotten in the copy after the
    // next copy run (one deleted by hand on the repository would stay).
    let (status, _) = agent
        .call(Method::DELETE, &format!("{base}/{first}"), KEY, None)
        .await;
    assert_eq!(status, 204);
    let job_id = agent.start_backup(&server, KEY, json!({})).await;
    let view = agent.wait_job(&server, &job_id).await;
    assert_eq!(view["result"]["copy"]["forgotten"], 1, "{view}");
    let copied: Vec<Value> = serde_json::from_str(&copy.restic(
        &server,
        KEY,
        None,
        &["snapshots", "--json", "--no-lock"],
    ))
    .unwrap();
    assert_eq!(copied.len(), 3);
    assert!(copied.iter().all(|s| s["original"] != first.as_str()));
    let first = by_hand["id"].as_str().unwrap().to_owned();

    // Key rotation covers the copy.
    let (status, res) = agent
        .call(
            Method::POST,
            &format!("{base}/key"),
            KEY,
            Some(json!({"new_password": NEW_KEY})),
        )
        .await;
    assert_eq!(status, 200, "{res}");
    assert_eq!(snapshot_count(&copy, &server, NEW_KEY), 3);

    // The primary down: listing says so, but download and restore read the
    // copy (the restore's safety snapshot goes there too).
    primary.stop();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (status, code) = agent.refusal(Method::GET, &base, NEW_KEY, None).await;
    assert_eq!((status, code.as_str()), (503, "store_unreachable"));
    let res = agent
        .req(
            Method::GET,
            &format!("{base}/{first}/download?format=zip"),
            NEW_KEY,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let zip = res.bytes().await.unwrap();
    assert!(zip.starts_with(b"PK"), "a zip from the copy");
    std::fs::write(dir.join("server.properties"), "motd=broken\n").unwrap();
    let (status, res) = agent
        .call(
            Method::POST,
            &format!("{base}/{first}/restore"),
            NEW_KEY,
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 202, "{res}");
    let view = job(&agent, &server, &res).await;
    assert_eq!(view["status"], "succeeded", "{view}");
    assert_eq!(view["result"]["from_copy"], true, "{view}");
    assert_eq!(view["result"]["safety_snapshot"]["in_copy"], true, "{view}");
    assert_eq!(
        std::fs::read_to_string(dir.join("server.properties")).unwrap(),
        "motd=A test server\nmax-players=20\n"
    );
    assert_eq!(
        snapshot_count(&copy, &server, NEW_KEY),
        4,
        "safety snapshot in the copy"
    );
    primary.restart();

    // The copy down: the backup still succeeds and says the copy failed;
    // the list does not say whether snapshots are copied.
    drop(copy);
    let job_id = agent.start_backup(&server, NEW_KEY, json!({})).await;
    let view = agent.wait_job(&server, &job_id).await;
    assert_eq!(view["status"], "succeeded", "{view}");
    assert_eq!(view["result"]["copy"]["ok"], false, "{view}");
    assert_eq!(
        view["result"]["copy"]["error"]["code"], "store_unreachable",
        "{view}"
    );
    // The list never waits for the copy's store: it answers with the last
    // reading and renews it in the background, so the flag goes once the
    // copy is found unreadable.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let started = Instant::now();
        let list = agent.list(&server, NEW_KEY).await;
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "the list waited"
        );
        if list["backups"][0].get("copied").is_none() {
            break;
        }
        assert!(Instant::now() < deadline, "copied still claimed: {list}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Fills a server with incompressible data so a backup takes a while.
fn fill(dir: &Path, mib: usize) {
    let big = dir.join("world/region");
    for i in 0..mib / 8 {
        std::fs::write(
            big.join(format!("r.{i}.0.mca")),
            testkit::pseudo_random(100 + i as u64, 8 << 20),
        )
        .unwrap();
    }
}

/// The store dies during a backup: the job fails with a clear code, and
/// once the store is back the next backup succeeds and no lock is left.
async fn outage(kind: Kind) {
    let mut store = TestStore::start(kind);
    let agent = agent_on(&store, &[]);
    let server = agent.add_server();
    agent.backup(&server, KEY).await;
    fill(&agent.data_dir().join(&server), 160);

    let job_id = agent.start_backup(&server, KEY, json!({})).await;
    let url = format!("{}/jobs/{job_id}", agent.backups_url(&server));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, view) = agent.call(Method::GET, &url, "", None).await;
        if view["status"] == "running" {
            break;
        }
        assert!(Instant::now() < deadline, "backup never ran: {view}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    store.stop();
    let view = agent
        .wait_job_within(&server, &job_id, Duration::from_secs(900))
        .await;
    assert_eq!(view["status"], "failed", "{kind:?}: {view}");
    assert_eq!(
        view["error"]["code"], "store_unreachable",
        "{kind:?}: {view}"
    );

    store.restart();
    let id = agent.backup(&server, KEY).await;
    let list = agent.list(&server, KEY).await;
    assert_eq!(list["backups"][0]["id"], id.as_str());
    let locks = store.restic(&server, KEY, None, &["list", "locks", "--no-lock"]);
    assert_eq!(locks.trim(), "", "{kind:?}: a stale lock was left");
}

#[tokio::test]
async fn a_store_lost_mid_backup_fails_the_job_and_leaves_no_lock_s3() {
    outage(Kind::S3).await;
}

#[tokio::test]
async fn a_store_lost_mid_backup_fails_the_job_and_leaves_no_lock_sftp() {
    outage(Kind::Sftp).await;
}

#[tokio::test]
async fn a_store_lost_mid_backup_fails_the_job_and_leaves_no_lock_rest() {
    outage(Kind::Rest).await;
}

/// Wrong credentials and a store that is down: clear codes, on requests
/// and on jobs, for every kind.
#[tokio::test]
async fn wrong_credentials_and_a_down_store_give_clear_codes() {
    for kind in stores::ALL {
        let mut store = TestStore::start(kind);
        let wrong = store.agent_toml_with_wrong_secret();
        let lines: Vec<&str> = wrong.iter().map(String::as_str).collect();
        let agent = TestAgent::start_with(&lines);
        let server = agent.add_server();
        let base = agent.backups_url(&server);
        let (status, code) = agent.refusal(Method::GET, &base, KEY, None).await;
        assert_eq!(
            (status, code.as_str()),
            (503, "store_access_denied"),
            "{kind:?}: {}",
            agent.log()
        );
        // A backup is refused before a job is queued.
        let (status, code) = agent
            .refusal(Method::POST, &base, KEY, Some(json!({})))
            .await;
        assert_eq!(
            (status, code.as_str()),
            (503, "store_access_denied"),
            "{kind:?}: {}",
            agent.log()
        );
        for secret in &store.secrets {
            assert!(!agent.log().contains(secret.as_str()));
        }
        drop(agent);

        store.stop();
        let agent = agent_on(&store, &[]);
        let (status, code) = agent
            .refusal(Method::GET, &base_of(&agent, &server), KEY, None)
            .await;
        assert_eq!(
            (status, code.as_str()),
            (503, "store_unreachable"),
            "{kind:?}"
        );
    }
}

fn base_of(agent: &TestAgent, server: &str) -> String {
    agent.backups_url(server)
}

/// S3 only: a bucket that is not there, and a bucket over its quota.
#[tokio::test]
async fn a_missing_bucket_and_a_full_one_are_named() {
    let store = TestStore::start(Kind::S3);
    let lines: Vec<String> = store
        .agent_toml
        .iter()
        .map(|l| l.replace("/restic/node1/", "/no-such-bucket/node1/"))
        .collect();
    let agent = TestAgent::start_with(&lines.iter().map(String::as_str).collect::<Vec<_>>());
    let server = agent.add_server();
    // S3 answers a look at a missing bucket's object like a missing object:
    // no repository, until a backup tries to create one.
    let (status, code) = agent
        .refusal(Method::GET, &agent.backups_url(&server), KEY, None)
        .await;
    assert_eq!((status, code.as_str()), (404, "repository_not_found"));
    let job_id = agent.start_backup(&server, KEY, json!({})).await;
    let view = agent.wait_job(&server, &job_id).await;
    assert_eq!(view["status"], "failed", "{view}");
    assert_eq!(view["error"]["code"], "store_bucket_missing", "{view}");
    drop(agent);

    let agent = agent_on(&store, &[]);
    let server = agent.add_server();
    agent.backup(&server, KEY).await;
    store.set_quota("1MiB");
    fill(&agent.data_dir().join(&server), 16);
    let job_id = agent.start_backup(&server, KEY, json!({})).await;
    let view = agent.wait_job(&server, &job_id).await;
    assert_eq!(view["status"], "failed", "{view}");
    assert_eq!(view["error"]["code"], "store_full", "{view}");
}

//! Archive on server deletion, key rotation (also interrupted), batched prune.

use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use testkit::{TestAgent, restic};

const KEY: &str = "archive-key-1a2b3c4d5e";
const NEW_KEY: &str = "rotated-key-9z8y7x6w5v4u";

fn opens(repo: &std::path::Path, key: &str) -> bool {
    Command::new("restic")
        .env("RESTIC_REPOSITORY", repo)
        .env("RESTIC_PASSWORD", key)
        .args(["--no-cache", "cat", "config", "--no-lock"])
        .output()
        .unwrap()
        .status
        .success()
}

async fn job_result(agent: &TestAgent, server: &str, res: (u16, Value)) -> Value {
    assert_eq!(res.0, 202, "{}", res.1);
    let view = agent
        .wait_job(server, res.1["job_id"].as_str().unwrap())
        .await;
    assert_eq!(view["status"], "succeeded", "{view}");
    view
}

#[tokio::test]
async fn archiving_keeps_a_locked_final_snapshot_and_archives_can_be_listed_and_deleted() {
    let agent = TestAgent::start();
    let server = agent.add_server();
    let base = agent.backups_url(&server);
    let first = agent.backup(&server, KEY).await;

    let view = job_result(
        &agent,
        &server,
        agent
            .call(Method::POST, &format!("{base}/archive"), KEY, None)
            .await,
    )
    .await;
    assert_eq!(view["kind"], "archive");
    let name = view["result"]["name"].as_str().unwrap().to_owned();
    assert!(
        name.starts_with(&format!("{server}-")) && name.ends_with('Z'),
        "{name}"
    );
    assert!(
        !agent.repo(&server).exists(),
        "the repository is still in place"
    );
    let archived = agent.repo_root().join("archive").join(&name);

    let snaps: Value =
        serde_json::from_str(&restic(&archived, KEY, None, &["snapshots", "--json"])).unwrap();
    let snaps = snaps.as_array().unwrap();
    assert_eq!(snaps.len(), 2);
    assert!(snaps.iter().any(|s| s["id"] == first.as_str()));
    let last = snaps.iter().find(|s| s["id"] != first.as_str()).unwrap();
    assert_eq!(last["tags"], json!(["archived", "locked"]));

    let (status, body) = agent.call(Method::GET, &base, KEY, None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("repository_not_found"))
    );

    let list_url = format!("{}/api/restic/archive", agent.url);
    let (status, list) = agent.call(Method::GET, &list_url, "", None).await;
    assert_eq!(status, 200, "{list}");
    let entry = &list["archives"][0];
    assert_eq!(entry["name"], name.as_str());
    assert_eq!(entry["server_uuid"], server.as_str());
    assert!(entry["size_bytes"].as_u64().unwrap() > 100_000);
    assert!(entry["archived_at"].as_str().unwrap().ends_with('Z'));

    for (bad, expected) in [
        ("..%2F..%2Fetc".to_owned(), (400, "invalid_archive_name")),
        (
            "--password-command=sh".to_owned(),
            (400, "invalid_archive_name"),
        ),
        (
            format!("{server}-20200101T000000Z"),
            (404, "archive_not_found"),
        ),
        (format!("{name}%2F.."), (400, "invalid_archive_name")),
    ] {
        let (status, body) = agent
            .call(Method::DELETE, &format!("{list_url}/{bad}"), "", None)
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str().unwrap()),
            expected,
            "{bad}"
        );
    }
    assert!(archived.exists());
    let (status, _) = agent
        .call(Method::DELETE, &format!("{list_url}/{name}"), "", None)
        .await;
    assert_eq!(status, 204);
    assert!(!archived.exists());
    let (_, list) = agent.call(Method::GET, &list_url, "", None).await;
    assert_eq!(list["archives"], json!([]));

    // Archiving a server that has neither files nor a repository: 404.
    let ghost = testkit::new_uuid();
    let (status, _) = agent
        .call(
            Method::POST,
            &format!("{}/archive", agent.backups_url(&ghost)),
            KEY,
            None,
        )
        .await;
    assert_eq!(status, 404);
}

/// A server whose folder was emptied is archived with the backups it has
/// (no final snapshot of nothing, which restic would refuse).
#[tokio::test]
async fn an_emptied_server_folder_is_archived_without_a_final_snapshot() {
    let agent = TestAgent::start();
    let server = agent.add_server();
    let base = agent.backups_url(&server);
    agent.backup(&server, KEY).await;
    let dir = agent.data_dir().join(&server);
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::create_dir(&dir).unwrap();
    let view = job_result(
        &agent,
        &server,
        agent
            .call(Method::POST, &format!("{base}/archive"), KEY, None)
            .await,
    )
    .await;
    assert_eq!(view["result"]["snapshot"], Value::Null, "{view}");
    let name = view["result"]["name"].as_str().unwrap();
    let archived = agent.repo_root().join("archive").join(name);
    let snaps: Value =
        serde_json::from_str(&restic(&archived, KEY, None, &["snapshots", "--json"])).unwrap();
    assert_eq!(
        snaps.as_array().unwrap().len(),
        1,
        "the backup it had is kept"
    );
}

#[tokio::test]
async fn key_rotation_swaps_the_key_and_a_retry_is_harmless() {
    let agent = TestAgent::start();
    let server = agent.add_server();
    let base = agent.backups_url(&server);
    let id = agent.backup(&server, KEY).await;
    // The agent opens the master key in the background after a listing
    // and reads new snapshot files with it: give it the time, then make
    // one more backup (read that way).
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let second = agent.backup(&server, KEY).await;
    assert_eq!(
        agent.list(&server, KEY).await["backups"][0]["id"],
        second.as_str()
    );
    let repo = agent.repo(&server);
    let key_url = format!("{base}/key");

    for (current, new, expected) in [
        (KEY, "short", (400, "invalid_new_key")),
        (
            KEY,
            " padded-key-with-space-1234 ",
            (400, "invalid_new_key"),
        ),
        (KEY, KEY, (400, "same_key")),
        ("not-the-current-key", NEW_KEY, (403, "wrong_key")),
    ] {
        let (status, body) = agent
            .call(
                Method::POST,
                &key_url,
                current,
                Some(json!({"new_password": new})),
            )
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str().unwrap()),
            expected,
            "{new:?}"
        );
        assert!(
            !body.to_string().contains(new) || new == KEY,
            "the key is echoed: {body}"
        );
    }
    let refused = agent
        .refusal(Method::POST, &key_url, KEY, Some(json!({})))
        .await;
    assert_eq!(refused, (400, "invalid_json".to_owned()));

    let (status, body) = agent
        .call(
            Method::POST,
            &key_url,
            KEY,
            Some(json!({"new_password": NEW_KEY})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(opens(&repo, NEW_KEY) && !opens(&repo, KEY));
    let keys: Value =
        serde_json::from_str(&restic(&repo, NEW_KEY, None, &["key", "list", "--json"])).unwrap();
    assert_eq!(keys.as_array().unwrap().len(), 1);
    assert_eq!(keys[0]["id"], body["key_id"]);

    // The index does not keep trusting the old key.
    let (status, body) = agent.call(Method::GET, &base, KEY, None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("wrong_key"))
    );
    assert_eq!(
        agent.list(&server, NEW_KEY).await["backups"][1]["id"],
        id.as_str()
    );
    agent.backup(&server, NEW_KEY).await;
    // Nor after new snapshot files, which the cached master key could read.
    let (status, body) = agent.call(Method::GET, &base, KEY, None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("wrong_key")),
        "a removed key still lists"
    );

    // A retry of the same rotation (the panel did not get the answer) succeeds.
    let (status, again) = agent
        .call(
            Method::POST,
            &key_url,
            KEY,
            Some(json!({"new_password": NEW_KEY})),
        )
        .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["key_id"], keys[0]["id"]);
    let log = agent.log();
    assert!(
        !log.contains(KEY) && !log.contains(NEW_KEY),
        "a key is in the log"
    );
}

#[tokio::test]
async fn a_rotation_killed_after_adding_the_key_leaves_both_keys_working_and_a_retry_finishes() {
    let mut agent = TestAgent::start_with_env(
        &[],
        &[("RESTIC_BACKUPS_AGENT_FAILPOINT", "rotate-after-add")],
    );
    let server = agent.add_server();
    agent.backup(&server, KEY).await;
    let repo = agent.repo(&server);
    let key_url = format!("{}/key", agent.backups_url(&server));
    let res = agent
        .req(Method::POST, &key_url, KEY)
        .json(&json!({"new_password": NEW_KEY}))
        .send()
        .await;
    assert!(
        res.is_err() || !res.unwrap().status().is_success(),
        "the crash should cut the request"
    );
    assert!(agent.wait_exit(Duration::from_secs(30)));
    assert!(
        opens(&repo, KEY),
        "the old key must still open the repository"
    );
    assert!(opens(&repo, NEW_KEY), "the new key was added");

    let agent = agent.restart();
    let key_url = format!("{}/key", agent.backups_url(&server));
    let (status, body) = agent
        .call(
            Method::POST,
            &key_url,
            KEY,
            Some(json!({"new_password": NEW_KEY})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(opens(&repo, NEW_KEY) && !opens(&repo, KEY));
    assert_eq!(agent.list(&server, NEW_KEY).await["total"], 1);
}

#[tokio::test]
async fn forgotten_snapshots_are_pruned_in_batches() {
    let agent = TestAgent::start_with(&["prune_after_forgets = 2"]);
    let server = agent.add_server();
    let dir = agent.data_dir().join(&server);
    let base = agent.backups_url(&server);
    let mut ids = Vec::new();
    for seed in 0..3u64 {
        std::fs::write(
            dir.join("world/chunk.mca"),
            testkit::pseudo_random(100 + seed, 8 << 20),
        )
        .unwrap();
        ids.push(agent.backup(&server, KEY).await);
    }
    let repo = agent.repo(&server);
    // Bytes of pack files on disk (`stats --mode raw-data` only counts data
    // that snapshots still reference, so it drops at forget already).
    fn disk(dir: &std::path::Path) -> u64 {
        std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| {
                let m = e.metadata().unwrap();
                if m.is_dir() { disk(&e.path()) } else { m.len() }
            })
            .sum()
    }
    let raw = |repo: &std::path::Path| disk(&repo.join("data"));
    let before = raw(&repo);

    let (status, _) = agent
        .call(Method::DELETE, &format!("{base}/{}", ids[0]), KEY, None)
        .await;
    assert_eq!(status, 204);
    // One forget is not a batch yet.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!agent.log().contains("repository pruned"));
    assert_eq!(raw(&repo), before);

    let (status, _) = agent
        .call(Method::DELETE, &format!("{base}/{}", ids[1]), KEY, None)
        .await;
    assert_eq!(status, 204);
    let deadline = Instant::now() + Duration::from_secs(120);
    while !agent.log().contains("repository pruned") {
        assert!(Instant::now() < deadline, "no prune ran");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after = raw(&repo);
    assert!(
        after < before - (12 << 20),
        "prune freed too little: {before} -> {after}"
    );
    agent.backup(&server, KEY).await;
    assert_eq!(agent.list(&server, KEY).await["total"], 2);
}

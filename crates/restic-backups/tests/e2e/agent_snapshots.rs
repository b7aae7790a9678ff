//! The agent's snapshot API end to end: the real binary, real restic, temp dirs.

use reqwest::Method;
use serde_json::{Value, json};
use testkit::{TestAgent, restic};

const KEY: &str = "repo-key-for-tests-8d1f0a";

fn ids(list: &Value) -> Vec<String> {
    list["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_backup_can_be_listed_locked_unlocked_and_deleted_under_one_id() {
    let agent = TestAgent::start();
    let server = agent.add_server();
    let id = agent.backup(&server, KEY).await;

    let list = agent.list(&server, KEY).await;
    assert_eq!(list["total"], 1);
    let item = &list["backups"][0];
    assert_eq!(item["id"], id.as_str());
    assert_eq!(item["short_id"], &id[..8]);
    assert_eq!(item["locked"], false);
    assert!(item["size"].as_u64().unwrap() > 300 * 1024, "{item}");
    assert!(item["time"].as_str().unwrap().contains('T'));

    let url = format!("{}/{}", agent.backups_url(&server), id);
    let (status, body) = agent
        .call(Method::POST, &format!("{url}/lock"), KEY, None)
        .await;
    assert_eq!((status, &body), (200, &json!({"id": id, "locked": true})));

    let list = agent.list(&server, KEY).await;
    assert_eq!(
        ids(&list),
        std::slice::from_ref(&id),
        "the public ID must survive the re-tag"
    );
    assert_eq!(list["backups"][0]["locked"], true);
    assert_eq!(list["backups"][0]["tags"], json!(["locked"]));

    let (status, body) = agent.call(Method::DELETE, &url, KEY, None).await;
    assert_eq!(status, 409);
    assert_eq!(body["error"]["code"], "backup_locked");
    assert_eq!(agent.list(&server, KEY).await["total"], 1);

    // A prefix of the stable ID works as well.
    let (status, body) = agent
        .call(
            Method::POST,
            &format!("{}/{}/unlock", agent.backups_url(&server), &id[..8]),
            KEY,
            None,
        )
        .await;
    assert_eq!((status, &body), (200, &json!({"id": id, "locked": false})));

    let (status, _) = agent.call(Method::DELETE, &url, KEY, None).await;
    assert_eq!(status, 204);
    assert_eq!(agent.list(&server, KEY).await["total"], 0);
    let (status, body) = agent.call(Method::DELETE, &url, KEY, None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("backup_not_found"))
    );
}

#[tokio::test]
async fn stats_equal_what_restic_reports_for_the_same_repository() {
    let agent = TestAgent::start();
    let server = agent.add_server();
    agent.backup(&server, KEY).await;
    std::fs::write(
        agent.data_dir().join(&server).join("extra.bin"),
        testkit::pseudo_random(9, 100_000),
    )
    .unwrap();
    agent.backup(&server, KEY).await;

    let (status, stats) = agent
        .call(
            Method::GET,
            &format!("{}/stats", agent.backups_url(&server)),
            KEY,
            None,
        )
        .await;
    assert_eq!(status, 200, "{stats}");
    let repo = agent.repo(&server);
    let raw: Value = serde_json::from_str(&restic(
        &repo,
        KEY,
        None,
        &["stats", "--json", "--mode", "raw-data"],
    ))
    .unwrap();
    let restore: Value = serde_json::from_str(&restic(
        &repo,
        KEY,
        None,
        &["stats", "--json", "--mode", "restore-size"],
    ))
    .unwrap();
    assert_eq!(stats["total_size"], raw["total_size"]);
    assert_eq!(stats["total_uncompressed_size"], restore["total_size"]);
    assert_eq!(stats["snapshots_count"], 2);
    let ratio = restore["total_size"].as_f64().unwrap() / raw["total_size"].as_f64().unwrap();
    assert!((stats["dedup_ratio"].as_f64().unwrap() - ratio).abs() < 1e-9);
    assert!(stats["computed_at"].as_str().unwrap().ends_with('Z'));

    // Served from the cache while nothing changed: same computed_at.
    let (_, again) = agent
        .call(
            Method::GET,
            &format!("{}/stats", agent.backups_url(&server)),
            KEY,
            None,
        )
        .await;
    assert_eq!(again["computed_at"], stats["computed_at"]);
}

#[tokio::test]
async fn max_backups_forgets_the_oldest_unlocked_and_refuses_when_all_are_locked() {
    let agent = TestAgent::start();
    let server = agent.add_server();
    let base = agent.backups_url(&server);
    let first = agent.backup(&server, KEY).await;
    let second = agent.backup(&server, KEY).await;
    let third = agent.backup(&server, KEY).await;
    let (status, _) = agent
        .call(Method::POST, &format!("{base}/{first}/lock"), KEY, None)
        .await;
    assert_eq!(status, 200);

    let job = agent
        .start_backup(&server, KEY, json!({"max_backups": 3}))
        .await;
    let view = agent.wait_job(&server, &job).await;
    assert_eq!(view["status"], "succeeded", "{view}");
    assert_eq!(view["result"]["forgotten"], json!([second]));
    let fourth = view["result"]["snapshot"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut now = ids(&agent.list(&server, KEY).await);
    now.sort();
    let mut expected = vec![first.clone(), third.clone(), fourth.clone()];
    expected.sort();
    assert_eq!(now, expected);

    for id in [&third, &fourth] {
        let (status, _) = agent
            .call(Method::POST, &format!("{base}/{id}/lock"), KEY, None)
            .await;
        assert_eq!(status, 200);
    }
    let snapshots_before = restic(&agent.repo(&server), KEY, None, &["snapshots", "--json"]);
    let (status, body) = agent
        .call(Method::POST, &base, KEY, Some(json!({"max_backups": 3})))
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "all_backups_locked");
    assert_eq!(
        restic(&agent.repo(&server), KEY, None, &["snapshots", "--json"]),
        snapshots_before,
        "nothing may change"
    );

    // Without a limit the backup goes through.
    agent.backup(&server, KEY).await;
    assert_eq!(agent.list(&server, KEY).await["total"], 4);
}

#[tokio::test]
async fn snapshots_made_or_removed_by_hand_show_up_in_the_next_list() {
    let agent = TestAgent::start();
    let server = agent.add_server();
    let ours = agent.backup(&server, KEY).await;
    assert_eq!(agent.list(&server, KEY).await["total"], 1);

    let repo = agent.repo(&server);
    let dir = agent.data_dir().join(&server);
    let out = restic(
        &repo,
        KEY,
        Some(&dir),
        &["backup", "--json", "--host", &server, "."],
    );
    let summary: Value = out
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["message_type"] == "summary")
        .unwrap();
    let by_hand = summary["snapshot_id"].as_str().unwrap().to_owned();

    let list = agent.list(&server, KEY).await;
    assert_eq!(list["total"], 2);
    assert!(
        list["backups"][0]["id"]
            .as_str()
            .unwrap()
            .starts_with(&by_hand),
        "newest first: {list}"
    );

    // Its size is measured in the background, once.
    let mut size = Value::Null;
    for _ in 0..100 {
        size = agent.list(&server, KEY).await["backups"][0]["size"].clone();
        if !size.is_null() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        size, list["backups"][1]["size"],
        "same files, same restore size"
    );

    restic(&repo, KEY, None, &["forget", &ours]);
    let list = agent.list(&server, KEY).await;
    assert_eq!(list["total"], 1);
    assert!(!ids(&list).contains(&ours));
}

#[tokio::test]
async fn listing_pages_with_an_opaque_cursor() {
    let agent = TestAgent::start();
    let server = agent.add_server();
    let mut made = Vec::new();
    for _ in 0..4 {
        made.push(agent.backup(&server, KEY).await);
    }
    made.reverse();
    let mut seen = Vec::new();
    let mut url = format!("{}?limit=3", agent.backups_url(&server));
    loop {
        let (status, page) = agent.call(Method::GET, &url, KEY, None).await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["total"], 4);
        seen.extend(ids(&page));
        match page["next_cursor"].as_str() {
            Some(c) => url = format!("{}?limit=3&cursor={c}", agent.backups_url(&server)),
            None => break,
        }
    }
    assert_eq!(seen, made);
}

/// After a lock, plain restic lists the snapshot under a new ID: every
/// endpoint takes that ID (and its short form) as well as the stable one.
#[tokio::test]
async fn the_id_plain_restic_lists_after_a_lock_works_everywhere() {
    let agent = TestAgent::start();
    let server = agent.add_server();
    let key = "plain-restic-id-key-42";
    let stable = agent.backup(&server, key).await;
    let base = agent.backups_url(&server);
    let plain_id = || {
        let listed: Value = serde_json::from_str(&restic(
            &agent.repo(&server),
            key,
            None,
            &["snapshots", "--json"],
        ))
        .unwrap();
        listed[0]["id"].as_str().unwrap().to_owned()
    };
    for short in [false, true] {
        let (s, v) = agent
            .call(
                Method::POST,
                &format!("{base}/{stable}/lock"),
                key,
                Some(json!({})),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        let plain = plain_id();
        assert_ne!(plain, stable, "a lock gives the snapshot a new restic ID");
        let res = agent
            .req(
                Method::GET,
                &format!("{base}/{plain}/download?format=tar.gz"),
                key,
            )
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "download by {plain}");
        let id = if short { plain[..8].to_owned() } else { plain };
        let (s, v) = agent
            .call(
                Method::POST,
                &format!("{base}/{id}/unlock"),
                key,
                Some(json!({})),
            )
            .await;
        assert_eq!(s, 200, "{id}: {v}");
        assert_eq!(v["id"], stable.as_str(), "{v}");
    }
}

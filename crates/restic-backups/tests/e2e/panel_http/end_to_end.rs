//! The whole backup story through the panel, then a scan of every answer
//! and log line for node tokens and server keys.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;
use testkit::panel::{Db, World};

use super::{API, assert_no_secrets, backups};

fn tar_names(archive: &[u8], flags: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a");
    std::fs::write(&path, archive).unwrap();
    testkit::tar_list(&path, flags)
}

pub(super) async fn end_to_end(db: Db) {
    let World {
        mut agent,
        panel,
        mut admin,
        mut owner,
        servers,
    } = World::new(db, 1, 3).await;
    let server = servers[0].clone();
    let b = backups(&server);
    let mut all_keys: Vec<String> = panel
        .keys(&admin)
        .await
        .into_iter()
        .map(|(_, k)| k)
        .collect();

    // Empty state.
    let (s, list) = owner.get(&b).await;
    assert_eq!(s, 200, "{list}");
    assert_eq!(
        (list["total"].as_u64(), list["backup_limit"].as_i64()),
        (Some(0), Some(3))
    );
    let (s, stats) = owner.get(&format!("{b}/stats")).await;
    assert_eq!((s, stats["snapshots_count"].as_u64()), (200, Some(0)));

    // Create, list, and backup_limit reaches the agent as max_backups.
    let first = owner.backup(&server).await;
    let (_, list) = owner.get(&b).await;
    assert_eq!(list["total"], 1);
    assert_eq!(list["backups"][0]["id"], first.as_str());
    assert_eq!(list["backup_limit"], 3);
    for _ in 0..3 {
        owner.backup(&server).await;
    }
    let (_, list) = owner.get(&format!("{b}?limit=100")).await;
    assert_eq!(list["total"], 3, "the limit of 3 was not applied: {list}");
    assert!(
        !list.to_string().contains(first.as_str()),
        "oldest not rotated out"
    );
    let newest = list["backups"][0]["id"].as_str().unwrap().to_owned();
    // Paging, 2 per page.
    let (_, page) = owner.get(&format!("{b}?limit=2")).await;
    assert_eq!(page["backups"].as_array().unwrap().len(), 2);
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let (_, page2) = owner.get(&format!("{b}?limit=2&cursor={cursor}")).await;
    assert_eq!(page2["backups"].as_array().unwrap().len(), 1);

    // Lock / delete refused / unlock.
    let (s, l) = owner.post(&format!("{b}/{newest}/lock"), json!({})).await;
    assert_eq!((s, l["locked"].as_bool()), (200, Some(true)));
    let (s, e) = owner
        .send(Method::DELETE, &format!("{b}/{newest}"), None)
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (409, Some("backup_locked"))
    );
    let (s, l) = owner.post(&format!("{b}/{newest}/unlock"), json!({})).await;
    assert_eq!((s, l["locked"].as_bool()), (200, Some(false)));

    // Download through the one-time link the panel redirects to.
    let short = &newest[..8];
    let (s, r) = owner.get(&format!("{b}/{short}/download")).await;
    assert_eq!(s, 302, "{r}");
    let link = r["location"].as_str().unwrap().to_owned();
    assert!(link.starts_with(&agent.url), "{link}");
    let bytes = reqwest::get(&link).await.unwrap().bytes().await.unwrap();
    assert!(tar_names(&bytes, &["-tzf"]).contains("server.properties"));
    // The link works once.
    assert_eq!(reqwest::get(&link).await.unwrap().status(), 403);
    // Streamed through the panel when browsers can not reach the node.
    let (s, _) = admin
        .send(
            Method::PATCH,
            &format!("{API}/admin/nodes/node-1"),
            Some(json!({"browser_downloads": false})),
        )
        .await;
    assert_eq!(s, 200);
    let res = owner
        .request(
            Method::GET,
            &format!("{b}/{newest}/download?format=tar.zst"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains(".tar.zst")
    );
    let bytes = res.bytes().await.unwrap();
    let names = tar_names(&bytes, &["--zstd", "-tf"]);
    assert!(names.contains("world/region/r.0.0.mca"), "{names}");

    // Restore: a changed file comes back.
    let props = agent.data_dir().join(&server).join("server.properties");
    let original = std::fs::read_to_string(&props).unwrap();
    std::fs::write(&props, "motd=griefed\n").unwrap();
    let (s, j) = owner
        .post(&format!("{b}/{newest}/restore"), json!({}))
        .await;
    assert_eq!(s, 202, "{j}");
    let view = owner.wait_job(&server, j["job_id"].as_str().unwrap()).await;
    assert_eq!(view["status"], "succeeded", "{view}");
    assert_eq!(std::fs::read_to_string(&props).unwrap(), original);

    // Stats match the listing; delete.
    let (_, list) = owner.get(&format!("{b}?limit=100")).await;
    let (s, stats) = owner.get(&format!("{b}/stats")).await;
    assert_eq!(s, 200);
    assert_eq!(stats["snapshots_count"], list["total"]);
    assert!(stats["total_size"].as_u64().unwrap() > 0);
    let victim = list["backups"][1]["id"].as_str().unwrap().to_owned();
    let (s, _) = owner
        .send(Method::DELETE, &format!("{b}/{victim}"), None)
        .await;
    assert_eq!(s, 204);
    let (_, list) = owner.get(&format!("{b}?limit=100")).await;
    assert!(!list.to_string().contains(victim.as_str()));

    // Key regeneration: the repository changes key, the panel keeps working.
    let before = panel.keys(&admin).await;
    let (s, r) = admin
        .post(
            &format!("{API}/admin/servers/{server}/key/regenerate"),
            json!({}),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    assert!(r["key_id"].is_string(), "{r}");
    let after = panel.keys(&admin).await;
    assert_ne!(before, after);
    let old_key = &before.iter().find(|(u, _)| u == &server).unwrap().1;
    let new_key = &after.iter().find(|(u, _)| u == &server).unwrap().1;
    all_keys.extend([old_key.clone(), new_key.clone()]);
    let repo = agent.repo(&server);
    let opens = |key: &str| {
        std::process::Command::new("restic")
            .args(["cat", "config", "--no-lock"])
            .env("RESTIC_REPOSITORY", &repo)
            .env("RESTIC_PASSWORD", key)
            .output()
            .unwrap()
            .status
            .success()
    };
    assert!(opens(new_key) && !opens(old_key));
    let (s, list) = owner.get(&b).await;
    assert_eq!(s, 200, "{list}");
    owner.backup(&server).await;
    let (_, keys) = admin.get(&format!("{API}/admin/keys")).await;
    let entry = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["server"] == server.as_str())
        .unwrap()
        .clone();
    assert_eq!(entry["generations"], 2);

    // The agent stops: a clear 502 within a few seconds, never a hang.
    assert!(agent.stop(Duration::from_secs(20)));
    let started = Instant::now();
    let (s, e) = owner.get(&b).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (502, Some("node_unavailable")),
        "{e}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    let (s, _) = owner.post(&b, json!({})).await;
    assert_eq!(s, 502);
    // Deleting a server whose repository can not be archived keeps it.
    let (s, _) = admin
        .send(
            Method::DELETE,
            &format!("{API}/admin/servers/{server}"),
            None,
        )
        .await;
    assert_eq!(s, 502);
    let (_, servers) = admin.get(&format!("{API}/admin/servers")).await;
    assert!(servers.to_string().contains(server.as_str()));

    assert_no_secrets(&panel, &agent, &all_keys);
}

//! The snapshot browser on the agent: folders listed once with restic and
//! then from the agent's own listing, pages and clear errors, hostile
//! paths that never reach restic as anything but a path in the snapshot,
//! restoring and downloading single files and folders.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use testkit::TestAgent;

const KEY: &str = "browse-key-1a2b3c4d";

/// Names restic's include patterns, a shell or a URL would read as
/// something else.
const ODD: &[&str] = &[
    "$HOME",
    "*",
    "-rf",
    "[a]",
    "a?b",
    "back\\slash",
    "sp ace&x=1#y",
    "wörld ✓",
];

async fn files(agent: &TestAgent, server: &str, id: &str, query: &[(&str, &str)]) -> (u16, Value) {
    let url = format!("{}/{id}/files", agent.backups_url(server));
    let res = agent
        .req(Method::GET, &url, KEY)
        .query(query)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

fn names(page: &Value) -> Vec<String> {
    page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_owned())
        .collect()
}

fn listing_files(agent: &TestAgent, server: &str) -> Vec<PathBuf> {
    let dir = agent.repo_root().join(".agent/listings").join(server);
    let mut out: Vec<PathBuf> = fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    out.sort();
    out
}

fn add_odd_names(dir: &Path) {
    fs::create_dir_all(dir.join("odd")).unwrap();
    for name in ODD {
        fs::write(dir.join("odd").join(name), format!("content of {name}")).unwrap();
    }
    fs::create_dir_all(dir.join("many")).unwrap();
    for i in 0..250 {
        fs::write(dir.join(format!("many/f{i:03}")), "x").unwrap();
    }
    symlink("world/level.dat", dir.join("latest")).unwrap();
}

#[tokio::test]
async fn folders_page_from_a_listing_kept_once_and_hostile_paths_stay_in_the_snapshot() {
    let agent = TestAgent::start();
    let server = agent.add_server();
    let dir = agent.data_dir().join(&server);
    add_odd_names(&dir);
    let id = agent.backup(&server, KEY).await;

    let (status, root) = files(&agent, &server, &id, &[]).await;
    assert_eq!(status, 200, "{root}");
    assert_eq!(
        names(&root),
        ["many", "odd", "world", "latest", "server.properties"],
        "folders first, then by name"
    );
    assert_eq!(
        (root["path"].as_str(), root["total"].as_u64()),
        (Some("/"), Some(5))
    );
    let world = &root["entries"][2];
    assert_eq!(world["type"], "dir");
    assert_eq!(world["path"], "/world");
    assert_eq!(
        world["size"],
        64 * 1024 + 256 * 1024,
        "a folder's size is its files'"
    );
    assert_eq!(root["entries"][3]["type"], "symlink");
    assert!(
        root["entries"][4]["mtime"]
            .as_str()
            .unwrap()
            .starts_with("20")
    );

    let (status, odd) = files(&agent, &server, &id, &[("path", "/odd/")]).await;
    assert_eq!(status, 200, "{odd}");
    assert_eq!(names(&odd), ODD);
    assert_eq!(odd["entries"][1]["path"], "/odd/*");

    // Pages follow their cursors to the end, nothing twice.
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let (status, page) = files(
            &agent,
            &server,
            &id,
            &[("path", "many"), ("limit", "100"), ("cursor", &cursor)],
        )
        .await;
        assert_eq!(status, 200, "{page}");
        assert!(page["entries"].as_array().unwrap().len() <= 100);
        seen.extend(names(&page));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = c.to_owned(),
            None => break,
        }
    }
    let want: Vec<String> = (0..250).map(|i| format!("f{i:03}")).collect();
    assert_eq!(seen, want);

    // Errors are told apart; hostile paths are paths inside the snapshot.
    let long = "a/".repeat(5000);
    for (query, want_status, want_code) in [
        (vec![("path", "world/level.dat")], 400, "not_a_folder"),
        (vec![("path", "world/nope")], 404, "path_not_found"),
        (vec![("path", "/etc")], 404, "path_not_found"),
        (
            vec![("path", "--password-command=sh")],
            404,
            "path_not_found",
        ),
        (vec![("path", "-rf")], 404, "path_not_found"),
        (vec![("path", "../../etc")], 400, "invalid_path"),
        (vec![("path", "world/./region")], 400, "invalid_path"),
        (vec![("path", "a\0b")], 400, "invalid_path"),
        (vec![("path", long.as_str())], 400, "invalid_path"),
        (vec![("limit", "0")], 400, "invalid_limit"),
        (vec![("limit", "1001")], 400, "invalid_limit"),
        (vec![("cursor", "-1")], 400, "invalid_cursor"),
    ] {
        let (status, body) = files(&agent, &server, &id, &query).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (want_status, Some(want_code)),
            "{query:?}: {body}"
        );
    }
    let (status, body) = files(&agent, &server, "deadbeef", &[]).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("backup_not_found"))
    );

    // One compact file per snapshot tree, in the agent's state folder.
    let kept = listing_files(&agent, &server);
    assert_eq!(kept.len(), 1, "{kept:?}");
    let entries = 5 + ODD.len() + 250 + 3;
    let per_entry = fs::metadata(&kept[0]).unwrap().len() as usize / entries;
    assert!(per_entry <= 64, "{per_entry} bytes per entry");

    // Later views read only that file: with the repository's data gone
    // (restic could not list anything now) and a new agent process (no
    // memory of it), folders still open.
    let agent = agent.restart();
    let data = agent.repo(&server).join("data");
    let aside = agent.repo(&server).join("data-aside");
    fs::rename(&data, &aside).unwrap();
    let (status, region) = files(&agent, &server, &id, &[("path", "/world/region")]).await;
    fs::rename(&aside, &data).unwrap();
    assert_eq!(status, 200, "{region}");
    assert_eq!(names(&region), ["r.0.0.mca"]);
    assert_eq!(region["entries"][0]["size"], 256 * 1024);

    // A damaged listing is listed again, not trusted.
    fs::write(&kept[0], b"RBLIST01garbage").unwrap();
    let agent = agent.restart();
    let (status, odd) = files(&agent, &server, &id, &[("path", "odd")]).await;
    assert_eq!(
        (status, names(&odd)),
        (200, ODD.iter().map(|s| s.to_string()).collect())
    );

    // The listing goes with the last snapshot of its tree.
    let url = format!("{}/{id}", agent.backups_url(&server));
    let (status, body) = agent.call(Method::DELETE, &url, KEY, None).await;
    assert_eq!(status, 204, "{body}");
    agent.list(&server, KEY).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !listing_files(&agent, &server).is_empty() {
        assert!(Instant::now() < deadline, "the listing was not dropped");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn restore(agent: &TestAgent, server: &str, id: &str, body: Value) -> Value {
    agent.restore(server, KEY, id, body).await
}

#[tokio::test]
async fn single_files_and_folders_are_restored_in_place_and_downloaded() {
    let agent = TestAgent::start();
    let server = agent.add_server();
    let dir = agent.data_dir().join(&server);
    add_odd_names(&dir);
    let region = dir.join("world/region/r.0.0.mca");
    let (level, mca) = (
        fs::read(dir.join("world/level.dat")).unwrap(),
        fs::read(&region).unwrap(),
    );
    let id = agent.backup(&server, KEY).await;

    // The game changes things after the backup.
    fs::write(&region, "corrupted").unwrap();
    fs::write(dir.join("world/region/r.9.9.mca"), "new region").unwrap();
    fs::write(dir.join("world/level.dat"), "changed level").unwrap();
    fs::write(dir.join("server.properties"), "changed").unwrap();
    for name in ODD {
        fs::write(dir.join("odd").join(name), "changed").unwrap();
    }

    // One folder, made exactly what the backup has; the rest untouched.
    let view = restore(
        &agent,
        &server,
        &id,
        json!({"paths": ["world/region"], "truncate": true, "stop_server": false}),
    )
    .await;
    assert_eq!(view["result"]["paths"], json!(["/world/region"]));
    assert!(
        view["result"]["safety_snapshot"]["id"].is_string(),
        "{view}"
    );
    assert_eq!(fs::read(&region).unwrap(), mca);
    assert!(!dir.join("world/region/r.9.9.mca").exists());
    assert_eq!(
        fs::read(dir.join("world/level.dat")).unwrap(),
        b"changed level"
    );
    assert_eq!(fs::read(dir.join("server.properties")).unwrap(), b"changed");

    // Files named like patterns bring back themselves and nothing else.
    restore(
        &agent,
        &server,
        &id,
        json!({"paths": ["/odd/*", "odd/[a]", "odd/back\\slash", "/odd/*"], "stop_server": false}),
    )
    .await;
    for name in ODD {
        let got = fs::read_to_string(dir.join("odd").join(name)).unwrap();
        let back = ["*", "[a]", "back\\slash"].contains(name);
        let want = if back {
            format!("content of {name}")
        } else {
            "changed".to_owned()
        };
        assert_eq!(got, want, "{name}");
    }

    // Without truncate, files the backup lacks stay; a file inside a
    // folder that is also asked for counts once.
    fs::write(dir.join("world/region/r.9.9.mca"), "new region").unwrap();
    restore(
        &agent,
        &server,
        &id,
        json!({"paths": ["world", "world/level.dat"], "truncate": false, "stop_server": false}),
    )
    .await;
    assert_eq!(fs::read(dir.join("world/level.dat")).unwrap(), level);
    assert_eq!(
        fs::read(dir.join("world/region/r.9.9.mca")).unwrap(),
        b"new region"
    );

    // Refused before anything happens.
    let url = format!("{}/{id}/restore", agent.backups_url(&server));
    let many: Vec<String> = (0..101).map(|i| format!("many/f{i:03}")).collect();
    for (body, status, code) in [
        (json!({"paths": ["world/nope"]}), 404, "path_not_found"),
        (json!({"paths": [""]}), 400, "invalid_path"),
        (json!({"paths": ["world", "/"]}), 400, "invalid_path"),
        (json!({"paths": ["odd/\u{FFFD}"]}), 400, "unreadable_name"),
        (json!({"paths": many}), 400, "too_many_paths"),
        (json!({"paths": ["../etc/passwd"]}), 400, "invalid_json"),
        (json!({"paths": ["a\u{0}b"]}), 400, "invalid_json"),
    ] {
        let got = agent
            .refusal(Method::POST, &url, KEY, Some(body.clone()))
            .await;
        assert_eq!(got, (status, code.to_owned()), "{body}");
    }
    assert_eq!(fs::read(dir.join("server.properties")).unwrap(), b"changed");

    // Downloads of one file (as itself, with its size) and one folder.
    let download = |path: &str, format: &str| {
        agent
            .req(
                Method::GET,
                &format!("{}/{id}/download", agent.backups_url(&server)),
                KEY,
            )
            .query(&[("path", path), ("format", format)])
            .send()
    };
    let res = download("world/level.dat", "zip").await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/octet-stream");
    assert_eq!(
        res.headers()["content-length"],
        level.len().to_string().as_str()
    );
    assert_eq!(
        res.headers()["content-disposition"],
        "attachment; filename=\"level.dat\"; filename*=UTF-8''level.dat"
    );
    assert_eq!(res.bytes().await.unwrap().as_ref(), level.as_slice());
    let res = download("odd/sp ace&x=1#y", "tar.gz").await.unwrap();
    assert_eq!(res.status(), 200);
    let disposition = res.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        disposition.contains("filename*=UTF-8''sp%20ace%26x%3D1%23y"),
        "{disposition}"
    );
    assert_eq!(
        res.bytes().await.unwrap().as_ref(),
        b"content of sp ace&x=1#y"
    );

    let res = download("world", "tar.gz").await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/gzip");
    let disposition = res.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        disposition.starts_with("attachment; filename=\"world-"),
        "{disposition}"
    );
    let archive = agent.dir.path().join("world.tar.gz");
    fs::write(&archive, res.bytes().await.unwrap()).unwrap();
    let listed = testkit::tar_list(&archive, &["-tzf"]);
    assert!(listed.contains("world/level.dat"), "{listed}");
    assert!(listed.contains("world/region/r.0.0.mca"), "{listed}");
    assert!(!listed.contains("server.properties"), "{listed}");

    for (path, status, code) in [
        ("latest", 400, "not_downloadable"),
        ("nope", 404, "path_not_found"),
        ("../x", 400, "invalid_path"),
    ] {
        let res = download(path, "tar.gz").await.unwrap();
        assert_eq!(res.status().as_u16(), status, "{path}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], code, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_panel_browses_restores_and_downloads_single_paths_for_those_allowed() {
    use testkit::panel::{Db, World};
    let mut w = World::new(Db::Sqlite, 1, 0).await;
    let server = w.servers[0].clone();
    let dir = w.agent.data_dir().join(&server);
    let level = fs::read(dir.join("world/level.dat")).unwrap();
    // Names of control characters: a path to them makes a link too long.
    let odd = "\u{1}".repeat(200);
    let deep = (0..6).map(|_| odd.as_str()).collect::<Vec<_>>().join("/");
    fs::create_dir_all(dir.join(&deep)).unwrap();
    fs::write(dir.join(&deep).join("f"), "deep").unwrap();
    let id = w.owner.backup(&server).await;
    let b = format!("/extensions/resticbackups/servers/{server}/backups/restic");

    // Browsing needs backup.read only; restoring and downloading their own.
    let mut reader = w
        .subuser(&server, "reader@example.com", &["backup.read"])
        .await;
    let (status, page) = reader.get(&format!("{b}/{id}/files?path=/world")).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(names(&page), ["region", "level.dat"]);
    let (status, _) = reader
        .get(&format!("{b}/{id}/download?path=world/level.dat"))
        .await;
    assert_eq!(status, 403);
    let (status, _) = reader
        .post(&format!("{b}/{id}/restore"), json!({"paths": ["world"]}))
        .await;
    assert_eq!(status, 403);

    // The agent's refusals come through; the panel refuses bad paths itself.
    for (query, status, code) in [
        ("path=world/nope", 404, "path_not_found"),
        ("path=server.properties", 400, "not_a_folder"),
        ("path=..%2Fetc", 400, "invalid_path"),
        ("path=a%00b", 400, "invalid_path"),
        ("limit=0", 400, "invalid_limit"),
    ] {
        let (got, body) = reader.get(&format!("{b}/{id}/files?{query}")).await;
        assert_eq!(
            (got, body["error"]["code"].as_str()),
            (status, Some(code)),
            "{query}"
        );
    }
    let (status, body) = w
        .owner
        .get(&format!("{b}/{id}/download?path=world/nope"))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("path_not_found"))
    );

    let url = format!("{b}/{id}/download");
    let long = w
        .owner
        .request(reqwest::Method::GET, &url)
        .query(&[("path", format!("{deep}/f"))]);
    let (status, body) = w.owner.clone().finish(&url, long).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("path_too_long")),
        "{body}"
    );

    // One file by the one-time link: itself, with its size.
    let (status, link) = w
        .owner
        .get(&format!("{b}/{id}/download?path=world/level.dat"))
        .await;
    assert_eq!(status, 302, "{link}");
    let res = reqwest::get(link["location"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(
        res.headers()["content-length"],
        level.len().to_string().as_str()
    );
    assert_eq!(res.bytes().await.unwrap().as_ref(), level.as_slice());

    // One file restored in place through the panel.
    fs::write(dir.join("world/level.dat"), "broken").unwrap();
    fs::write(dir.join("server.properties"), "kept").unwrap();
    let (status, job) = w
        .owner
        .post(
            &format!("{b}/{id}/restore"),
            json!({"paths": ["/world/level.dat"], "stop_server": false}),
        )
        .await;
    assert_eq!(status, 202, "{job}");
    let view = w
        .owner
        .wait_job(&server, job["job_id"].as_str().unwrap())
        .await;
    assert_eq!(view["status"], "succeeded", "{view}");
    assert_eq!(fs::read(dir.join("world/level.dat")).unwrap(), level);
    assert_eq!(fs::read(dir.join("server.properties")).unwrap(), b"kept");
}

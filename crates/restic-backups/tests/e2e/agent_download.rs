//! Downloads: valid archives in every format, one-time links, and a client
//! that goes away mid-download leaves no lock behind.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use api::download::{DownloadFormat, issue};
use api::{Secret, ServerUuid, SnapshotRef};
use reqwest::Method;
use serde_json::json;
use testkit::{TOKEN, TestAgent, all_cmdlines, environ};

const KEY: &str = "download-key-9f8e7d6c";

/// Unpacks `archive` into a new folder with the system tools, as a user would.
fn unpack(archive: &Path, format: &str) -> tempfile::TempDir {
    let out = tempfile::tempdir().unwrap();
    let status = match format {
        "tar.gz" => Command::new("tar")
            .arg("-xzf")
            .arg(archive)
            .arg("-C")
            .arg(out.path())
            .status(),
        "tar.zst" => Command::new("tar")
            .arg("--zstd")
            .arg("-xf")
            .arg(archive)
            .arg("-C")
            .arg(out.path())
            .status(),
        "zip" => Command::new("unzip")
            .arg("-q")
            .arg(archive)
            .arg("-d")
            .arg(out.path())
            .status(),
        other => panic!("unknown format {other}"),
    }
    .expect("archive tool runs");
    assert!(status.success(), "{format} archive is not valid");
    out
}

fn same_files(a: &Path, b: &Path) {
    for rel in [
        "server.properties",
        "world/level.dat",
        "world/region/r.0.0.mca",
    ]
    .into_iter()
    .chain(
        a.join("world/region/r.1.0.mca")
            .exists()
            .then_some("world/region/r.1.0.mca"),
    ) {
        assert_eq!(
            std::fs::read(a.join(rel)).unwrap(),
            std::fs::read(b.join(rel)).unwrap(),
            "{rel} differs"
        );
    }
}

async fn fetch(req: reqwest::RequestBuilder) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    (status, headers, res.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn every_format_downloads_as_a_valid_archive_of_the_snapshot() {
    let agent = TestAgent::start();
    let server = agent.add_server();
    // Several MiB, so a tar.gz is many compressed blocks joined (the
    // parallel gzip), checked by the system's own tar and gzip.
    std::fs::write(
        agent
            .data_dir()
            .join(&server)
            .join("world/region/r.1.0.mca"),
        testkit::pseudo_random(11, 5 << 20)
            .into_iter()
            .enumerate()
            .map(|(i, b)| if i % 3 == 0 { b } else { b'a' })
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    let id = agent.backup(&server, KEY).await;
    let dir = agent.data_dir().join(&server);
    for format in ["tar.gz", "tar.zst", "zip"] {
        let url = format!(
            "{}/{id}/download?format={format}",
            agent.backups_url(&server)
        );
        let (status, headers, body) = fetch(agent.req(Method::GET, &url, KEY)).await;
        assert_eq!(status, 200, "{format}: {}", String::from_utf8_lossy(&body));
        let disposition = headers["content-disposition"].to_str().unwrap();
        assert!(
            disposition.starts_with("attachment; filename=\"")
                && disposition.contains(&format!(".{format}\"; filename*=UTF-8''")),
            "{disposition}"
        );
        assert!(disposition.contains(&id[..8]));
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), &body).unwrap();
        let out = unpack(file.path(), format);
        same_files(&dir, out.path());
    }
    // The default is tar.gz.
    let url = format!("{}/{id}/download", agent.backups_url(&server));
    let (status, headers, _) = fetch(agent.req(Method::GET, &url, KEY)).await;
    assert_eq!(
        (status, headers["content-type"].to_str().unwrap()),
        (200, "application/gzip")
    );

    for (url, key, expected) in [
        (format!("{url}?format=rar"), KEY, (400, "invalid_format")),
        (url.clone(), "wrong-key", (403, "wrong_key")),
        (
            format!("{}/{}/download", agent.backups_url(&server), "cd".repeat(8)),
            KEY,
            (404, "backup_not_found"),
        ),
    ] {
        let (status, body) = agent.call(Method::GET, &url, key, None).await;
        assert_eq!(
            (status, body["error"]["code"].as_str().unwrap()),
            expected,
            "{url}"
        );
    }
}

#[tokio::test]
async fn a_download_link_works_once_and_only_when_signed_and_fresh() {
    let agent = TestAgent::start();
    let server = agent.add_server();
    let id = agent.backup(&server, KEY).await;
    let node = Secret::new(TOKEN).unwrap();
    let key = Secret::new(KEY).unwrap();
    let uuid = ServerUuid::parse(&server).unwrap();
    let snap = SnapshotRef::parse(&id).unwrap();
    let now = time_now();
    let link = |token: &str| format!("{}/download/restic?token={token}", agent.url);

    let token = issue(&node, &uuid, &snap, DownloadFormat::Zip, None, &key, now);
    assert!(!token.contains(KEY));
    // No bearer token, no key header: the link is all the browser has.
    let (status, headers, body) = fetch(agent.http.get(link(&token))).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(headers["content-type"], "application/zip");
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &body).unwrap();
    same_files(
        &agent.data_dir().join(&server),
        unpack(file.path(), "zip").path(),
    );

    let code = |body: Vec<u8>| -> String {
        serde_json::from_slice::<serde_json::Value>(&body).unwrap()["error"]["code"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (status, _, body) = fetch(agent.http.get(link(&token))).await;
    assert_eq!((status, code(body)), (403, "link_used".to_owned()));

    let other = Secret::new("some-other-node-token-1234").unwrap();
    let forged = issue(&other, &uuid, &snap, DownloadFormat::Zip, None, &key, now);
    let (status, _, body) = fetch(agent.http.get(link(&forged))).await;
    assert_eq!((status, code(body)), (403, "invalid_link".to_owned()));

    let old = issue(
        &node,
        &uuid,
        &snap,
        DownloadFormat::Zip,
        None,
        &key,
        now - 16 * 60,
    );
    let (status, _, body) = fetch(agent.http.get(link(&old))).await;
    assert_eq!((status, code(body)), (403, "link_expired".to_owned()));

    let (status, _, body) = fetch(agent.http.get(format!("{}/download/restic", agent.url))).await;
    assert_eq!((status, code(body)), (403, "invalid_link".to_owned()));
    let (status, _, body) = fetch(agent.http.get(link("not.a.token"))).await;
    assert_eq!((status, code(body)), (403, "invalid_link".to_owned()));

    let wrong_key = Secret::new("not-the-repo-key").unwrap();
    let token = issue(
        &node,
        &uuid,
        &snap,
        DownloadFormat::TarGz,
        None,
        &wrong_key,
        now,
    );
    let (status, _, body) = fetch(agent.http.get(link(&token))).await;
    assert_eq!((status, code(body)), (403, "wrong_key".to_owned()));
    assert!(!agent.log().contains(KEY) && !agent.log().contains("not-the-repo-key"));
}

fn time_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn restic_dumps(repo: &Path) -> usize {
    let repo = repo.display().to_string();
    all_cmdlines()
        .into_iter()
        .filter(|(pid, cmd)| {
            cmd.starts_with("restic ")
                && cmd.contains(" dump ")
                && environ(*pid)
                    .lines()
                    .any(|l| l == format!("RESTIC_REPOSITORY={repo}"))
        })
        .count()
}

#[tokio::test]
async fn a_client_that_disconnects_mid_download_leaves_no_lock() {
    let agent = TestAgent::start();
    let server = agent.add_server();
    let dir = agent.data_dir().join(&server);
    std::fs::write(
        dir.join("world/big.mca"),
        testkit::pseudo_random(21, 200 << 20),
    )
    .unwrap();
    let id = agent.backup(&server, KEY).await;
    let repo = agent.repo(&server);

    let url = format!("{}/{id}/download?format=tar.gz", agent.backups_url(&server));
    let mut res = agent.req(Method::GET, &url, KEY).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let mut got = 0;
    while got < 1 << 20 {
        got += res.chunk().await.unwrap().expect("more data").len();
    }
    assert_eq!(restic_dumps(&repo), 1, "restic dump should be running");
    assert!(
        std::fs::read_dir(repo.join("locks")).unwrap().count() > 0,
        "dump holds a lock"
    );
    drop(res);

    let deadline = Instant::now() + Duration::from_secs(30);
    while restic_dumps(&repo) > 0 || std::fs::read_dir(repo.join("locks")).unwrap().count() > 0 {
        assert!(
            Instant::now() < deadline,
            "restic dump kept running or left its lock"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The repository is immediately usable for changes.
    let (status, body) = agent
        .call(
            Method::POST,
            &format!("{}/{id}/lock", agent.backups_url(&server)),
            KEY,
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    agent.backup(&server, KEY).await;
}

#[tokio::test]
async fn downloads_beyond_the_node_limit_get_429_and_the_slot_comes_back() {
    let agent = TestAgent::start_with(&["max_parallel_downloads = 2"]);
    let server = agent.add_server();
    let dir = agent.data_dir().join(&server);
    std::fs::write(
        dir.join("world/big.mca"),
        testkit::pseudo_random(22, 64 << 20),
    )
    .unwrap();
    let id = agent.backup(&server, KEY).await;
    let url = format!("{}/{id}/download?format=tar.gz", agent.backups_url(&server));
    // Two slow clients: they read nothing, so their dumps stay running.
    let mut slow = Vec::new();
    for _ in 0..2 {
        let res = agent.req(Method::GET, &url, KEY).send().await.unwrap();
        assert_eq!(res.status(), 200);
        slow.push(res);
    }
    let res = agent.req(Method::GET, &url, KEY).send().await.unwrap();
    assert_eq!(res.status(), 429);
    assert_eq!(res.headers()["retry-after"], "10");
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_downloads");
    assert_eq!(restic_dumps(&agent.repo(&server)), 2, "a third dump ran");
    // A one-time link refused for now is not used up.
    let token = issue(
        &Secret::new(TOKEN).unwrap(),
        &ServerUuid::parse(&server).unwrap(),
        &SnapshotRef::parse(&id).unwrap(),
        DownloadFormat::TarGz,
        None,
        &Secret::new(KEY).unwrap(),
        time_now(),
    );
    let link = format!("{}/download/restic?token={token}", agent.url);
    let (status, _, _) = fetch(agent.http.get(&link)).await;
    assert_eq!(status, 429);
    // A client that goes away gives its slot back.
    drop(slow.pop());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let res = agent.req(Method::GET, &url, KEY).send().await.unwrap();
        if res.status() == 200 {
            let body = res.bytes().await.unwrap();
            assert!(body.len() > 1 << 20);
            break;
        }
        assert!(Instant::now() < deadline, "the slot never came back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(slow);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, _, _) = fetch(agent.http.get(&link)).await;
        if status == 200 {
            break;
        }
        assert_eq!(status, 429, "the refused link was used up");
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_used_link_stays_used_after_a_restart() {
    let agent = TestAgent::start();
    let server = agent.add_server();
    let id = agent.backup(&server, KEY).await;
    let node = Secret::new(TOKEN).unwrap();
    let key = Secret::new(KEY).unwrap();
    let uuid = ServerUuid::parse(&server).unwrap();
    let snap = SnapshotRef::parse(&id).unwrap();
    let token = issue(
        &node,
        &uuid,
        &snap,
        DownloadFormat::TarGz,
        None,
        &key,
        time_now(),
    );
    let link = |a: &TestAgent| format!("{}/download/restic?token={token}", a.url);
    let (status, _, _) = fetch(agent.http.get(link(&agent))).await;
    assert_eq!(status, 200);
    let agent = agent.restart();
    let (status, _, body) = fetch(agent.http.get(link(&agent))).await;
    let code: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (status, code["error"]["code"].as_str()),
        (403, Some("link_used"))
    );
}

#[tokio::test]
async fn a_client_that_stops_reading_loses_its_download_slot() {
    let agent = TestAgent::start_with(&["max_parallel_downloads = 1", "write_timeout_secs = 2"]);
    let server = agent.add_server();
    std::fs::write(
        agent.data_dir().join(&server).join("world/big.mca"),
        testkit::pseudo_random(23, 64 << 20),
    )
    .unwrap();
    let id = agent.backup(&server, KEY).await;
    let url = format!("{}/{id}/download?format=tar.gz", agent.backups_url(&server));
    let stalled = agent.req(Method::GET, &url, KEY).send().await.unwrap();
    assert_eq!(stalled.status(), 200);
    let res = agent.req(Method::GET, &url, KEY).send().await.unwrap();
    assert_eq!(res.status(), 429);
    // The stalled client never reads: once its writes make no progress for
    // 2 s, the connection goes and the slot with it.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let res = agent.req(Method::GET, &url, KEY).send().await.unwrap();
        if res.status() == 200 {
            assert!(res.bytes().await.unwrap().len() > 1 << 20);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the stalled download kept its slot"
        );
    }
    assert_eq!(restic_dumps(&agent.repo(&server)), 0);
    drop(stalled);
}

//! `restic-backups demo`: one command gives a working panel + agent with
//! three logins and a sample server; started again it keeps everything.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::json;
use testkit::panel::Client;

struct Demo {
    child: Child,
    lines: Vec<(String, String)>,
}

impl Demo {
    fn start(dir: &std::path::Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_restic-backups"))
            .args(["demo", "--listen", "127.0.0.1:0", "--dir"])
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut lines = Vec::new();
        while lines.len() < 5 {
            let mut line = String::new();
            assert!(out.read_line(&mut line).unwrap() > 0, "demo ended early");
            let (k, v) = line.trim().split_once(": ").expect("key: value lines");
            lines.push((k.to_owned(), v.to_owned()));
        }
        Demo { child, lines }
    }

    fn get(&self, key: &str) -> &str {
        &self.lines.iter().find(|(k, _)| k == key).unwrap().1
    }

    fn login_of(&self, key: &str) -> (String, String) {
        let (email, pass) = self.get(key).split_once(' ').unwrap();
        (email.to_owned(), pass.to_owned())
    }

    async fn login(&self, key: &str) -> Client {
        let (email, pass) = self.login_of(key);
        let mut c = Client {
            base: self.get("url").to_owned(),
            http: reqwest::Client::new(),
            cookie: None,
            csrf: None,
            seen: Default::default(),
            other_cookie: None,
        };
        let (s, b) = c
            .post("/auth/login", json!({"email": email, "password": pass}))
            .await;
        assert_eq!(s, 200, "{b}");
        c.csrf = Some(b["csrf_token"].as_str().unwrap().to_owned());
        c
    }

    fn stop(mut self) {
        testkit::signal(self.child.id(), rustix::process::Signal::TERM);
        for _ in 0..500 {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(status.success(), "demo exited with {status}");
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        panic!("demo did not stop on SIGTERM");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_starts_seeds_and_keeps_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let demo = Demo::start(dir.path());
    let keys: Vec<&str> = demo.lines.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["url", "admin", "owner", "subuser", "server"]);
    let server = demo.get("server").to_owned();
    let backups = format!("/extensions/resticbackups/servers/{server}/backups/restic");

    let mut owner = demo.login("owner").await;
    let (s, list) = owner.get(&backups).await;
    assert_eq!((s, list["total"].as_u64()), (200, Some(0)), "{list}");
    owner.backup(&server).await;
    let (_, list) = owner.get(&backups).await;
    assert_eq!(list["total"], 1);
    let (_, stats) = owner.get(&format!("{backups}/stats")).await;
    assert!(
        stats["total_uncompressed_size"].as_u64().unwrap() > 2_000_000,
        "a few MB of sample files: {stats}"
    );

    // The subuser may only read.
    let mut sub = demo.login("subuser").await;
    assert_eq!(sub.get(&backups).await.0, 200);
    assert_eq!(sub.post(&backups, json!({})).await.0, 403);
    let (_, mine) = sub.get("/extensions/resticbackups/servers").await;
    assert_eq!(mine["servers"][0]["permissions"], json!(["backup.read"]));
    // The admin sees the key page.
    let mut admin = demo.login("admin").await;
    assert_eq!(
        admin.get("/extensions/resticbackups/admin/keys").await.0,
        200
    );

    let before = demo.lines.clone();
    demo.stop();

    // Again on the same folder: the same logins and server, the data kept.
    let demo = Demo::start(dir.path());
    for key in ["admin", "owner", "subuser", "server"] {
        assert_eq!(
            demo.get(key),
            before.iter().find(|(k, _)| k == key).unwrap().1,
            "{key} changed"
        );
    }
    let mut owner = demo.login("owner").await;
    let (s, list) = owner.get(&backups).await;
    assert_eq!((s, list["total"].as_u64()), (200, Some(1)), "{list}");
    demo.stop();
}

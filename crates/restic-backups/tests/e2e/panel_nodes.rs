//! Nodes: settings that can not work are refused when added, `node test`
//! says what is wrong, and a hung agent costs a page one read timeout.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;
use testkit::panel::{Db, World, run_cli};

const API: &str = "/extensions/resticbackups";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_settings_that_can_not_work_are_refused() {
    let mut w = World::new(Db::Sqlite, 0, 0).await;
    let token = "a-node-token-0123456789";
    for (url, ca) in [
        ("http://user:pw@node.example:8090", None),
        ("https://node.example:8090/api", None),
        ("https://node.example:8090/?x=1", None),
        ("https://", None),
        ("ftp://node.example", None),
        (
            "https://node.example:8090",
            Some("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n"),
        ),
    ] {
        let (s, v) = w
            .admin
            .send(
                Method::POST,
                &format!("{API}/admin/nodes"),
                Some(json!({"name": "bad", "url": url, "token": token, "ca_pem": ca})),
            )
            .await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (400, Some("invalid_input")),
            "{url}: {v}"
        );
    }
    let (_, nodes) = w.admin.get(&format!("{API}/admin/nodes")).await;
    assert!(!nodes.to_string().contains("\"bad\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_test_says_what_is_wrong() {
    let mut w = World::new(Db::Sqlite, 0, 0).await;
    let config = w.panel.dir.path().join("panel.toml");
    let (ok, out) = run_cli(&config, &["node", "test", "node-1"], "");
    assert!(ok, "{out}");
    assert!(out.contains("reachable, token accepted"), "{out}");

    let (s, v) = w
        .admin
        .send(
            Method::POST,
            &format!("{API}/admin/nodes"),
            Some(json!({"name": "wrong-token", "url": w.agent.url, "token": "not-the-node-token-123"})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let (ok, out) = run_cli(&config, &["node", "test", "wrong-token"], "");
    assert!(!ok);
    assert!(out.contains("refused the node token"), "{out}");
    assert!(
        !out.contains("not-the-node-token-123"),
        "the token leaked: {out}"
    );

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let (s, _) = w
        .admin
        .send(
            Method::POST,
            &format!("{API}/admin/nodes"),
            Some(json!({"name": "gone", "url": url, "token": "a-node-token-0123456789"})),
        )
        .await;
    assert_eq!(s, 201);
    let (ok, out) = run_cli(&config, &["node", "test", "gone"], "");
    assert!(!ok);
    assert!(out.contains("unreachable"), "{out}");
    let (ok, out) = run_cli(&config, &["node", "test", "nonesuch"], "");
    assert!(!ok && out.contains("no node named nonesuch"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_agent_costs_a_page_one_read_timeout() {
    let w = World::new(Db::Sqlite, 1, 0).await;
    // Accepts connections and never answers.
    let hung = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", hung.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in hung.incoming().flatten() {
            held.push(s);
        }
    });
    let mut admin = w.admin.clone();
    let (s, _) = admin
        .send(
            Method::POST,
            &format!("{API}/admin/nodes"),
            Some(json!({"name": "hung", "url": url, "token": "a-node-token-0123456789"})),
        )
        .await;
    assert_eq!(s, 201);
    let stuck = testkit::new_uuid();
    w.panel
        .add_server(&w.admin, &stuck, "owner@example.com", "hung", 0)
        .await;

    let started = Instant::now();
    let mut owner = w.owner.clone();
    let list = async {
        let (s, v) = owner
            .get(&format!("{API}/servers/{stuck}/backups/restic"))
            .await;
        (s, v, started.elapsed())
    };
    let archives = async {
        let (s, v) = admin.get(&format!("{API}/admin/archived-repos")).await;
        (s, v, started.elapsed())
    };
    let ((ls, lv, lt), (as_, av, at)) = tokio::join!(list, archives);
    assert_eq!(
        (ls, lv["error"]["code"].as_str()),
        (502, Some("node_unavailable")),
        "{lv}"
    );
    assert!(lt < Duration::from_secs(14), "the list waited {lt:?}");
    assert_eq!(as_, 200, "{av}");
    assert_eq!(av["unavailable_nodes"], json!(["hung"]), "{av}");
    assert!(
        at < Duration::from_secs(14),
        "the archives page waited {at:?}"
    );
}

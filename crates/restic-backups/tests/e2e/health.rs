//! `/healthz` and `/readyz` on agent and panel: unauthenticated, quick, and
//! naming failing checks without paths or errors.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use testkit::TestAgent;
use testkit::panel::{Db, TestPanel};

async fn get(url: &str) -> (u16, Value, Duration) {
    let started = Instant::now();
    let res = reqwest::get(url).await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap(), started.elapsed())
}

#[tokio::test]
async fn the_agent_says_when_a_folder_it_needs_is_unusable() {
    let agent = TestAgent::start();
    let (s, v, took) = get(&format!("{}/healthz", agent.url)).await;
    assert_eq!((s, v), (200, json!({"status": "ok"})));
    assert!(took < Duration::from_secs(1));
    let (s, v, took) = get(&format!("{}/readyz", agent.url)).await;
    assert_eq!((s, v), (200, json!({"status": "ready"})));
    assert!(took < Duration::from_secs(2), "{took:?}");

    // The repository folder turns into a file (a lost mount, say).
    let root = agent.repo_root();
    std::fs::rename(&root, root.with_extension("moved")).unwrap();
    std::fs::write(&root, "not a folder").unwrap();
    // Answers are reused for two seconds.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (s, v, _) = get(&format!("{}/readyz", agent.url)).await;
    assert_eq!(s, 503, "{v}");
    assert_eq!(v["status"], "not_ready");
    assert!(
        v["failing"]
            .as_array()
            .unwrap()
            .contains(&json!("repo_root")),
        "{v}"
    );
    assert!(!v.to_string().contains('/'), "a path leaked: {v}");
    std::fs::remove_file(&root).unwrap();
    std::fs::rename(root.with_extension("moved"), &root).unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (s, _, _) = get(&format!("{}/readyz", agent.url)).await;
    assert_eq!(s, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_panel_answers_health_checks_without_a_session() {
    let panel = TestPanel::start(Db::Sqlite);
    let (s, v, _) = get(&format!("{}/healthz", panel.url)).await;
    assert_eq!((s, v), (200, json!({"status": "ok"})));
    let (s, v, took) = get(&format!("{}/readyz", panel.url)).await;
    assert_eq!((s, v), (200, json!({"status": "ready"})));
    assert!(took < Duration::from_secs(1), "{took:?}");
}

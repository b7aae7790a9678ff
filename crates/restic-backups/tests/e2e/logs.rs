//! What operators read: a request ID on every answer and on the request's
//! log lines, one line per request, JSON lines with `log_format = "json"`,
//! and no secrets in any of it.

use std::time::Duration;

use serde_json::Value;
use testkit::panel::{Db, PASSWORD, TestPanel};
use testkit::{TOKEN, TestAgent};

/// The log lines that parse as JSON objects.
fn json_lines(log: &str) -> Vec<Value> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(Value::is_object)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_panel_writes_json_lines_with_the_request_id_it_answers_with() {
    let panel = TestPanel::start_with(Db::Sqlite, &["log_format = \"json\""]);
    let http = reqwest::Client::new();

    // A new ID when the caller gives none.
    let res = http
        .post(format!("{}/auth/login", panel.url))
        .json(&serde_json::json!({"email": "admin@example.com", "password": "wrong password here"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(id.len(), 16, "{id}");
    // The caller's own, when it is a plain token; a strange one is replaced.
    let res = http
        .get(format!("{}/auth/session", panel.url))
        .header("X-Request-Id", "edge-7f3a.1")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "edge-7f3a.1");
    let res = http
        .get(format!("{}/auth/session", panel.url))
        .header("X-Request-Id", "a b\"c")
        .send()
        .await
        .unwrap();
    assert_ne!(res.headers()["x-request-id"], "a b\"c");
    // A successful login too (its password must not show).
    let res = http
        .post(format!("{}/auth/login", panel.url))
        .json(&serde_json::json!({"email": "admin@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = panel.log();
    let lines = json_lines(&log);
    assert!(
        lines.len() >= 4 && lines.len() * 10 >= log.lines().count() * 9,
        "not JSON lines:\n{log}"
    );
    let request = lines
        .iter()
        .find(|l| {
            l["fields"]["message"] == "request"
                && l["span"]["request_id"] == id.as_str()
                && l["level"] == "INFO"
        })
        .unwrap_or_else(|| panic!("no request line with {id}:\n{log}"));
    assert_eq!(request["fields"]["status"], 401);
    assert_eq!(request["fields"]["route"], "/auth/login");
    assert!(
        lines
            .iter()
            .any(|l| l["span"]["request_id"] == "edge-7f3a.1"),
        "{log}"
    );
    assert!(!log.contains(PASSWORD) && !log.contains("wrong password here"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_logs_json_and_health_checks_stay_quiet_at_info() {
    let agent = TestAgent::start_with(&["log_format = \"json\""]);
    let http = reqwest::Client::new();
    for _ in 0..3 {
        let res = http
            .get(format!("{}/healthz", agent.url))
            .send()
            .await
            .unwrap();
        assert!(res.headers().contains_key("x-request-id"));
    }
    let server = agent.add_server();
    let res = agent
        .req(
            reqwest::Method::GET,
            &agent.backups_url(&server),
            "a-repository-key-0123",
        )
        .send()
        .await
        .unwrap();
    let id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = agent.log();
    let lines = json_lines(&log);
    let health_at_info = lines
        .iter()
        .filter(|l| l["fields"]["route"] == "/healthz" && l["level"] == "INFO");
    assert_eq!(health_at_info.count(), 0, "{log}");
    assert!(
        lines.iter().any(|l| l["span"]["request_id"] == id.as_str()
            && l["fields"]["route"] == "/api/servers/{server}/backups/restic"),
        "{log}"
    );
    assert!(!log.contains(TOKEN) && !log.contains("a-repository-key-0123"));
}

#[test]
fn an_unknown_log_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        "token = \"a-token-of-16-chars-or-more\"\nlog_format = \"xml\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_restic-backups"))
        .args(["agent", "--config"])
        .arg(&config)
        .env("RESTIC_BACKUPS_AGENT_WINGS_CONFIG", "/dev/null")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("log_format") && err.contains("json"), "{err}");
}

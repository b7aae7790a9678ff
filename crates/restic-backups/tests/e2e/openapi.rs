//! `GET /openapi.json` on the agent and the panel: open, valid JSON, and
//! every operation it lists is answered by the running router (never its
//! "no such route" or "method not allowed" answers). The api crate's own
//! tests check the documents list exactly the route templates the routers
//! mount; `repo_hygiene` checks the panel router mounts no path literal
//! but its HTML pages.

use reqwest::Method;
use serde_json::{Value, json};
use testkit::panel::{Db, TestPanel};
use testkit::{TOKEN, TestAgent};

/// Fills each `{name}` with a value of the right shape.
fn fill(template: &str) -> String {
    template
        .split('/')
        .map(|seg| match seg {
            "{server}" => "1f0e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
            "{id}" => "0123abcd",
            "{job}" | "{task}" => "0123456789abcdef0123456789abcdef",
            "{user}" => "999999",
            "{name}" | "{backup}" => "nothing-here",
            other => other,
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// `(METHOD, path template)` of every operation in a document.
fn operations(doc: &Value) -> Vec<(Method, String)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (name, method) in [
            ("get", Method::GET),
            ("put", Method::PUT),
            ("post", Method::POST),
            ("delete", Method::DELETE),
            ("patch", Method::PATCH),
        ] {
            if item.get(name).is_some() {
                out.push((method, path.clone()));
            }
        }
    }
    out
}

/// An answer that says the router has no such route or method.
fn unrouted(status: u16, body: &Value) -> bool {
    let message = body["error"]["message"].as_str().unwrap_or_default();
    status == 405 || (status == 404 && (message == "no such endpoint" || message == "no such page"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_document_lists_routes_the_agent_answers() {
    let agent = TestAgent::start();
    let http = reqwest::Client::new();
    let res = http
        .get(format!("{}/openapi.json", agent.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "open, no token");
    assert_eq!(res.headers()["content-type"], "application/json");
    let doc: Value = res.json().await.unwrap();
    assert_eq!(doc["info"]["title"], "Restic Backups node agent");
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let ops = operations(&doc);
    assert!(ops.len() >= 19, "{} operations", ops.len());
    for (method, template) in ops {
        let res = http
            .request(method.clone(), format!("{}{}", agent.url, fill(&template)))
            .bearer_auth(TOKEN)
            .header(api::agent::PASSWORD_HEADER, "not-the-key")
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        assert!(
            !unrouted(status, &body),
            "{method} {template} is documented but not routed: {status} {body}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_panel_document_lists_routes_the_panel_answers() {
    let panel = TestPanel::start(Db::Sqlite);
    let mut anonymous = panel.anonymous();
    let (s, doc) = anonymous.get("/openapi.json").await;
    assert_eq!(s, 200, "open, no session: {doc}");
    assert_eq!(doc["info"]["title"], "Restic Backups panel");
    let ops = operations(&doc);
    assert!(ops.len() >= 45, "{} operations", ops.len());
    let mut admin = panel.admin().await;
    // Signing out last, so the admin's session serves every other check.
    let (logout, rest): (Vec<_>, Vec<_>) = ops
        .into_iter()
        .partition(|(_, path)| path == "/auth/logout");
    for (method, template) in rest.into_iter().chain(logout) {
        let (status, body) = admin
            .send(method.clone(), &fill(&template), Some(json!({})))
            .await;
        assert!(
            !unrouted(status, &body),
            "{method} {template} is documented but not routed: {status} {body}"
        );
    }
}

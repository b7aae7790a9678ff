//! Bad input to every panel route: a clear 4xx JSON error, nothing changed.

use reqwest::Method;
use serde_json::{Value, json};
use testkit::TOKEN;
use testkit::panel::{Db, PASSWORD, World};

use super::{API, backups};

pub(super) async fn bad_input(db: Db) {
    let World {
        agent,
        panel,
        mut admin,
        mut owner,
        servers,
    } = World::new(db, 1, 0).await;
    let server = servers[0].clone();
    let b = backups(&server);

    let cases: Vec<(Method, String, Option<Value>, u16, &str)> = vec![
        (
            Method::POST,
            format!("{b}/--password-command=sh/lock"),
            None,
            400,
            "invalid_backup_id",
        ),
        (
            Method::DELETE,
            format!("{b}/..%2F..%2Fetc"),
            None,
            400,
            "invalid_backup_id",
        ),
        (
            Method::GET,
            format!("{b}/zz/download"),
            None,
            400,
            "invalid_backup_id",
        ),
        (
            Method::GET,
            format!("{b}/{}/download", "a".repeat(200)),
            None,
            400,
            "invalid_backup_id",
        ),
        (
            Method::GET,
            format!("{b}/{}/download?format=exe", "ab".repeat(4)),
            None,
            400,
            "invalid_format",
        ),
        (
            Method::GET,
            format!("{b}/{}/download", "ab".repeat(4)),
            None,
            404,
            "backup_not_found",
        ),
        (
            Method::POST,
            format!("{b}/{}/lock", "ab".repeat(4)),
            None,
            404,
            "repository_not_found",
        ),
        (
            Method::GET,
            format!("{API}/servers/..%2F..%2Fetc/backups/restic"),
            None,
            404,
            "server_not_found",
        ),
        (
            Method::GET,
            format!("{API}/servers/s%C3%A9rveur/backups/restic"),
            None,
            404,
            "server_not_found",
        ),
        (
            Method::GET,
            format!("{API}/servers/{}/backups/restic", testkit::new_uuid()),
            None,
            404,
            "server_not_found",
        ),
        (
            Method::GET,
            format!("{b}?limit=abc"),
            None,
            400,
            "invalid_limit",
        ),
        (
            Method::GET,
            format!("{b}?limit=0"),
            None,
            400,
            "invalid_limit",
        ),
        (
            Method::GET,
            format!("{b}/jobs/not-a-job"),
            None,
            400,
            "invalid_job_id",
        ),
        (
            Method::GET,
            format!("{b}/jobs/{}", "0".repeat(32)),
            None,
            404,
            "job_not_found",
        ),
        (
            Method::POST,
            b.clone(),
            Some(json!({"ignore": 5})),
            400,
            "invalid_json",
        ),
        (
            Method::POST,
            b.clone(),
            Some(json!({"max_backups": 1})),
            400,
            "invalid_json",
        ),
        (
            Method::POST,
            format!("{b}/{}/restore", "ab".repeat(4)),
            Some(json!({"truncate": "yes"})),
            400,
            "invalid_json",
        ),
        (Method::GET, "/auth/nope".to_owned(), None, 404, "not_found"),
        (
            Method::GET,
            format!("{API}/admin/nope"),
            None,
            404,
            "not_found",
        ),
    ];
    for (m, p, body, status, code) in cases {
        let (s, got) = owner.send(m.clone(), &p, body).await;
        assert_eq!(
            (s, got["error"]["code"].as_str()),
            (status, Some(code)),
            "{m} {p}: {got}"
        );
    }
    // Unknown pages are HTML 404s, with the page security headers.
    let res = owner.request(Method::GET, "/nope").send().await.unwrap();
    assert_eq!(res.status(), 404);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(
        res.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("script-src 'self'")
    );
    // Broken JSON and a huge body.
    let token = owner.csrf.clone().unwrap();
    let r = owner
        .request(Method::POST, &b)
        .header("X-CSRF-Token", &token)
        .header("content-type", "application/json")
        .body("{\"ignore\":");
    let (s, got) = owner.finish(&b, r).await;
    assert_eq!(
        (s, got["error"]["code"].as_str()),
        (400, Some("invalid_json"))
    );
    let r = owner
        .request(Method::POST, &b)
        .header("X-CSRF-Token", &token)
        .header("content-type", "application/json")
        .body(format!("{{\"ignore\":\"{}\"}}", "x".repeat(200 * 1024)));
    let (s, got) = owner.finish(&b, r).await;
    assert_eq!(
        (s, got["error"]["code"].as_str()),
        (413, Some("payload_too_large"))
    );

    // Admin input.
    let admin_cases: Vec<(Method, String, Value, u16)> = vec![
        (
            Method::POST,
            format!("{API}/admin/users"),
            json!({"email": "not-an-email", "password": PASSWORD}),
            400,
        ),
        (
            Method::POST,
            format!("{API}/admin/users"),
            json!({"email": "x@example.com", "password": "short"}),
            400,
        ),
        (
            Method::POST,
            format!("{API}/admin/users"),
            json!({"email": "OWNER@example.com", "password": PASSWORD}),
            409,
        ),
        (
            Method::POST,
            format!("{API}/admin/users"),
            json!({"email": "y@example.com", "password": PASSWORD, "extra": 1}),
            400,
        ),
        (
            Method::POST,
            format!("{API}/admin/nodes"),
            json!({"name": "../x", "url": "http://a", "token": TOKEN}),
            400,
        ),
        (
            Method::POST,
            format!("{API}/admin/nodes"),
            json!({"name": "n2", "url": "ftp://a", "token": TOKEN}),
            400,
        ),
        (
            Method::POST,
            format!("{API}/admin/servers"),
            json!({"uuid": "--password-command=x", "name": "x", "owner": "owner@example.com", "node": "node-1"}),
            400,
        ),
        (
            Method::POST,
            format!("{API}/admin/servers"),
            json!({"uuid": testkit::new_uuid(), "name": "x", "owner": "nobody@example.com", "node": "node-1"}),
            404,
        ),
        (
            Method::POST,
            format!("{API}/admin/servers"),
            json!({"uuid": testkit::new_uuid(), "name": "x", "owner": "owner@example.com", "node": "node-1", "backup_limit": -1}),
            400,
        ),
        (
            Method::PUT,
            format!("{API}/admin/servers/{server}/subusers"),
            json!({"email": "owner@example.com", "permissions": ["backup.everything"]}),
            400,
        ),
        (
            Method::DELETE,
            format!("{API}/admin/nodes/node-1"),
            json!({}),
            409,
        ),
        (
            Method::DELETE,
            format!("{API}/admin/archived-repos/..%2F{server}"),
            json!({}),
            404,
        ),
        (
            Method::PATCH,
            format!("{API}/admin/users/abc"),
            json!({}),
            400,
        ),
        (
            Method::DELETE,
            format!("{API}/admin/users/999999"),
            json!({}),
            404,
        ),
    ];
    for (m, p, body, status) in admin_cases {
        let (s, got) = admin.send(m.clone(), &p, Some(body)).await;
        assert_eq!(s, status, "{m} {p}: {got}");
        assert!(got["error"]["code"].is_string(), "{got}");
    }
    // Nothing above reached restic with a bad value, and nothing panicked.
    assert!(!panel.log().contains("panicked"));
    assert!(!agent.log().contains("panicked"));
}

//! The panel's HTTP API against a real agent and real restic, on SQLite and
//! on PostgreSQL: the authorization matrix, CSRF and sessions, bad input,
//! the whole backup story end to end, and a scan of every response and log
//! line for node tokens and server keys.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::panel::{Client, Db, PASSWORD, TestPanel, World};
use common::{TOKEN, TestAgent};
use reqwest::Method;
use serde_json::{Value, json};

const API: &str = "/extensions/resticbackups";

fn backups(server: &str) -> String {
    format!("{API}/servers/{server}/backups/restic")
}

/// Asserts that no response body (except the admin keys page) and no log
/// line holds the node token or any server key.
fn assert_no_secrets(panel: &TestPanel, agent: &TestAgent, keys: &[String]) {
    let mut secrets: Vec<&str> = keys.iter().map(String::as_str).collect();
    secrets.push(TOKEN);
    let seen = panel.seen.lock().unwrap();
    assert!(seen.len() > 10, "too few responses recorded");
    for (path, body) in seen.iter() {
        if path == &format!("{API}/admin/keys") {
            continue;
        }
        for s in &secrets {
            assert!(!body.contains(s), "a secret leaked in the answer to {path}");
        }
    }
    for (name, log) in [("panel", panel.log()), ("agent", agent.log())] {
        assert!(log.contains("DEBUG"), "{name} log is not at debug level");
        for s in &secrets {
            assert!(!log.contains(s), "a secret leaked into the {name} log");
        }
    }
}

// ---------------------------------------------------------------------------
// Authorization matrix
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    LoggedOut,
    Stranger,
    /// A subuser holding every permission but the one needed.
    SubuserWithout,
    /// A subuser holding exactly the permission needed.
    SubuserWith,
    Owner,
    Admin,
}

const ROLES: [Role; 6] = [
    Role::LoggedOut,
    Role::Stranger,
    Role::SubuserWithout,
    Role::SubuserWith,
    Role::Owner,
    Role::Admin,
];

#[derive(Clone, Copy, Debug)]
enum Need {
    Perm(&'static str),
    RootAdmin,
    LoggedIn,
}

fn expected(role: Role, need: Need, success: u16) -> u16 {
    match (role, need) {
        (Role::LoggedOut, _) => 401,
        (_, Need::LoggedIn) => success,
        (Role::Admin, _) => success,
        (_, Need::RootAdmin) => 403,
        (Role::Stranger, Need::Perm(_)) => 404,
        (Role::SubuserWithout, Need::Perm(_)) => 403,
        (Role::SubuserWith | Role::Owner, Need::Perm(_)) => success,
    }
}

const PERMS: [&str; 5] = [
    "backup.read",
    "backup.create",
    "backup.download",
    "backup.restore",
    "backup.delete",
];

async fn authorization_matrix(db: Db) {
    let agent = TestAgent::start();
    let panel = TestPanel::start(db);
    let mut admin = panel.admin().await;
    panel.add_node(&admin, "node-1", &agent).await;
    for who in ["owner", "stranger"] {
        panel.add_user(&admin, &format!("{who}@example.com")).await;
    }
    let server = agent.add_server();
    let doomed = agent.add_server();
    panel
        .add_server(&admin, &server, "owner@example.com", "node-1", 0)
        .await;
    panel
        .add_server(&admin, &doomed, "owner@example.com", "node-1", 0)
        .await;
    for p in PERMS {
        let with = format!("with-{p}@example.com");
        let without = format!("without-{p}@example.com");
        panel.add_user(&admin, &with).await;
        panel.add_user(&admin, &without).await;
        panel.set_subuser(&admin, &server, &with, &[p]).await;
        let others: Vec<&str> = PERMS.iter().copied().filter(|x| *x != p).collect();
        panel.set_subuser(&admin, &server, &without, &others).await;
    }
    let mut owner = panel.login("owner@example.com", PASSWORD).await;
    let stranger = panel.login("stranger@example.com", PASSWORD).await;
    let mut subs: HashMap<String, Client> = HashMap::new();
    for p in PERMS {
        for kind in ["with", "without"] {
            let email = format!("{kind}-{p}@example.com");
            subs.insert(email.clone(), panel.login(&email, PASSWORD).await);
        }
    }

    // Snapshots: one that refused requests aim at (it must survive), one per
    // role allowed to delete, and a job to look at.
    let keep = owner.backup(&server).await;
    let mut to_delete: HashMap<String, String> = HashMap::new();
    for who in ["sub", "owner", "admin"] {
        to_delete.insert(who.to_owned(), owner.backup(&server).await);
    }
    let (_, job) = owner.post(&backups(&server), json!({})).await;
    let job = job["job_id"].as_str().unwrap().to_owned();
    owner.wait_job(&server, &job).await;

    // An archived repository on the node for the admin to delete: the
    // doomed server's, made by deleting that server through the API later;
    // first a separate one straight on the agent.
    let spare = agent.add_server();
    let spare_key = "spare-server-key-0123456789";
    agent.backup(&spare, spare_key).await;
    let (s, a) = agent
        .call(
            Method::POST,
            &format!("{}/archive", agent.backups_url(&spare)),
            spare_key,
            None,
        )
        .await;
    assert_eq!(s, 202, "{a}");
    agent.wait_job(&spare, a["job_id"].as_str().unwrap()).await;
    let (_, archives) = admin.get(&format!("{API}/admin/archived-repos")).await;
    let archive_name = archives["archives"][0]["name"].as_str().unwrap().to_owned();

    struct Row {
        method: Method,
        path: String,
        body: Option<Value>,
        need: Need,
        success: u16,
    }
    let b = backups(&server);
    let row = |method: Method, path: String, body: Option<Value>, need: Need, success: u16| Row {
        method,
        path,
        body,
        need,
        success,
    };
    let rows = vec![
        row(
            Method::GET,
            format!("{API}/servers"),
            None,
            Need::LoggedIn,
            200,
        ),
        row(Method::GET, b.clone(), None, Need::Perm("backup.read"), 200),
        row(
            Method::GET,
            format!("{b}/stats"),
            None,
            Need::Perm("backup.read"),
            200,
        ),
        row(
            Method::GET,
            format!("{b}/jobs/{job}"),
            None,
            Need::Perm("backup.read"),
            200,
        ),
        row(
            Method::POST,
            b.clone(),
            Some(json!({})),
            Need::Perm("backup.create"),
            202,
        ),
        row(
            Method::GET,
            format!("{b}/schedule"),
            None,
            Need::Perm("backup.read"),
            200,
        ),
        row(
            Method::GET,
            format!("{b}/schedule/history"),
            None,
            Need::Perm("backup.read"),
            200,
        ),
        row(
            Method::POST,
            format!("{b}/schedule"),
            Some(
                // Without retention rules: those also need backup.delete
                // (panel_schedule.rs tests that pair).
                json!({"enabled": true, "interval_value": 1, "interval_unit": "days"}),
            ),
            Need::Perm("backup.create"),
            200,
        ),
        row(
            Method::GET,
            format!("{b}/{keep}/download"),
            None,
            Need::Perm("backup.download"),
            302,
        ),
        row(
            Method::POST,
            format!("{b}/{keep}/restore"),
            Some(json!({})),
            Need::Perm("backup.restore"),
            202,
        ),
        row(
            Method::POST,
            format!("{b}/{keep}/lock"),
            None,
            Need::Perm("backup.delete"),
            200,
        ),
        row(
            Method::POST,
            format!("{b}/{keep}/unlock"),
            None,
            Need::Perm("backup.delete"),
            200,
        ),
        // Refused roles aim at `keep`; allowed ones get their own snapshot.
        row(
            Method::DELETE,
            format!("{b}/{keep}"),
            None,
            Need::Perm("backup.delete"),
            204,
        ),
        row(
            Method::GET,
            format!("{API}/admin/keys"),
            None,
            Need::RootAdmin,
            200,
        ),
        row(
            Method::POST,
            format!("{API}/admin/servers/{server}/key/regenerate"),
            None,
            Need::RootAdmin,
            200,
        ),
        row(
            Method::GET,
            format!("{API}/admin/archived-repos"),
            None,
            Need::RootAdmin,
            200,
        ),
        row(
            Method::DELETE,
            format!("{API}/admin/archived-repos/{archive_name}"),
            None,
            Need::RootAdmin,
            204,
        ),
        row(
            Method::GET,
            format!("{API}/admin/users"),
            None,
            Need::RootAdmin,
            200,
        ),
        row(
            Method::POST,
            format!("{API}/admin/users"),
            Some(json!({"email": "new@example.com", "password": PASSWORD})),
            Need::RootAdmin,
            201,
        ),
        row(
            Method::GET,
            format!("{API}/admin/nodes"),
            None,
            Need::RootAdmin,
            200,
        ),
        row(
            Method::PATCH,
            format!("{API}/admin/nodes/node-1"),
            Some(json!({"browser_downloads": true})),
            Need::RootAdmin,
            200,
        ),
        row(
            Method::GET,
            format!("{API}/admin/servers"),
            None,
            Need::RootAdmin,
            200,
        ),
        row(
            Method::PATCH,
            format!("{API}/admin/servers/{server}"),
            Some(json!({"backup_limit": 0})),
            Need::RootAdmin,
            200,
        ),
        row(
            Method::GET,
            format!("{API}/admin/servers/{server}/subusers"),
            None,
            Need::RootAdmin,
            200,
        ),
        row(
            Method::PUT,
            format!("{API}/admin/servers/{server}/subusers"),
            Some(json!({"email": "stranger@example.com", "permissions": []})),
            Need::RootAdmin,
            204,
        ),
        row(
            Method::DELETE,
            format!("{API}/admin/servers/{doomed}"),
            None,
            Need::RootAdmin,
            204,
        ),
    ];

    let mut checked = 0;
    for r in &rows {
        for role in ROLES {
            let mut client = match (role, r.need) {
                (Role::LoggedOut, _) => panel.anonymous(),
                (Role::Stranger, _) => stranger.clone(),
                (Role::Owner, _) => owner.clone(),
                (Role::Admin, _) => admin.clone(),
                (Role::SubuserWith, Need::Perm(p)) => {
                    subs[&format!("with-{p}@example.com")].clone()
                }
                (Role::SubuserWithout, Need::Perm(p)) => {
                    subs[&format!("without-{p}@example.com")].clone()
                }
                // Admin-only and logged-in rows: subusers of every kind.
                (Role::SubuserWith | Role::SubuserWithout, _) => {
                    subs["with-backup.read@example.com"].clone()
                }
            };
            let want = expected(role, r.need, r.success);
            let mut path = r.path.clone();
            if r.method == Method::DELETE && want == 204 && path == format!("{b}/{keep}") {
                let who = match role {
                    Role::Owner => "owner",
                    Role::Admin => "admin",
                    _ => "sub",
                };
                path = format!("{b}/{}", to_delete[who]);
            }
            let (status, body) = client.send(r.method.clone(), &path, r.body.clone()).await;
            assert_eq!(
                status, want,
                "{:?} {} {path} as {role:?}: {body}",
                r.need, r.method
            );
            if status >= 400 {
                assert!(body["error"]["code"].is_string(), "no JSON error: {body}");
            }
            // Let jobs end before the next allowed role starts one.
            if status == 202 {
                // (as the owner: job status needs backup.read)
                let view = owner
                    .wait_job(&server, body["job_id"].as_str().unwrap())
                    .await;
                assert_eq!(view["status"], "succeeded", "{view}");
            }
            checked += 1;
        }
    }
    assert_eq!(checked, rows.len() * ROLES.len());

    // What refused roles aimed at is untouched.
    let (_, list) = owner.get(&format!("{}?limit=100", backups(&server))).await;
    let kept = list["backups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == keep.as_str())
        .expect("the snapshot refused roles aimed at still exists");
    assert_eq!(kept["locked"], false);
    for id in to_delete.values() {
        assert!(!list.to_string().contains(id.as_str()), "{id} not deleted");
    }
    // The doomed server was archived on its node before it was deleted.
    let (_, archives) = admin.get(&format!("{API}/admin/archived-repos")).await;
    assert!(
        archives["archives"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["server_uuid"] == doomed.as_str()),
        "{archives}"
    );
    let keys: Vec<String> = panel
        .keys(&admin)
        .await
        .into_iter()
        .map(|(_, k)| k)
        .collect();
    let _ = &mut admin;
    assert_no_secrets(&panel, &agent, &keys);
}

// ---------------------------------------------------------------------------
// Sessions and CSRF
// ---------------------------------------------------------------------------

async fn sessions_and_csrf(db: Db) {
    let World {
        agent: _agent,
        panel,
        admin,
        servers,
        ..
    } = World::new(db, 1, 0).await;
    let server = servers[0].clone();

    // Cookie attributes.
    let res = panel
        .anonymous()
        .request(Method::POST, "/auth/login")
        .json(&json!({"email": "owner@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(
        !cookie.contains("Secure"),
        "plain HTTP must not set Secure: {cookie}"
    );

    let mut owner = panel.login("owner@example.com", PASSWORD).await;
    let first_cookie = owner.cookie.clone().unwrap();
    let (s, info) = owner.get("/auth/session").await;
    assert_eq!(s, 200);
    assert_eq!(info["user"]["email"], "owner@example.com");
    assert_eq!(info["user"]["root_admin"], false);
    assert_eq!(info["csrf_token"], owner.csrf.clone().unwrap().as_str());

    // Unsafe requests without the token, with a wrong one, or with another
    // session's token are refused; nothing runs.
    let mut no_token = owner.clone();
    no_token.csrf = None;
    let mut wrong = owner.clone();
    wrong.csrf = Some("0".repeat(64));
    let mut foreign = owner.clone();
    foreign.csrf = admin.csrf.clone();
    for c in [&mut no_token, &mut wrong, &mut foreign] {
        for (m, p) in [
            (Method::POST, backups(&server)),
            (Method::POST, "/auth/logout".to_owned()),
            (
                Method::DELETE,
                format!("{}/{}", backups(&server), "ab".repeat(4)),
            ),
        ] {
            let (s, b) = c.send(m.clone(), &p, Some(json!({}))).await;
            assert_eq!(
                (s, b["error"]["code"].as_str()),
                (403, Some("csrf_failed")),
                "{m} {p}"
            );
        }
    }
    let (_, list) = owner.get(&backups(&server)).await;
    assert_eq!(list["total"], 0, "a refused request ran: {list}");
    // Reads need no token.
    assert_eq!(no_token.get(&backups(&server)).await.0, 200);

    // The `_csrf` form field works as well as the header.
    let mut form_user = panel.login("owner@example.com", PASSWORD).await;
    let token = form_user.csrf.clone().unwrap();
    let r = form_user
        .request(Method::POST, "/auth/logout")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("_csrf={token}"));
    assert_eq!(form_user.finish("/auth/logout", r).await.0, 204);

    // Login issues a new session ID, and the session it replaced ends.
    let mut again = owner.clone();
    let (s, info) = again
        .send(
            Method::POST,
            "/auth/login",
            Some(json!({"email": "owner@example.com", "password": PASSWORD})),
        )
        .await;
    assert_eq!(s, 200);
    assert_ne!(info["csrf_token"], owner.csrf.clone().unwrap().as_str());
    again.csrf = Some(info["csrf_token"].as_str().unwrap().to_owned());
    assert_ne!(again.cookie.as_deref(), Some(first_cookie.as_str()));
    assert_eq!(
        owner.get("/auth/session").await.0,
        401,
        "old session still alive"
    );
    assert_eq!(again.get("/auth/session").await.0, 200);

    // Logout ends the session on the server: the cookie is dead even if
    // replayed.
    let replay = again.cookie.clone();
    let (s, _) = again.send(Method::POST, "/auth/logout", None).await;
    assert_eq!(s, 204);
    let mut replayed = panel.anonymous();
    replayed.cookie = replay;
    assert_eq!(replayed.get("/auth/session").await.0, 401);
    assert_eq!(replayed.get(&backups(&server)).await.0, 401);
    // A made-up cookie is just "not logged in".
    let mut forged = panel.anonymous();
    forged.cookie = Some("f".repeat(64));
    assert_eq!(forged.get("/auth/session").await.0, 401);

    // Wrong passwords and unknown accounts look the same; then the rate limit.
    let mut anon = panel.anonymous();
    let (s1, b1) = anon
        .post(
            "/auth/login",
            json!({"email": "owner@example.com", "password": "wrong password!"}),
        )
        .await;
    let (s2, b2) = anon
        .post(
            "/auth/login",
            json!({"email": "nobody@example.com", "password": "wrong password!"}),
        )
        .await;
    assert_eq!((s1, s2), (401, 401));
    assert_eq!(b1, b2);
    let mut last = 0;
    for _ in 0..12 {
        last = anon
            .post(
                "/auth/login",
                json!({"email": "owner@example.com", "password": "wrong password!"}),
            )
            .await
            .0;
    }
    assert_eq!(last, 429);
    let (s, b) = anon
        .post(
            "/auth/login",
            json!({"email": "owner@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (429, Some("rate_limited"))
    );
}

// ---------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------

async fn bad_input(db: Db) {
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
            format!("{API}/servers/{}/backups/restic", common::new_uuid()),
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
            json!({"uuid": common::new_uuid(), "name": "x", "owner": "nobody@example.com", "node": "node-1"}),
            404,
        ),
        (
            Method::POST,
            format!("{API}/admin/servers"),
            json!({"uuid": common::new_uuid(), "name": "x", "owner": "owner@example.com", "node": "node-1", "backup_limit": -1}),
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

// ---------------------------------------------------------------------------
// End to end
// ---------------------------------------------------------------------------

fn tar_names(archive: &[u8], flags: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a");
    std::fs::write(&path, archive).unwrap();
    common::tar_list(&path, flags)
}

async fn end_to_end(db: Db) {
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

on_both_databases!(
    authorization_matrix,
    sessions_and_csrf,
    bad_input,
    end_to_end
);

//! The audit log: one entry per change, download, restore, key reveal and
//! login (allowed or not) with who, what, which server, how it ended, from
//! where and the request ID; filters and paging for root admins; the
//! operator's key export; bad queries refused.

use reqwest::Method;
use serde_json::{Value, json};
use testkit::panel::{Db, PASSWORD, World, run_cli};

const API: &str = "/extensions/resticbackups";
const HELPER: &str = "helper@example.com";

async fn entries(world: &mut World, query: &str) -> Vec<Value> {
    let (status, body) = world.admin.get(&format!("{API}/admin/audit?{query}")).await;
    assert_eq!(status, 200, "{body}");
    body["entries"].as_array().unwrap().clone()
}

async fn audit_story(db: Db) {
    let mut w = World::new(db, 1, 10).await;
    let server = w.servers[0].clone();
    w.panel.add_user(&w.admin, HELPER).await;
    w.panel
        .set_subuser(&w.admin, &server, HELPER, &["backup.read"])
        .await;
    let mut helper = w.panel.login(HELPER, PASSWORD).await;

    // An owner's backup, with a request ID of the caller's.
    let r = w
        .owner
        .request(
            Method::POST,
            &format!("{API}/servers/{server}/backups/restic"),
        )
        .header("X-CSRF-Token", w.owner.csrf.clone().unwrap())
        .header("X-Request-Id", "trace-backup-1")
        .json(&json!({}));
    let (status, body) = w.owner.finish("backup", r).await;
    assert_eq!(status, 202, "{body}");
    let job = body["job_id"].as_str().unwrap().to_owned();
    let done = w.owner.wait_job(&server, &job).await;
    let snapshot = done["result"]["snapshot"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // A subuser's restore, refused.
    let (status, _) = helper
        .post(
            &format!("{API}/servers/{server}/backups/restic/{snapshot}/restore"),
            json!({}),
        )
        .await;
    assert_eq!(status, 403);
    // A wrong password.
    let (status, _) = w
        .panel
        .anonymous()
        .send(
            Method::POST,
            "/auth/login",
            Some(json!({"email": "Owner@Example.com", "password": "not the password"})),
        )
        .await;
    assert_eq!(status, 401);
    // Reading the list is not audited; revealing the keys is.
    let (status, _) = w
        .owner
        .get(&format!("{API}/servers/{server}/backups/restic"))
        .await;
    assert_eq!(status, 200);
    let (status, _) = w.admin.get(&format!("{API}/admin/keys")).await;
    assert_eq!(status, 200);
    // The operator's export.
    let (ok, out) = run_cli(
        &w.panel.dir.path().join("panel.toml"),
        &["key", "export"],
        "",
    );
    assert!(ok, "{out}");

    let all = entries(&mut w, "limit=200").await;
    let ids: Vec<i64> = all.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|p| p[0] > p[1]), "newest first: {ids:?}");
    let find =
        |action: &str| -> Vec<&Value> { all.iter().filter(|e| e["action"] == action).collect() };
    assert!(find("backup.read").is_empty());
    let backup = find("backup.create");
    assert_eq!(backup.len(), 1, "{all:?}");
    let b = backup[0];
    assert_eq!(b["actor"], "owner@example.com");
    assert_eq!(b["server"], server.as_str());
    assert_eq!(b["status"], 202);
    assert_eq!(b["outcome"], "ok");
    assert_eq!(b["client"], "127.0.0.1");
    assert_eq!(b["request_id"], "trace-backup-1");
    let restore = find("backup.restore");
    assert_eq!(restore.len(), 1, "{all:?}");
    assert_eq!(restore[0]["actor"], HELPER);
    assert_eq!(restore[0]["outcome"], "denied");
    assert_eq!(restore[0]["status"], 403);
    assert_eq!(restore[0]["target"], format!("id={snapshot}"));
    let logins = find("login");
    let failed: Vec<_> = logins.iter().filter(|e| e["status"] == 401).collect();
    assert_eq!(failed.len(), 1, "{logins:?}");
    assert_eq!(failed[0]["actor"], "owner@example.com");
    assert_eq!(failed[0]["outcome"], "denied");
    assert!(
        logins
            .iter()
            .any(|e| e["actor"] == HELPER && e["outcome"] == "ok")
    );
    assert_eq!(find("keys.reveal")[0]["actor"], "admin@example.com");
    assert_eq!(find("subuser.set")[0]["server"], server.as_str());
    assert_eq!(find("server.create")[0]["actor"], "admin@example.com");
    let export = find("keys.export");
    assert_eq!(export.len(), 1);
    assert_eq!(export[0]["actor"], "operator");
    assert!(
        !serde_json::to_string(&all)
            .unwrap()
            .contains("not the password")
    );

    // Filters.
    let only = entries(&mut w, "action=backup.restore").await;
    assert_eq!(only.len(), 1);
    let by_helper = entries(&mut w, &format!("actor={}", HELPER.to_uppercase())).await;
    assert!(by_helper.iter().all(|e| e["actor"] == HELPER) && by_helper.len() >= 2);
    let denied = entries(&mut w, "outcome=denied").await;
    assert!(
        denied.iter().all(|e| e["outcome"] == "denied") && denied.len() == 2,
        "{denied:?}"
    );
    let on_server = entries(&mut w, &format!("server={server}")).await;
    assert!(on_server.iter().all(|e| e["server"] == server.as_str()));
    assert!(on_server.len() >= 3);
    let future = entries(&mut w, "from=2100-01-01T00:00:00Z").await;
    assert!(future.is_empty());
    let past = entries(&mut w, "to=2000-01-01T00:00:00Z").await;
    assert!(past.is_empty());

    // Paging: one at a time gives the same entries, in the same order.
    let mut paged = Vec::new();
    let mut cursor = String::new();
    loop {
        let (status, body) = w
            .admin
            .get(&format!(
                "{API}/admin/audit?limit=1&server={server}&cursor={cursor}"
            ))
            .await;
        assert_eq!(status, 200, "{body}");
        paged.extend(
            body["entries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].clone()),
        );
        match body["next_cursor"].as_str() {
            Some(c) => cursor = c.to_owned(),
            None => break,
        }
    }
    let expected: Vec<Value> = on_server.iter().map(|e| e["id"].clone()).collect();
    assert_eq!(paged, expected);

    // Bad queries: clear 400s.
    for (query, code) in [
        ("limit=0", "invalid_limit"),
        ("limit=201", "invalid_limit"),
        ("limit=99999999999999999999", "invalid_limit"),
        ("cursor=abc", "invalid_cursor"),
        ("cursor=-5", "invalid_cursor"),
        ("action=backup.steal", "invalid_action"),
        ("outcome=maybe", "invalid_outcome"),
        ("server=..%2F..%2Fetc", "invalid_server_id"),
        ("from=yesterday", "invalid_time"),
        (
            "from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z",
            "invalid_time",
        ),
        ("colour=blue", "invalid_query"),
    ] {
        let (status, body) = w.admin.get(&format!("{API}/admin/audit?{query}")).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"]["code"], code, "{query}: {body}");
    }
    // Only root admins read it.
    let (status, _) = w.owner.get(&format!("{API}/admin/audit")).await;
    assert_eq!(status, 403);
    let (status, _) = w.panel.anonymous().get(&format!("{API}/admin/audit")).await;
    assert_eq!(status, 401);

    // And the log has a line per entry.
    let log = w.panel.log();
    assert!(
        log.lines().any(|l| l.contains(" audit")
            && (l.contains("action=\"backup.restore\"") || l.contains("action=backup.restore"))),
        "{log}"
    );
}

testkit::on_both_databases!(audit_story);

/// Under `base_path` (beside Pterodactyl) the routes match with the base in
/// front; every change is still audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audited_under_a_base_path_and_for_head_requests() {
    use testkit::panel::TestPanel;
    let base = "/extensions/resticbackups";
    let mut panel = TestPanel::start_with(Db::Sqlite, &[&format!("base_path = \"{base}\"")]);
    panel.url = format!("{}{base}", panel.url);
    let mut admin = panel.admin().await;
    let (status, body) = admin
        .post(
            &format!("{API}/admin/users"),
            json!({"email": "new@example.com", "password": "a long password 1", "root_admin": false}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    // HEAD is answered like GET: revealing keys that way is audited too.
    let r = admin.request(Method::HEAD, &format!("{API}/admin/keys"));
    let (status, _) = admin.finish("head", r).await;
    assert_eq!(status, 200);
    let (status, body) = admin.get(&format!("{API}/admin/audit")).await;
    assert_eq!(status, 200, "{body}");
    let actions: Vec<&str> = body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(actions.contains(&"user.create"), "{body}");
    assert!(actions.contains(&"login"), "{body}");
    assert!(actions.contains(&"keys.reveal"), "{body}");
}

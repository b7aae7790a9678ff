//! Every panel route as each role: logged out, a stranger, a subuser with
//! and without the permission needed, the owner and a root admin.

use std::collections::HashMap;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use testkit::TestAgent;
use testkit::panel::{Client, Db, PASSWORD, TestPanel};

use super::{API, assert_no_secrets, backups};

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

pub(super) async fn authorization_matrix(db: Db) {
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
            Method::GET,
            format!("{b}/{keep}/download?path=world/level.dat"),
            None,
            Need::Perm("backup.download"),
            302,
        ),
        row(
            Method::GET,
            format!("{b}/{keep}/files?path=/world"),
            None,
            Need::Perm("backup.read"),
            200,
        ),
        row(
            Method::GET,
            format!("{b}/jobs?active=true"),
            None,
            Need::Perm("backup.read"),
            200,
        ),
        row(
            Method::GET,
            format!("{b}/stats/history"),
            None,
            Need::Perm("backup.read"),
            200,
        ),
        row(
            Method::GET,
            format!("{b}/schedule/preview?keep_last=50"),
            None,
            Need::Perm("backup.read"),
            200,
        ),
        row(
            Method::PUT,
            format!("{b}/{keep}/note"),
            Some(json!({"note": "checked"})),
            Need::Perm("backup.create"),
            200,
        ),
        row(
            Method::POST,
            format!("{API}/admin/servers/{server}/prune"),
            None,
            Need::RootAdmin,
            202,
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
            // Its node archives the repository first (a task).
            202,
        ),
        row(
            Method::GET,
            format!("{API}/admin/tasks/0123456789abcdef0123456789abcdef"),
            None,
            Need::RootAdmin,
            404,
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
            if status == 202 && body["kind"] == "server_deletion" {
                // A deletion is a panel task the admin reads.
                let task = format!("{API}/admin/tasks/{}", body["id"].as_str().unwrap());
                let mut ended = Value::Null;
                for _ in 0..600 {
                    let (s, t) = client.get(&task).await;
                    assert_eq!(s, 200, "{t}");
                    if t["status"] != "running" {
                        ended = t;
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                assert_eq!(ended["status"], "succeeded", "{ended}");
            } else if status == 202 {
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

//! Pterodactyl mode's sync against the Pterodactyl double and a real agent
//! with real restic, on SQLite and PostgreSQL: a full sync at start, changes
//! and deletions that follow, an idle re-sync that writes nothing, a
//! Pterodactyl that is down or answers garbage (the last good data stays,
//! the admin sees why), and not one write request to Pterodactyl.

mod common;

use std::time::{Duration, Instant};

use common::panel::{Client, Db, TestPanel, run_cli};
use common::pterodactyl::{Mode, Node, Pterodactyl, Server, User};
use common::{TOKEN, TestAgent};
use serde_json::Value;

const API: &str = "/extensions/resticbackups";

/// The double with an owner (2), a helper (3), another admin (4) and a node pointing at the
/// agent (its token is the agent's); one server on it, owned by 2, with 3
/// as a subuser who may only read.
async fn stage(agent: &TestAgent) -> (Pterodactyl, String) {
    let ptero = Pterodactyl::start().await;
    // Pterodactyl's admin must not share the e-mail of the panel's local one.
    ptero.edit(|s| s.user_mut(1).unwrap().email = "root@ptero.example".into());
    ptero.add_user(User::new(2, "owner"));
    ptero.add_user(User::new(3, "helper"));
    ptero.add_user(User::new(4, "boss").admin());
    let mut node = Node::new(1);
    node.fqdn = "127.0.0.1".into();
    node.scheme = "http".into();
    node.token = TOKEN.into();
    ptero.add_node(node);
    let uuid = agent.add_server();
    let mut server = Server::new(1, 2, 1);
    server.uuid = uuid.clone();
    server.name = "Survival".into();
    server.backup_limit = 5;
    ptero.add_server(server);
    ptero.set_subuser(1, 3, &["control.console", "backup.read"]);
    (ptero, uuid)
}

/// A panel in Pterodactyl mode; the folder holds its application key file.
fn panel_with(db: Db, ptero: &Pterodactyl, agent: &TestAgent) -> (TestPanel, tempfile::TempDir) {
    let key_dir = tempfile::tempdir().unwrap();
    let key_file = key_dir.path().join("ptla");
    std::fs::write(&key_file, ptero.application_key()).unwrap();
    let port = agent.url.rsplit(':').next().unwrap().trim_end_matches('/');
    let lines = [
        "[pterodactyl]".to_owned(),
        format!("url = \"{}\"", ptero.url()),
        format!("application_key_file = \"{}\"", key_file.display()),
        format!("agent_port = {port}"),
        "sync_interval = \"1h\"".to_owned(),
    ];
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    (TestPanel::start_with(db, &refs), key_dir)
}

/// Waits for the sync at start, then answers the sync status.
async fn first_sync(admin: &mut Client) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (s, b) = admin.get(&format!("{API}/admin/pterodactyl/sync")).await;
        assert_eq!(s, 200, "{b}");
        if !b["last"].is_null() {
            return b;
        }
        assert!(Instant::now() < deadline, "no sync at start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn sync_now(admin: &mut Client) -> Value {
    let (s, b) = admin
        .post(
            &format!("{API}/admin/pterodactyl/sync"),
            serde_json::json!({}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    b["last"].clone()
}

fn emails(users: &Value) -> Vec<String> {
    let mut out: Vec<String> = users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().unwrap().to_owned())
        .collect();
    out.sort();
    out
}

async fn sync_follows_pterodactyl(db: Db) {
    let agent = TestAgent::start();
    let (ptero, uuid) = stage(&agent).await;
    let (panel, _key_dir) = panel_with(db, &ptero, &agent);
    let mut admin = panel.admin().await;

    // Full sync at start.
    let status = first_sync(&mut admin).await;
    let last = &status["last"];
    assert_eq!(last["ok"], true, "{status}");
    assert_eq!(last["origin"], "start");
    assert_eq!(last["users"]["added"], 4, "{last}");
    assert_eq!(last["nodes"]["added"], 1, "{last}");
    assert_eq!(last["servers"]["added"], 1, "{last}");
    assert_eq!(last["subusers"]["added"], 1, "{last}");
    assert_eq!(status["recorded"].as_array().unwrap().len(), 1);
    let (_, users) = admin.get(&format!("{API}/admin/users")).await;
    assert_eq!(
        emails(&users),
        [
            "admin@example.com",
            "boss@example.com",
            "helper@example.com",
            "owner@example.com",
            "root@ptero.example"
        ]
    );
    let root = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == "root@ptero.example")
        .unwrap();
    assert_eq!(root["root_admin"], true);
    let (_, nodes) = admin.get(&format!("{API}/admin/nodes")).await;
    assert_eq!(nodes[0]["name"], "node-1");
    assert_eq!(
        nodes[0]["url"].as_str().unwrap(),
        agent.url.trim_end_matches('/')
    );
    let (_, servers) = admin.get(&format!("{API}/admin/servers")).await;
    assert_eq!(servers[0]["uuid"], uuid.as_str());
    assert_eq!(servers[0]["owner"], "owner@example.com");
    assert_eq!(servers[0]["backup_limit"], 5);
    let (_, subs) = admin
        .get(&format!("{API}/admin/servers/{uuid}/subusers"))
        .await;
    assert_eq!(subs[0]["email"], "helper@example.com");
    assert_eq!(subs[0]["permissions"], serde_json::json!(["backup.read"]));

    // The synced node and token reach the real agent: a backup works.
    admin.backup(&uuid).await;

    // Synced accounts have no password here.
    let anon = panel.anonymous();
    let r = anon
        .request(reqwest::Method::POST, "/auth/login")
        .json(&serde_json::json!({"email": "owner@example.com", "password": ""}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());

    // A re-sync without changes writes nothing (and records nothing).
    let idle = sync_now(&mut admin).await;
    assert_eq!(idle["ok"], true, "{idle}");
    assert_eq!(idle["rows_written"], 0, "{idle}");
    let (_, status) = admin.get(&format!("{API}/admin/pterodactyl/sync")).await;
    assert_eq!(status["recorded"].as_array().unwrap().len(), 1);

    // Changes in Pterodactyl follow: a new e-mail, more permissions, a new
    // backup limit, a demoted admin, a new node name.
    ptero.edit(|s| {
        s.user_mut(2).unwrap().email = "owner.new@example.com".into();
        s.server_mut(1).unwrap().backup_limit = 0;
        s.node_mut(1).unwrap().name = "renamed".into();
    });
    ptero.set_root_admin(4, false);
    ptero.set_subuser(1, 3, &["backup.read", "backup.create"]);
    let changed = sync_now(&mut admin).await;
    assert_eq!(changed["ok"], true, "{changed}");
    assert_eq!(changed["users"]["updated"], 2, "{changed}");
    assert_eq!(changed["nodes"]["updated"], 1, "{changed}");
    assert_eq!(changed["servers"]["updated"], 1, "{changed}");
    assert_eq!(changed["subusers"]["updated"], 1, "{changed}");
    let (_, servers) = admin.get(&format!("{API}/admin/servers")).await;
    assert_eq!(servers[0]["owner"], "owner.new@example.com");
    assert_eq!(
        servers[0]["backup_limit"], 0,
        "0 means unlimited by default"
    );
    assert_eq!(servers[0]["node"], "renamed");
    let (_, users) = admin.get(&format!("{API}/admin/users")).await;
    let boss = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == "boss@example.com")
        .unwrap();
    assert_eq!(boss["root_admin"], false);
    // The renamed node's token was sealed again: backups still work.
    admin.backup(&uuid).await;

    // Pterodactyl down, then answering garbage: nothing changes here, the
    // admin sees why.
    for (mode, word) in [
        (Mode::Down, "unreachable"),
        (Mode::Garbage, "not understood"),
    ] {
        ptero.set_mode(mode);
        let failed = sync_now(&mut admin).await;
        assert_eq!(failed["ok"], false, "{failed}");
        assert_eq!(failed["rows_written"], 0);
        let why = failed["errors"][0].as_str().unwrap();
        assert!(why.contains(word), "{why}");
        assert!(!why.contains(&ptero.application_key()), "{why}");
        ptero.set_mode(Mode::Up);
        let (_, users) = admin.get(&format!("{API}/admin/users")).await;
        assert_eq!(users.as_array().unwrap().len(), 5);
    }

    // Deletions: the subuser loses access, the server goes through the
    // deletion path (repository archived, key kept), the user goes.
    ptero.remove_server(1);
    ptero.remove_user(3);
    let removed = sync_now(&mut admin).await;
    assert_eq!(removed["ok"], true, "{removed}");
    assert_eq!(removed["servers"]["removed"], 1, "{removed}");
    assert_eq!(removed["users"]["removed"], 1, "{removed}");
    let (_, servers) = admin.get(&format!("{API}/admin/servers")).await;
    assert!(servers.as_array().unwrap().is_empty(), "{servers}");
    let (_, archived) = admin.get(&format!("{API}/admin/archived-repos")).await;
    let archives = archived["archives"].as_array().unwrap();
    assert!(
        archives.iter().any(|a| a["server_uuid"] == uuid.as_str()),
        "{archived}"
    );
    let (_, users) = admin.get(&format!("{API}/admin/users")).await;
    assert!(!emails(&users).contains(&"helper@example.com".to_owned()));

    // The operator's command runs the same sync.
    let (ok, out) = run_cli(
        &panel.dir.path().join("panel.toml"),
        &["pterodactyl", "sync"],
        "",
    );
    assert!(ok, "{out}");
    assert!(out.contains("0 rows written"), "{out}");

    assert!(ptero.writes().is_empty(), "{:?}", ptero.writes());
    let log = panel.log();
    assert!(!log.contains(&ptero.application_key()));
    assert!(!log.contains(TOKEN));
}

async fn zero_limit_can_mean_no_backups(db: Db) {
    let agent = TestAgent::start();
    let (ptero, uuid) = stage(&agent).await;
    ptero.edit(|s| s.server_mut(1).unwrap().backup_limit = 0);
    let key_dir = tempfile::tempdir().unwrap();
    let key_file = key_dir.path().join("ptla");
    std::fs::write(&key_file, ptero.application_key()).unwrap();
    let port = agent.url.rsplit(':').next().unwrap().trim_end_matches('/');
    let lines = [
        "[pterodactyl]".to_owned(),
        format!("url = \"{}\"", ptero.url()),
        format!("application_key_file = \"{}\"", key_file.display()),
        format!("agent_port = {port}"),
        "zero_backup_limit = \"disabled\"".to_owned(),
    ];
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let panel = TestPanel::start_with(db, &refs);
    let mut admin = panel.admin().await;
    first_sync(&mut admin).await;
    let (_, servers) = admin.get(&format!("{API}/admin/servers")).await;
    assert_eq!(servers[0]["backup_limit"], -1, "{servers}");
    let (s, b) = admin
        .post(
            &format!("{API}/servers/{uuid}/backups/restic"),
            serde_json::json!({}),
        )
        .await;
    assert_eq!(s, 403, "{b}");
    assert_eq!(b["error"]["code"], "backups_disabled", "{b}");
}

on_both_databases!(sync_follows_pterodactyl, zero_limit_can_mean_no_backups);

//! Pterodactyl mode's sync against the Pterodactyl double and a real agent
//! with real restic, on SQLite and PostgreSQL: a full sync at start, changes
//! and deletions that follow, an idle re-sync that writes nothing, a
//! Pterodactyl that is down or answers garbage (the last good data stays,
//! the admin sees why), and not one write request to Pterodactyl.

use std::time::{Duration, Instant};

use serde_json::Value;
use testkit::panel::{Client, Db, TestPanel, run_cli};
use testkit::ptero_world::{panel_with, stage};
use testkit::pterodactyl::{Mode, Pterodactyl};
use testkit::{TOKEN, TestAgent};

const API: &str = "/extensions/resticbackups";

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
    let (panel, _key_dir) = panel_with(db, &ptero, &agent, &["sync_interval = \"1h\""]);
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

    // Two users swap e-mail addresses: both follow.
    ptero.edit(|s| {
        s.user_mut(2).unwrap().email = "helper@example.com".into();
        s.user_mut(3).unwrap().email = "owner.new@example.com".into();
    });
    let swapped = sync_now(&mut admin).await;
    assert_eq!(swapped["ok"], true, "{swapped}");
    assert_eq!(swapped["users"]["updated"], 2, "{swapped}");
    ptero.edit(|s| {
        s.user_mut(2).unwrap().email = "owner.new@example.com".into();
        s.user_mut(3).unwrap().email = "helper@example.com".into();
    });
    sync_now(&mut admin).await;

    // Deletions: the subuser loses access, the server goes through the
    // deletion path (repository archived, key kept), the user goes. A
    // second server arrives in the same sync.
    let mut other = testkit::pterodactyl::Server::new(2, 2, 1);
    other.name = "Creative".into();
    ptero.add_server(other);
    ptero.remove_server(1);
    ptero.remove_user(3);
    let removed = sync_now(&mut admin).await;
    assert_eq!(removed["ok"], true, "{removed}");
    assert_eq!(removed["servers"]["added"], 1, "{removed}");
    assert_eq!(removed["servers"]["removed"], 1, "{removed}");
    assert_eq!(removed["users"]["removed"], 1, "{removed}");
    let (_, servers) = admin.get(&format!("{API}/admin/servers")).await;
    assert_eq!(servers.as_array().unwrap().len(), 1, "{servers}");
    assert_eq!(servers[0]["name"], "Creative");
    let (_, archived) = admin.get(&format!("{API}/admin/archived-repos")).await;
    let archives = archived["archives"].as_array().unwrap();
    assert!(
        archives.iter().any(|a| a["server_uuid"] == uuid.as_str()),
        "{archived}"
    );
    let (_, users) = admin.get(&format!("{API}/admin/users")).await;
    assert!(!emails(&users).contains(&"helper@example.com".to_owned()));

    // The operator's command runs the same sync.
    let config = panel.dir.path().join("panel.toml");
    let (ok, out) = run_cli(&config, &["pterodactyl", "sync"], "");
    assert!(ok, "{out}");
    assert!(out.contains("0 rows written"), "{out}");

    // Pterodactyl suddenly lists no server: nothing is retired until the
    // operator says so.
    ptero.remove_server(2);
    let refused = sync_now(&mut admin).await;
    assert_eq!(refused["ok"], false, "{refused}");
    assert!(
        refused["errors"][0]
            .as_str()
            .unwrap()
            .contains("--allow-mass-removal"),
        "{refused}"
    );
    let (_, servers) = admin.get(&format!("{API}/admin/servers")).await;
    assert_eq!(servers.as_array().unwrap().len(), 1, "{servers}");
    let (ok, out) = run_cli(
        &config,
        &["pterodactyl", "sync", "--allow-mass-removal"],
        "",
    );
    assert!(ok, "{out}");
    let (_, servers) = admin.get(&format!("{API}/admin/servers")).await;
    assert!(servers.as_array().unwrap().is_empty(), "{servers}");

    assert!(ptero.writes().is_empty(), "{:?}", ptero.writes());
    let log = panel.log();
    assert!(!log.contains(&ptero.application_key()));
    assert!(!log.contains(TOKEN));
}

/// `[pterodactyl] agent_token`: the agents take a token of their own, not
/// each node's Wings token (which also controls Wings); Wings' tokens are
/// then never read.
async fn agents_can_take_their_own_token(db: Db) {
    let agent = TestAgent::start();
    let (ptero, uuid) = stage(&agent).await;
    ptero.edit(|s| s.node_mut(1).unwrap().token = "wings-own-token-not-the-agents-0001".into());
    let (panel, _key_dir) =
        panel_with(db, &ptero, &agent, &[&format!("agent_token = \"{TOKEN}\"")]);
    let mut admin = panel.admin().await;
    let status = first_sync(&mut admin).await;
    assert_eq!(status["last"]["ok"], true, "{status}");
    admin.backup(&uuid).await;
    assert_eq!(
        ptero.requests("/api/application/nodes/1/configuration"),
        0,
        "Wings' token was read"
    );
}

async fn zero_limit_can_mean_no_backups(db: Db) {
    let agent = TestAgent::start();
    let (ptero, uuid) = stage(&agent).await;
    ptero.edit(|s| s.server_mut(1).unwrap().backup_limit = 0);
    let (panel, _key_dir) = panel_with(db, &ptero, &agent, &["zero_backup_limit = \"disabled\""]);
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

/// A client that carries Pterodactyl's session cookie, the way a browser
/// arrives from Pterodactyl; its first safe request signs it in.
async fn via_pterodactyl(panel: &TestPanel, ptero: &Pterodactyl, cookie: &str) -> (Client, u16) {
    let mut c = panel.anonymous();
    c.other_cookie = Some(format!("{}={cookie}", ptero.cookie_name()));
    let (status, body) = c.get("/auth/session").await;
    if status == 200 {
        c.csrf = Some(body["csrf_token"].as_str().unwrap().to_owned());
    }
    (c, status)
}

async fn pterodactyl_users_sign_in_with_their_session(db: Db) {
    let agent = TestAgent::start();
    let (ptero, uuid) = stage(&agent).await;
    let (panel, _key_dir) = panel_with(db, &ptero, &agent, &["sync_interval = \"1h\""]);
    let mut admin = panel.admin().await;
    first_sync(&mut admin).await;
    let backups = format!("{API}/servers/{uuid}/backups/restic");

    // The owner: signed in by their Pterodactyl session, backs up.
    let owner_cookie = ptero.add_session(2, false);
    let (mut owner, status) = via_pterodactyl(&panel, &ptero, &owner_cookie).await;
    assert_eq!(status, 200);
    assert!(owner.cookie.is_some(), "no session of ours was opened");
    let (s, list) = owner.get(&format!("{API}/servers")).await;
    assert_eq!(s, 200, "{list}");
    assert!(list.to_string().contains(&uuid), "{list}");
    owner.backup(&uuid).await;
    // Unsafe requests still need our CSRF token.
    let mut no_csrf = owner.clone();
    no_csrf.csrf = None;
    let (s, _) = no_csrf.post(&backups, serde_json::json!({})).await;
    assert_eq!(s, 403);

    // A subuser with only backup.read sees the backups but may not create.
    let helper_cookie = ptero.add_session(3, false);
    let (mut helper, status) = via_pterodactyl(&panel, &ptero, &helper_cookie).await;
    assert_eq!(status, 200);
    let (s, _) = helper.get(&backups).await;
    assert_eq!(s, 200);
    let (s, b) = helper.post(&backups, serde_json::json!({})).await;
    assert_eq!(s, 403, "{b}");

    // Not signed in there (unknown cookie, 2FA not finished): not here.
    for cookie in [
        "eyJpdiI6InVua25vd24ifQ%3D%3D".to_owned(),
        ptero.add_session(2, true),
    ] {
        let (_, status) = via_pterodactyl(&panel, &ptero, &cookie).await;
        assert_eq!(status, 401);
    }
    // The login page points to Pterodactyl's.
    let (s, page) = panel.anonymous().get("/login").await;
    assert_eq!(s, 200);
    assert!(
        page.as_str()
            .unwrap()
            .contains(&format!("{}/auth/login", ptero.url())),
        "{page}"
    );

    // Pterodactyl's own backups, behind a switch remembered per user, read
    // with the visitor's own Pterodactyl sign-in.
    ptero.add_backup(1, testkit::pterodactyl::Backup::new(1));
    ptero.add_backup(1, testkit::pterodactyl::Backup::new(2));
    let prefs = format!("{API}/preferences");
    let (s, p) = owner.get(&prefs).await;
    assert_eq!(
        (s, p["show_pterodactyl_backups"].clone()),
        (200, false.into())
    );
    let (s, p) = owner
        .send(
            reqwest::Method::PUT,
            &prefs,
            Some(serde_json::json!({"show_pterodactyl_backups": true})),
        )
        .await;
    assert_eq!(s, 200, "{p}");
    let (_, p) = owner.get(&prefs).await;
    assert_eq!(p["show_pterodactyl_backups"], true);
    let (_, p) = helper.get(&prefs).await;
    assert_eq!(p["show_pterodactyl_backups"], false, "remembered per user");
    let ptero_backups = format!("{API}/servers/{uuid}/backups/pterodactyl");
    let (s, list) = owner.get(&ptero_backups).await;
    assert_eq!(s, 200, "{list}");
    let names: Vec<&str> = list["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{list}");
    assert!(names.contains(&"Backup 1"), "{list}");
    let one = list["backups"][0]["uuid"].as_str().unwrap().to_owned();
    let link = format!("{ptero_backups}/{one}/download");
    let (s, b) = owner.get(&link).await;
    assert_eq!(s, 302, "{b}");
    assert!(
        b["location"]
            .as_str()
            .unwrap()
            .contains("/download/backup?token="),
        "{b}"
    );
    // The read-only subuser sees the list but may not download.
    let (s, _) = helper.get(&link).await;
    assert_eq!(s, 403);
    // A local account has no Pterodactyl sign-in to read them with.
    let (s, b) = admin.get(&ptero_backups).await;
    assert_eq!(s, 409, "{b}");
    assert_eq!(b["error"]["code"], "no_pterodactyl_session");

    // One browser, another person: when Pterodactyl's cookie names someone
    // else, the session here follows; signed out there, it ends here too.
    let mut shared = owner.clone();
    shared.other_cookie = Some(format!("{}={helper_cookie}", ptero.cookie_name()));
    let (s, who) = shared.get("/auth/session").await;
    assert_eq!(s, 200, "{who}");
    assert_eq!(who["user"]["email"], "helper@example.com", "{who}");
    assert_ne!(shared.cookie, owner.cookie, "the owner's session was kept");
    // Signing out there ends Pterodactyl's session and gives the browser a
    // new cookie, which names no one.
    let gone = ptero.add_session(2, false);
    let (mut leaving, _) = via_pterodactyl(&panel, &ptero, &gone).await;
    ptero.edit(|s| s.remove_session(&gone));
    leaving.other_cookie = Some(format!(
        "{}=eyJpdiI6InNpZ25lZC1vdXQifQ%3D%3D",
        ptero.cookie_name()
    ));
    let (s, _) = leaving.get("/auth/session").await;
    assert_eq!(s, 401, "signed out of Pterodactyl, still signed in here");
    // A session ID copied without Pterodactyl's cookie is worth nothing,
    // and a second Pterodactyl cookie tossed in by someone else on the host
    // neither ends a session nor opens one.
    let (mut tossed, _) = via_pterodactyl(&panel, &ptero, &ptero.add_session(2, false)).await;
    let real = tossed.other_cookie.clone().unwrap();
    tossed.other_cookie = Some(format!(
        "{}=eyJpdiI6InRvc3NlZCJ9; {real}",
        ptero.cookie_name()
    ));
    let (s, _) = tossed.get(&format!("{API}/servers")).await;
    assert_eq!(s, 200, "a tossed cookie ended the session");
    let mut copied = tossed.clone();
    copied.other_cookie = None;
    let (s, _) = copied.get(&format!("{API}/servers")).await;
    assert_eq!(s, 401, "a session ID alone still works");
    let mut fresh = panel.anonymous();
    fresh.other_cookie = tossed.other_cookie.clone();
    let (s, _) = fresh.get("/auth/session").await;
    assert_eq!(s, 401, "an ambiguous Pterodactyl cookie opened a session");

    // Scripts: a client API key, no cookie and no CSRF token.
    let key = ptero.add_client_key(2);
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{}{backups}", panel.url))
        .bearer_auth(&key)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let r = http
        .get(format!("{}{backups}", panel.url))
        .bearer_auth("ptlc_not-a-real-key-0000000000000000000")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // An admin demoted in Pterodactyl: the next sign-in has no admin pages,
    // and the sync ends the sessions they had.
    let boss_cookie = ptero.add_session(4, false);
    let (mut boss, _) = via_pterodactyl(&panel, &ptero, &boss_cookie).await;
    let (s, _) = boss.get(&format!("{API}/admin/users")).await;
    assert_eq!(s, 200);
    ptero.set_root_admin(4, false);
    sync_now(&mut admin).await;
    // (The browser still carries Pterodactyl's cookie: the next request
    // signs in again, without admin rights.)
    let (s, _) = boss.get(&format!("{API}/admin/users")).await;
    assert_eq!(s, 403, "the demoted admin kept the admin pages");
    let fresh_cookie = ptero.add_session(4, false);
    let (mut boss, _) = via_pterodactyl(&panel, &ptero, &fresh_cookie).await;
    let (s, _) = boss.get(&format!("{API}/admin/users")).await;
    assert_eq!(s, 403);

    // A synced user who takes a local account's e-mail in Pterodactyl is
    // not joined to it: they lose access (and any admin right) until fixed.
    let owner_again = ptero.add_session(2, false);
    let (mut owner2, _) = via_pterodactyl(&panel, &ptero, &owner_again).await;
    ptero.edit(|s| s.user_mut(2).unwrap().email = "admin@example.com".into());
    let parked = sync_now(&mut admin).await;
    assert_eq!(parked["ok"], false, "{parked}");
    assert!(parked.to_string().contains("local account"), "{parked}");
    let (s, _) = owner2.get(&format!("{API}/servers")).await;
    assert_eq!(s, 401, "the parked user's session lived on");
    let (s, _) = admin.get(&format!("{API}/admin/users")).await;
    assert_eq!(s, 200, "the local admin keeps their account");

    // Neither cookie nor key ever reaches the log.
    let log = panel.log();
    for secret in [&owner_cookie, &helper_cookie, &key] {
        assert!(
            !log.contains(secret.as_str()),
            "a credential leaked into the log"
        );
    }
    assert!(ptero.writes().is_empty(), "{:?}", ptero.writes());
}

testkit::on_both_databases!(
    agents_can_take_their_own_token,
    sync_follows_pterodactyl,
    zero_limit_can_mean_no_backups,
    pterodactyl_users_sign_in_with_their_session
);

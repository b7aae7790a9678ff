//! The panel's Pterodactyl clients (`panel::pterodactyl`) against the
//! Pterodactyl double (`testkit::pterodactyl`): every page of every list, the
//! Wings token, subusers, the credentials Pterodactyl accepts and refuses,
//! sign-in by session cookie or client key, Pterodactyl's own backups, and
//! what a down, hanging or garbage-answering Pterodactyl looks like. Nothing
//! here may send Pterodactyl a request that changes it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use api::{Secret, ServerUuid};
use panel::pterodactyl::{ApplicationClient, ClientApi, ClientIdentity, PteroError};
use serde_json::Value;
use testkit::pterodactyl::{AppRead, Backup, Mode, Node, Pterodactyl, RateLimit, Server, User};

const TIMEOUT: Duration = Duration::from_secs(5);

fn secret(s: &str) -> Secret {
    Secret::new(s).unwrap()
}

fn app(p: &Pterodactyl) -> ApplicationClient {
    app_with(p, &p.application_key())
}

fn app_with(p: &Pterodactyl, key: &str) -> ApplicationClient {
    ApplicationClient::new(p.url(), secret(key), TIMEOUT).unwrap()
}

fn client(p: &Pterodactyl) -> ClientApi {
    ClientApi::new(p.url(), TIMEOUT).unwrap()
}

fn assert_no_writes(p: &Pterodactyl) {
    assert_eq!(
        p.writes(),
        Vec::<String>::new(),
        "requests that change Pterodactyl"
    );
}

/// The error's text and debug form hold none of `secrets`.
fn assert_clean(e: &PteroError, secrets: &[&str]) {
    let text = format!("{e} {e:?}");
    for s in secrets {
        assert!(!text.contains(s), "secret in error: {text}");
    }
}

#[tokio::test]
async fn users_are_read_page_by_page() {
    let p = Pterodactyl::start().await;
    p.edit(|s| {
        for id in 2..=250 {
            let mut u = User::new(id, &format!("user{id}"));
            u.root_admin = id % 50 == 0;
            u.use_totp = id % 7 == 0;
            s.add_user(u);
        }
    });

    let users = app(&p).users().await.unwrap();
    assert_eq!(users.len(), 250);
    assert_eq!(p.requests("/api/application/users"), 3, "100 per page");
    assert!(users.windows(2).all(|w| w[0].id < w[1].id));
    let u = users.iter().find(|u| u.id == 100).unwrap();
    assert_eq!(u.username, "user100");
    assert_eq!(u.email, "user100@example.com");
    assert!(u.root_admin);
    assert_eq!(u.uuid, testkit::pterodactyl::uuid_for(1, 100));
    assert!(users.iter().find(|u| u.id == 7).unwrap().two_factor);
    assert!(users[0].root_admin, "the double's own admin");

    p.reset_counters();
    let all = app(&p).with_per_page(1000).users().await.unwrap();
    assert_eq!(all, users);
    assert_eq!(p.requests("/api/application/users"), 1);
    assert_no_writes(&p);
}

#[tokio::test]
async fn nodes_come_with_their_wings_configuration() {
    let p = Pterodactyl::start().await;
    p.add_node(Node::new(1));
    let mut behind = Node::new(2);
    behind.behind_proxy = true;
    p.add_node(behind.clone());
    let mut plain = Node::new(3);
    plain.scheme = "http".into();
    plain.daemon_listen = 8443;
    plain.daemon_base = "/srv/volumes".into();
    p.add_node(plain.clone());

    let c = app(&p);
    let nodes = c.nodes().await.unwrap();
    assert_eq!(nodes.iter().map(|n| n.id).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(
        nodes[0].url_with_port(8090),
        "https://node1.example.com:8090"
    );
    assert_eq!(
        nodes[2].url_with_port(8090),
        "http://node3.example.com:8090"
    );
    assert_eq!(nodes[2].daemon_listen, 8443);
    assert!(nodes[1].behind_proxy);

    let one = c.node_configuration(1).await.unwrap();
    assert_eq!(one.token.expose(), Node::new(1).token);
    assert_eq!(one.token_id, Node::new(1).token_id);
    assert_eq!(one.uuid, nodes[0].uuid);
    assert!(one.ssl_enabled);
    assert_eq!(one.api_port, 8080);
    assert_eq!(one.data_dir, "/var/lib/pterodactyl/volumes");
    let debug = format!("{one:?}");
    assert!(
        debug.contains("<redacted>") && !debug.contains(&Node::new(1).token),
        "{debug}"
    );

    // `enabled` is `!behind_proxy && scheme == "https"`.
    assert!(!c.node_configuration(2).await.unwrap().ssl_enabled);
    let three = c.node_configuration(3).await.unwrap();
    assert!(!three.ssl_enabled);
    assert_eq!(
        (three.api_port, three.data_dir.as_str()),
        (8443, "/srv/volumes")
    );

    let missing = c.node_configuration(99).await.unwrap_err();
    assert!(
        matches!(missing, PteroError::Status { status: 404, .. }),
        "{missing:?}"
    );
    assert_no_writes(&p);
}

#[tokio::test]
async fn servers_come_with_subusers_and_backup_limits() {
    let p = Pterodactyl::start().await;
    p.add_node(Node::new(1));
    p.add_node(Node::new(2));
    p.edit(|s| {
        for id in 2..=5 {
            s.add_user(User::new(id, &format!("user{id}")));
        }
        for id in 1..=120 {
            let mut sv = Server::new(id, 2 + id % 4, 1 + id % 2);
            sv.backup_limit = id % 5;
            s.add_server(sv);
        }
        s.set_subuser(7, 3, &["backup.read"]);
        s.set_subuser(7, 4, &["backup.read", "backup.create", "backup.download"]);
        s.set_subuser(8, 3, &["control.console"]);
    });

    let servers = app(&p).servers_with_subusers().await.unwrap();
    assert_eq!(servers.len(), 120);
    assert_eq!(p.requests("/api/application/servers"), 2);
    let seven = servers.iter().find(|s| s.id == 7).unwrap();
    let expected = Server::new(7, 5, 2);
    assert_eq!(seven.uuid, ServerUuid::parse(&expected.uuid).unwrap());
    assert_eq!(seven.identifier, expected.identifier());
    assert_eq!(
        (seven.owner_id, seven.node_id, seven.backup_limit),
        (5, 2, 2)
    );
    assert_eq!(seven.subusers.len(), 2);
    let three = seven.subusers.iter().find(|s| s.user_id == 3).unwrap();
    assert!(three.has("backup.read") && !three.has("backup.create"));
    let four = seven.subusers.iter().find(|s| s.user_id == 4).unwrap();
    assert_eq!(
        four.permissions,
        ["backup.read", "backup.create", "backup.download"]
    );
    assert_eq!(
        servers.iter().find(|s| s.id == 8).unwrap().subusers[0].permissions,
        ["control.console"]
    );
    assert!(
        servers
            .iter()
            .find(|s| s.id == 9)
            .unwrap()
            .subusers
            .is_empty()
    );
    assert_eq!(servers.iter().find(|s| s.id == 10).unwrap().backup_limit, 0);

    // A key that may not read users: the list is refused, and subusers come
    // back as `null_resource`, which must not read as "no subusers".
    let no_users = p.add_application_key(
        1,
        AppRead {
            users: false,
            nodes: true,
            servers: true,
        },
    );
    let c = app_with(&p, &no_users);
    let e = c.users().await.unwrap_err();
    assert!(
        matches!(e, PteroError::Unauthorized { status: 403, .. }),
        "{e:?}"
    );
    let e = c.servers_with_subusers().await.unwrap_err();
    assert!(
        matches!(&e, PteroError::Malformed { what } if what.contains("null_resource")),
        "{e:?}"
    );
    assert_clean(&e, &[&no_users]);
    assert_no_writes(&p);
}

#[tokio::test]
async fn the_application_api_takes_only_an_admins_key() {
    let p = Pterodactyl::start().await;
    p.add_user(User::new(2, "alice"));
    p.add_user(User::new(3, "root").admin());

    let wrong = "ptla_0000000000000000000000000000000000000000000";
    let e = app_with(&p, wrong).users().await.unwrap_err();
    assert!(
        matches!(e, PteroError::Unauthorized { status: 401, .. }),
        "{e:?}"
    );
    assert_clean(&e, &[wrong]);

    // A client key of a user who is not a root admin: 403.
    let alice = p.add_client_key(2);
    let e = app_with(&p, &alice).nodes().await.unwrap_err();
    assert!(
        matches!(e, PteroError::Unauthorized { status: 403, .. }),
        "{e:?}"
    );
    assert_clean(&e, &[&alice]);
    // Pterodactyl 1.11 lets a root admin's client key through
    // (`ApplicationApiRequest::authorize`).
    let root = p.add_client_key(3);
    assert_eq!(app_with(&p, &root).users().await.unwrap().len(), 3);

    // The application key's owner demoted: 403.
    let key = p.application_key();
    p.set_root_admin(1, false);
    let e = app(&p).servers_with_subusers().await.unwrap_err();
    assert!(
        matches!(e, PteroError::Unauthorized { status: 403, .. }),
        "{e:?}"
    );
    assert_clean(&e, &[&key]);
    assert_no_writes(&p);
}

#[tokio::test]
async fn sign_in_with_the_session_cookie_or_a_client_key() {
    let p = Pterodactyl::start().await;
    p.add_user(User::new(5, "alice"));
    p.add_user(User::new(6, "bob"));
    let c = client(&p);

    let cookie = p.add_session(5, false);
    let who = c
        .account_from_cookie(&secret(&cookie))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (who.id, who.admin, who.username.as_str(), who.email.as_str()),
        (5, false, "alice", "alice@example.com")
    );
    let admin = p.add_session(1, false);
    assert!(
        c.account_from_cookie(&secret(&admin))
            .await
            .unwrap()
            .unwrap()
            .admin
    );

    // Not signed in.
    let unknown = "eyJpdiI6Iunknownsession%3D";
    assert_eq!(c.account_from_cookie(&secret(unknown)).await.unwrap(), None);
    let pending = p.add_session(6, true);
    assert_eq!(
        c.account_from_cookie(&secret(&pending)).await.unwrap(),
        None
    );
    p.edit(|s| s.complete_two_factor(&pending));
    assert_eq!(
        c.account_from_cookie(&secret(&pending))
            .await
            .unwrap()
            .unwrap()
            .id,
        6
    );
    // A value no browser sends is not even asked about.
    let before = p.total_requests();
    let smuggled = format!("{cookie}; remember_web=1");
    assert_eq!(
        c.account_from_cookie(&secret(&smuggled)).await.unwrap(),
        None
    );
    assert_eq!(p.total_requests(), before);

    // Client keys.
    let key = p.add_client_key(6);
    assert_eq!(
        c.account_from_client_key(&secret(&key))
            .await
            .unwrap()
            .unwrap()
            .username,
        "bob"
    );
    let application = p.application_key();
    assert_eq!(
        c.account_from_client_key(&secret(&application))
            .await
            .unwrap(),
        None
    );
    p.edit(|s| s.revoke_key(&key));
    assert_eq!(
        c.account_from_client_key(&secret(&key)).await.unwrap(),
        None
    );

    // A deleted user's session names nobody.
    p.remove_user(5);
    assert_eq!(c.account_from_cookie(&secret(&cookie)).await.unwrap(), None);

    // A renamed cookie (Pterodactyl's APP_NAME/SESSION_COOKIE) is not seen.
    let renamed = client(&p)
        .with_session_cookie_name("my_host_session")
        .unwrap();
    assert_eq!(
        renamed.account_from_cookie(&secret(&admin)).await.unwrap(),
        None
    );
    assert!(client(&p).with_session_cookie_name("a=b").is_err());
    assert_no_writes(&p);
}

#[tokio::test]
async fn pterodactyls_own_backups_and_download_links() {
    let p = Pterodactyl::start().await;
    p.add_node(Node::new(1));
    for (id, name) in [(5, "owner"), (6, "reader"), (7, "stranger")] {
        p.add_user(User::new(id, name));
    }
    let server = Server::new(1, 5, 1);
    p.add_server(server.clone());
    p.set_subuser(1, 6, &["backup.read"]);
    p.edit(|s| {
        for n in 1..=120 {
            s.add_backup(1, Backup::new(n));
        }
    });
    let uuid = ServerUuid::parse(&server.uuid).unwrap();
    let c = client(&p);
    let owner = ClientIdentity::Session(secret(&p.add_session(5, false)));
    let reader = ClientIdentity::ClientKey(secret(&p.add_client_key(6)));
    let stranger = ClientIdentity::Session(secret(&p.add_session(7, false)));
    let admin = ClientIdentity::Session(secret(&p.add_session(1, false)));

    let backups = c.server_backups(&owner, &uuid).await.unwrap();
    assert_eq!(backups.len(), 120);
    let path = format!("/api/client/servers/{}/backups", server.uuid);
    assert_eq!(p.requests(&path), 3, "at most 50 per page");
    assert_eq!(backups[0].uuid, Backup::new(1).uuid);
    assert_eq!((backups[0].bytes, backups[0].is_successful), (1024, true));
    assert_eq!(c.server_backups(&reader, &uuid).await.unwrap().len(), 120);
    assert_eq!(c.server_backups(&admin, &uuid).await.unwrap().len(), 120);
    let e = c.server_backups(&stranger, &uuid).await.unwrap_err();
    assert!(matches!(e, PteroError::Status { status: 404, .. }), "{e:?}");

    let access = c.server_access(&owner, &uuid).await.unwrap().unwrap();
    assert!(access.is_owner);
    assert_eq!(access.permissions, ["*"]);
    let access = c.server_access(&reader, &uuid).await.unwrap().unwrap();
    assert_eq!(
        (access.is_owner, access.permissions),
        (false, vec!["backup.read".to_owned()])
    );
    assert_eq!(c.server_access(&stranger, &uuid).await.unwrap(), None);
    let access = c.server_access(&admin, &uuid).await.unwrap().unwrap();
    assert_eq!(access.permissions[0], "*");

    let backup = Backup::new(3).uuid;
    let link = c.backup_download_url(&owner, &uuid, &backup).await.unwrap();
    assert!(
        link.expose()
            .starts_with("https://node1.example.com:8080/download/backup?token="),
        "{}",
        link.expose()
    );
    assert_eq!(format!("{link:?}"), "SignedUrl(<redacted>)");
    let e = c
        .backup_download_url(&reader, &uuid, &backup)
        .await
        .unwrap_err();
    assert!(
        matches!(e, PteroError::Unauthorized { status: 403, .. }),
        "{e:?}"
    );
    let e = c
        .backup_download_url(&owner, &uuid, &Backup::new(999).uuid)
        .await
        .unwrap_err();
    assert!(matches!(e, PteroError::Status { status: 404, .. }), "{e:?}");
    let before = p.total_requests();
    let e = c
        .backup_download_url(&owner, &uuid, "../../account")
        .await
        .unwrap_err();
    assert!(matches!(e, PteroError::Invalid { .. }), "{e:?}");
    assert_eq!(p.total_requests(), before);
    assert_no_writes(&p);
}

#[tokio::test]
async fn a_broken_pterodactyl_is_reported_not_trusted() {
    let p = Pterodactyl::start().await;
    let key = p.application_key();
    let cookie = p.add_session(1, false);
    let c = app(&p);
    let ui = client(&p);

    p.set_mode(Mode::Garbage);
    let e = c.users().await.unwrap_err();
    assert!(matches!(e, PteroError::Malformed { .. }), "{e:?}");
    let e = ui.account_from_cookie(&secret(&cookie)).await.unwrap_err();
    assert!(matches!(e, PteroError::Malformed { .. }), "{e:?}");
    assert_clean(&e, &[&key, &cookie]);

    p.set_mode(Mode::Down);
    let e = c.nodes().await.unwrap_err();
    assert!(matches!(e, PteroError::Unreachable { .. }), "{e:?}");
    // Pterodactyl down is an error, not "signed out".
    let e = ui.account_from_cookie(&secret(&cookie)).await.unwrap_err();
    assert!(matches!(e, PteroError::Unreachable { .. }), "{e:?}");
    assert_clean(&e, &[&key, &cookie]);

    p.set_mode(Mode::Hang);
    let quick = ApplicationClient::new(p.url(), secret(&key), Duration::from_millis(500)).unwrap();
    let started = Instant::now();
    let e = quick.users().await.unwrap_err();
    assert!(matches!(e, PteroError::Unreachable { .. }), "{e:?}");
    assert!(started.elapsed() < Duration::from_secs(5));

    p.set_mode(Mode::Up);
    assert_eq!(c.users().await.unwrap().len(), 1);

    // Nothing listening at all.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let e = ApplicationClient::new(&url, secret(&key), TIMEOUT)
        .unwrap()
        .users()
        .await
        .unwrap_err();
    assert!(matches!(e, PteroError::Unreachable { .. }), "{e:?}");
    assert_clean(&e, &[&key]);

    // A base URL with credentials is refused without echoing them.
    let e = ApplicationClient::new(
        "https://admin:hunter2@panel.example.com",
        secret(&key),
        TIMEOUT,
    )
    .unwrap_err();
    assert_clean(&e, &["hunter2", &key]);
    assert_no_writes(&p);
}

#[tokio::test]
async fn bad_fields_are_named_without_their_values() {
    let p = Pterodactyl::start().await;
    p.edit(|s| {
        let mut u = User::new(3, "carol");
        u.uuid = "not-a-uuid-c4r0l-s3cr3t".into();
        s.add_user(u);
    });
    let e = app(&p).users().await.unwrap_err();
    let text = e.to_string();
    assert!(text.contains("user 3") && text.contains("`uuid`"), "{text}");
    assert!(!text.contains("c4r0l-s3cr3t"), "{text}");
    assert_no_writes(&p);
}

#[tokio::test]
async fn a_list_that_changes_while_read_is_not_used() {
    let p = Pterodactyl::start().await;
    p.edit(|s| {
        for id in 2..=150 {
            s.add_user(User::new(id, &format!("user{id}")));
        }
    });
    // A user is deleted between page 1 and page 2: page 2 shifts by one and
    // the sync would miss a user it would then treat as deleted.
    let seen = Arc::new(AtomicU64::new(0));
    let counter = seen.clone();
    p.on_request(move |path, s| {
        if path == "/api/application/users" && counter.fetch_add(1, Ordering::SeqCst) == 1 {
            s.remove_user(50);
        }
    });
    let e = app(&p).users().await.unwrap_err();
    assert!(matches!(e, PteroError::Changed { .. }), "{e:?}");
    // Read again, it is consistent.
    assert_eq!(app(&p).users().await.unwrap().len(), 149);
    assert_no_writes(&p);
}

#[tokio::test]
async fn the_rate_limit_is_waited_out() {
    let p = Pterodactyl::start().await;
    p.edit(|s| {
        for id in 2..=50 {
            s.add_user(User::new(id, &format!("user{id}")));
        }
    });
    p.set_rate_limit(Some(RateLimit {
        application: 3,
        client: 3,
        window: Duration::from_secs(1),
    }));
    let started = Instant::now();
    let users = app(&p).with_per_page(10).users().await.unwrap();
    assert_eq!(users.len(), 50);
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    assert!(
        p.requests("/api/application/users") > 5,
        "429s were answered"
    );

    // A visitor is not kept waiting: the client API reports the 429.
    let cookie = secret(&p.add_session(1, false));
    let c = client(&p);
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(
            c.account_from_cookie(&cookie)
                .await
                .map(|a| a.is_some())
                .map_err(|e| e.to_string()),
        );
    }
    assert!(statuses[..3].iter().all(|s| s == &Ok(true)), "{statuses:?}");
    assert!(
        matches!(&statuses[3], Err(e) if e.contains("429")),
        "{statuses:?}"
    );
    assert_no_writes(&p);
}

/// The double itself against Pterodactyl's rules, over plain HTTP.
#[tokio::test]
async fn the_double_answers_like_pterodactyl() {
    let p = Pterodactyl::start().await;
    p.edit(|s| {
        for id in 2..=5 {
            s.add_user(User::new(id, &format!("user{id}")));
        }
    });
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let key = p.application_key();
    let get = |path: &str| {
        http.get(format!("{}{path}", p.url()))
            .header("Accept", "application/json")
    };

    // Unauthenticated: 401 JSON when JSON is expected, else the login redirect.
    let r = get("/api/application/users").send().await.unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body,
        serde_json::json!({"errors": [{"code": "AuthenticationException", "status": "401", "detail": "Unauthenticated."}]})
    );
    let r = http
        .get(format!("{}/api/client/account", p.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    assert!(
        r.headers()["location"]
            .to_str()
            .unwrap()
            .ends_with("/auth/login")
    );

    // Pagination: default 50, links only where they lead somewhere.
    let body: Value = get("/api/application/users")
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["object"], "list");
    assert_eq!(body["data"][0]["object"], "user");
    assert_eq!(body["data"][0]["attributes"]["2fa"], false);
    let pagination = &body["meta"]["pagination"];
    assert_eq!(
        (
            pagination["total"].as_u64(),
            pagination["per_page"].as_u64()
        ),
        (Some(5), Some(50))
    );
    assert_eq!(pagination["links"], serde_json::json!({}));
    let body: Value = get("/api/application/users?per_page=2&page=2&sort=id")
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let pagination = &body["meta"]["pagination"];
    assert_eq!(
        (
            pagination["count"].as_u64(),
            pagination["current_page"].as_u64(),
            pagination["total_pages"].as_u64()
        ),
        (Some(2), Some(2), Some(3))
    );
    assert_eq!(
        pagination["links"]["previous"],
        format!("{}/api/application/users?page=1", p.url())
    );
    assert_eq!(
        pagination["links"]["next"],
        format!("{}/api/application/users?page=3", p.url())
    );
    let body: Value = get("/api/application/users?per_page=0")
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["meta"]["pagination"]["per_page"], 15);

    // An application key on the client API.
    let r = get("/api/client/account")
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "AccessDeniedHttpException");

    // Includes sit inside `attributes`.
    p.add_node(Node::new(1));
    p.add_server(Server::new(1, 2, 1));
    p.set_subuser(1, 3, &["backup.read"]);
    let body: Value = get("/api/application/servers?include=subusers")
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sub = &body["data"][0]["attributes"]["relationships"]["subusers"];
    assert_eq!(sub["object"], "list");
    assert_eq!(sub["data"][0]["object"], "subuser");
    assert_eq!(
        sub["data"][0]["attributes"]["permissions"][0],
        "backup.read"
    );

    // Writes are refused and recorded.
    let r = http
        .post(format!("{}/api/application/users", p.url()))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(p.writes(), ["POST /api/application/users"]);
}

/// The double holds the benchmark size and serves pages without
/// scanning everything for each.
#[tokio::test]
async fn the_double_serves_a_large_panel() {
    let p = Pterodactyl::start().await;
    let started = Instant::now();
    p.edit(|s| {
        for id in 2..=20_000 {
            s.add_user(User::new(id, &format!("user{id}")));
        }
        for id in 1..=2_000 {
            s.add_node(Node::new(id));
        }
        for id in 1..=10_000 {
            s.add_server(Server::new(id, 1 + id % 20_000, 1 + id % 2_000));
            s.set_subuser(id, 2 + id % 19_999, &["backup.read"]);
            s.set_subuser(id, 2 + (id + 7) % 19_999, &["backup.read", "backup.create"]);
        }
    });
    let loaded = started.elapsed();
    let c = app(&p);
    let started = Instant::now();
    let users = c.users().await.unwrap();
    let servers = c.servers_with_subusers().await.unwrap();
    let nodes = c.nodes().await.unwrap();
    let read = started.elapsed();
    assert_eq!(
        (users.len(), nodes.len(), servers.len()),
        (20_000, 2_000, 10_000)
    );
    assert_eq!(
        servers.iter().map(|s| s.subusers.len()).sum::<usize>(),
        20_000
    );
    assert_eq!(p.total_requests(), 200 + 100 + 20);
    eprintln!("loaded in {loaded:?}, read 320 pages in {read:?}");
    assert!(read < Duration::from_secs(60), "{read:?}");
    assert_no_writes(&p);
}

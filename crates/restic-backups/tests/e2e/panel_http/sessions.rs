//! Sessions and CSRF: cookies, logout, expiry, the CSRF header rule.

use reqwest::Method;
use serde_json::json;
use testkit::panel::{Db, PASSWORD, World};

use super::backups;

pub(super) async fn sessions_and_csrf(db: Db) {
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

//! Logins under attack: parallel guesses are counted before they are
//! checked, a flood of failed logins keeps the panel's memory bounded, one
//! address can not lock a user out everywhere, cross-site login forms are
//! refused, and a new password ends the other sessions.

use reqwest::Method;
use serde_json::json;
use testkit::panel::{ADMIN, Db, PASSWORD, TestPanel};

const OWNER: &str = "owner@example.com";

/// A panel that believes `X-Forwarded-For` from loopback (a reverse proxy
/// on the same machine), with one user.
async fn behind_proxy() -> TestPanel {
    let panel = TestPanel::start_with(Db::Sqlite, &["trusted_proxies = [\"127.0.0.1\"]"]);
    panel.add_user(&panel.admin().await, OWNER).await;
    panel
}

async fn login_from(
    http: &reqwest::Client,
    panel: &TestPanel,
    address: &str,
    password: &str,
) -> u16 {
    http.post(format!("{}/auth/login", panel.url))
        .header("X-Forwarded-For", address)
        .json(&json!({"email": OWNER, "password": password}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Sends `n` logins at once, the i-th from `what(i)`'s address with its
/// body; returns their statuses.
async fn all_at_once(
    panel: &TestPanel,
    n: usize,
    what: impl Fn(usize) -> (String, serde_json::Value),
) -> Vec<u16> {
    let http = reqwest::Client::new();
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let (address, body) = what(i);
            let (http, url) = (http.clone(), panel.url.clone());
            tokio::spawn(async move {
                http.post(format!("{url}/auth/login"))
                    .header("X-Forwarded-For", address)
                    .json(&body)
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    statuses
}

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_guesses_from_one_address_are_all_counted_and_lock_only_that_address() {
    let panel = behind_proxy().await;
    let http = reqwest::Client::new();
    let statuses = all_at_once(&panel, 100, |i| {
        (
            "203.0.113.9".to_owned(),
            json!({"email": OWNER, "password": format!("guess {i}")}),
        )
    })
    .await;
    let verified = statuses.iter().filter(|s| **s == 401).count();
    assert_eq!(
        verified, 10,
        "guesses verified before the limit: {statuses:?}"
    );
    assert!(statuses.iter().all(|s| *s == 401 || *s == 429));
    // That address is locked for that account, even with the password…
    assert_eq!(
        login_from(&http, &panel, "203.0.113.9", PASSWORD).await,
        429
    );
    // …but the user logs in from anywhere else, also through the proxy.
    assert_eq!(
        login_from(&http, &panel, "198.51.100.7", PASSWORD).await,
        200
    );
    // Every refusal is one log line naming the client (fail2ban).
    assert!(panel.log().contains("login failed"));
    assert!(panel.log().contains("203.0.113.9"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_failed_logins_keeps_memory_bounded() {
    let panel = behind_proxy().await;
    let http = reqwest::Client::new();
    eprintln!(
        "before the flood: peak RSS {} MiB",
        peak_rss_kib(panel.pid()) / 1024
    );
    let statuses = all_at_once(&panel, 200, |i| {
        (
            format!("10.{}.{}.1", i / 250, i % 250),
            json!({"email": format!("nobody{i}@example.com"), "password": "x"}),
        )
    })
    .await;
    assert!(
        statuses.iter().all(|s| *s == 401 || *s == 429),
        "{statuses:?}"
    );
    let peak = peak_rss_kib(panel.pid());
    eprintln!(
        "200 concurrent failed logins: {} refused at once, peak RSS {} MiB",
        statuses.iter().filter(|s| **s == 429).count(),
        peak / 1024
    );
    assert!(peak < 200 * 1024, "peak RSS {peak} KiB");
    // And the panel still serves a real login.
    assert_eq!(login_from(&http, &panel, "192.0.2.1", PASSWORD).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_site_login_forms_are_refused() {
    let panel = behind_proxy().await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let form = format!(
        "email={}&password={}",
        OWNER.replace('@', "%40"),
        PASSWORD.replace(' ', "+")
    );
    let post = |headers: &[(&str, &str)]| {
        let mut r = http
            .post(format!("{}/auth/login", panel.url))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(form.clone());
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        r.send()
    };
    let host = panel.url.trim_start_matches("http://").to_owned();
    for evil in [
        vec![("Sec-Fetch-Site", "cross-site")],
        vec![("Sec-Fetch-Site", "same-site")],
        vec![("Origin", "https://evil.example")],
        vec![("Origin", "null")],
    ] {
        let res = post(&evil).await.unwrap();
        assert_eq!(res.status(), 403, "{evil:?}");
        assert!(res.headers().get("set-cookie").is_none());
    }
    let origin = format!("http://{host}");
    for fine in [
        vec![("Sec-Fetch-Site", "same-origin")],
        vec![("Origin", origin.as_str())],
        vec![],
    ] {
        let res = post(&fine).await.unwrap();
        assert_eq!(res.status(), 303, "{fine:?}");
        assert!(res.headers().get("set-cookie").is_some());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_password_ends_the_other_sessions() {
    let panel = TestPanel::start(Db::Sqlite);
    let mut admin = panel.admin().await;
    let mut other_admin = panel.admin().await;
    panel.add_user(&admin, OWNER).await;
    let mut phone = panel.login(OWNER, PASSWORD).await;
    let mut laptop = panel.login(OWNER, PASSWORD).await;
    let (_, users) = admin.get("/extensions/resticbackups/admin/users").await;
    let id_of = |email: &str| {
        users
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["email"] == email)
            .unwrap()["id"]
            .as_i64()
            .unwrap()
    };
    let (owner_id, admin_id) = (id_of(OWNER), id_of(ADMIN));
    let new_password = "a much better password 2026";
    let (s, v) = admin
        .send(
            Method::PATCH,
            &format!("/extensions/resticbackups/admin/users/{owner_id}"),
            Some(json!({"password": new_password})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    for c in [&mut phone, &mut laptop] {
        let (s, _) = c.get("/auth/session").await;
        assert_eq!(s, 401, "an old session of the owner survived");
    }
    panel.login(OWNER, new_password).await;

    // An admin changing their own password keeps the session they use.
    let (s, v) = admin
        .send(
            Method::PATCH,
            &format!("/extensions/resticbackups/admin/users/{admin_id}"),
            Some(json!({"password": new_password})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(admin.get("/auth/session").await.0, 200);
    assert_eq!(other_admin.get("/auth/session").await.0, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_method_gets_a_json_405() {
    let panel = TestPanel::start(Db::Sqlite);
    let mut admin = panel.admin().await;
    for (method, path) in [
        (Method::PUT, "/auth/login"),
        (Method::PUT, "/extensions/resticbackups/admin/users"),
    ] {
        let (s, body) = admin.send(method.clone(), path, None).await;
        assert_eq!(s, 405, "{method} {path}: {body}");
        assert_eq!(body["error"]["code"], "method_not_allowed", "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_the_panel_sends_hsts_and_secure_cookies() {
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = testkit::make_cert(certs.path());
    let panel = TestPanel::start_with(
        Db::Sqlite,
        &[
            &format!("tls_cert = \"{}\"", cert.display()),
            &format!("tls_key = \"{}\"", key.display()),
        ],
    );
    assert!(panel.url.starts_with("https://"), "{}", panel.url);
    // The headers are the point here, not the trust in a self-signed cert.
    let http = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let res = http
        .get(format!("{}/login", panel.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["strict-transport-security"],
        "max-age=31536000"
    );
    let res = http
        .post(format!("{}/auth/login", panel.url))
        .json(&json!({"email": ADMIN, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.contains("; Secure"), "{cookie}");
}

//! Notifications through the built binary to a local HTTP receiver and a
//! local SMTP server: channels (bad input refused, targets never shown
//! again), the test button, a failed scheduled backup giving exactly one
//! message per subscribed channel in each format, a restore and a key
//! rotation, a receiver that is down (retried), and "no backup for N
//! hours" told once per stretch.

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use testkit::TestAgent;
use testkit::panel::{Db, World};
use testkit::receivers::{SmtpSink, WebhookReceiver};

const API: &str = "/extensions/resticbackups";

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// `schedule run-due --at <t>` against the panel's settings (it sends
/// what the runs queued before it exits).
fn run_due(w: &World, at: i64) -> String {
    let out = Command::new(testkit::binary())
        .args(["schedule", "run-due", "--at", &at.to_string(), "--config"])
        .arg(w.panel.dir.path().join("panel.toml"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

fn by_path<'a>(hooks: &'a [testkit::receivers::Hook], path: &str) -> Vec<&'a Value> {
    hooks
        .iter()
        .filter(|h| h.path == path)
        .map(|h| &h.body)
        .collect()
}

fn event_of(h: &Value) -> String {
    // The generic webhook says it; Discord's and Slack's text starts with
    // the title.
    if let Some(e) = h["event"].as_str() {
        return e.to_owned();
    }
    let text = h["content"].as_str().or(h["text"].as_str()).unwrap_or("");
    text.trim_start_matches('*')
        .split(" · ")
        .next()
        .unwrap_or("")
        .to_owned()
}

async fn story(db: Db) {
    let hooks = WebhookReceiver::start().await;
    let smtp = SmtpSink::start().await;
    let settings = [
        "scheduler = false".to_owned(),
        "notify_retry_secs = 1".to_owned(),
        "[smtp]".to_owned(),
        "host = \"127.0.0.1\"".to_owned(),
        format!("port = {}", smtp.port),
        "security = \"none\"".to_owned(),
        "from = \"Backups <backups@panel.test>\"".to_owned(),
    ];
    let settings: Vec<&str> = settings.iter().map(String::as_str).collect();
    let mut w = World::with_settings(db, TestAgent::start(), 1, 10, &settings).await;
    let server = w.servers[0].clone();
    let name = format!("server {server}");
    let first = w.owner.backup(&server).await;

    // Channels, and what is refused.
    let add = |body: Value| {
        let mut admin = w.admin.clone();
        async move {
            admin
                .post(&format!("{API}/admin/notifications"), body)
                .await
        }
    };
    for (body, code) in [
        (
            json!({"name": "x", "kind": "pager", "target": "https://a.test/"}),
            "invalid_kind",
        ),
        (
            json!({"name": "x", "kind": "webhook", "target": "http://example.com/hook"}),
            "invalid_target",
        ),
        (
            json!({"name": "x", "kind": "discord", "target": "https://u:p@discord.test/x"}),
            "invalid_target",
        ),
        (
            json!({"name": "x", "kind": "email", "target": "not an address"}),
            "invalid_target",
        ),
        (
            json!({"name": "", "kind": "webhook", "target": format!("{}/g", hooks.url)}),
            "invalid_name",
        ),
        (
            json!({"name": "x", "kind": "webhook", "target": format!("{}/g", hooks.url), "events": ["test"]}),
            "invalid_event",
        ),
        (
            json!({"name": "x", "kind": "webhook", "target": format!("{}/g", hooks.url), "events": []}),
            "invalid_event",
        ),
        (
            json!({"name": "x", "kind": "webhook", "target": format!("{}/g", hooks.url), "missing_hours": 0}),
            "invalid_missing_hours",
        ),
        (
            json!({"name": "x", "kind": "webhook", "target": format!("{}/g", hooks.url), "colour": 1}),
            "invalid_json",
        ),
    ] {
        let (status, body) = add(body.clone()).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"]["code"], code, "{body}");
    }
    let (status, generic) = add(json!({"name": "ops webhook", "kind": "webhook",
        "target": format!("{}/generic/secret-part", hooks.url), "events": ["backup_failed", "restored"]})).await;
    assert_eq!(status, 201, "{generic}");
    assert_eq!(generic["target"], format!("{}/…", hooks.url));
    let (status, discord) = add(json!({"name": "discord", "kind": "discord",
        "target": format!("{}/discord", hooks.url)}))
    .await;
    assert_eq!(status, 201, "{discord}");
    assert_eq!(
        discord["events"],
        json!(["backup_failed", "backup_missing", "key_rotated", "restored"])
    );
    let (status, _) = add(json!({"name": "slack", "kind": "slack",
        "target": format!("{}/slack", hooks.url), "events": ["key_rotated"]}))
    .await;
    assert_eq!(status, 201);
    let (status, mail) = add(json!({"name": "mail", "kind": "email",
        "target": "ops@example.com", "events": ["backup_failed"]}))
    .await;
    assert_eq!(status, 201, "{mail}");
    let (status, body) =
        add(json!({"name": "mail", "kind": "webhook", "target": format!("{}/x", hooks.url)})).await;
    assert_eq!(status, 409, "{body}");
    let (_, list) = w.admin.get(&format!("{API}/admin/notifications")).await;
    assert_eq!(list.as_array().unwrap().len(), 4);
    assert!(!list.to_string().contains("secret-part"), "{list}");

    // The test button: one message, now.
    let discord_id = discord["id"].as_str().unwrap();
    let (status, tested) = w
        .admin
        .post(
            &format!("{API}/admin/notifications/{discord_id}/test"),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{tested}");
    assert_eq!(tested, json!({"ok": true, "error": null}));
    let got = hooks.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got[0].path, "/discord");
    assert!(got[0].content_type.starts_with("application/json"));
    assert!(got[0].user_agent.starts_with("restic-backups/"));
    assert_eq!(
        got[0].body["content"],
        "**Test message**\nThis is a test of the notification channel \"discord\". If you read it, it works."
    );
    assert_eq!(got[0].body["allowed_mentions"], json!({"parse": []}));

    // A scheduled backup that fails (the server's folder is gone): one
    // message to each channel that takes backup_failed, e-mail included.
    let saved = now();
    let (status, body) = w
        .owner
        .post(
            &format!("{API}/servers/{server}/backups/restic/schedule"),
            json!({"enabled": true, "interval_value": 1, "interval_unit": "hours"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    std::fs::remove_dir_all(w.agent.data_dir().join(&server)).unwrap();
    let out = run_due(&w, saved + 3600 + 5);
    assert!(out.contains("1 of 1 scheduled backups failed"), "{out}");
    let got = hooks.wait_for(3, Duration::from_secs(15)).await;
    let generic_got = by_path(&got, "/generic/secret-part");
    assert_eq!(generic_got.len(), 1, "{got:?}");
    let g = generic_got[0];
    assert_eq!(g["event"], "backup_failed");
    assert_eq!(g["title"], "Backup failed");
    assert_eq!(g["server"], json!({"uuid": server, "name": name}));
    assert!(
        g["text"]
            .as_str()
            .unwrap()
            .starts_with(&format!("The scheduled backup of {name} failed: ")),
        "{g}"
    );
    assert_eq!(g["details"]["failures_in_a_row"], 1);
    assert!(g["at"].as_str().unwrap().ends_with('Z'));
    let d = by_path(&got, "/discord");
    assert_eq!(d.len(), 2, "test + failure: {got:?}");
    let content = d[1]["content"].as_str().unwrap();
    assert!(
        content.starts_with(&format!("**Backup failed · {name}**\n")),
        "{content}"
    );
    assert!(
        content.ends_with(&format!("\nServer: `{server}`")),
        "{content}"
    );
    assert!(by_path(&got, "/slack").is_empty());
    let mails = smtp.wait_for(1, Duration::from_secs(15)).await;
    assert_eq!(mails.len(), 1);
    let m = &mails[0];
    assert_eq!(m.to, vec!["<ops@example.com>".to_owned()]);
    assert_eq!(m.header("From").unwrap(), "Backups <backups@panel.test>");
    assert_eq!(m.header("To").unwrap(), "ops@example.com");
    assert_eq!(
        m.header("Subject").unwrap(),
        format!("[Restic Backups] Backup failed · {name}")
    );
    assert!(
        m.body().contains(&format!("Server: {name} ({server})")),
        "{}",
        m.body()
    );

    // A restore while the webhook receiver is down for one request: both
    // channels that take `restored` get it, one after a retry.
    std::fs::create_dir_all(w.agent.data_dir().join(&server)).unwrap();
    hooks.fail_next(1);
    let before = hooks.got().len();
    let (status, body) = w
        .owner
        .post(
            &format!("{API}/servers/{server}/backups/restic/{first}/restore"),
            json!({}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let got = hooks.wait_for(before + 3, Duration::from_secs(30)).await;
    let restored: Vec<&Value> = got[before..]
        .iter()
        .map(|h| &h.body)
        .filter(|b| event_of(b) == "restored" || event_of(b) == "Restore started")
        .collect();
    assert_eq!(restored.len(), 3, "one failed and was tried again: {got:?}");
    let g: Vec<_> = by_path(&got[before..], "/generic/secret-part");
    assert_eq!(g.last().unwrap()["details"]["by"], "owner@example.com");

    // A key rotation: Discord and Slack.
    let before = hooks.got().len();
    let (status, body) = w
        .admin
        .post(
            &format!("{API}/admin/servers/{server}/key/regenerate"),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let got = hooks.wait_for(before + 2, Duration::from_secs(15)).await;
    let slack = by_path(&got[before..], "/slack");
    assert_eq!(slack.len(), 1, "{got:?}");
    assert_eq!(
        slack[0]["text"],
        format!(
            "*Repository key replaced · {name}*\nadmin@example.com gave the backups of {name} a new key. Keys exported before no longer open them.\nServer: `{server}`"
        )
    );

    // No successful backup for 26 hours: told once per stretch.
    let before = hooks.got().len();
    let missing = |got: &[testkit::receivers::Hook]| -> usize {
        by_path(&got[before..], "/discord")
            .into_iter()
            .filter(|b| {
                b["content"]
                    .as_str()
                    .unwrap()
                    .starts_with("**No backup for 26 hours")
            })
            .count()
    };
    let _ = run_due(&w, now() + 30 * 3600);
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while missing(&hooks.got()) == 0 {
        assert!(std::time::Instant::now() < deadline, "{:?}", hooks.got());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = run_due(&w, now() + 31 * 3600);
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(missing(&hooks.got()), 1, "{:?}", hooks.got());

    // Removing a channel stops it; the audit log has the admin's changes.
    let channel = format!("{API}/admin/notifications/{discord_id}");
    for expected in [204, 404] {
        let (status, _) = w.admin.send(reqwest::Method::DELETE, &channel, None).await;
        assert_eq!(status, expected);
    }
    let (_, audit) = w
        .admin
        .get(&format!(
            "{API}/admin/audit?action=notification.create&outcome=ok"
        ))
        .await;
    assert_eq!(audit["entries"].as_array().unwrap().len(), 4, "{audit}");
    assert!(
        !w.panel.log().contains("secret-part"),
        "a webhook URL in the log"
    );
}

/// A server owner's own Discord webhook: only on `owner_webhook_hosts`,
/// only the owner (a subuser gets 403, a stranger 404), only that
/// server's messages.
async fn owners_webhook(db: Db) {
    let hooks = WebhookReceiver::start().await;
    let settings = [
        "scheduler = false",
        "notify_retry_secs = 1",
        "owner_webhook_hosts = [\"127.0.0.1\"]",
    ];
    let mut w = World::with_settings(db, TestAgent::start(), 2, 10, &settings).await;
    let (mine, other) = (w.servers[0].clone(), w.servers[1].clone());
    let path = format!("{API}/servers/{mine}/backups/restic/notifications");
    let hook = format!("{}/api/webhooks/1/token-part", hooks.url);
    for (url, code) in [
        (
            "https://discord.evil.test/api/webhooks/1/x".to_owned(),
            "invalid_target",
        ),
        (format!("{}/not-a-webhook", hooks.url), "invalid_target"),
        (
            "http://10.0.0.1/api/webhooks/1/x".to_owned(),
            "invalid_target",
        ),
        (
            "https://discord.com:8443/api/webhooks/1/x".to_owned(),
            "invalid_target",
        ),
    ] {
        let r = w
            .owner
            .request(reqwest::Method::PUT, &path)
            .header("X-CSRF-Token", w.owner.csrf.clone().unwrap())
            .json(&json!({"url": url}));
        let (status, body) = w.owner.finish("put", r).await;
        assert_eq!(status, 400, "{url}: {body}");
        assert_eq!(body["error"]["code"], code, "{body}");
    }
    let r = w
        .owner
        .request(reqwest::Method::PUT, &path)
        .header("X-CSRF-Token", w.owner.csrf.clone().unwrap())
        .json(&json!({"url": hook, "events": ["backup_failed"]}));
    let (status, body) = w.owner.finish("put", r).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["channel"]["target"], format!("{}/…", hooks.url));
    let (_, got) = w.owner.get(&path).await;
    assert_eq!(got["channel"]["events"], json!(["backup_failed"]));
    assert!(!got.to_string().contains("token-part"));
    // Not the admins' list.
    let (_, admins) = w.admin.get(&format!("{API}/admin/notifications")).await;
    assert_eq!(admins, json!([]));

    // A subuser reads the server but may not set its notifications; a
    // stranger does not see the server at all.
    let mut helper = w
        .subuser(
            &mine,
            "helper@example.com",
            &["backup.read", "backup.create"],
        )
        .await;
    w.panel.add_user(&w.admin, "stranger@example.com").await;
    assert_eq!(helper.get(&path).await.0, 403);
    let mut stranger = w
        .panel
        .login("stranger@example.com", testkit::panel::PASSWORD)
        .await;
    assert_eq!(stranger.get(&path).await.0, 404);

    // The test button, then a failure of each server: only its own.
    let (status, tested) = w.owner.post(&format!("{path}/test"), json!({})).await;
    assert_eq!(status, 200, "{tested}");
    assert_eq!(tested["ok"], true, "{tested}");
    // Not again at once: a receiver bans an address that floods it.
    let (status, body) = w.owner.post(&format!("{path}/test"), json!({})).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "rate_limited");
    let saved = now();
    for s in [&mine, &other] {
        let (status, body) = w
            .owner
            .post(
                &format!("{API}/servers/{s}/backups/restic/schedule"),
                json!({"enabled": true, "interval_value": 1, "interval_unit": "hours"}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        std::fs::remove_dir_all(w.agent.data_dir().join(s)).unwrap();
    }
    let out = run_due(&w, saved + 3600 + 5);
    assert!(out.contains("2 of 2 scheduled backups failed"), "{out}");
    let got = hooks.wait_for(2, Duration::from_secs(15)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got = if hooks.got().len() > got.len() {
        hooks.got()
    } else {
        got
    };
    assert_eq!(got.len(), 2, "the test and one failure: {got:?}");
    assert_eq!(got[0].path, "/api/webhooks/1/token-part");
    let content = got[1].body["content"].as_str().unwrap();
    assert!(content.contains(&format!("Server: `{mine}`")), "{content}");

    // Removed: 204, then 404.
    for expected in [204, 404] {
        let (status, _) = w.owner.send(reqwest::Method::DELETE, &path, None).await;
        assert_eq!(status, expected);
    }
    let (_, audit) = w
        .admin
        .get(&format!("{API}/admin/audit?action=server_notification.set"))
        .await;
    assert_eq!(
        audit["entries"].as_array().unwrap().len(),
        5,
        "4 refused, 1 set: {audit}"
    );
}

testkit::on_both_databases!(story, owners_webhook);

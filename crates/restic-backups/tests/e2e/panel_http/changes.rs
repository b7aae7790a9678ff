//! The panel keeps what every request reads (session, user, server,
//! permissions, node and key, a page's marks) in memory; a change must
//! still show on the next request: at once when it went through this
//! panel, within a moment when another process made it (the admin
//! commands; another panel on the same PostgreSQL).

use std::time::{Duration, Instant};

use serde_json::json;
use testkit::panel::{Db, World, run_cli};

use super::backups;

pub(super) async fn changes_show_on_the_next_request(db: Db) {
    let w = World::new(db, 1, 0).await;
    let server = w.servers[0].clone();
    let mut owner = w.owner.clone();
    let snapshot = owner.backup(&server).await;
    let mut sub = w
        .subuser(&server, "sub@example.com", &["backup.read"])
        .await;
    let list = backups(&server);
    for _ in 0..3 {
        let (s, b) = sub.get(&list).await;
        assert_eq!(s, 200, "{b}");
    }

    // Through this panel: the very next request, no waiting.
    w.panel
        .set_subuser(&w.admin, &server, "sub@example.com", &["backup.create"])
        .await;
    let (s, b) = sub.get(&list).await;
    assert_eq!(s, 403, "a withdrawn permission still worked: {b}");
    w.panel
        .set_subuser(&w.admin, &server, "sub@example.com", &["backup.read"])
        .await;
    let (s, b) = sub.get(&list).await;
    assert_eq!(s, 200, "a granted permission did not work yet: {b}");

    // A note is on the next page served.
    let (s, b) = owner
        .send(
            reqwest::Method::PUT,
            &format!("{list}/{snapshot}/note"),
            Some(json!({"note": "before the update"})),
        )
        .await;
    assert!(s == 200 || s == 204, "{s} {b}");
    let (_, page) = sub.get(&list).await;
    let item = page["backups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == snapshot.as_str())
        .unwrap_or_else(|| panic!("{snapshot} not listed: {page}"));
    assert_eq!(item["note"], "before the update", "{page}");

    // A new snapshot is on the next page served.
    let newer = owner.backup(&server).await;
    let (_, page) = sub.get(&list).await;
    assert!(
        page["backups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["id"] == newer.as_str()),
        "a new snapshot is missing: {page}"
    );

    // Through another process (the admin command, as an operator would):
    // seen within a moment (0.1 s on SQLite, at the commit on PostgreSQL).
    let config = w.panel.dir.path().join("panel.toml");
    let (ok, out) = run_cli(
        &config,
        &[
            "subuser",
            "set",
            "--server",
            &server,
            "--email",
            "sub@example.com",
            "--permissions",
            "backup.create",
        ],
        "",
    );
    assert!(ok, "subuser set: {out}");
    let changed_at = Instant::now();
    loop {
        let (s, b) = sub.get(&list).await;
        if s == 403 {
            break;
        }
        assert_eq!(s, 200, "{b}");
        assert!(
            changed_at.elapsed() < Duration::from_secs(3),
            "a permission the admin command withdrew still works after 3 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

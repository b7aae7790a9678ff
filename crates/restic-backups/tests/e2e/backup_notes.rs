//! Notes on backups and time filters on the list, through the panel on
//! both databases: a note given at creation lands on the snapshot the run
//! made, notes are set, changed and cleared, bad ones refused; `from`/`to`
//! narrow the list and its cursors keep working.

use serde_json::{Value, json};
use testkit::panel::{Db, World};

fn notes_of(list: &Value) -> Vec<(String, Option<String>)> {
    list["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["id"].as_str().unwrap().to_owned(),
                b["note"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

async fn notes_and_time_filters(db: Db) {
    let mut w = World::new(db, 1, 0).await;
    let server = w.servers[0].clone();
    let b = format!("/extensions/resticbackups/servers/{server}/backups/restic");

    // A note given with the backup lands on its snapshot.
    let (status, job) = w
        .owner
        .post(&b, json!({"note": "  before 1.21 update  "}))
        .await;
    assert_eq!(status, 202, "{job}");
    let view = w
        .owner
        .wait_job(&server, job["job_id"].as_str().unwrap())
        .await;
    let first = view["result"]["snapshot"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, list) = w.owner.get(&b).await;
    assert_eq!(
        notes_of(&list),
        [(first.clone(), Some("before 1.21 update".to_owned()))]
    );

    // Set by a prefix of the ID, changed, cleared.
    let note = format!("{b}/{}/note", &first[..8]);
    let (status, set) = w
        .owner
        .send(
            reqwest::Method::PUT,
            &note,
            Some(json!({"note": "world reset ✓"})),
        )
        .await;
    assert_eq!(status, 200, "{set}");
    assert_eq!(set, json!({"id": first, "note": "world reset ✓"}));
    let (_, list) = w.owner.get(&b).await;
    assert_eq!(notes_of(&list)[0].1.as_deref(), Some("world reset ✓"));
    let (status, cleared) = w
        .owner
        .send(reqwest::Method::PUT, &note, Some(json!({"note": "  "})))
        .await;
    assert_eq!((status, &cleared["note"]), (200, &Value::Null));
    let (_, list) = w.owner.get(&b).await;
    assert_eq!(notes_of(&list)[0].1, None);

    // Refused: too long, several lines, unknown fields, unknown backups,
    // a subuser who may only read, a bad note at creation.
    let long = "n".repeat(501);
    for (body, status, code) in [
        (json!({"note": long}), 400, "invalid_note"),
        (json!({"note": "a\nb"}), 400, "invalid_note"),
        (json!({"note": "x", "pinned": true}), 400, "invalid_json"),
        (json!({}), 400, "invalid_json"),
    ] {
        let (got, err) = w
            .owner
            .send(reqwest::Method::PUT, &note, Some(body.clone()))
            .await;
        assert_eq!(
            (got, err["error"]["code"].as_str()),
            (status, Some(code)),
            "{body}"
        );
    }
    let (got, _) = w
        .owner
        .send(
            reqwest::Method::PUT,
            &format!("{b}/deadbeef/note"),
            Some(json!({"note": "x"})),
        )
        .await;
    assert_eq!(got, 404);
    let mut reader = w
        .subuser(&server, "reader@example.com", &["backup.read"])
        .await;
    let (got, _) = reader
        .send(reqwest::Method::PUT, &note, Some(json!({"note": "x"})))
        .await;
    assert_eq!(got, 403);
    let (got, err) = w.owner.post(&b, json!({"note": "two\nlines"})).await;
    assert_eq!(
        (got, err["error"]["code"].as_str()),
        (400, Some("invalid_note"))
    );

    // The audit log says who changed a note.
    let (_, audit) = w
        .admin
        .get("/extensions/resticbackups/admin/audit?action=backup.note&outcome=ok")
        .await;
    assert_eq!(
        audit["entries"].as_array().map(Vec::len),
        Some(2),
        "{audit}"
    );

    // Time filters: three backups a moment apart.
    let second = w.owner.backup(&server).await;
    let third = w.owner.backup(&server).await;
    let (_, all) = w.owner.get(&format!("{b}?limit=10")).await;
    let time_of = |id: &str| {
        all["backups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["id"] == id)
            .unwrap()["time"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let enc = |t: String| t.replace('+', "%2B");
    let (status, from_second) = w
        .owner
        .get(&format!("{b}?limit=1&from={}", enc(time_of(&second))))
        .await;
    assert_eq!(status, 200, "{from_second}");
    assert_eq!(from_second["total"], 2);
    assert_eq!(from_second["backups"][0]["id"], third);
    let cursor = from_second["next_cursor"].as_str().unwrap().to_owned();
    let (_, next) = w
        .owner
        .get(&format!(
            "{b}?limit=1&from={}&cursor={cursor}",
            enc(time_of(&second))
        ))
        .await;
    assert_eq!(next["backups"][0]["id"], second);
    assert_eq!(next["next_cursor"], Value::Null);
    let (_, before_second) = w
        .owner
        .get(&format!("{b}?to={}", enc(time_of(&second))))
        .await;
    assert_eq!(notes_of(&before_second), [(first.clone(), None)]);
    for bad in [
        "from=yesterday",
        "to=2026-13-01T00:00:00Z",
        "from=2026-11-02T00:00:00Z&to=2026-11-01T00:00:00Z",
    ] {
        let (got, err) = w.owner.get(&format!("{b}?{bad}")).await;
        assert_eq!(
            (got, err["error"]["code"].as_str()),
            (400, Some("invalid_time")),
            "{bad}"
        );
    }
}

/// Storage over time and the list's labels: bytes each backup added, the
/// repository's size after it, who started it; a deleted one stays in the
/// history marked gone until a root admin's "reclaim now" frees its space.
async fn storage_history_and_labels(db: Db) {
    let mut w = World::new(db, 1, 0).await;
    let server = w.servers[0].clone();
    let b = format!("/extensions/resticbackups/servers/{server}/backups/restic");
    let (_, empty) = w.owner.get(&format!("{b}/stats/history")).await;
    assert_eq!(empty, json!({"points": []}), "never backed up");
    let first = w.owner.backup(&server).await;
    std::fs::write(
        w.agent.data_dir().join(&server).join("world/new.mca"),
        testkit::pseudo_random(9, 2 << 20),
    )
    .unwrap();
    let second = w.owner.backup(&server).await;

    let (status, list) = w.owner.get(&b).await;
    assert_eq!(status, 200, "{list}");
    for item in list["backups"].as_array().unwrap() {
        assert_eq!(item["origin"], "manual", "{item}");
        assert!(item["added"].as_u64().unwrap() > 0, "{item}");
    }
    assert!(
        list["backups"][0]["added"].as_u64().unwrap() > 2_000_000,
        "the second backup added the new 2 MiB file: {list}"
    );
    let (status, history) = w.owner.get(&format!("{b}/stats/history")).await;
    assert_eq!(status, 200, "{history}");
    let points = history["points"].as_array().unwrap();
    assert_eq!(points.len(), 2, "{history}");
    assert_eq!(
        (points[0]["id"].as_str(), points[1]["id"].as_str()),
        (Some(first.as_str()), Some(second.as_str()))
    );
    assert!(points[1]["size"].as_u64().unwrap() > points[0]["size"].as_u64().unwrap());
    assert!(points.iter().all(|p| p["kept"] == true));

    // Deleted: still in the history, marked gone; the admin reclaims now.
    let (status, _) = w
        .owner
        .send(reqwest::Method::DELETE, &format!("{b}/{second}"), None)
        .await;
    assert_eq!(status, 204);
    let (_, history) = w.owner.get(&format!("{b}/stats/history")).await;
    assert_eq!(history["points"][1]["kept"], false, "{history}");
    let prune = format!("/extensions/resticbackups/admin/servers/{server}/prune");
    let (status, _) = w.owner.post(&prune, json!({})).await;
    assert_eq!(status, 403, "owners do not prune");
    let before = testkit::dir_size(&w.agent.repo(&server));
    let (status, job) = w.admin.post(&prune, json!({})).await;
    assert_eq!(status, 202, "{job}");
    let view = w
        .admin
        .wait_job(&server, job["job_id"].as_str().unwrap())
        .await;
    assert_eq!(
        (view["status"].as_str(), view["kind"].as_str()),
        (Some("succeeded"), Some("prune")),
        "{view}"
    );
    let after = testkit::dir_size(&w.agent.repo(&server));
    assert!(
        after + 1_000_000 < before,
        "the deleted backup's 2 MiB came back: {before} → {after}"
    );
    let (status, _) = w
        .admin
        .post(
            "/extensions/resticbackups/admin/servers/00000000-0000-4000-8000-000000000000/prune",
            json!({}),
        )
        .await;
    assert_eq!(status, 404);
}

/// The retention preview says what rules would remove now, before they are
/// saved, and removes nothing.
async fn retention_preview(db: Db) {
    let mut w = World::new(db, 1, 0).await;
    let server = w.servers[0].clone();
    let b = format!("/extensions/resticbackups/servers/{server}/backups/restic");
    let (status, never) = w
        .owner
        .get(&format!("{b}/schedule/preview?keep_last=1"))
        .await;
    assert_eq!((status, never["kept"].as_u64()), (200, Some(0)), "{never}");
    let first = w.owner.backup(&server).await;
    let second = w.owner.backup(&server).await;
    w.owner.backup(&server).await;
    let mut reader = w
        .subuser(&server, "reader@example.com", &["backup.read"])
        .await;
    let (status, p) = reader
        .get(&format!("{b}/schedule/preview?keep_last=1"))
        .await;
    assert_eq!(status, 200, "{p}");
    let ids: Vec<&str> = p["would_remove"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [second.as_str(), first.as_str()],
        "newest first, the newest kept"
    );
    assert_eq!(p["kept"], 1);
    let (_, list) = w.owner.get(&b).await;
    assert_eq!(list["total"], 3, "a preview removes nothing");
    let (_, none) = w.owner.get(&format!("{b}/schedule/preview")).await;
    assert_eq!(
        (
            none["would_remove"].as_array().map(Vec::len),
            none["kept"].as_u64()
        ),
        (Some(0), Some(3))
    );
    let (_, within) = w
        .owner
        .get(&format!("{b}/schedule/preview?keep_within=1d&keep_last=0"))
        .await;
    assert_eq!(
        within["would_remove"].as_array().map(Vec::len),
        Some(0),
        "{within}"
    );
    for bad in [
        "keep_last=-1",
        "keep_last=x",
        "keep_daily=100001",
        "keep_within=0d",
        "keep_within=7w",
        "keep_forever=1",
    ] {
        let (got, err) = w.owner.get(&format!("{b}/schedule/preview?{bad}")).await;
        assert_eq!(got, 400, "{bad}: {err}");
    }
    // Run now: the schedule's backup at once, then its retention.
    let (status, _) = reader.post(&format!("{b}/schedule/run"), json!({})).await;
    assert_eq!(status, 403, "reading is not running");
    let (status, saved) = w
        .owner
        .post(
            &format!("{b}/schedule"),
            json!({"enabled": false, "interval_value": 1, "interval_unit": "days", "keep_last": 2}),
        )
        .await;
    assert_eq!(status, 200, "{saved}");
    // Someone who may create but not delete backups runs the backup
    // without the retention (it would forget backups they can not delete).
    let mut creator = w
        .subuser(
            &server,
            "creator@example.com",
            &["backup.read", "backup.create"],
        )
        .await;
    let (_, before) = w.owner.get(&b).await;
    let (status, job) = creator.post(&format!("{b}/schedule/run"), json!({})).await;
    assert_eq!(status, 202, "{job}");
    let view = creator
        .wait_job(&server, job["job_id"].as_str().unwrap())
        .await;
    assert_eq!(view["status"], "succeeded", "{view}");
    let mid = view["result"]["snapshot"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (_, history) = w.owner.get(&format!("{b}/schedule/history")).await;
        if history["runs"][0]["snapshot_id"] == mid.as_str()
            && history["runs"][0]["status"] == "succeeded"
        {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{history}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let (_, list) = w.owner.get(&b).await;
    assert_eq!(
        list["total"].as_u64(),
        before["total"].as_u64().map(|n| n + 1),
        "a run now without backup.delete forgot backups: {list}"
    );
    let (status, job) = w.owner.post(&format!("{b}/schedule/run"), json!({})).await;
    assert_eq!(status, 202, "{job}");
    let view = w
        .owner
        .wait_job(&server, job["job_id"].as_str().unwrap())
        .await;
    assert_eq!(view["status"], "succeeded", "{view}");
    let newest = view["result"]["snapshot"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (_, list) = w.owner.get(&b).await;
        if list["total"] == 2 {
            assert_eq!(list["backups"][0]["id"], newest.as_str(), "{list}");
            assert_eq!(list["backups"][1]["id"], mid.as_str(), "{list}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the retention did not follow: {list}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let (_, history) = w.owner.get(&format!("{b}/schedule/history")).await;
    assert_eq!(history["runs"][0]["origin"], "manual", "{history}");
    assert_eq!(
        history["runs"][0]["snapshot_id"],
        newest.as_str(),
        "{history}"
    );
}

testkit::on_both_databases!(
    notes_and_time_filters,
    storage_history_and_labels,
    retention_preview
);

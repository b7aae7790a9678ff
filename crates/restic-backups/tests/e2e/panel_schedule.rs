//! Schedules and retention through the real binary, agent and restic: the
//! schedule endpoints, a scheduled run with retention, and two schedulers
//! racing on one PostgreSQL database.

use std::process::Command;

use serde_json::{Value, json};
use testkit::TestAgent;
use testkit::panel::{Client, Db, TestPanel, World};

const API: &str = "/extensions/resticbackups";

fn backups(server: &str) -> String {
    format!("{API}/servers/{server}/backups/restic")
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// `restic-backups schedule run-due --at <t>` against the panel's settings.
fn run_due(panel: &TestPanel, at: i64) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_restic-backups"))
        .args(["schedule", "run-due", "--at", &at.to_string(), "--config"])
        .arg(panel.dir.path().join("panel.toml"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

fn finish(child: std::process::Child) -> String {
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "run-due failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

async fn setup(db: Db, servers: usize) -> (TestAgent, TestPanel, Client, Vec<String>) {
    let w = World::new(db, servers, 0).await;
    (w.agent, w.panel, w.owner, w.servers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_validate_and_saving_runs_nothing() {
    let (_agent, panel, mut owner, servers) = setup(Db::Sqlite, 1).await;
    let path = format!("{}/schedule", backups(&servers[0]));
    let (s, v) = owner.get(&path).await;
    assert_eq!(s, 200);
    assert_eq!(
        (v["enabled"].as_bool(), v["next_run_at"].is_null()),
        (Some(false), true)
    );

    let base = json!({"enabled": true, "interval_value": 6, "interval_unit": "hours"});
    let with = |k: &str, val: Value| {
        let mut b = base.clone();
        b[k] = val;
        b
    };
    for (body, code) in [
        (
            with("interval_value", json!(29)).tap_unit("minutes"),
            "invalid_interval",
        ),
        (with("interval_unit", json!("weeks")), "invalid_interval"),
        (with("interval_value", json!(-6)), "invalid_interval"),
        (
            with("interval_value", json!(400)).tap_unit("days"),
            "invalid_interval",
        ),
        (with("keep_last", json!(-1)), "invalid_retention"),
        (with("keep_within", json!("3w")), "invalid_retention"),
        // Zero keeps nothing: refused, not saved as a rule that wipes history.
        (with("keep_within", json!("0h")), "invalid_retention"),
        (with("keep_within", json!("0y0d")), "invalid_retention"),
        (
            with("keep_within", json!("--password-command=sh")),
            "invalid_retention",
        ),
        (with("keep_daily", json!("7")), "invalid_json"),
        (with("extra", json!(1)), "invalid_json"),
        (with("interval_unit", Value::Null), "invalid_interval"),
        (with("repeat", json!("hourly")), "invalid_schedule"),
        (with("at", json!("03:00")), "invalid_schedule"),
        (with("time_zone", json!("UTC")), "invalid_schedule"),
        (with("repeat", json!("daily")), "invalid_schedule"),
        (
            json!({"enabled": true, "repeat": "interval"}),
            "invalid_interval",
        ),
    ] {
        let (s, e) = owner.post(&path, body.clone()).await;
        assert_eq!(
            (s, e["error"]["code"].as_str()),
            (400, Some(code)),
            "{body}: {e}"
        );
    }

    // Daily and weekly at a time of day, in a time zone.
    let daily = json!({"enabled": true, "repeat": "daily", "at": "03:00", "time_zone": "UTC"});
    let mut weekly = daily.clone();
    weekly["repeat"] = json!("weekly");
    weekly["weekdays"] = json!(["mon"]);
    let set = |mut b: Value, k: &str, val: Value| {
        b[k] = val;
        b
    };
    for body in [
        set(daily.clone(), "at", json!("24:00")),
        set(daily.clone(), "at", json!("3pm")),
        set(daily.clone(), "at", json!("")),
        set(daily.clone(), "at", Value::Null),
        set(daily.clone(), "time_zone", json!("Mars/Olympus_Mons")),
        set(daily.clone(), "time_zone", json!("../../../etc/passwd")),
        set(daily.clone(), "time_zone", json!("x".repeat(10_000))),
        set(daily.clone(), "weekdays", json!(["mon"])),
        set(weekly.clone(), "weekdays", json!([])),
        set(weekly.clone(), "weekdays", Value::Null),
        set(weekly.clone(), "weekdays", json!(["funday"])),
        set(weekly.clone(), "weekdays", json!(vec!["mon"; 8])),
    ] {
        let (s, e) = owner.post(&path, body.clone()).await;
        assert_eq!(
            (s, e["error"]["code"].as_str()),
            (400, Some("invalid_schedule")),
            "{body}: {e}"
        );
        // A 10 kB name is not echoed back whole.
        assert!(e["error"]["message"].as_str().unwrap().len() < 300, "{e}");
    }
    let before = now();
    let nyc = json!({"enabled": true, "repeat": "weekly", "at": "21:30",
                     "weekdays": ["thu", "mon"], "time_zone": "america/new_york"});
    let (s, v) = owner.post(&path, nyc).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (&v["repeat"], &v["at"], &v["weekdays"], &v["time_zone"]),
        (
            &json!("weekly"),
            &json!("21:30"),
            &json!(["mon", "thu"]),
            &json!("America/New_York")
        )
    );
    let next: jiff::Timestamp = v["next_run_at"].as_str().unwrap().parse().unwrap();
    let local = next.in_tz("America/New_York").unwrap();
    assert_eq!((local.hour(), local.minute()), (21, 30), "{local}");
    assert!(
        matches!(
            local.weekday(),
            jiff::civil::Weekday::Monday | jiff::civil::Weekday::Thursday
        ),
        "{local}"
    );
    let wait = next.as_second() - before;
    assert!((1..=4 * 86_400).contains(&wait), "{v}");
    // Back to an interval: the calendar settings go.
    let (s, v) = owner.post(&path, base.clone()).await;
    assert_eq!(
        (s, &v["repeat"], &v["at"], &v["weekdays"]),
        (200, &json!("interval"), &Value::Null, &json!([]))
    );

    let before = now();
    let (s, v) = owner
        .post(
            &path,
            json!({"enabled": true, "interval_value": 30, "interval_unit": "minutes",
                   "keep_last": 3, "keep_daily": 7, "keep_within": "1y2m3d4h"}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let next = time::OffsetDateTime::parse(
        v["next_run_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap()
    .unix_timestamp();
    assert!((before + 1800..=now() + 1800).contains(&next), "{v}");
    assert_eq!(v["keep_within"], "1y2m3d4h");
    assert_eq!(v["keep_weekly"], Value::Null);
    assert_eq!(v["last_result"], Value::Null);
    // Saving ran nothing, now or on a tick of the clock.
    assert!(finish(run_due(&panel, now())).contains("run: 0"));
    let (_, list) = owner.get(&backups(&servers[0])).await;
    assert_eq!(list["total"], 0);
    let (s, h) = owner.get(&format!("{path}/history")).await;
    assert_eq!((s, h["runs"].as_array().map(Vec::len)), (200, Some(0)));
    // The same again reads back.
    let (_, again) = owner.get(&path).await;
    assert_eq!(again, v);
}

trait TapUnit {
    fn tap_unit(self, unit: &str) -> Value;
}

impl TapUnit for Value {
    fn tap_unit(mut self, unit: &str) -> Value {
        self["interval_unit"] = json!(unit);
        self
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_run_backs_up_then_keeps_what_the_policy_says() {
    let (agent, panel, mut owner, servers) = setup(Db::Sqlite, 1).await;
    let server = &servers[0];
    let b = backups(server);
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(owner.backup(server).await);
    }
    // The oldest is locked.
    let (s, _) = owner.post(&format!("{b}/{}/lock", ids[0]), json!({})).await;
    assert_eq!(s, 200);
    let saved_at = now();
    let (s, v) = owner
        .post(
            &format!("{b}/schedule"),
            json!({"enabled": true, "interval_value": 30, "interval_unit": "minutes", "keep_last": 3}),
        )
        .await;
    assert_eq!(s, 200, "{v}");

    // Half an hour later (by the scheduler's clock): one run.
    let out = finish(run_due(&panel, saved_at + 1800 + 5));
    assert!(out.contains("run: 1"), "{out}");
    let (_, list) = owner.get(&format!("{b}?limit=100")).await;
    let kept: Vec<&str> = list["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].as_str().unwrap())
        .collect();
    // 6 snapshots, keep_last 3, the locked one always: 4 remain.
    assert_eq!(kept.len(), 4, "{list}");
    assert!(
        kept.contains(&ids[0].as_str()),
        "the locked one was removed"
    );
    assert!(kept.contains(&ids[4].as_str()) && kept.contains(&ids[3].as_str()));
    assert!(!kept.contains(&ids[1].as_str()) && !kept.contains(&ids[2].as_str()));
    let newest = kept[0];
    assert!(
        !ids.iter().any(|i| i == newest),
        "the newest is the scheduled one"
    );

    let (_, v) = owner.get(&format!("{b}/schedule")).await;
    assert_eq!(v["last_result"]["status"], "succeeded", "{v}");
    assert_eq!(v["last_result"]["snapshot_id"], newest);
    let (_, h) = owner.get(&format!("{b}/schedule/history")).await;
    assert_eq!(h["runs"][0]["status"], "succeeded", "{h}");
    assert_eq!(h["runs"][0]["origin"], "schedule");
    assert_eq!(h["runs"][0]["snapshot_id"], newest);
    // The same time again: nothing more is due.
    assert!(finish(run_due(&panel, saved_at + 1800 + 5)).contains("run: 0"));

    // The agent's retention endpoint refuses a bad policy and never
    // removes locked snapshots.
    let key = panel.key_of(&panel.admin().await, server).await;
    let url = format!("{}/retention", agent.backups_url(server));
    let (s, e) = agent
        .call(
            reqwest::Method::POST,
            &url,
            &key,
            Some(json!({"keep_within": "3w"})),
        )
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (400, Some("invalid_keep_within"))
    );
    let (s, r) = agent
        .call(
            reqwest::Method::POST,
            &url,
            &key,
            Some(json!({"keep_last": 1})),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(
        (r["forgotten"].as_array().unwrap().len(), r["kept"].as_u64()),
        (2, Some(2))
    );
    let (_, list) = owner.get(&format!("{b}?limit=100")).await;
    assert!(list.to_string().contains(ids[0].as_str()));
    // A zero keep_within is no policy, as in restic: nothing is forgotten.
    let (s, r) = agent
        .call(
            reqwest::Method::POST,
            &url,
            &key,
            Some(json!({"keep_within": "0h"})),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(
        (r["forgotten"].as_array().unwrap().len(), r["kept"].as_u64()),
        (0, Some(2))
    );
    let (s, e) = agent
        .call(
            reqwest::Method::POST,
            &url,
            &key,
            Some(json!({"keep_last": 1, "keep_snapshot": "../x"})),
        )
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (400, Some("invalid_snapshot_id"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_rules_need_the_delete_permission() {
    let w = World::new(Db::Sqlite, 1, 0).await;
    let server = &w.servers[0];
    let path = format!("{}/schedule", backups(server));
    let mut helper = w
        .subuser(
            server,
            "helper@example.com",
            &["backup.read", "backup.create"],
        )
        .await;
    let plain = json!({"enabled": true, "interval_value": 6, "interval_unit": "hours"});
    let (s, v) = helper.post(&path, plain.clone()).await;
    assert_eq!(
        s, 200,
        "a schedule without retention needs only backup.create: {v}"
    );
    let mut rules = plain.clone();
    rules["keep_last"] = json!(1);
    let (s, e) = helper.post(&path, rules.clone()).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (403, Some("forbidden")),
        "{e}"
    );
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("backup.delete")
    );
    let (_, v) = helper.get(&path).await;
    assert_eq!(v["keep_last"], Value::Null, "the refused rules were saved");

    // The owner sets rules; the helper may still change the interval
    // without touching them.
    let mut owner = w.owner;
    let (s, _) = owner.post(&path, rules.clone()).await;
    assert_eq!(s, 200);
    let mut slower = rules.clone();
    slower["interval_value"] = json!(12);
    let (s, v) = helper.post(&path, slower.clone()).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["keep_last"], 1);
    // The owner makes it daily at 03:00. The helper may run it on fewer
    // days, not on more, and not bring the next run forward.
    let daily = json!({"enabled": true, "repeat": "daily", "at": "03:00", "keep_last": 1});
    let (s, v) = owner.post(&path, daily.clone()).await;
    assert_eq!(s, 200, "{v}");
    let mut weekly = daily.clone();
    weekly["repeat"] = json!("weekly");
    weekly["weekdays"] = json!(["sat", "wed"]);
    let (s, v) = helper.post(&path, weekly.clone()).await;
    assert_eq!((s, &v["time_zone"]), (200, &json!("UTC")), "{v}");
    let planned: jiff::Timestamp = v["next_run_at"].as_str().unwrap().parse().unwrap();
    // Twice a week still, but the first run two minutes from now: saved
    // again and again, it would forget as often as someone likes.
    let soon = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_mins(2))
        .unwrap()
        .in_tz("UTC")
        .unwrap();
    if soon.timestamp().as_second() + 60 < planned.as_second() {
        let day = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
            [soon.weekday().to_monday_zero_offset() as usize];
        let other = if day == "sat" { "sun" } else { "sat" };
        let mut sooner = weekly.clone();
        sooner["weekdays"] = json!([day, other]);
        sooner["at"] = json!(format!("{:02}:{:02}", soon.hour(), soon.minute()));
        let (s, e) = helper.post(&path, sooner).await;
        assert_eq!(s, 403, "the next run brought forward: {e}");
    }
    let (s, _) = helper.post(&path, daily).await;
    assert_eq!(s, 403, "daily after twice a week forgets more often");
    // …or turn it off, but not make it forget more often or turn it back on.
    let mut faster = slower.clone();
    faster["interval_value"] = json!(1);
    let (s, _) = helper.post(&path, faster).await;
    assert_eq!(s, 403);
    let mut off = slower.clone();
    off["enabled"] = json!(false);
    let (s, _) = helper.post(&path, off).await;
    assert_eq!(s, 200);
    let (s, _) = helper.post(&path, slower).await;
    assert_eq!(s, 403, "turning rules back on needs backup.delete");
    w.panel
        .set_subuser(
            &w.admin,
            server,
            "helper@example.com",
            &["backup.read", "backup.create", "backup.delete"],
        )
        .await;
    rules["keep_last"] = json!(5);
    let (s, v) = helper.post(&path, rules).await;
    assert_eq!((s, v["keep_last"].as_i64()), (200, Some(5)), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_schedulers_on_one_postgres_run_each_due_schedule_once() {
    const SERVERS: usize = 50;
    let (agent, panel, mut owner, servers) = setup(Db::Postgres, SERVERS).await;
    let saved_at = now();
    for s in &servers {
        let (st, v) = owner
            .post(
                &format!("{}/schedule", backups(s)),
                json!({"enabled": true, "interval_value": 30, "interval_unit": "minutes"}),
            )
            .await;
        assert_eq!(st, 200, "{v}");
    }
    let at = saved_at + 1800 + 5;
    let (a, b) = (run_due(&panel, at), run_due(&panel, at));
    let (a, b) = (finish(a), finish(b));
    let count = |text: &str| -> usize { text.trim().rsplit(' ').next().unwrap().parse().unwrap() };
    assert_eq!(count(&a) + count(&b), SERVERS, "{a} / {b}");
    // Each repository holds exactly one snapshot.
    for s in &servers {
        let n = std::fs::read_dir(agent.repo(s).join("snapshots"))
            .map(|d| d.count())
            .unwrap_or(0);
        assert_eq!(n, 1, "server {s} has {n} snapshots");
    }
}

/// Runs left `running` by a panel that stopped are settled by the next
/// scheduler: with the agent's outcome, or as interrupted; and `run-due`
/// exits non-zero when a run failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_of_a_stopped_panel_are_settled_and_failures_fail_run_due() {
    let w = World::new(Db::Sqlite, 1, 0).await;
    let server = &w.servers[0];
    let storage = panel::storage::Storage::connect(&format!(
        "sqlite://{}",
        w.panel.dir.path().join("panel.db").display()
    ))
    .await
    .unwrap();
    let row = storage
        .server_by_uuid(&api::ServerUuid::parse(server).unwrap())
        .await
        .unwrap()
        .unwrap();
    let t = now();
    // A panel died after the agent accepted a backup (which then finished)…
    let key = w.panel.key_of(&w.admin, server).await;
    let agent_job = w.agent.start_backup(server, &key, json!({})).await;
    let done = w.agent.wait_job(server, &agent_job).await;
    assert_eq!(done["status"], "succeeded");
    let accepted = storage
        .start_job(
            row.id,
            api::agent::JobKind::Backup,
            api::RunOrigin::Schedule,
            t - 60,
        )
        .await
        .unwrap();
    storage
        .set_job_agent_id(accepted, &agent_job)
        .await
        .unwrap();
    // …and another died before any agent accepted its backup.
    let lost = storage
        .start_job(
            row.id,
            api::agent::JobKind::Backup,
            api::RunOrigin::Schedule,
            t - 3600,
        )
        .await
        .unwrap();

    // A server whose files are not on the node: its scheduled run fails.
    let missing = testkit::new_uuid();
    w.panel
        .add_server(&w.admin, &missing, "owner@example.com", "node-1", 0)
        .await;
    let mut owner = w.owner;
    let (s, v) = owner
        .post(
            &format!("{}/schedule", backups(&missing)),
            json!({"enabled": true, "interval_value": 30, "interval_unit": "minutes"}),
        )
        .await;
    assert_eq!(s, 200, "{v}");

    let out = run_due(&w.panel, t + 1800 + 300)
        .wait_with_output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a failed run must fail run-due: {text}"
    );
    assert!(text.contains("1 of 1 scheduled backups failed"), "{text}");

    let history = storage.recent_jobs(row.id, 10).await.unwrap();
    let of = |id: i64| history.iter().find(|j| j.id == id).unwrap().clone();
    let settled = of(accepted);
    assert_eq!(settled.status, api::RunStatus::Succeeded, "{settled:?}");
    assert_eq!(settled.snapshot_id.as_deref().map(str::len), Some(64));
    let interrupted = of(lost);
    assert_eq!(interrupted.status, api::RunStatus::Failed);
    assert!(interrupted.error.unwrap().contains("interrupted"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_backups_and_restores_are_in_the_history() {
    let (_agent, _panel, mut owner, servers) = setup(Db::Sqlite, 1).await;
    let b = backups(&servers[0]);
    let snapshot = owner.backup(&servers[0]).await;
    let (s, r) = owner
        .post(
            &format!("{b}/{snapshot}/restore"),
            json!({"truncate": false}),
        )
        .await;
    assert_eq!(s, 202, "{r}");
    let view = owner
        .wait_job(&servers[0], r["job_id"].as_str().unwrap())
        .await;
    assert_eq!(view["status"], "succeeded", "{view}");
    // A restore refused at once is no job, and not in the history.
    let (s, _) = owner
        .post(&format!("{b}/{}/restore", "f".repeat(64)), json!({}))
        .await;
    assert_eq!(s, 404);

    let (s, h) = owner.get(&format!("{b}/schedule/history")).await;
    assert_eq!(s, 200, "{h}");
    let runs = h["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{h}");
    let restore = &runs[0];
    assert_eq!(
        (&restore["kind"], &restore["origin"], &restore["status"]),
        (&json!("restore"), &json!("manual"), &json!("succeeded")),
        "{h}"
    );
    assert_eq!(restore["snapshot_id"], snapshot);
    assert!(restore["finished_at"].is_string());
    let backup = &runs[1];
    assert_eq!(
        (&backup["kind"], &backup["origin"], &backup["status"]),
        (&json!("backup"), &json!("manual"), &json!("succeeded")),
        "{h}"
    );
    assert_eq!(backup["snapshot_id"], snapshot);
    // A manual run is not the schedule's last result.
    let (_, v) = owner.get(&format!("{b}/schedule")).await;
    assert!(v["last_result"].is_null(), "{v}");
}

//! The scheduler's timing rules with an injectable clock and a stand-in for
//! the backup, on SQLite (and on PostgreSQL when `TEST_DATABASE_URL` is set):
//! saving does not run anything, runs stay on the grid, missed windows run
//! once, failures back off, concurrent ticks claim each run once, daily
//! schedules keep their local time across DST.

mod support;

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

use api::panel::ScheduleRequest;
use panel::Panel;
use panel::permissions::Create;
use panel::scheduler::{BackupRunner, RunFuture, Scheduler};
use panel::seal::Sealer;
use panel::service::ScheduledRun;
use panel::storage::{Policy, Server, Storage};

const HOUR: i64 = 3600;
const T0: i64 = 1_800_000_000;

/// Records runs; fails while `fail` is set.
#[derive(Default)]
struct FakeRunner {
    runs: Mutex<Vec<(i64, i64)>>,
    fail: std::sync::atomic::AtomicBool,
    clock: Arc<AtomicI64>,
}

impl BackupRunner for FakeRunner {
    fn run<'a>(&'a self, server: &'a Server, _: &'a Policy, _: i64) -> RunFuture<'a> {
        Box::pin(async move {
            self.runs
                .lock()
                .unwrap()
                .push((server.id, self.clock.load(Ordering::SeqCst)));
            if self.fail.load(Ordering::SeqCst) {
                Err("the node's agent is unavailable".into())
            } else {
                Ok(ScheduledRun {
                    agent_job_id: "0".repeat(32),
                    snapshot_id: Some("ab".repeat(32)),
                    retention_error: None,
                })
            }
        })
    }
}

struct World {
    panel: Panel,
    storage: Storage,
    runner: Arc<FakeRunner>,
    clock: Arc<AtomicI64>,
    scheduler: Scheduler,
    servers: Vec<(Server, panel::storage::User)>,
    _dir: tempfile::TempDir,
}

async fn world(url: Option<String>, servers: usize) -> World {
    let dir = tempfile::tempdir().unwrap();
    let url = url.unwrap_or_else(|| format!("sqlite://{}", dir.path().join("p.db").display()));
    let storage = Storage::connect(&url).await.unwrap();
    let sealer = Sealer::new(&api::Secret::new("x".repeat(40)).unwrap()).unwrap();
    let panel = Panel::new(
        storage.clone(),
        sealer,
        std::time::Duration::from_secs(3600),
        std::time::Duration::from_secs(3600),
    );
    let (owner, servers) = support::owner_with_servers(&storage, servers).await;
    let list: Vec<_> = servers.into_iter().map(|s| (s, owner.clone())).collect();
    let clock = Arc::new(AtomicI64::new(T0));
    let runner = Arc::new(FakeRunner {
        clock: clock.clone(),
        ..FakeRunner::default()
    });
    let c = clock.clone();
    let scheduler = Scheduler::with(
        panel.clone(),
        runner.clone(),
        Arc::new(move || c.load(Ordering::SeqCst)),
    );
    World {
        panel,
        storage,
        runner,
        clock,
        scheduler,
        servers: list,
        _dir: dir,
    }
}

fn every(hours: i64) -> ScheduleRequest {
    ScheduleRequest {
        enabled: true,
        repeat: None,
        interval_value: Some(hours),
        interval_unit: Some("hours".into()),
        at: None,
        weekdays: None,
        time_zone: None,
        keep_last: None,
        keep_daily: None,
        keep_weekly: None,
        keep_monthly: None,
        keep_yearly: None,
        keep_within: None,
    }
}

impl World {
    async fn save(&self, i: usize, req: ScheduleRequest, now: i64) {
        let (server, owner) = &self.servers[i];
        let auth = self
            .panel
            .authorize::<Create>(owner, &server.uuid)
            .await
            .unwrap();
        self.panel.save_schedule(&auth, req, now).await.unwrap();
    }

    async fn tick_at(&self, t: i64) -> usize {
        self.clock.store(t, Ordering::SeqCst);
        self.scheduler.run_due().await.unwrap().0
    }

    async fn policy(&self, i: usize) -> Policy {
        self.storage
            .policy(self.servers[i].0.id)
            .await
            .unwrap()
            .unwrap()
    }
}

async fn timing_rules(url: Option<String>) {
    let w = world(url, 1).await;
    // Saving does not run a backup; the first run is one interval later.
    w.save(0, every(6), T0).await;
    assert_eq!(w.tick_at(T0).await, 0);
    assert_eq!(w.tick_at(T0 + 6 * HOUR - 1).await, 0);
    assert_eq!(w.policy(0).await.next_run_at, Some(T0 + 6 * HOUR));

    // 100 runs, each a little late: still on the grid, no drift.
    for k in 1..=100 {
        let slot = T0 + k * 6 * HOUR;
        assert_eq!(w.tick_at(slot + 45 + k).await, 1, "run {k}");
        assert_eq!(w.tick_at(slot + 60 + k).await, 0, "run {k} twice");
    }
    let p = w.policy(0).await;
    assert_eq!(p.next_run_at, Some(T0 + 101 * 6 * HOUR));
    assert_eq!(p.last_status, Some(api::RunStatus::Succeeded));
    assert!(p.last_snapshot_id.is_some());
    assert_eq!(w.runner.runs.lock().unwrap().len(), 100);

    // Down for 5.5 intervals: one run, then back on the grid.
    let down_until = T0 + 101 * 6 * HOUR + 33 * HOUR;
    assert_eq!(w.tick_at(down_until).await, 1);
    assert_eq!(w.tick_at(down_until + 60).await, 0);
    assert_eq!(w.policy(0).await.next_run_at, Some(T0 + 107 * 6 * HOUR));

    // A failing agent: retried after 1, 2, 4 minutes, never past the next slot.
    w.runner.fail.store(true, Ordering::SeqCst);
    let slot = T0 + 107 * 6 * HOUR;
    assert_eq!(w.tick_at(slot).await, 1);
    let p = w.policy(0).await;
    assert_eq!((p.failures, p.next_run_at), (1, Some(slot + 60)));
    assert_eq!(p.last_status, Some(api::RunStatus::Failed));
    assert_eq!(p.last_snapshot_id, None, "a failed run shows no snapshot");
    assert!(p.last_message.unwrap().contains("unavailable"));
    assert_eq!(w.tick_at(slot + 59).await, 0);
    assert_eq!(w.tick_at(slot + 60).await, 1);
    assert_eq!(w.policy(0).await.next_run_at, Some(slot + 60 + 120));
    assert_eq!(w.tick_at(slot + 180).await, 1);
    assert_eq!(w.policy(0).await.next_run_at, Some(slot + 180 + 240));
    // Then it works again: failures reset, next run on the grid.
    w.runner.fail.store(false, Ordering::SeqCst);
    assert_eq!(w.tick_at(slot + 420).await, 1);
    let p = w.policy(0).await;
    assert_eq!((p.failures, p.next_run_at), (0, Some(slot + 6 * HOUR)));

    // Every run is in the history, newest first, with its outcome.
    let history = w.storage.recent_jobs(w.servers[0].0.id, 5).await.unwrap();
    assert_eq!(history[0].status, api::RunStatus::Succeeded);
    assert_eq!(history[1].status, api::RunStatus::Failed);
    assert!(history[1].error.as_deref().unwrap().contains("unavailable"));

    // Disabled: nothing runs.
    let mut off = every(6);
    off.enabled = false;
    w.save(0, off, slot + 500).await;
    assert_eq!(w.tick_at(slot + 100 * 6 * HOUR).await, 0);
}

/// Unix seconds of a wall-clock time in `zone`.
fn local(zone: &str, y: i16, mo: i8, d: i8, h: i8, mi: i8) -> i64 {
    jiff::civil::date(y, mo, d)
        .at(h, mi, 0, 0)
        .in_tz(zone)
        .unwrap()
        .timestamp()
        .as_second()
}

/// A daily schedule at 03:00 in Berlin, stored and run across the spring
/// DST change: runs stay at 03:00 local time, a missed one runs once,
/// failures retry before the next run.
async fn calendar_rules(url: Option<String>) {
    let w = world(url, 2).await;
    let berlin = |d: i8, h: i8| local("Europe/Berlin", 2027, 3, d, h, 0);
    let daily = ScheduleRequest {
        repeat: Some("daily".into()),
        interval_value: None,
        interval_unit: None,
        at: Some("03:00".into()),
        time_zone: Some("europe/berlin".into()),
        ..every(6)
    };
    w.save(0, daily, berlin(26, 12)).await;
    let p = w.policy(0).await;
    assert_eq!(p.repeat, api::Repeat::Daily);
    assert_eq!(p.time_zone.as_deref(), Some("Europe/Berlin"));
    // The interval it had is kept for switching back (the default here).
    assert_eq!(
        (p.interval_value, p.interval_unit),
        (24, api::IntervalUnit::Hours)
    );
    assert_eq!(p.next_run_at, Some(berlin(27, 3)));
    assert_eq!(w.tick_at(berlin(27, 3) - 1).await, 0);
    assert_eq!(w.tick_at(berlin(27, 3) + 30).await, 1);
    // 28 March 2027 is the spring-forward night: 03:00 CEST, an hour
    // earlier in UTC than the day before.
    assert_eq!(w.policy(0).await.next_run_at, Some(berlin(28, 3)));
    assert_eq!(berlin(28, 3) - berlin(27, 3), 23 * HOUR);
    assert_eq!(w.tick_at(berlin(28, 3)).await, 1);
    // Down for three days: one run, then 03:00 again.
    assert_eq!(w.tick_at(berlin(31, 15)).await, 1);
    assert_eq!(w.tick_at(berlin(31, 16)).await, 0);
    let next = local("Europe/Berlin", 2027, 4, 1, 3, 0);
    assert_eq!(w.policy(0).await.next_run_at, Some(next));
    // A failure retries in a minute, and the retries stop at the next run.
    w.runner.fail.store(true, Ordering::SeqCst);
    assert_eq!(w.tick_at(next).await, 1);
    assert_eq!(w.policy(0).await.next_run_at, Some(next + 60));
    w.runner.fail.store(false, Ordering::SeqCst);
    assert_eq!(w.tick_at(next + 60).await, 1);
    assert_eq!(w.policy(0).await.next_run_at, Some(next + 24 * HOUR));

    // A stored zone this panel can not use (another panel saved it, or a
    // tzdata without it): the run fails where people see it and is tried
    // again in an hour; the other servers' runs go on.
    let t = next + 2 * 24 * HOUR;
    w.save(1, every(1), t - HOUR).await;
    let broken = Policy {
        time_zone: Some("Mars/Olympus_Mons".into()),
        next_run_at: Some(t),
        ..w.policy(0).await
    };
    w.storage.save_policy(&broken).await.unwrap();
    assert_eq!(w.tick_at(t).await, 1, "the other server's run");
    let p = w.policy(0).await;
    assert_eq!(p.last_status, Some(api::RunStatus::Failed));
    let said = p.last_message.unwrap();
    assert!(
        said.contains("Mars/Olympus_Mons") && said.contains("save it again"),
        "{said}"
    );
    assert_eq!(p.next_run_at, Some(t + HOUR));
    assert_eq!(w.tick_at(t + 60).await, 0);
}

async fn concurrent_ticks_claim_each_run_once(url: Option<String>) {
    let w = world(url, 30).await;
    for i in 0..30 {
        w.save(i, every(1), T0).await;
    }
    w.clock.store(T0 + HOUR, Ordering::SeqCst);
    let other = w.scheduler.clone();
    let (a, b) = tokio::join!(w.scheduler.run_due(), other.run_due());
    assert_eq!(a.unwrap().0 + b.unwrap().0, 30);
    let runs = w.runner.runs.lock().unwrap().clone();
    let mut ids: Vec<i64> = runs.iter().map(|(id, _)| *id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!((runs.len(), ids.len()), (30, 30));
}

#[tokio::test]
async fn timing_rules_on_sqlite() {
    timing_rules(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_ticks_on_sqlite() {
    concurrent_ticks_claim_each_run_once(None).await;
}

fn postgres() -> String {
    let admin_url = std::env::var("TEST_DATABASE_URL").expect(
        "TEST_DATABASE_URL must name a PostgreSQL server (./scripts/test starts one and sets it)",
    );
    let name = format!(
        "sched_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
            % 1_000_000_000
    );
    let out = std::process::Command::new("psql")
        .arg(&admin_url)
        .arg("-qtAc")
        .arg(format!("CREATE DATABASE {name}"))
        .output()
        .expect("psql runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    format!("{}/{name}", admin_url.rsplit_once('/').unwrap().0)
}

#[tokio::test]
async fn timing_rules_on_postgres() {
    timing_rules(Some(postgres())).await;
}

#[tokio::test]
async fn calendar_rules_on_sqlite() {
    calendar_rules(None).await;
}

#[tokio::test]
async fn calendar_rules_on_postgres() {
    calendar_rules(Some(postgres())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_ticks_on_postgres() {
    concurrent_ticks_claim_each_run_once(Some(postgres())).await;
}

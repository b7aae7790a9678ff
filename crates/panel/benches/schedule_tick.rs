//! How long one scheduler tick takes over 10,000 enabled schedules, with none
//! due and with 100 due (claimed, recorded in the job history, backups stood
//! in for by a no-op so only the panel's own work is timed). The baseline in
//! the same run is the bare "which are due" query.
//!
//! `cargo bench -p restic-backups-panel --bench schedule_tick`
//! (`BENCH_SCHEDULES=n` to change the count; `BENCH_DATABASE_URL=postgres://…`
//! to run on PostgreSQL instead of a SQLite file).

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use panel::Panel;
use panel::scheduler::{BackupRunner, RunFuture, Scheduler};
use panel::seal::Sealer;
use panel::service::ScheduledRun;
use panel::storage::{Policy, Server, Storage};

struct Noop;

impl BackupRunner for Noop {
    fn run<'a>(&'a self, _: &'a Server, _: &'a Policy, _: i64) -> RunFuture<'a> {
        Box::pin(async {
            Ok(ScheduledRun {
                agent_job_id: "0".repeat(32),
                snapshot_id: None,
                retention_error: None,
            })
        })
    }
}

const T0: i64 = 1_900_000_000;
const HOUR: i64 = 3600;

fn percentile(mut v: Vec<Duration>, p: f64) -> Duration {
    v.sort();
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("BENCH_SCHEDULES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let dir = tempfile::tempdir().unwrap();
    let url = std::env::var("BENCH_DATABASE_URL")
        .unwrap_or_else(|_| format!("sqlite://{}", dir.path().join("bench.db").display()));
    let storage = Storage::connect(&url).await.unwrap();
    let panel = Panel::new(
        storage.clone(),
        Sealer::new(&api::Secret::new("b".repeat(40)).unwrap()).unwrap(),
        Duration::from_secs(3600),
        Duration::from_secs(3600),
    );
    println!(
        "setting up {n} enabled schedules on {}",
        storage.backend().name()
    );
    let (_, servers) = support::owner_with_servers(&storage, n).await;
    let ids: Vec<i64> = servers.iter().map(|s| s.id).collect();
    // Spread over a day, all in the future of T0.
    let policy = |id: i64, next: i64| Policy {
        server_id: id,
        enabled: true,
        interval_value: 24,
        interval_unit: api::IntervalUnit::Hours,
        keep_last: Some(7),
        anchor_at: Some(next),
        next_run_at: Some(next),
        updated_at: T0,
        ..Policy::default()
    };
    for (i, id) in ids.iter().enumerate() {
        storage
            .save_policy(&policy(*id, T0 + 60 + (i as i64 * 24 * HOUR) / n as i64))
            .await
            .unwrap();
    }
    let clock = Arc::new(AtomicI64::new(T0));
    let c = clock.clone();
    let scheduler = Scheduler::with(
        panel,
        Arc::new(Noop),
        Arc::new(move || c.load(Ordering::SeqCst)),
    );

    // Baseline: the bare due query.
    let mut base = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        storage.due_policies(T0, 1000).await.unwrap();
        base.push(t.elapsed());
    }
    // A tick with nothing due.
    let mut idle = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        assert_eq!(scheduler.run_due().await.unwrap(), (0, 0));
        idle.push(t.elapsed());
    }
    // A tick with 100 due: make the first 100 due, tick, repeat.
    let mut busy = Vec::new();
    for round in 0..10 {
        for id in &ids[..100] {
            storage.save_policy(&policy(*id, T0 - 1)).await.unwrap();
        }
        clock.store(T0 + round, Ordering::SeqCst);
        let t = Instant::now();
        assert_eq!(scheduler.run_due().await.unwrap(), (100, 0));
        busy.push(t.elapsed());
    }

    let (b50, i50, i99, d50, d99) = (
        percentile(base.clone(), 0.5),
        percentile(idle.clone(), 0.5),
        percentile(idle, 0.99),
        percentile(busy.clone(), 0.5),
        percentile(busy, 0.99),
    );
    println!();
    println!("| {n} enabled schedules | p50 | p99 | vs bare due query (p50) |");
    println!("|---|---|---|---|");
    println!("| bare due query (baseline) | {:.2} ms | | 1.0× |", ms(b50));
    println!(
        "| tick, none due | {:.2} ms | {:.2} ms | {:.1}× |",
        ms(i50),
        ms(i99),
        ms(i50) / ms(b50)
    );
    println!(
        "| tick, 100 due (claim + history + no-op run) | {:.1} ms | {:.1} ms | {:.0}× ({:.2} ms per run) |",
        ms(d50),
        ms(d99),
        ms(d50) / ms(b50),
        ms(d50) / 100.0
    );
}

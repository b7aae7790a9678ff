//! `/metrics` of an agent that knows 1,000 servers (figures as the agent
//! keeps them in `<state_dir>/figures/`): one scrape's time through HTTP
//! (median, min, max of the rounds) beside `GET /healthz` on the same agent
//! and connection as the baseline (what any request costs), and the size
//! of the answer. Goal: a scrape ≤ 10 ms. Not a test; nothing here fails CI.
//!
//! `cargo bench -p restic-backups --bench metrics_scrape`
//! BENCH_SERVERS (default 1000), BENCH_ROUNDS (default 200).

mod support;

use std::time::{Duration, Instant};

use support::{Agent, TOKEN, bench_dir, env_num, ms};

fn uuid(n: usize) -> String {
    format!("{:08x}-{:04x}-4000-8000-{:012x}", n, n % 0xffff, n * 7919)
}

async fn time_of(http: &reqwest::Client, url: &str, rounds: usize) -> (Vec<Duration>, usize) {
    let mut times = Vec::with_capacity(rounds);
    let mut bytes = 0;
    for _ in 0..rounds {
        let started = Instant::now();
        let res = http.get(url).bearer_auth(TOKEN).send().await.unwrap();
        assert!(res.status().is_success(), "{url}: {}", res.status());
        bytes = res.bytes().await.unwrap().len();
        times.push(started.elapsed());
    }
    times.sort();
    (times, bytes)
}

fn line(name: &str, times: &[Duration]) -> String {
    format!(
        "{name:<28} median {:>7.2} ms  min {:>7.2} ms  max {:>7.2} ms",
        ms(times[times.len() / 2]),
        ms(times[0]),
        ms(times[times.len() - 1])
    )
}

#[tokio::main]
async fn main() {
    let servers = env_num("BENCH_SERVERS", 1000);
    let rounds = env_num("BENCH_ROUNDS", 200).max(3);
    let root = bench_dir("metrics_scrape");
    let figures = root.join("restic/.agent/figures");
    std::fs::create_dir_all(root.join("volumes")).unwrap();
    std::fs::create_dir_all(&figures).unwrap();
    let now = 1_800_000_000i64;
    for n in 0..servers {
        let f = serde_json::json!({
            "last_success": now - (n as i64 % 86_400),
            "last_failure": if n % 10 == 0 { Some(now - 3600) } else { None },
            "last_duration_seconds": 3.5 + n as f64 / 1000.0,
            "last_size_bytes": 1_000_000_000u64 + n as u64,
            "last_added_bytes": 20_000_000u64 + n as u64,
            "repository_bytes": 4_000_000_000u64 + n as u64,
            "snapshots": 20 + n % 30,
        });
        std::fs::write(figures.join(format!("{}.json", uuid(n))), f.to_string()).unwrap();
    }
    let started = Instant::now();
    let agent = Agent::start(&root);
    let start_ms = ms(started.elapsed());
    let http = reqwest::Client::new();
    // Warm the connection and both handlers.
    time_of(&http, &format!("{}/healthz", agent.url), 5).await;
    time_of(&http, &format!("{}/metrics", agent.url), 5).await;
    let (health, _) = time_of(&http, &format!("{}/healthz", agent.url), rounds).await;
    let (scrape, bytes) = time_of(&http, &format!("{}/metrics", agent.url), rounds).await;
    let (health2, _) = time_of(&http, &format!("{}/healthz", agent.url), rounds).await;
    println!(
        "agent /metrics with {servers} servers, {rounds} rounds each, one keep-alive connection"
    );
    println!("agent start with {servers} figure files: {start_ms:.0} ms");
    println!("{}", line("GET /healthz (baseline)", &health));
    println!("{}", line("GET /metrics", &scrape));
    println!("{}", line("GET /healthz (again)", &health2));
    println!(
        "answer: {:.0} KiB; scrape / healthz (medians): {:.1}x; goal: scrape <= 10 ms: {}",
        bytes as f64 / 1024.0,
        ms(scrape[scrape.len() / 2]) / ms(health[health.len() / 2]).max(0.001),
        if ms(scrape[scrape.len() / 2]) <= 10.0 {
            "met"
        } else {
            "NOT met"
        }
    );
}

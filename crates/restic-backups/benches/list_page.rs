//! Listing benchmark: one page of a server's snapshots through the agent
//! (served from its index) against a plain `restic snapshots --json`.
//!
//! `BENCH_SNAPSHOTS=1000 BENCH_ROUNDS=200 BENCH_BASELINE_ROUNDS=10 \
//!  cargo bench -p restic-backups --bench list_page`
//!
//! The repository is generated once per N under `target/bench-data/` and reused.

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{
    Agent, KEY, TOKEN, bench_dir, env_num, ms, prepare_snapshots as prepare, restic, run,
};

/// One GET with the node token and repository key; returns the time to the
/// full body and the body.
async fn get(http: &reqwest::Client, url: &str) -> (Duration, Value) {
    let started = Instant::now();
    let res = http
        .get(url)
        .bearer_auth(TOKEN)
        .header("X-Restic-Password", KEY)
        .send()
        .await
        .expect("request to the agent");
    let status = res.status();
    let body = res.bytes().await.expect("read the agent's answer");
    let took = started.elapsed();
    let body = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    assert!(status.is_success(), "GET {url}: {status} {body}");
    (took, body)
}

/// Walks the whole listing; returns how many snapshots have no size yet and the
/// cursor after the first `middle` items.
async fn walk(http: &reqwest::Client, base: &str, middle: usize) -> (usize, Option<String>) {
    let (mut seen, mut missing, mut mid, mut cursor) = (0, 0, None, None::<String>);
    loop {
        let limit = if seen < middle {
            (middle - seen).min(100)
        } else {
            100
        };
        let url = match &cursor {
            Some(c) => format!("{base}?limit={limit}&cursor={c}"),
            None => format!("{base}?limit={limit}"),
        };
        let (_, page) = get(http, &url).await;
        let items = page["backups"].as_array().expect("backups array");
        missing += items.iter().filter(|b| b["size"].is_null()).count();
        seen += items.len();
        cursor = page["next_cursor"].as_str().map(str::to_owned);
        if seen == middle {
            mid.clone_from(&cursor);
        }
        if cursor.is_none() {
            return (missing, mid);
        }
    }
}

/// Prints one table row; returns the p50 in ms.
fn row(what: &str, samples: &mut [Duration]) -> f64 {
    samples.sort();
    let n = samples.len();
    let (p50, mean) = (
        ms(samples[(n - 1) / 2]),
        samples.iter().map(|d| ms(*d)).sum::<f64>() / n as f64,
    );
    let (tail, mark) = match n >= 100 {
        true => (ms(samples[(n - 1) * 99 / 100]), ' '),
        false => (ms(samples[n - 1]), '*'),
    };
    println!("{what:<44}{n:>5}{p50:>10.2}{tail:>10.2}{mark}{mean:>9.2}");
    p50
}

fn main() {
    let n = env_num("BENCH_SNAPSHOTS", 1000).max(10);
    let rounds = env_num("BENCH_ROUNDS", 200).max(1);
    let baseline_rounds = env_num("BENCH_BASELINE_ROUNDS", 10).max(1);
    let size_wait = Duration::from_secs(env_num("BENCH_SIZE_WAIT_SECS", 1800) as u64);
    let root: PathBuf = bench_dir(&format!("list_page-{n}"));

    let version = support::restic_version();
    let uuid = prepare(&root, n);
    let repo = root.join("restic").join(&uuid);
    let agent = Agent::start(&root);
    let base = format!("{}/api/servers/{uuid}/backups/restic", agent.url);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(600))
        .build()
        .expect("HTTP client");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");

    let mid_page = n / 2 / 5 + 1;
    let (mut first, mut middle) = rt.block_on(async {
        let (took, page) = get(&http, &format!("{base}?limit=5")).await;
        assert_eq!(page["total"], n, "agent lists a different number");
        println!(
            "first list (agent runs restic once): {:.2} s",
            took.as_secs_f64()
        );
        let started = Instant::now();
        let mut last_note = None::<Instant>;
        let mid = loop {
            let (missing, mid) = walk(&http, &base, n / 2 / 5 * 5).await;
            if missing == 0 {
                break mid;
            }
            if started.elapsed() > size_wait {
                println!("WARNING: {missing} sizes still unmeasured; numbers may be noisy");
                break mid;
            }
            if last_note.is_none_or(|t| t.elapsed() >= Duration::from_secs(30)) {
                println!("waiting for the agent to measure sizes: {missing} of {n} left");
                last_note = Some(Instant::now());
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        };
        match last_note {
            Some(_) => println!("sizes measured in {:.0} s", started.elapsed().as_secs_f64()),
            None => println!("sizes already known (kept from an earlier run)"),
        }
        let mid = mid.expect("a cursor in the middle of the listing");
        let urls = [
            format!("{base}?limit=5"),
            format!("{base}?limit=5&cursor={mid}"),
        ];
        let mut rows = Vec::new();
        for url in &urls {
            for _ in 0..5 {
                get(&http, url).await;
            }
            let mut samples = Vec::with_capacity(rounds);
            for _ in 0..rounds {
                samples.push(get(&http, url).await.0);
            }
            rows.push(samples);
        }
        let middle = rows.pop().expect("two rows");
        (rows.pop().expect("two rows"), middle)
    });

    let cache = root.join("restic-cache");
    let baseline_cmd = || {
        let mut cmd = restic(&repo);
        cmd.args(["snapshots", "--json", "--no-lock", "--cache-dir"])
            .arg(&cache);
        cmd
    };
    let listed: Value =
        serde_json::from_str(&run(&mut baseline_cmd())).expect("restic snapshots prints JSON");
    assert_eq!(
        listed.as_array().map(Vec::len),
        Some(n),
        "restic lists a different number"
    );
    let mut baseline = Vec::with_capacity(baseline_rounds);
    for _ in 0..baseline_rounds {
        let started = Instant::now();
        run(&mut baseline_cmd());
        baseline.push(started.elapsed());
    }
    drop(agent);

    println!("\nlist page benchmark: {n} snapshots, restic {version}");
    println!(
        "{:<44}{:>5}{:>10}{:>10} {:>9}",
        "what", "n", "p50 ms", "p99 ms", "mean ms"
    );
    let first_p50 = row("agent GET ?limit=5 (first page)", &mut first);
    let mid_what = format!("agent GET ?limit=5&cursor (page {mid_page})");
    let mid_p50 = row(&mid_what, &mut middle);
    let restic_p50 = row("restic snapshots --json --no-lock", &mut baseline);
    println!("(* = max instead of p99: fewer than 100 samples)");
    println!(
        "ratio (restic p50 / agent p50): {:.0}x first page, {:.0}x page {mid_page}",
        restic_p50 / first_p50,
        restic_p50 / mid_p50,
    );
}

//! Off-site repositories: the agent's backups and restores to a real S3
//! server (Garage, one node on loopback) next to raw restic on the same
//! bucket, the list page on an S3 repository, and what a second copy
//! (`copy_to`, a restic REST server) adds to an incremental backup. Every
//! figure is a median of the rounds, with min and max, beside its baseline
//! measured in the same run. Not a test; nothing here fails CI.
//!
//! `cargo bench -p restic-backups --bench offsite`
//! Sizes: BENCH_WORLD_MB (default 128), BENCH_ROUNDS (default 3),
//! BENCH_LIST_REQUESTS (default 300).

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Agent, KEY, TOKEN, bench_dir, env_num, ms, noise, restic_version, run};
use testkit::stores::{Kind, TestStore};

/// For `stores`: reproducible bytes (its secrets) and signals (its stop).
pub fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    noise(seed, len)
}

pub fn signal(pid: u32, sig: rustix::process::Signal) {
    if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process(pid, sig);
    }
}

/// Region files (half structured, half noise) and small configs.
fn generate_world(dir: &Path, mb: usize) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir.join("world/region")).unwrap();
    std::fs::create_dir_all(dir.join("plugins")).unwrap();
    let region = 8 * 1024 * 1024;
    for i in 0..((mb * 1024 * 1024 * 95 / 100) / region).max(1) {
        let mut data = noise(i as u64 + 1, region);
        for (j, chunk) in data.chunks_mut(4096).enumerate() {
            if j % 2 == 0 {
                chunk.fill((j % 251) as u8);
            }
        }
        std::fs::write(dir.join(format!("world/region/r.{i}.0.mca")), data).unwrap();
    }
    for i in 0..500 {
        std::fs::write(
            dir.join(format!("plugins/config{i}.yml")),
            format!("enabled: true\nid: {i}\n").repeat(20),
        )
        .unwrap();
    }
}

/// About 2% of the region data rewritten as scattered 64 KiB writes.
fn churn(dir: &Path, round: usize) {
    let regions: Vec<_> = std::fs::read_dir(dir.join("world/region"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    for (i, path) in regions.iter().enumerate() {
        let mut data = std::fs::read(path).unwrap();
        let writes = data.len() / 50 / 65536;
        for w in 0..writes.max(1) {
            let at = ((round * 7919 + i * 104_729 + w * 15_485_863) * 4096) % (data.len() - 65536);
            data[at..at + 65536].copy_from_slice(&noise((round * 1000 + i * 10 + w) as u64, 65536));
        }
        std::fs::write(path, data).unwrap();
    }
}

struct Figures(Vec<Duration>);

impl Figures {
    fn median(&self) -> Duration {
        let mut v = self.0.clone();
        v.sort();
        v[v.len() / 2]
    }
    fn show(&self) -> String {
        let mut v = self.0.clone();
        v.sort();
        format!(
            "{:.2} s (min {:.2}, max {:.2})",
            self.median().as_secs_f64(),
            v[0].as_secs_f64(),
            v[v.len() - 1].as_secs_f64()
        )
    }
}

fn row(what: &str, ours: &Figures, base: &Figures, note: &str) -> String {
    let ratio = ours.median().as_secs_f64() / base.median().as_secs_f64();
    let line = format!(
        "| {what} | {} | {} | {ratio:.2}× | {note} |",
        ours.show(),
        base.show()
    );
    println!("{line}");
    line
}

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(TOKEN)
            .header("X-Restic-Password", KEY);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("agent answers");
        let status = res.status();
        let v: Value = res.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {v}");
        v
    }

    /// Starts a job and waits for it; the time from request to finish.
    async fn job(&self, path: &str, body: Value) -> (Duration, Value) {
        let started = Instant::now();
        let res = self.call(reqwest::Method::POST, path, Some(body)).await;
        let job = res["job_id"].as_str().unwrap().to_owned();
        let server = path.split('/').nth(3).unwrap().to_owned();
        loop {
            let view = self
                .call(
                    reqwest::Method::GET,
                    &format!("/api/servers/{server}/backups/restic/jobs/{job}"),
                    None,
                )
                .await;
            match view["status"].as_str() {
                Some("succeeded") => return (started.elapsed(), view),
                Some("failed") => panic!("job failed: {view}"),
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }
}

fn raw(store: &TestStore, name: &str) -> Command {
    let mut cmd = Command::new("restic");
    cmd.envs(store.restic_env(name))
        .env("RESTIC_PASSWORD", KEY)
        .env("RESTIC_CACHE_DIR", bench_dir("offsite").join("raw-cache"));
    cmd
}

fn timed(cmd: &mut Command) -> Duration {
    let started = Instant::now();
    run(cmd);
    started.elapsed()
}

fn start_agent(root: &Path, lines: &[String]) -> (Agent, Client) {
    let agent = Agent::start_with(root, lines);
    let client = Client {
        http: reqwest::Client::new(),
        base: agent.url.clone(),
    };
    (agent, client)
}

#[tokio::main]
async fn main() {
    let world_mb = env_num("BENCH_WORLD_MB", 128);
    let rounds = env_num("BENCH_ROUNDS", 3).max(1);
    let list_requests = env_num("BENCH_LIST_REQUESTS", 300).max(10);
    let root = bench_dir("offsite");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("volumes")).unwrap();
    let server = "5b0c2a7e-3d41-4f0c-8a7e-6d41f0c2a7e6";
    let world = root.join("volumes").join(server);
    generate_world(&world, world_mb);
    let s3 = TestStore::start(Kind::S3);
    let rest = TestStore::start(Kind::Rest);
    let mut out = vec![
        format!(
            "# Off-site benchmark ({world_mb} MiB world, {rounds} rounds, restic {}, Garage S3 and rclone REST on loopback)",
            restic_version()
        ),
        String::new(),
        "| figure | ours | baseline | ratio | note |".into(),
        "|---|---|---|---|---|".into(),
    ];
    println!("{}", out.join("\n"));

    // 1. First backup: the agent to S3 vs restic init + backup to the same bucket.
    let (agent, client) = start_agent(&root, &s3.agent_toml);
    let backups = format!("/api/servers/{server}/backups/restic");
    let (first, _) = client.job(&backups, json!({})).await;
    let raw_name = "raw-baseline";
    let raw_first = timed(raw(&s3, raw_name).args(["init", "--repository-version=2"]))
        + timed(
            raw(&s3, raw_name)
                .current_dir(&world)
                .args(["backup", "--host", server, "."]),
        );
    out.push(row(
        "first backup to S3",
        &Figures(vec![first]),
        &Figures(vec![raw_first]),
        "one run each; baseline: restic init + backup",
    ));

    // 2. Incremental rounds, scattered 2% change.
    let (mut ours, mut base) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        churn(&world, round + 1);
        ours.push(client.job(&backups, json!({})).await.0);
        base.push(timed(
            raw(&s3, raw_name)
                .current_dir(&world)
                .args(["backup", "--host", server, "."]),
        ));
    }
    out.push(row(
        "incremental backup to S3 (2% scattered change)",
        &Figures(ours),
        &Figures(base),
        "baseline: restic backup to the same bucket",
    ));

    // 3. Restore of the newest snapshot.
    let list = client
        .call(reqwest::Method::GET, &format!("{backups}?limit=1"), None)
        .await;
    let newest = list["backups"][0]["id"].as_str().unwrap().to_owned();
    let (mut ours, mut base) = (Vec::new(), Vec::new());
    for i in 0..rounds {
        ours.push(
            client
                .job(
                    &format!("{backups}/{newest}/restore"),
                    json!({"stop_server": false}),
                )
                .await
                .0,
        );
        let target = root.join(format!("raw-restore-{i}"));
        base.push(timed(raw(&s3, raw_name).args([
            "restore",
            "latest",
            "--target",
            target.to_str().unwrap(),
        ])));
        let _ = std::fs::remove_dir_all(&target);
    }
    out.push(row(
        "restore from S3",
        &Figures(ours),
        &Figures(base),
        "ours includes the safety snapshot (to S3) and the swap; baseline: restic restore into an empty folder",
    ));

    // 4. The list page on an S3 repository: served from the index.
    client.call(reqwest::Method::GET, &backups, None).await;
    let mut samples = Vec::new();
    for _ in 0..list_requests {
        let t = Instant::now();
        client.call(reqwest::Method::GET, &backups, None).await;
        samples.push(t.elapsed());
    }
    samples.sort();
    let p50 = samples[samples.len() / 2];
    let p99 = samples[samples.len() * 99 / 100];
    let raw_list = timed(raw(&s3, raw_name).args(["snapshots", "--json", "--no-lock"]));
    let line = format!(
        "| list page on S3, {list_requests} requests | p50 {:.2} ms, p99 {:.2} ms | {:.1} ms | {:.0}× faster | one `restic list snapshots` per 30 s; baseline: restic snapshots --json |",
        ms(p50),
        ms(p99),
        ms(raw_list),
        raw_list.as_secs_f64() / p50.as_secs_f64()
    );
    println!("{line}");
    out.push(line);
    drop(agent);

    // 5. A second copy: incremental rounds with copy_to (REST) vs without.
    let mut lines = s3.agent_toml.clone();
    lines.extend(rest.copy_toml());
    let (_agent, client) = start_agent(&root, &lines);
    client.job(&backups, json!({})).await;
    let (mut with_copy, mut without) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        churn(&world, 100 + round);
        let (d, view) = client.job(&backups, json!({})).await;
        assert_eq!(view["result"]["copy"]["ok"], true, "{view}");
        with_copy.push(d);
    }
    drop(_agent);
    let (_agent, client) = start_agent(&root, &s3.agent_toml);
    for round in 0..rounds {
        churn(&world, 200 + round);
        without.push(client.job(&backups, json!({})).await.0);
    }
    out.push(row(
        "incremental backup to S3 with a copy to REST",
        &Figures(with_copy),
        &Figures(without),
        "baseline: the same backup without copy_to",
    ));

    let date = Command::new("date").arg("+%F").output().unwrap();
    let date = String::from_utf8_lossy(&date.stdout).trim().to_owned();
    let machine = format!(
        "\nMachine: {} cores, {}.\n",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(
                |c| c.lines().find(|l| l.starts_with("model name")).map(|l| l
                    .split(':')
                    .nth(1)
                    .unwrap_or("")
                    .trim()
                    .to_owned())
            )
            .unwrap_or_default()
    );
    out.push(machine);
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../bench/results")
        .join(format!("{date}-offsite.md"));
    std::fs::write(&file, out.join("\n")).unwrap();
    println!("written to {}", file.display());
}

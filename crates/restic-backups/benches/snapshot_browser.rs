//! The snapshot browser on a big snapshot: 200,000 files in 5,000 folders
//! plus 1 GiB of region files. Each figure beside its baseline, measured
//! in this process on the same snapshot, with repetitions (min / median):
//!
//! 1. the first listing of the snapshot (a new agent process, no listing
//!    kept: restic ls into the agent's listing, then the root folder) vs
//!    `restic ls --json` alone (goal ≤ 1.1×);
//! 2. later folder views through the panel, random folders: p50 and p95
//!    (goal p50 ≤ 20 ms), beside `GET /healthz` on the panel;
//! 3. the listing kept per entry (goal ≤ 64 bytes);
//! 4. restoring one 8 MiB file in place vs the full restore (both through
//!    the agent, each with its safety snapshot), and raw `restic restore
//!    --include` of that file as what restic itself takes.
//!
//! `cargo bench -p restic-backups --bench snapshot_browser`
//! BENCH_FOLDERS (5000), BENCH_FILES_PER_FOLDER (40), BENCH_BIG_MB (1024),
//! BENCH_ROUNDS (3), BENCH_VIEWS (300), BENCH_RESTORES (1; 0 skips part 4).
//! Not a test; nothing here fails CI.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use support::{Agent, Panel, Session, TOKEN, bench_dir, env_num, ms, noise, restic_key, run};

const API: &str = "/extensions/resticbackups";

fn spread(mut v: Vec<Duration>) -> (f64, f64, f64) {
    v.sort();
    (
        ms(v[0]),
        ms(v[v.len() / 2]),
        ms(v[(v.len() * 95 / 100).min(v.len() - 1)]),
    )
}

/// The server's files: `folders` folders of `per` small files, and
/// `big_mb` MiB of 8 MiB region files. Kept between runs.
fn prepare(dir: &Path, folders: usize, per: usize, big_mb: usize) {
    let marker = dir.join(".bench-complete");
    let want = format!("{folders} {per} {big_mb}");
    if std::fs::read_to_string(&marker).is_ok_and(|m| m == want) {
        println!("reusing the server folder {}", dir.display());
        return;
    }
    let _ = std::fs::remove_dir_all(dir);
    println!(
        "writing {} files and {big_mb} MiB to {}",
        folders * per,
        dir.display()
    );
    for f in 0..folders {
        let sub = dir.join(format!("plugins/p{:02}/data{f:04}", f % 50));
        std::fs::create_dir_all(&sub).unwrap();
        for i in 0..per {
            std::fs::write(
                sub.join(format!("entry-{i:03}.yml")),
                format!("id: {f}-{i}\n"),
            )
            .unwrap();
        }
    }
    std::fs::create_dir_all(dir.join("world/region")).unwrap();
    for r in 0..big_mb.div_ceil(8) {
        let name = dir.join(format!("world/region/r.{}.{}.mca", r / 16, r % 16));
        std::fs::write(name, noise(r as u64 + 1, 8 << 20)).unwrap();
    }
    std::fs::write(&marker, want).unwrap();
}

async fn agent_call(
    http: &reqwest::Client,
    agent: &Agent,
    key: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Value {
    let mut r = http
        .request(method, format!("{}{path}", agent.url))
        .bearer_auth(TOKEN)
        .header("X-Restic-Password", key);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let res = r.send().await.unwrap();
    let status = res.status();
    let v: Value = res.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{path}: {status} {v}");
    v
}

async fn run_job(
    http: &reqwest::Client,
    agent: &Agent,
    key: &str,
    server: &str,
    method: Method,
    path: &str,
    body: Value,
) -> (Duration, Value) {
    let started = Instant::now();
    let accepted = agent_call(http, agent, key, method, path, Some(body)).await;
    let job = accepted["job_id"].as_str().unwrap().to_owned();
    loop {
        let view = agent_call(
            http,
            agent,
            key,
            Method::GET,
            &format!("/api/servers/{server}/backups/restic/jobs/{job}"),
            None,
        )
        .await;
        if view["status"] == "succeeded" {
            return (started.elapsed(), view);
        }
        assert_ne!(view["status"], "failed", "{view}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::main]
async fn main() {
    let folders = env_num("BENCH_FOLDERS", 5000);
    let per = env_num("BENCH_FILES_PER_FOLDER", 40);
    let big_mb = env_num("BENCH_BIG_MB", 1024);
    let rounds = env_num("BENCH_ROUNDS", 3).max(1);
    let views = env_num("BENCH_VIEWS", 300).max(3);
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "snapshot browser: {} files in {folders} folders + {big_mb} MiB; {rounds} rounds, {views} views; restic {}, {cores} cores",
        folders * per,
        support::restic_version()
    );
    let root = bench_dir("snapshot_browser");
    let uuid = "5b0c7a10-0000-4000-8000-00000000b120";
    let dir = root.join("volumes").join(uuid);
    prepare(&dir, folders, per, big_mb);
    let _ = std::fs::remove_dir_all(root.join("restic"));

    let mut agent = Agent::start(&root);
    let panel = Panel::start(&root);
    let s = Session::login(&panel).await;
    s.call(
        Method::POST,
        &format!("{API}/admin/nodes"),
        Some(json!({"name": "node-1", "url": agent.url, "token": TOKEN})),
    )
    .await;
    s.call(Method::POST, &format!("{API}/admin/servers"), Some(json!({"uuid": uuid, "name": "bench browser", "owner": "admin@example.com", "node": "node-1"}))).await;
    let keys = s
        .call(Method::GET, &format!("{API}/admin/keys"), None)
        .await;
    let key = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["server"] == uuid)
        .unwrap()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let http = reqwest::Client::new();
    let backups = format!("/api/servers/{uuid}/backups/restic");
    let started = Instant::now();
    let (_, view) = run_job(&http, &agent, &key, uuid, Method::POST, &backups, json!({})).await;
    let id = view["result"]["snapshot"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    println!("first backup: {:.1} s", started.elapsed().as_secs_f64());
    let repo = root.join("restic").join(uuid);
    let listings = root.join("restic/.agent/listings").join(uuid);

    // 2. Folder views through the panel, random folders, after a first
    // view made the listing.
    let files = format!("{API}/servers/{uuid}/backups/restic/{id}/files");
    s.call(Method::GET, &files, None).await;
    let mut view_times = Vec::new();
    let mut health = Vec::new();
    let mut seed = 7u64;
    for n in 0..views {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let f = (seed % folders as u64) as usize;
        let path = format!("/plugins/p{:02}/data{f:04}", f % 50);
        let t = Instant::now();
        let res = s
            .req(Method::GET, &files)
            .query(&[("path", path.as_str())])
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "{path}: {}", res.status());
        let page: Value = res.json().await.unwrap();
        view_times.push(t.elapsed());
        assert_eq!(page["total"], per, "{path}");
        if n % 3 == 0 {
            let t = Instant::now();
            s.req(Method::GET, "/healthz")
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
            health.push(t.elapsed());
        }
    }
    let (vmin, vmed, v95) = spread(view_times);
    let (hmin, hmed, _) = spread(health);
    println!(
        "folder view through the panel        p50 {vmed:>6.2} ms  p95 {v95:>6.2} ms  min {vmin:>6.2} ms"
    );
    println!("GET /healthz on the panel (baseline)  p50 {hmed:>6.2} ms  min {hmin:>6.2} ms");

    // 3. State kept per entry.
    let kept: u64 = std::fs::read_dir(&listings)
        .unwrap()
        .flatten()
        .map(|e| e.metadata().unwrap().len())
        .sum();
    let entries = folders * per + folders + folders.min(50) + 2 + big_mb.div_ceil(8) + 2;
    println!(
        "listing kept: {} bytes for ~{entries} entries = {:.1} bytes an entry",
        kept,
        kept as f64 / entries as f64
    );

    // 1. First listing vs restic ls --json, alternating; the agent is
    // started anew (the panel is not used after this).
    let (mut ours, mut base) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let t = Instant::now();
        let out = Command::new("sh")
            .arg("-c")
            .arg("restic ls --json --no-lock \"$1\" >/dev/null")
            .arg("sh")
            .arg(&id)
            .env("RESTIC_REPOSITORY", &repo)
            .env("RESTIC_PASSWORD", &key)
            .status()
            .unwrap();
        assert!(out.success());
        base.push(t.elapsed());
        drop(agent);
        let _ = std::fs::remove_dir_all(&listings);
        agent = Agent::start(&root);
        // The index and key check first, so only the listing is timed.
        agent_call(&http, &agent, &key, Method::GET, &backups, None).await;
        let t = Instant::now();
        let page = agent_call(
            &http,
            &agent,
            &key,
            Method::GET,
            &format!("{backups}/{id}/files?path=/"),
            None,
        )
        .await;
        ours.push(t.elapsed());
        assert_eq!(page["entries"][0]["name"], "plugins");
    }
    let (omin, omed, _) = spread(ours);
    let (bmin, bmed, _) = spread(base);
    println!(
        "first listing (restic ls into the listing, root page)  median {omed:>8.0} ms  min {omin:>8.0} ms"
    );
    println!(
        "restic ls --json (baseline)                            median {bmed:>8.0} ms  min {bmin:>8.0} ms"
    );
    println!("ratio (median): {:.2}×", omed / bmed);

    if env_num("BENCH_RESTORES", 1) == 0 {
        return;
    }
    // 4. One 8 MiB file vs the full restore, and raw restic.
    let one = "/world/region/r.0.3.mca";
    let (mut single, mut full, mut raw) = (Vec::new(), Vec::new(), Vec::new());
    for r in 0..rounds {
        let (t, v) = run_job(
            &http,
            &agent,
            &key,
            uuid,
            Method::POST,
            &format!("{backups}/{id}/restore"),
            json!({"paths": [one], "stop_server": false}),
        )
        .await;
        assert_eq!(v["result"]["paths"][0], one);
        single.push(t);
        let target = root.join(format!("raw-restore-{r}"));
        let _ = std::fs::remove_dir_all(&target);
        let t = Instant::now();
        run(restic_key(&repo, &key)
            .args(["restore", "--target"])
            .arg(&target)
            .arg(format!("--include={one}"))
            .arg(&id));
        raw.push(t.elapsed());
        let _ = std::fs::remove_dir_all(&target);
    }
    for _ in 0..rounds.min(2) {
        let (t, _) = run_job(
            &http,
            &agent,
            &key,
            uuid,
            Method::POST,
            &format!("{backups}/{id}/restore"),
            json!({"stop_server": false}),
        )
        .await;
        full.push(t);
    }
    let (smin, smed, _) = spread(single);
    let (fmin, fmed, _) = spread(full);
    let (rmin, rmed, _) = spread(raw);
    println!(
        "restore one 8 MiB file (with safety snapshot)  median {smed:>8.0} ms  min {smin:>8.0} ms"
    );
    println!(
        "full restore (with safety snapshot)            median {fmed:>8.0} ms  min {fmin:>8.0} ms"
    );
    println!(
        "restic restore --include of the file (raw)     median {rmed:>8.0} ms  min {rmin:>8.0} ms"
    );
    println!("one file vs full: {:.2}×", smed / fmed);
}

//! Download benchmark: a snapshot streamed by the agent as tar.gz, tar.zst
//! and zip, against `restic dump | gzip` on the same repository. Prints
//! throughput and the agent's peak memory (the archive must never be held
//! in memory or on disk).
//!
//! `BENCH_DOWNLOAD_MB=500 cargo bench -p restic-backups --bench download`

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{Agent, KEY, TOKEN, bench_dir, env_num, mib, restic, run};

/// `<root>/volumes/<uuid>` with `mb` MiB of world-like data (half random,
/// half repetitive) and one snapshot of it.
fn prepare(root: &Path, mb: usize) -> (String, String) {
    if let (Ok(uuid), Ok(id)) = (
        std::fs::read_to_string(root.join("server-uuid")),
        std::fs::read_to_string(root.join("snapshot-id")),
    ) {
        println!("reusing the {mb} MiB snapshot in {}", root.display());
        return (uuid.trim().to_owned(), id.trim().to_owned());
    }
    if root.exists() {
        std::fs::remove_dir_all(root).expect("remove stale bench data");
    }
    let uuid = std::fs::read_to_string("/proc/sys/kernel/random/uuid").expect("new UUID");
    let uuid = uuid.trim().to_owned();
    let dir = root.join("volumes").join(&uuid).join("world/region");
    std::fs::create_dir_all(&dir).expect("create server dir");
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in 0..mb.div_ceil(8) {
        let mut data = Vec::with_capacity(8 << 20);
        while data.len() < 4 << 20 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            data.extend_from_slice(&x.to_le_bytes());
        }
        data.extend(std::iter::repeat_n(b"minecraft:stone ".as_slice(), (4 << 20) / 16).flatten());
        std::fs::write(dir.join(format!("r.{i}.0.mca")), data).expect("write region");
    }
    let repo = root.join("restic").join(&uuid);
    run(restic(&repo).args(["init", "--repository-version", "2", "--no-cache"]));
    let out = run(restic(&repo)
        .args(["backup", "--no-cache", "--json", "--host", &uuid, "."])
        .current_dir(root.join("volumes").join(&uuid)));
    let summary: serde_json::Value = out
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["message_type"] == "summary")
        .expect("backup summary");
    let short = summary["snapshot_id"]
        .as_str()
        .expect("snapshot id")
        .to_owned();
    let listed: serde_json::Value = serde_json::from_str(&run(restic(&repo).args([
        "snapshots",
        "--json",
        "--no-cache",
        &short,
    ])))
    .expect("json");
    let id = listed[0]["id"].as_str().expect("full id").to_owned();
    std::fs::write(root.join("server-uuid"), &uuid).expect("write");
    std::fs::write(root.join("snapshot-id"), &id).expect("write");
    (uuid, id)
}

fn main() {
    let mb = env_num("BENCH_DOWNLOAD_MB", 500).max(8);
    let root = bench_dir(&format!("download-{mb}"));
    let (uuid, id) = prepare(&root, mb);
    let repo = root.join("restic").join(&uuid);
    let agent = Agent::start(&root);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(3600))
        .build()
        .expect("HTTP client");
    let (idle_rss, _) = agent.rss();

    let mut rows = Vec::new();
    for format in ["tar.gz", "tar.zst", "zip"] {
        let url = format!(
            "{}/api/servers/{uuid}/backups/restic/{id}/download?format={format}",
            agent.url
        );
        let (took, bytes, peak) = rt.block_on(async {
            let started = Instant::now();
            let mut res = http
                .get(&url)
                .bearer_auth(TOKEN)
                .header("X-Restic-Password", KEY)
                .send()
                .await
                .expect("download request");
            assert!(
                res.status().is_success(),
                "download failed: {}",
                res.status()
            );
            let (mut bytes, mut peak) = (0u64, 0u64);
            let mut sampled = Instant::now();
            while let Some(chunk) = res.chunk().await.expect("download body") {
                bytes += chunk.len() as u64;
                if sampled.elapsed() >= Duration::from_millis(50) {
                    peak = peak.max(agent.rss().0);
                    sampled = Instant::now();
                }
            }
            (started.elapsed(), bytes, peak.max(agent.rss().0))
        });
        rows.push((
            format!("agent download ?format={format}"),
            took,
            bytes,
            peak,
        ));
    }

    let cache = root.join("restic-cache");
    let started = Instant::now();
    let mut dump = restic(&repo)
        .args(["--cache-dir"])
        .arg(&cache)
        .args(["dump", "--archive", "tar", &id, "/"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("restic dump");
    let gzip = Command::new("gzip")
        .stdin(dump.stdout.take().expect("dump stdout"))
        .stdout(Stdio::null())
        .status()
        .expect("gzip");
    assert!(gzip.success() && dump.wait().expect("restic dump").success());
    let baseline = started.elapsed();
    let (_, hwm) = agent.rss();
    drop(agent);

    println!(
        "\ndownload benchmark: {mb} MiB snapshot, restic {}",
        support::restic_version()
    );
    println!(
        "{:<40}{:>10}{:>12}{:>10}{:>16}",
        "what", "s", "MiB sent", "MiB/s", "agent RSS MiB"
    );
    for (what, took, bytes, peak) in &rows {
        let s = took.as_secs_f64();
        println!(
            "{what:<40}{s:>10.2}{:>12.1}{:>10.1}{:>16.1}",
            mib(*bytes),
            mb as f64 / s,
            mib(*peak)
        );
    }
    let s = baseline.as_secs_f64();
    println!(
        "{:<40}{s:>10.2}{:>12}{:>10.1}{:>16}",
        "restic dump | gzip > /dev/null",
        "-",
        mb as f64 / s,
        "-"
    );
    println!(
        "agent RSS: {:.1} MiB idle, {:.1} MiB peak over the whole run (limit 100 MiB: {})",
        mib(idle_rss),
        mib(hwm),
        if hwm < 100 << 20 { "kept" } else { "EXCEEDED" }
    );
    println!(
        "ratio (baseline time / agent tar.gz time): {:.2}",
        s / rows[0].1.as_secs_f64()
    );
}

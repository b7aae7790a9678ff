//! Download benchmark: a snapshot streamed by the agent as tar.gz, tar.zst
//! and zip, against what a host would run by hand on the same repository:
//! `restic dump | gzip`, `restic dump | pigz` (all cores, as Wings
//! compresses) and `restic dump | zstd -T0`, with `restic dump` alone as the
//! floor. Each is run `BENCH_ROUNDS` times (3), interleaved; prints min and
//! median, throughput, and the agent's peak memory (the archive must never
//! be held in memory or on disk; limit 100 MiB).
//!
//! `BENCH_DOWNLOAD_MB=500 cargo bench -p restic-backups --bench download`
//! (needs `pigz` and `zstd` installed).

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
    let rounds = env_num("BENCH_ROUNDS", 3).max(1);
    let root = bench_dir(&format!("download-{mb}"));
    let (uuid, id) = prepare(&root, mb);
    let repo = root.join("restic").join(&uuid);
    let agent = Agent::start(&root);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    // A fresh connection per download: an idle one may have been closed by
    // the agent while a baseline ran (this thread blocks meanwhile).
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(3600))
        .pool_max_idle_per_host(0)
        .build()
        .expect("HTTP client");
    let (idle_rss, _) = agent.rss();
    let cache = root.join("restic-cache");
    // restic's own cache is warm for the baselines as the agent's is.
    run(restic(&repo)
        .args(["--cache-dir"])
        .arg(&cache)
        .args(["snapshots", "-q"]));

    let formats = ["tar.gz", "tar.zst", "zip"];
    let pipes: [(&str, Option<&[&str]>); 4] = [
        ("restic dump | gzip", Some(&["gzip"])),
        ("restic dump | pigz", Some(&["pigz"])),
        ("restic dump | zstd -T0", Some(&["zstd", "-q", "-T0"])),
        ("restic dump > /dev/null", None),
    ];
    // (what, seconds per round, bytes sent, peak RSS)
    let mut rows: Vec<(String, Vec<f64>, u64, u64)> = formats
        .iter()
        .map(|f| (format!("agent download ?format={f}"), Vec::new(), 0, 0))
        .chain(
            pipes
                .iter()
                .map(|(what, _)| (what.to_string(), Vec::new(), 0, 0)),
        )
        .collect();
    for _ in 0..rounds {
        for (i, format) in formats.iter().enumerate() {
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
            let row = &mut rows[i];
            row.1.push(took.as_secs_f64());
            row.2 = bytes;
            row.3 = row.3.max(peak);
        }
        for (j, (_, compressor)) in pipes.iter().enumerate() {
            let started = Instant::now();
            let mut dump = restic(&repo)
                .args(["--cache-dir"])
                .arg(&cache)
                .args(["dump", "--archive", "tar", &id, "/"])
                .stdout(Stdio::piped())
                .spawn()
                .expect("restic dump");
            let out = dump.stdout.take().expect("dump stdout");
            let ok = match compressor {
                Some(argv) => Command::new(argv[0])
                    .args(&argv[1..])
                    .stdin(out)
                    .stdout(Stdio::null())
                    .status()
                    .unwrap_or_else(|e| panic!("{} (is it installed?): {e}", argv[0]))
                    .success(),
                None => {
                    let mut out = out;
                    std::io::copy(&mut out, &mut std::io::sink()).is_ok()
                }
            };
            assert!(ok && dump.wait().expect("restic dump").success());
            rows[formats.len() + j]
                .1
                .push(started.elapsed().as_secs_f64());
        }
    }
    let (_, hwm) = agent.rss();
    drop(agent);

    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "\ndownload benchmark: {mb} MiB snapshot, restic {}, {} cores, {rounds} rounds",
        support::restic_version(),
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    println!(
        "{:<36}{:>9}{:>9}{:>10}{:>11}{:>15}",
        "what", "min s", "med s", "MiB/s", "MiB sent", "agent RSS MiB"
    );
    for (what, times, bytes, peak) in &rows {
        let min = times.iter().copied().fold(f64::INFINITY, f64::min);
        let med = median(times);
        let sent = if *bytes > 0 {
            format!("{:.1}", mib(*bytes))
        } else {
            "-".into()
        };
        let rss = if *peak > 0 {
            format!("{:.1}", mib(*peak))
        } else {
            "-".into()
        };
        println!(
            "{what:<36}{min:>9.2}{med:>9.2}{:>10.1}{sent:>11}{rss:>15}",
            mb as f64 / med
        );
    }
    println!(
        "agent RSS: {:.1} MiB idle, {:.1} MiB peak over the whole run (limit 100 MiB: {})",
        mib(idle_rss),
        mib(hwm),
        if hwm < 100 << 20 { "kept" } else { "EXCEEDED" }
    );
    let targz = median(&rows[0].1);
    let zst = median(&rows[1].1);
    let at = |what: &str| median(&rows.iter().find(|r| r.0 == what).expect("row").1);
    println!(
        "tar.gz speed-up (baseline median / agent median): {:.2}x vs restic dump | gzip (goal >= 1.6), {:.2}x vs restic dump | pigz (goal >= 0.9)",
        at("restic dump | gzip") / targz,
        at("restic dump | pigz") / targz
    );
    println!(
        "tar.zst: {:.2}x vs restic dump | zstd -T0; the floor (restic dump alone) is {:.2} s",
        at("restic dump | zstd -T0") / zst,
        at("restic dump > /dev/null")
    );
}

//! Jobs: progress that moves, and a per-node limit that queues instead of failing.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;
use testkit::TestAgent;

const KEY: &str = "jobs-key-3e4f5a6b";

#[tokio::test]
async fn backup_progress_visibly_advances() {
    let agent = TestAgent::start();
    let server = agent.add_server();
    agent.backup(&server, KEY).await;
    let dir = agent.data_dir().join(&server).join("world");
    for i in 0..5u64 {
        std::fs::write(
            dir.join(format!("region-{i}.mca")),
            testkit::pseudo_random(200 + i, 100 << 20),
        )
        .unwrap();
    }
    let job = agent.start_backup(&server, KEY, json!({})).await;
    let url = format!("{}/jobs/{job}", agent.backups_url(&server));
    let mut percents = BTreeSet::new();
    let mut saw_eta = false;
    let view = loop {
        let (status, view) = agent.call(Method::GET, &url, "", None).await;
        assert_eq!(status, 200);
        let p = &view["progress"];
        if view["status"] == "running"
            && let Some(pct) = p["percent"].as_f64()
        {
            assert!((0.0..=100.0).contains(&pct));
            percents.insert((pct * 10.0) as i64);
            assert!(p["bytes_done"].as_u64().unwrap() <= p["total_bytes"].as_u64().unwrap());
            saw_eta |= p["seconds_remaining"].is_number();
        }
        if view["status"] == "succeeded" || view["status"] == "failed" {
            break view;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(view["status"], "succeeded", "{view}");
    assert_eq!(view["progress"]["percent"], 100.0);
    let moving: Vec<_> = percents.iter().filter(|p| **p > 0 && **p < 1000).collect();
    assert!(
        moving.len() >= 3,
        "progress did not visibly advance: {percents:?}"
    );
    assert!(saw_eta, "restic reported no time remaining");
}

#[tokio::test]
async fn jobs_beyond_the_node_limit_wait_in_the_queue() {
    let agent = TestAgent::start_with(&["max_parallel_jobs = 1"]);
    let a = agent.add_server();
    let b = agent.add_server();
    agent.backup(&a, KEY).await;
    agent.backup(&b, KEY).await;
    std::fs::write(
        agent.data_dir().join(&a).join("world/big.mca"),
        testkit::pseudo_random(5, 200 << 20),
    )
    .unwrap();

    let job_a = agent.start_backup(&a, KEY, json!({})).await;
    let url_a = format!("{}/jobs/{job_a}", agent.backups_url(&a));
    let deadline = Instant::now() + Duration::from_secs(60);
    while agent.call(Method::GET, &url_a, "", None).await.1["status"] != "running" {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let job_b = agent.start_backup(&b, KEY, json!({})).await;
    let url_b = format!("{}/jobs/{job_b}", agent.backups_url(&b));
    let (_, view_b) = agent.call(Method::GET, &url_b, "", None).await;
    assert_eq!(view_b["status"], "queued", "{view_b}");
    assert!(view_b["started_at"].is_null());

    let done_a = agent.wait_job(&a, &job_a).await;
    let done_b = agent.wait_job(&b, &job_b).await;
    assert_eq!(
        (done_a["status"].as_str(), done_b["status"].as_str()),
        (Some("succeeded"), Some("succeeded"))
    );
    let at = |v: &serde_json::Value| {
        time::OffsetDateTime::parse(
            v.as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap()
    };
    assert!(
        at(&done_b["started_at"]) >= at(&done_a["finished_at"]),
        "the queued job started before the first ended: {done_a} {done_b}"
    );
    // Jobs of another server are not visible under this one.
    let (status, _) = agent
        .call(
            Method::GET,
            &format!("{}/jobs/{job_b}", agent.backups_url(&a)),
            "",
            None,
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_small_backup_ends_with_its_real_totals() {
    let agent = TestAgent::start();
    let server = agent.add_server();
    let job = agent
        .start_backup(&server, "small-backup-key-1234", serde_json::json!({}))
        .await;
    let view = agent.wait_job(&server, &job).await;
    assert_eq!(view["status"], "succeeded", "{view}");
    let p = &view["progress"];
    let total = p["total_bytes"].as_u64().unwrap();
    // add_server writes 64 KiB + 256 KiB of files and a small properties file.
    assert!(total > 320 * 1024, "{view}");
    assert_eq!(p["bytes_done"].as_u64(), Some(total), "{view}");
    assert_eq!(p["files_done"], p["total_files"], "{view}");
    assert_eq!(p["total_files"].as_u64(), Some(3), "{view}");
}

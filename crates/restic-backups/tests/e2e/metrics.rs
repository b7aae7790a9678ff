//! `/metrics` in Prometheus' text format: who may read it, and that it
//! carries what happened (a backup's figures, a failed job's class).

use serde_json::json;
use testkit::{TOKEN, TestAgent, parse_prometheus, sample};

const KEY: &str = "metrics-test-key-0123456789";
const METRICS_TOKEN: &str = "prometheus-reads-only-0123456789";

async fn scrape(agent: &TestAgent, token: Option<&str>) -> (u16, String, String) {
    let mut req = agent.http.get(format!("{}/metrics", agent.url));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let kind = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, kind, res.text().await.unwrap())
}

#[tokio::test]
async fn agent_metrics_carry_a_backups_figures_and_failures_by_class() {
    let agent = TestAgent::start_with(&[
        &format!("metrics_token = \"{METRICS_TOKEN}\""),
        "max_parallel_jobs = 1",
    ]);
    let server = agent.add_server();

    // No token, a wrong one: refused like the rest of the API.
    let (status, _, body) = scrape(&agent, None).await;
    assert_eq!(status, 401, "{body}");
    let (status, _, body) = scrape(&agent, Some("not-the-token-at-all-000")).await;
    assert_eq!(status, 403, "{body}");
    // The metrics token reads /metrics and nothing else.
    let res = agent
        .http
        .get(agent.backups_url(&server))
        .bearer_auth(METRICS_TOKEN)
        .header("X-Restic-Password", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status().as_u16(),
        403,
        "the metrics token opened the API"
    );

    let before = time::OffsetDateTime::now_utc().unix_timestamp();
    agent.backup(&server, KEY).await;
    for token in [METRICS_TOKEN, TOKEN] {
        let (status, kind, text) = scrape(&agent, Some(token)).await;
        assert_eq!(status, 200, "{text}");
        assert!(kind.starts_with("text/plain; version=0.0.4"), "{kind}");
        assert!(
            !text.contains(KEY) && !text.contains(TOKEN),
            "a secret in the metrics"
        );
        let samples = parse_prometheus(&text);
        let of = |name: &str| sample(&samples, name, &[("server", server.as_str())]);
        let when = of("restic_backups_last_success_timestamp_seconds").expect("last success");
        assert!(
            when >= before as f64 && when <= before as f64 + 120.0,
            "{when}"
        );
        assert!(of("restic_backups_last_backup_added_bytes").unwrap() > 0.0);
        assert!(of("restic_backups_last_backup_size_bytes").unwrap() > 0.0);
        assert!(of("restic_backups_last_backup_duration_seconds").unwrap() >= 0.0);
        assert!(of("restic_backups_repository_size_bytes").unwrap() > 0.0);
        assert_eq!(of("restic_backups_snapshots"), Some(1.0));
        assert_eq!(of("restic_backups_last_failure_timestamp_seconds"), None);
        assert_eq!(
            sample(
                &samples,
                "restic_backups_jobs_total",
                &[("kind", "backup"), ("status", "succeeded")]
            ),
            Some(1.0)
        );
        assert_eq!(
            sample(
                &samples,
                "restic_backups_jobs_active",
                &[("state", "running")]
            ),
            Some(0.0)
        );
        assert!(
            samples.iter().any(|s| s.name == "restic_backups_agent_info"
                && s.labels
                    .get("restic_version")
                    .is_some_and(|v| !v.is_empty())),
            "{text}"
        );
    }

    // A backup that fails in restic, seen queued first: with one job slot,
    // a big backup of another server runs while this one waits; its
    // folder is gone when its turn comes.
    let other = agent.add_server();
    std::fs::write(
        agent.data_dir().join(&other).join("big.dat"),
        testkit::pseudo_random(7, 150 << 20),
    )
    .unwrap();
    let long = agent.start_backup(&other, KEY, json!({})).await;
    let job = agent.start_backup(&server, KEY, json!({})).await;
    let (_, _, text) = scrape(&agent, Some(METRICS_TOKEN)).await;
    let samples = parse_prometheus(&text);
    assert_eq!(
        sample(
            &samples,
            "restic_backups_jobs_active",
            &[("state", "queued")]
        ),
        Some(1.0),
        "{text}"
    );
    std::fs::remove_dir_all(agent.data_dir().join(&server)).unwrap();
    let view = agent.wait_job(&server, &job).await;
    assert_eq!(view["status"], "failed", "{view}");
    assert_eq!(agent.wait_job(&other, &long).await["status"], "succeeded");
    let code = view["error"]["code"].as_str().unwrap().to_owned();
    let (_, _, text) = scrape(&agent, Some(METRICS_TOKEN)).await;
    let samples = parse_prometheus(&text);
    let of = |name: &str| sample(&samples, name, &[("server", server.as_str())]);
    let failed = of("restic_backups_last_failure_timestamp_seconds").expect("last failure");
    assert!(failed >= of("restic_backups_last_success_timestamp_seconds").unwrap());
    assert_eq!(
        sample(
            &samples,
            "restic_backups_failures_total",
            &[("kind", "backup"), ("code", code.as_str())]
        ),
        Some(1.0),
        "{text}"
    );

    // The figures outlive a restart (alerts on "no backup for 26 h" keep
    // their series).
    let agent = agent.restart();
    let (_, _, text) = scrape(&agent, Some(TOKEN)).await;
    let samples = parse_prometheus(&text);
    assert!(
        sample(
            &samples,
            "restic_backups_last_success_timestamp_seconds",
            &[("server", server.as_str())]
        )
        .is_some(),
        "{text}"
    );
}

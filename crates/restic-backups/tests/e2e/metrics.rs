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

/// The agent's story; returns a scrape with a success and a failure in it.
async fn agent_metrics_carry_a_backups_figures_and_failures_by_class() -> String {
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

    let story = text;
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
    story
}

/// The panel's story; returns a scrape after logins and requests.
async fn panel_metrics_count_requests_by_route_and_logins_by_result() -> String {
    use testkit::panel::{ADMIN, Db, TestPanel};
    let panel = TestPanel::start_with(
        Db::Sqlite,
        &[&format!("metrics_token = \"{METRICS_TOKEN}\"")],
    );
    let mut admin = panel.admin().await;
    let mut anon = panel.anonymous();
    let (status, _) = anon
        .send(
            reqwest::Method::POST,
            "/auth/login",
            Some(json!({"email": ADMIN, "password": "wrong password"})),
        )
        .await;
    assert_eq!(status, 401);
    let (status, _) = admin.get("/extensions/resticbackups/admin/users").await;
    assert_eq!(status, 200);

    // Who may read: the metrics token or a root admin's session.
    let scrape = |token: Option<&str>| {
        let mut r = panel.anonymous().request(reqwest::Method::GET, "/metrics");
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        async move {
            let res = r.send().await.unwrap();
            (res.status().as_u16(), res.text().await.unwrap())
        }
    };
    assert_eq!(scrape(None).await.0, 401);
    assert_eq!(scrape(Some("not-the-metrics-token-000")).await.0, 403);
    let (status, text) = scrape(Some(METRICS_TOKEN)).await;
    assert_eq!(status, 200, "{text}");
    let (status, by_session) = admin.get("/metrics").await;
    assert_eq!(status, 200, "{by_session}");

    let samples = parse_prometheus(&text);
    assert_eq!(
        sample(
            &samples,
            "restic_backups_panel_logins_total",
            &[("result", "failed")]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &samples,
            "restic_backups_panel_logins_total",
            &[("result", "ok")]
        ),
        Some(1.0),
        "{text}"
    );
    // By template, never by path.
    let route = "/extensions/resticbackups/admin/users";
    assert_eq!(
        sample(
            &samples,
            "restic_backups_panel_http_requests_total",
            &[("method", "GET"), ("route", route), ("status", "200")]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &samples,
            "restic_backups_panel_http_request_duration_seconds_count",
            &[("method", "GET"), ("route", route)]
        ),
        Some(1.0),
        "{text}"
    );
    assert!(
        sample(
            &samples,
            "restic_backups_panel_http_requests_total",
            &[("route", "/auth/login"), ("status", "401")]
        )
        .is_some(),
        "{text}"
    );
    // An unknown path is one series, whatever the path.
    let _ = panel.anonymous().get("/no/such/page/12345").await;
    let (_, text) = scrape(Some(METRICS_TOKEN)).await;
    assert!(!text.contains("12345"), "{text}");
    assert!(text.contains("route=\"unmatched\""), "{text}");
    text
}

/// Runs `promtool` (Debian's `prometheus` package; `scripts/test` installs
/// it) and returns its output, asserting it succeeded.
fn promtool(args: &[&str], cwd: &std::path::Path, stdin: Option<&str>) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("promtool")
        .args(args)
        .current_dir(cwd)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (package prometheus) must be installed: scripts/test installs it");
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?}: {text}");
    text
}

/// The family names a scrape announces, with the sample names a histogram
/// family adds.
fn exported_names(text: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            names.insert(name.to_owned());
            if kind == "histogram" {
                for suffix in ["_bucket", "_sum", "_count"] {
                    names.insert(format!("{name}{suffix}"));
                }
            }
        }
    }
    names
}

/// Both stories, then `deploy/monitoring`: the alert rules load and behave
/// as their unit tests say, every dashboard query parses, every metric they
/// name is one the agent or the panel exported in the stories, and both
/// scrapes pass `promtool check metrics` (Prometheus' own lint of names,
/// types and help).
#[tokio::test]
async fn metrics_of_agent_and_panel_and_the_alerts_and_dashboard_on_them() {
    let (agent_text, panel_text) = tokio::join!(
        agent_metrics_carry_a_backups_figures_and_failures_by_class(),
        panel_metrics_count_requests_by_route_and_logins_by_result()
    );
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/monitoring");
    promtool(&["check", "rules", "alerts.yml"], &root, None);
    let tested = promtool(&["test", "rules", "alerts.test.yml"], &root, None);
    assert!(tested.contains("SUCCESS"), "{tested}");

    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("grafana-dashboard.json")).unwrap(),
    )
    .unwrap();
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            queries.push(target["expr"].as_str().unwrap().replace("$instance", ".*"));
        }
    }
    assert!(queries.len() >= 10, "{queries:?}");
    let scratch = tempfile::tempdir().unwrap();
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, q) in queries.iter().enumerate() {
        rules.push_str(&format!(
            "      - record: dashboard:query_{i}\n        expr: {}\n",
            serde_json::to_string(q).unwrap()
        ));
    }
    std::fs::write(scratch.path().join("dashboard.yml"), rules).unwrap();
    promtool(&["check", "rules", "dashboard.yml"], scratch.path(), None);

    promtool(&["check", "metrics"], scratch.path(), Some(&agent_text));
    promtool(&["check", "metrics"], scratch.path(), Some(&panel_text));
    let mut exported = exported_names(&agent_text);
    exported.extend(exported_names(&panel_text));
    exported.insert("up".to_owned());

    let alerts = std::fs::read_to_string(root.join("alerts.yml")).unwrap();
    let used: std::collections::BTreeSet<String> = queries
        .iter()
        .map(String::as_str)
        .chain(
            alerts
                .lines()
                .filter_map(|l| l.trim().strip_prefix("expr:")),
        )
        .flat_map(|q| {
            q.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| w.starts_with("restic_backups_") || *w == "up")
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(used.len() >= 12, "{used:?}");
    let missing: Vec<_> = used.difference(&exported).collect();
    assert!(
        missing.is_empty(),
        "named but not exported: {missing:?}\nexported: {exported:?}"
    );
}

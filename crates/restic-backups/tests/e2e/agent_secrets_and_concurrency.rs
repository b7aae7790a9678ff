//! Keys stay out of argv and logs; one restic writer per repository, and
//! different servers back up in parallel.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;
use testkit::{TOKEN, TestAgent, all_cmdlines, environ, restic};

const KEY: &str = "argv-must-never-see-this-key-7e3a9c";

/// Gives a server a big incompressible file so its backup runs for a while.
fn make_big(agent: &TestAgent, server: &str, mb: usize) {
    let data = testkit::pseudo_random(server.len() as u64 + mb as u64, mb * 1024 * 1024);
    std::fs::write(agent.data_dir().join(server).join("world/big.mca"), data).unwrap();
}

/// Restic backup processes running right now, with the repository each writes.
fn running_backups(agent: &TestAgent) -> Vec<(u32, String)> {
    let root = agent.repo_root().display().to_string();
    all_cmdlines()
        .into_iter()
        .filter(|(_, cmd)| cmd.starts_with("restic ") && cmd.contains(" backup "))
        .filter_map(|(pid, _)| {
            let env = environ(pid);
            env.lines()
                .find_map(|l| l.strip_prefix("RESTIC_REPOSITORY="))
                .filter(|repo| repo.starts_with(&root))
                .map(|repo| (pid, repo.to_owned()))
        })
        .collect()
}

async fn job_done(agent: &TestAgent, server: &str, job: &str) -> bool {
    let url = format!("{}/jobs/{job}", agent.backups_url(server));
    let (_, view) = agent.call(Method::GET, &url, "", None).await;
    view["status"] == "succeeded" || view["status"] == "failed"
}

#[tokio::test]
async fn the_key_never_appears_in_any_argv_or_in_debug_logs() {
    let agent = TestAgent::start();
    let server = agent.add_server();
    make_big(&agent, &server, 120);
    let job = agent
        .start_backup(&server, KEY, json!({"ignore": "*.log\n/cache/"}))
        .await;

    let mut restic_seen = HashSet::new();
    let mut samples = 0;
    while !job_done(&agent, &server, &job).await {
        for (pid, cmd) in all_cmdlines() {
            assert!(!cmd.contains(KEY), "the key is in the argv of {pid}: {cmd}");
            assert!(
                !cmd.contains(TOKEN),
                "the node token is in the argv of {pid}: {cmd}"
            );
        }
        for (pid, _) in running_backups(&agent) {
            restic_seen.insert(pid);
        }
        samples += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        !restic_seen.is_empty(),
        "no restic backup was observed in {samples} samples; the check proved nothing"
    );
    let view = agent.wait_job(&server, &job).await;
    assert_eq!(view["status"], "succeeded", "{view}");

    // Exercise the other paths that carry the key, then read the whole log.
    let id = view["result"]["snapshot"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let base = agent.backups_url(&server);
    for (method, url) in [
        (Method::GET, base.clone()),
        (Method::GET, format!("{base}/stats")),
        (Method::POST, format!("{base}/{id}/lock")),
        (Method::POST, format!("{base}/{id}/unlock")),
        (Method::GET, base.clone()),
    ] {
        let (status, body) = agent.call(method, &url, KEY, None).await;
        assert_eq!(status, 200, "{url}: {body}");
    }
    let (status, _) = agent
        .call(Method::GET, &base, "a-wrong-key-for-the-log", None)
        .await;
    assert_eq!(status, 403);
    let log = agent.log();
    assert!(log.contains("DEBUG"), "debug logging was not on");
    assert!(log.contains("running restic"));
    for secret in [KEY, TOKEN, "a-wrong-key-for-the-log"] {
        assert!(!log.contains(secret), "a secret is in the log");
    }
}

#[tokio::test]
async fn one_writer_per_repository_and_different_servers_in_parallel() {
    let agent = TestAgent::start();
    let a = agent.add_server();
    let b = agent.add_server();
    // First backups create the repositories (init takes a moment).
    agent.backup(&a, KEY).await;
    agent.backup(&b, KEY).await;
    make_big(&agent, &a, 100);
    make_big(&agent, &b, 100);

    // Two creates for one server at the same moment: one job, one 409.
    let url = agent.backups_url(&a);
    let (r1, r2) = tokio::join!(
        agent.call(Method::POST, &url, KEY, Some(json!({}))),
        agent.call(Method::POST, &url, KEY, Some(json!({}))),
    );
    let mut statuses = [r1.0, r2.0];
    statuses.sort();
    assert_eq!(statuses, [202, 409], "{r1:?} {r2:?}");
    let (accepted, refused) = if r1.0 == 202 {
        (r1.1, r2.1)
    } else {
        (r2.1, r1.1)
    };
    assert_eq!(refused["error"]["code"], "job_in_progress");
    let job_a = accepted["job_id"].as_str().unwrap().to_owned();
    let job_b = agent.start_backup(&b, KEY, json!({})).await;

    let mut max_writers_per_repo = 0;
    let mut both_at_once = false;
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let running = running_backups(&agent);
        let repos: HashSet<&String> = running.iter().map(|(_, r)| r).collect();
        for repo in &repos {
            let n = running.iter().filter(|(_, r)| r == *repo).count();
            max_writers_per_repo = max_writers_per_repo.max(n);
        }
        both_at_once |= repos.len() >= 2;
        if job_done(&agent, &a, &job_a).await && job_done(&agent, &b, &job_b).await {
            break;
        }
        assert!(Instant::now() < deadline, "backups did not finish");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        max_writers_per_repo, 1,
        "two restic writers ran on one repository"
    );
    assert!(
        both_at_once,
        "the two servers' backups never ran at the same time"
    );
    for (server, job) in [(&a, &job_a), (&b, &job_b)] {
        let view = agent.wait_job(server, job).await;
        assert_eq!(view["status"], "succeeded", "{view}");
        assert!(view["started_at"].is_string() && view["finished_at"].is_string());
    }
    assert_eq!(agent.list(&a, KEY).await["total"], 2);
    assert_eq!(agent.list(&b, KEY).await["total"], 2);

    // Once the job is over, a new backup of the same server is accepted again.
    agent.backup(&a, KEY).await;
}

#[tokio::test]
async fn a_stop_interrupts_a_backup_that_outlasts_the_grace_and_leaves_no_lock() {
    // One second of grace, then restic gets SIGINT.
    let mut agent = TestAgent::start_with(&["shutdown_grace = 1"]);
    let server = agent.add_server();
    agent.backup(&server, KEY).await;
    make_big(&agent, &server, 300);
    let job = agent.start_backup(&server, KEY, json!({})).await;
    let url = format!("{}/jobs/{job}", agent.backups_url(&server));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, view) = agent.call(Method::GET, &url, "", None).await;
        assert_ne!(
            view["status"], "succeeded",
            "the backup ended before it could be interrupted"
        );
        if view["progress"]["percent"].is_number() {
            break;
        }
        assert!(Instant::now() < deadline, "no progress reported: {view}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pids: Vec<u32> = running_backups(&agent)
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    assert_eq!(pids.len(), 1);
    assert!(
        agent.stop(Duration::from_secs(30)),
        "the agent did not exit"
    );
    assert!(
        pids.iter()
            .all(|p| !std::path::Path::new(&format!("/proc/{p}")).exists()
                || std::fs::read_to_string(format!("/proc/{p}/stat"))
                    .unwrap_or_default()
                    .contains(") Z")),
        "restic is still running after the agent stopped"
    );
    let locks = std::fs::read_dir(agent.repo(&server).join("locks"))
        .unwrap()
        .count();
    assert_eq!(locks, 0, "restic left a lock behind");
    assert!(agent.log().contains("shutting down"));
    let snapshots = restic(&agent.repo(&server), KEY, None, &["snapshots", "--json"]);
    let count = serde_json::from_str::<serde_json::Value>(&snapshots)
        .unwrap()
        .as_array()
        .unwrap()
        .len();
    assert_eq!(count, 1, "the interrupted backup must not leave a snapshot");
}

/// SIGTERM during a backup: the agent refuses new jobs, keeps answering,
/// lets the backup finish within `shutdown_grace`, then exits.
#[tokio::test]
async fn a_stop_lets_a_running_backup_finish_within_the_grace() {
    let mut agent = TestAgent::start();
    let server = agent.add_server();
    let other = agent.add_server();
    agent.backup(&server, KEY).await;
    make_big(&agent, &server, 200);
    let job = agent.start_backup(&server, KEY, json!({})).await;
    let url = format!("{}/jobs/{job}", agent.backups_url(&server));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, view) = agent.call(Method::GET, &url, "", None).await;
        assert!(
            view["status"] == "queued" || view["status"] == "running",
            "the backup ended before the stop: {view}"
        );
        if view["progress"]["percent"].is_number() {
            break;
        }
        assert!(Instant::now() < deadline, "no progress reported: {view}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    agent.terminate();
    // Draining: a new job is refused, the running one is still followed.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = agent
            .call(
                Method::POST,
                &agent.backups_url(&other),
                KEY,
                Some(json!({})),
            )
            .await;
        if status == 503 {
            assert_eq!(body["error"]["code"], "shutting_down", "{body}");
            break;
        }
        assert_eq!(status, 202, "{body}");
        // Accepted before the signal arrived: it ends with the stop.
        assert!(Instant::now() < deadline, "new jobs are still taken");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        agent.wait_exit(Duration::from_secs(120)),
        "the agent did not exit after its job"
    );
    // The job's record, as the panel reads it after a restart.
    let record = std::fs::read(agent.repo_root().join(format!(".agent/jobs/{job}.json"))).unwrap();
    let record: serde_json::Value = serde_json::from_slice(&record).unwrap();
    assert_eq!(
        record["view"]["status"], "succeeded",
        "the backup was cut short: {record}"
    );
    let log = agent.log();
    assert!(log.contains("waiting for running jobs to finish"), "{log}");
    assert!(!log.contains("interrupting them"), "{log}");
    let snapshots = restic(&agent.repo(&server), KEY, None, &["snapshots", "--json"]);
    let count = serde_json::from_str::<serde_json::Value>(&snapshots)
        .unwrap()
        .as_array()
        .unwrap()
        .len();
    assert_eq!(count, 2, "the backup that ran at the stop is kept");
}

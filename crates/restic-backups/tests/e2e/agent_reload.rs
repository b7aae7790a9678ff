//! SIGHUP: the agent reads its settings again and takes new tokens (a
//! rotated token file, a new metrics token, Wings' token) without a
//! restart; settings that do not read leave the running ones in place.

use std::process::Command;
use std::time::{Duration, Instant};

use testkit::spawn_service;

const OLD: &str = "old-node-token-0123456789";
const NEW: &str = "new-node-token-9876543210";
const METRICS: &str = "metrics-only-token-0123456789";

async fn status(http: &reqwest::Client, url: &str, token: &str) -> u16 {
    http.get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Polls until `url` answers `want` for `token` (the reload is async).
async fn until(http: &reqwest::Client, url: &str, token: &str, want: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = status(http, url, token).await;
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{url} with {token}: {got}, not {want}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn sighup_takes_a_rotated_token_file_and_keeps_settings_that_do_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("agent.token");
    std::fs::write(&token_file, format!("{OLD}\n")).unwrap();
    let config = dir.path().join("agent.toml");
    let base = format!(
        "listen = \"127.0.0.1:0\"\ntoken_file = \"{}\"\ndata_dir = \"{}\"\nrepo_root = \"{}\"\n",
        token_file.display(),
        dir.path().join("volumes").display(),
        dir.path().join("restic").display(),
    );
    std::fs::create_dir_all(dir.path().join("volumes")).unwrap();
    std::fs::write(&config, &base).unwrap();
    let mut cmd = Command::new(testkit::binary());
    cmd.arg("agent")
        .arg("--config")
        .arg(&config)
        .env("RESTIC_BACKUPS_AGENT_WINGS_CONFIG", "/dev/null");
    let (mut child, log, url) = spawn_service(cmd, "agent listening on ");
    let http = reqwest::Client::new();
    let node = format!("{url}/api/restic/node");
    let metrics = format!("{url}/metrics");
    assert_eq!(status(&http, &node, OLD).await, 200);
    assert_eq!(status(&http, &metrics, METRICS).await, 403);

    // The token file is rotated and a metrics token added: SIGHUP.
    std::fs::write(&token_file, format!("{NEW}\n")).unwrap();
    std::fs::write(&config, format!("{base}metrics_token = \"{METRICS}\"\n")).unwrap();
    testkit::signal(child.id(), rustix::process::Signal::HUP);
    until(&http, &node, NEW, 200).await;
    assert_eq!(
        status(&http, &node, OLD).await,
        403,
        "the old token still works"
    );
    until(&http, &metrics, METRICS, 200).await;
    assert_eq!(
        status(&http, &node, METRICS).await,
        403,
        "the metrics token opened the API"
    );

    // Settings that do not read: logged, the running ones kept.
    std::fs::write(&config, format!("{base}no_such_key = 1\n")).unwrap();
    testkit::signal(child.id(), rustix::process::Signal::HUP);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !log.lock().unwrap().contains("the running ones are kept") {
        assert!(Instant::now() < deadline, "{}", log.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status(&http, &node, NEW).await, 200);
    assert_eq!(status(&http, &metrics, METRICS).await, 200);
    let text = log.lock().unwrap().clone();
    assert!(text.contains("settings reloaded"), "{text}");
    assert!(
        !text.contains(OLD) && !text.contains(NEW) && !text.contains(METRICS),
        "a token in the log"
    );
    let _ = child.kill();
    let _ = child.wait();
}

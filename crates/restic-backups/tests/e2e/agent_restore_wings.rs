//! A restore beside Wings: the game server is stopped through Wings' local
//! API first and started again afterwards (a double of Wings, the real agent
//! and the real restic).

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use testkit::wings::{Mode, Wings};
use testkit::{TestAgent, manifest};

/// The server directory's manifest at each state change of the server.
type Seen = Arc<Mutex<Vec<(String, BTreeMap<String, String>)>>>;

const KEY: &str = "wings-restore-key-1a2b3c";
const WINGS_TOKEN: &str = "wingsTokenA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8S9t0U1v2W3x4Y5z6A7b8";

/// The double, an agent reading a Wings config.yml that points at it (with
/// `token`), and the folder holding that file.
async fn beside_wings(token: &str, toml: &[&str]) -> (Wings, TestAgent, tempfile::TempDir) {
    let wings = Wings::start(WINGS_TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let config = wings.write_config(dir.path(), token);
    let agent = TestAgent::start_with_env(
        toml,
        &[(
            "RESTIC_BACKUPS_AGENT_WINGS_CONFIG",
            config.to_str().unwrap(),
        )],
    );
    (wings, agent, dir)
}

/// A server with one backup, whose files were changed since: returns the
/// server, its directory, the backup and the state at backup time.
async fn wrecked_server(agent: &TestAgent) -> (String, PathBuf, String, BTreeMap<String, String>) {
    let server = agent.add_server();
    let dir = agent.data_dir().join(&server);
    let id = agent.backup(&server, KEY).await;
    let original = manifest(&dir);
    fs::write(dir.join("world/level.dat"), "griefed").unwrap();
    fs::write(dir.join("junk.txt"), "junk").unwrap();
    assert_ne!(manifest(&dir), original);
    (server, dir, id, original)
}

async fn start_restore(agent: &TestAgent, server: &str, id: &str, body: Value) -> (u16, Value) {
    let url = format!("{}/{id}/restore", agent.backups_url(server));
    agent.call(Method::POST, &url, KEY, Some(body)).await
}

/// Polls the job to its end; returns its last view and the phases seen, in
/// order, without repeats.
async fn watch(agent: &TestAgent, server: &str, job: &str) -> (Value, Vec<String>) {
    let url = format!("{}/jobs/{job}", agent.backups_url(server));
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut phases: Vec<String> = Vec::new();
    loop {
        let (status, view) = agent.call(Method::GET, &url, "unused", None).await;
        assert_eq!(status, 200, "{view}");
        if let Some(p) = view["progress"]["phase"].as_str()
            && phases.last().map(String::as_str) != Some(p)
        {
            phases.push(p.to_owned());
        }
        if view["status"] == "succeeded" || view["status"] == "failed" {
            return (view, phases);
        }
        assert!(Instant::now() < deadline, "job did not finish: {view}");
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
}

async fn wait_state(wings: &Wings, server: &str, state: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while wings.state_of(server) != Some(state) {
        assert!(
            Instant::now() < deadline,
            "the server never became {state}: {:?}",
            wings.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The snapshots tagged `pre-restore` (safety snapshots) of a server.
async fn safety_snapshots(agent: &TestAgent, server: &str) -> usize {
    agent.list(server, KEY).await["backups"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["tags"] == json!(["pre-restore"]))
        .count()
}

#[tokio::test]
async fn a_running_server_is_stopped_then_restored_then_started_in_that_order() {
    let (wings, agent, _cfg) = beside_wings(WINGS_TOKEN, &[]).await;
    let (server, dir, id, original) = wrecked_server(&agent).await;
    let wrecked = manifest(&dir);
    wings.add_server(&server, "running");
    // Longer than the safety snapshot and restic's restore take together,
    // so a restore that did not wait for `offline` would be seen.
    wings.set_stop_delay(Duration::from_secs(5));
    // What the server directory held at each state change of the server.
    let seen: Seen = Arc::default();
    let (sink, watched) = (seen.clone(), dir.clone());
    wings.on_state(move |_, state| {
        sink.lock()
            .unwrap()
            .push((state.to_owned(), manifest(&watched)));
    });

    let (status, res) = start_restore(&agent, &server, &id, json!({})).await;
    assert_eq!(status, 202, "{res}");
    let (view, phases) = watch(&agent, &server, res["job_id"].as_str().unwrap()).await;
    assert_eq!(view["status"], "succeeded", "{view}");
    wait_state(&wings, &server, "running").await;

    assert_eq!(manifest(&dir), original, "the restored tree differs");
    // Wings was asked first (the request's check), then: stop, offline,
    // start, and nothing else.
    assert_eq!(wings.log()[0], "GET state 200");
    assert_eq!(
        wings.actions(),
        [
            "POST stop 202",
            "state stopping",
            "state offline",
            "POST start 202",
            "state starting",
            "state running"
        ]
    );
    // Nothing was touched before the server was offline, and everything
    // was restored before it started again.
    let seen = seen.lock().unwrap().clone();
    let at = |state: &str| {
        seen.iter()
            .find(|(s, _)| s == state)
            .map(|(_, m)| m.clone())
            .unwrap()
    };
    assert_eq!(
        at("offline"),
        wrecked,
        "files changed before the server was offline"
    );
    assert_eq!(
        at("starting"),
        original,
        "the server started before the restore ended"
    );
    // The safety snapshot holds the files as the stopped server left them.
    assert_eq!(safety_snapshots(&agent, &server).await, 1);
    let safety = view["result"]["safety_snapshot"]["id"].as_str().unwrap();
    let junk = testkit::restic(
        &agent.repo(&server),
        KEY,
        None,
        &["dump", safety, "/junk.txt"],
    );
    assert_eq!(junk, "junk");

    // The job showed its steps, in order.
    assert_eq!(
        phases.first().map(String::as_str),
        Some("stopping"),
        "{phases:?}"
    );
    let order = ["stopping", "safety_snapshot", "restoring", "starting"];
    let ranks: Vec<usize> = phases
        .iter()
        .map(|p| order.iter().position(|o| o == p).expect("known phase"))
        .collect();
    assert!(ranks.windows(2).all(|w| w[0] < w[1]), "{phases:?}");
    assert_eq!(view["progress"]["phase"], "starting");
    assert_eq!(
        view["result"]["game_server"],
        json!({"stop": "stopped", "started_again": true})
    );
    assert!(
        !agent.log().contains(WINGS_TOKEN),
        "the Wings token was logged"
    );
}

#[tokio::test]
async fn an_offline_server_is_restored_and_not_started() {
    let (wings, agent, _cfg) = beside_wings(WINGS_TOKEN, &[]).await;
    let (server, dir, id, original) = wrecked_server(&agent).await;
    wings.add_server(&server, "offline");

    let (status, res) = start_restore(&agent, &server, &id, json!({"stop_server": true})).await;
    assert_eq!(status, 202, "{res}");
    let (view, phases) = watch(&agent, &server, res["job_id"].as_str().unwrap()).await;
    assert_eq!(view["status"], "succeeded", "{view}");
    assert_eq!(manifest(&dir), original);
    assert!(wings.actions().is_empty(), "{:?}", wings.log());
    assert!(wings.log().iter().all(|l| l == "GET state 200"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(wings.state_of(&server), Some("offline"));
    assert_eq!(
        view["result"]["game_server"],
        json!({"stop": "already_offline", "started_again": false})
    );
    assert!(!phases.contains(&"starting".to_owned()), "{phases:?}");
}

#[tokio::test]
async fn with_wings_down_the_restore_is_refused_and_nothing_changes() {
    let (wings, agent, _cfg) = beside_wings(WINGS_TOKEN, &[]).await;
    let (server, dir, id, _) = wrecked_server(&agent).await;
    wings.add_server(&server, "running");
    wings.go_down();
    let before = manifest(&dir);

    let (status, res) = start_restore(&agent, &server, &id, json!({})).await;
    assert_eq!(
        (status, &res["error"]["code"]),
        (503, &json!("wings_unavailable")),
        "{res}"
    );
    let message = res["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("Wings") && message.contains("nothing was restored"),
        "{message}"
    );
    assert_eq!(manifest(&dir), before, "the server directory changed");
    assert_eq!(
        safety_snapshots(&agent, &server).await,
        0,
        "a safety snapshot was taken"
    );
    assert_eq!(wings.state_of(&server), Some("running"));
    // The server's backups are not held by a job the refusal left behind.
    agent.backup(&server, KEY).await;
}

#[tokio::test]
async fn wings_refusing_the_agent_is_a_clear_error_and_changes_nothing() {
    // A token that is not Wings' own: Wings answers 403.
    let (wings, agent, _cfg) = beside_wings(
        "wingsTokenOfAnotherNode-0000000000000000000000000000000000",
        &[],
    )
    .await;
    let (server, dir, id, _) = wrecked_server(&agent).await;
    wings.add_server(&server, "running");
    let before = manifest(&dir);
    let (status, res) = start_restore(&agent, &server, &id, json!({})).await;
    assert_eq!(
        (status, &res["error"]["code"]),
        (503, &json!("wings_refused")),
        "{res}"
    );
    assert!(res["error"]["message"].as_str().unwrap().contains("token"));
    assert_eq!(wings.log(), ["GET state 403"]);
    assert!(
        !agent.log().contains("wingsTokenOfAnotherNode"),
        "the token was logged"
    );

    // With the right token: a server Wings does not know, then Wings failing.
    let (wings, agent, _cfg) = beside_wings(WINGS_TOKEN, &[]).await;
    let (server, dir, id, _) = wrecked_server(&agent).await;
    let (status, res) = start_restore(&agent, &server, &id, json!({})).await;
    assert_eq!(
        (status, &res["error"]["code"]),
        (503, &json!("wings_error")),
        "{res}"
    );
    assert!(
        res["error"]["message"]
            .as_str()
            .unwrap()
            .contains("does not know this server")
    );
    wings.add_server(&server, "running");
    wings.set_mode(Mode::Refusing(500));
    let (status, res) = start_restore(&agent, &server, &id, json!({})).await;
    assert_eq!(
        (status, &res["error"]["code"]),
        (503, &json!("wings_error")),
        "{res}"
    );
    assert!(
        res["error"]["message"]
            .as_str()
            .unwrap()
            .contains("HTTP 500")
    );
    assert_eq!(manifest(&dir).len(), before.len());
    assert!(dir.join("junk.txt").exists());
    assert_eq!(safety_snapshots(&agent, &server).await, 0);
}

#[tokio::test]
async fn a_server_that_does_not_stop_in_time_is_left_alone_and_nothing_is_restored() {
    let (wings, agent, _cfg) = beside_wings(WINGS_TOKEN, &["restore_stop_timeout = 2"]).await;
    let (server, dir, id, _) = wrecked_server(&agent).await;
    wings.add_server(&server, "running");
    wings.set_mode(Mode::Slow);
    let before = manifest(&dir);

    let (status, res) = start_restore(&agent, &server, &id, json!({})).await;
    assert_eq!(status, 202, "{res}");
    let started = Instant::now();
    let (view, _) = watch(&agent, &server, res["job_id"].as_str().unwrap()).await;
    assert_eq!(view["status"], "failed", "{view}");
    assert_eq!(view["error"]["code"], "server_stop_timeout", "{view}");
    assert!(view["error"]["message"].as_str().unwrap().contains("2 s"));
    assert!(started.elapsed() >= Duration::from_millis(1500));
    // Not killed, not started, not restored.
    assert_eq!(wings.actions(), ["POST stop 202", "state stopping"]);
    assert_eq!(wings.state_of(&server), Some("stopping"));
    assert_eq!(manifest(&dir), before);
    assert_eq!(safety_snapshots(&agent, &server).await, 0);
    // When Wings' own stop finally ends, the server that ran is started
    // again: a refused restore does not leave it down.
    wings.set_mode(Mode::Up);
    wings.force_state(&server, "offline");
    wait_state(&wings, &server, "running").await;
    assert_eq!(manifest(&dir), before);
}

#[tokio::test]
async fn a_server_that_does_not_stop_in_time_is_killed_when_the_admin_allows_it() {
    let (wings, agent, _cfg) = beside_wings(
        WINGS_TOKEN,
        &[
            "restore_stop_timeout = 1",
            "restore_kill_after_timeout = true",
        ],
    )
    .await;
    let (server, dir, id, original) = wrecked_server(&agent).await;
    wings.add_server(&server, "running");
    wings.set_mode(Mode::Slow);

    let (status, res) = start_restore(&agent, &server, &id, json!({})).await;
    assert_eq!(status, 202, "{res}");
    let (view, _) = watch(&agent, &server, res["job_id"].as_str().unwrap()).await;
    assert_eq!(view["status"], "succeeded", "{view}");
    wait_state(&wings, &server, "running").await;
    assert_eq!(manifest(&dir), original);
    let actions = wings.actions();
    let pos = |a: &str| {
        actions
            .iter()
            .position(|l| l == a)
            .unwrap_or_else(|| panic!("{a}: {actions:?}"))
    };
    assert!(pos("POST stop 202") < pos("POST kill 202"));
    assert!(pos("POST kill 202") < pos("state offline"));
    assert!(pos("state offline") < pos("POST start 202"));
    assert_eq!(
        view["result"]["game_server"],
        json!({"stop": "killed", "started_again": true})
    );
}

#[tokio::test]
async fn stop_server_false_restores_without_asking_wings() {
    let (wings, agent, _cfg) = beside_wings(WINGS_TOKEN, &[]).await;
    let (server, dir, id, original) = wrecked_server(&agent).await;
    wings.add_server(&server, "running");
    let (status, res) = start_restore(&agent, &server, &id, json!({"stop_server": false})).await;
    assert_eq!(status, 202, "{res}");
    let (view, phases) = watch(&agent, &server, res["job_id"].as_str().unwrap()).await;
    assert_eq!(view["status"], "succeeded", "{view}");
    assert_eq!(manifest(&dir), original);
    assert!(wings.log().is_empty(), "{:?}", wings.log());
    assert_eq!(
        view["result"]["game_server"],
        json!({"stop": "not_requested", "started_again": false})
    );
    assert!(!phases.contains(&"stopping".to_owned()), "{phases:?}");

    // And with Wings down too.
    wings.go_down();
    fs::write(dir.join("junk.txt"), "again").unwrap();
    let (status, res) = start_restore(&agent, &server, &id, json!({"stop_server": false})).await;
    assert_eq!(status, 202, "{res}");
    let (view, _) = watch(&agent, &server, res["job_id"].as_str().unwrap()).await;
    assert_eq!(view["status"], "succeeded", "{view}");
    assert!(!dir.join("junk.txt").exists());
}

#[tokio::test]
async fn a_server_started_again_during_the_restore_keeps_its_files() {
    let (wings, agent, _cfg) = beside_wings(WINGS_TOKEN, &[]).await;
    let (server, dir, id, _) = wrecked_server(&agent).await;
    wings.add_server(&server, "running");
    wings.set_stop_delay(Duration::from_millis(100));
    let before = manifest(&dir);

    let (status, res) = start_restore(&agent, &server, &id, json!({})).await;
    assert_eq!(status, 202, "{res}");
    let job = res["job_id"].as_str().unwrap().to_owned();
    // Someone starts the server from the panel once the restore is under way.
    let url = format!("{}/jobs/{job}", agent.backups_url(&server));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, view) = agent.call(Method::GET, &url, "unused", None).await;
        if view["progress"]["phase"] == "safety_snapshot" {
            wings.force_state(&server, "running");
            break;
        }
        assert!(
            view["status"] != "succeeded" && view["status"] != "failed",
            "{view}"
        );
        assert!(Instant::now() < deadline, "{view}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (view, _) = watch(&agent, &server, &job).await;
    assert_eq!(view["status"], "failed", "{view}");
    assert_eq!(view["error"]["code"], "server_not_stopped", "{view}");
    assert_eq!(
        manifest(&dir),
        before,
        "files were swapped under a running server"
    );
    assert!(!wings.actions().contains(&"POST start 202".to_owned()));
    assert!(
        !agent
            .data_dir()
            .join(".restic-restore")
            .join(&server)
            .join("new")
            .exists()
    );
}

/// An agent beside a Wings with TLS. It serves HTTPS with a certificate of
/// its own (not Wings', its default, which a test may swap for one whose key
/// it does not have); this test's client does not check it.
fn tls_agent(config: &std::path::Path) -> TestAgent {
    let (cert, key) = testkit::make_cert(config.parent().unwrap());
    let tls = [
        format!("tls_cert = \"{}\"", cert.display()),
        format!("tls_key = \"{}\"", key.display()),
    ];
    let mut agent = TestAgent::start_with_env(
        &[&tls[0], &tls[1]],
        &[(
            "RESTIC_BACKUPS_AGENT_WINGS_CONFIG",
            config.to_str().unwrap(),
        )],
    );
    assert!(agent.url.starts_with("https://"), "{}", agent.url);
    agent.http = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    agent
}

#[tokio::test]
async fn wings_over_tls_is_trusted_by_its_own_certificate_only() {
    // Wings' certificate names the node's domain, never 127.0.0.1: the agent
    // trusts exactly the certificate of Wings' api.ssl.cert.
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) =
        testkit::make_cert_named(certs.path(), "node1.example.com", "DNS:node1.example.com");
    let wings = Wings::start_with(WINGS_TOKEN, Some((cert, key))).await;
    let dir = tempfile::tempdir().unwrap();
    let config = wings.write_config(dir.path(), WINGS_TOKEN);
    let agent = tls_agent(&config);
    let (server, dir_s, id, original) = wrecked_server(&agent).await;
    wings.add_server(&server, "running");
    wings.set_stop_delay(Duration::from_millis(100));
    let (status, res) = start_restore(&agent, &server, &id, json!({})).await;
    assert_eq!(status, 202, "{res}");
    let (view, _) = watch(&agent, &server, res["job_id"].as_str().unwrap()).await;
    assert_eq!(view["status"], "succeeded", "{view}");
    assert_eq!(manifest(&dir_s), original);
    assert!(wings.actions().contains(&"POST stop 202".to_owned()));

    // Another certificate for the same name in config.yml: not trusted.
    let (other, _) = testkit::make_cert_named(
        certs.path(),
        "node1-other.example.com",
        "DNS:node1.example.com",
    );
    let yml = fs::read_to_string(&config).unwrap();
    let cert_line = yml
        .lines()
        .find(|l| l.trim_start().starts_with("cert:"))
        .unwrap();
    fs::write(
        &config,
        yml.replace(cert_line, &format!("    cert: {}", other.display())),
    )
    .unwrap();
    let agent = tls_agent(&config);
    let (server, dir_s, id, _) = wrecked_server(&agent).await;
    wings.add_server(&server, "running");
    let before = wings.log().len();
    let (status, res) = start_restore(&agent, &server, &id, json!({})).await;
    assert_eq!(
        (status, &res["error"]["code"]),
        (503, &json!("wings_unavailable")),
        "{res}"
    );
    assert!(dir_s.join("junk.txt").exists());
    assert_eq!(
        wings.log().len(),
        before,
        "a request got through an untrusted TLS connection"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_panel_passes_stop_server_and_the_wings_errors_on() {
    use testkit::panel::{Db, PASSWORD, TestPanel};
    let (wings, agent, _cfg) = beside_wings(WINGS_TOKEN, &[]).await;
    wings.set_stop_delay(Duration::from_millis(100));
    let panel = TestPanel::start(Db::Sqlite);
    let admin = panel.admin().await;
    panel.add_node(&admin, "node-1", &agent).await;
    panel.add_user(&admin, "owner@example.com").await;
    let server = agent.add_server();
    panel
        .add_server(&admin, &server, "owner@example.com", "node-1", 0)
        .await;
    let mut owner = panel.login("owner@example.com", PASSWORD).await;
    wings.add_server(&server, "running");
    let b = format!("/extensions/resticbackups/servers/{server}/backups/restic");
    let id = owner.backup(&server).await;
    let junk = agent.data_dir().join(&server).join("junk.txt");

    // `stop_server: false`: Wings is not asked at all.
    fs::write(&junk, "x").unwrap();
    let (s, j) = owner
        .post(&format!("{b}/{id}/restore"), json!({"stop_server": false}))
        .await;
    assert_eq!(s, 202, "{j}");
    let view = owner.wait_job(&server, j["job_id"].as_str().unwrap()).await;
    assert_eq!(view["status"], "succeeded", "{view}");
    assert!(!junk.exists());
    assert!(wings.log().is_empty(), "{:?}", wings.log());

    // By default the server is stopped and started again.
    fs::write(&junk, "x").unwrap();
    let (s, j) = owner.post(&format!("{b}/{id}/restore"), json!({})).await;
    assert_eq!(s, 202, "{j}");
    let view = owner.wait_job(&server, j["job_id"].as_str().unwrap()).await;
    assert_eq!(view["status"], "succeeded", "{view}");
    assert_eq!(view["result"]["game_server"]["stop"], "stopped", "{view}");
    assert!(wings.actions().contains(&"POST stop 202".to_owned()));
    assert!(!junk.exists());

    // Wings down: the user reads why, and nothing changed.
    wings.go_down();
    fs::write(&junk, "x").unwrap();
    let (s, j) = owner.post(&format!("{b}/{id}/restore"), json!({})).await;
    assert_eq!(
        (s, &j["error"]["code"]),
        (503, &json!("wings_unavailable")),
        "{j}"
    );
    assert!(junk.exists());
}

#[tokio::test]
async fn wings_lost_while_the_server_stops_fails_the_job_with_nothing_restored() {
    let (wings, agent, _cfg) = beside_wings(WINGS_TOKEN, &["restore_stop_timeout = 30"]).await;
    let (server, dir, id, _) = wrecked_server(&agent).await;
    wings.add_server(&server, "running");
    wings.set_mode(Mode::Slow);
    let before = manifest(&dir);
    let (status, res) = start_restore(&agent, &server, &id, json!({})).await;
    assert_eq!(status, 202, "{res}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !wings.actions().contains(&"POST stop 202".to_owned()) {
        assert!(Instant::now() < deadline, "{:?}", wings.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    wings.go_down();
    let (view, _) = watch(&agent, &server, res["job_id"].as_str().unwrap()).await;
    assert_eq!(view["status"], "failed", "{view}");
    assert_eq!(view["error"]["code"], "wings_unavailable", "{view}");
    assert_eq!(manifest(&dir), before);
    assert_eq!(safety_snapshots(&agent, &server).await, 0);
}

//! A crashed agent: interrupted jobs are reported failed after a restart, and
//! the stale restic locks they left are cleared, but live locks are kept.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;
use testkit::{TestAgent, all_cmdlines, environ};

const KEY: &str = "recovery-key-0c9d8e7f";

fn locks(agent: &TestAgent, server: &str) -> Vec<String> {
    std::fs::read_dir(agent.repo(server).join("locks"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Lock files restic finished writing (a killed restic may leave a
/// half-written `…-tmp-…` file, which restic itself ignores).
fn real_locks(agent: &TestAgent, server: &str) -> Vec<String> {
    locks(agent, server)
        .into_iter()
        .filter(|l| !l.contains("-tmp-"))
        .collect()
}

fn restic_pid_on(repo: &std::path::Path) -> Option<u32> {
    let repo = repo.display().to_string();
    all_cmdlines().into_iter().find_map(|(pid, cmd)| {
        (cmd.starts_with("restic ")
            && environ(pid)
                .lines()
                .any(|l| l == format!("RESTIC_REPOSITORY={repo}")))
        .then_some(pid)
    })
}

/// Orphans of the killed agent are re-parented to this test process (a child
/// subreaper), so it can reap them: a dead process that nobody reaps keeps its
/// PID, and restic would rightly take its lock for a live one.
fn become_subreaper() {
    rustix::process::set_child_subreaper(Some(rustix::process::getpid()))
        .expect("prctl(PR_SET_CHILD_SUBREAPER) failed");
}

fn reap(pid: u32, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        let target = rustix::process::Pid::from_raw(pid as i32);
        if let Ok(Some((reaped, _))) =
            rustix::process::waitpid(target, rustix::process::WaitOptions::NOHANG)
            && reaped.as_raw_nonzero().get() as u32 == pid
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[tokio::test]
async fn interrupted_jobs_fail_after_restart_and_only_stale_locks_are_cleared() {
    become_subreaper();
    let mut agent = TestAgent::start();
    let server = agent.add_server();
    agent.backup(&server, KEY).await;
    let big = testkit::pseudo_random(7, 300 * 1024 * 1024);
    std::fs::write(agent.data_dir().join(&server).join("world/big.mca"), big).unwrap();

    let job = agent.start_backup(&server, KEY, json!({})).await;
    let url = format!("{}/jobs/{job}", agent.backups_url(&server));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, view) = agent.call(Method::GET, &url, "", None).await;
        assert_ne!(view["status"], "succeeded", "finished too early: {view}");
        if view["progress"]["percent"].is_number() {
            break;
        }
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let repo = agent.repo(&server);
    let restic_pid = restic_pid_on(&repo).expect("restic is running the backup");
    // A machine-level crash takes restic down with the agent before it can
    // clean up. (A plain agent crash would not do: restic gets SIGINT from
    // the kernel when the agent dies and removes its own lock.) Stopped,
    // restic can not react to that SIGINT before it is killed.
    testkit::signal(restic_pid, rustix::process::Signal::STOP);
    agent.kill_hard();
    testkit::signal(restic_pid, rustix::process::Signal::KILL);
    assert!(
        reap(restic_pid, Duration::from_secs(60)),
        "the orphaned restic kept running"
    );
    let stale = locks(&agent, &server);
    assert_eq!(
        stale.len(),
        1,
        "the crash should have left exactly one stale lock"
    );

    // A live restic (by hand) holds a lock of its own while it reads stdin.
    let mut live = Command::new("restic")
        .env("RESTIC_REPOSITORY", &repo)
        .env("RESTIC_PASSWORD", KEY)
        .args([
            "--no-cache",
            "backup",
            "--stdin",
            "--stdin-filename",
            "note.txt",
            "--host",
            "operator",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while locks(&agent, &server).len() < 2 {
        assert!(Instant::now() < deadline, "the live restic took no lock");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let agent = agent.restart();
    let url = format!("{}/jobs/{job}", agent.backups_url(&server));
    let (status, view) = agent.call(Method::GET, &url, "", None).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["status"], "failed", "{view}");
    assert_eq!(view["error"]["code"], "interrupted");
    assert!(view["finished_at"].is_string());

    // The next change clears the stale lock and keeps the live one.
    agent.backup(&server, KEY).await;
    let now = locks(&agent, &server);
    assert!(!now.contains(&stale[0]), "the stale lock is still there");
    assert_eq!(now.len(), 1, "the live lock must stay: {now:?}");
    assert!(agent.log().contains("stale restic locks cleared"));

    live.stdin
        .take()
        .unwrap()
        .write_all(b"operator note\n")
        .unwrap();
    assert!(live.wait().unwrap().success());
    assert!(locks(&agent, &server).is_empty());
    assert_eq!(agent.list(&server, KEY).await["total"], 3);
}

#[tokio::test]
async fn a_killed_agent_takes_its_restic_down_cleanly() {
    become_subreaper();
    let mut agent = TestAgent::start();
    let server = agent.add_server();
    agent.backup(&server, KEY).await;
    let big = testkit::pseudo_random(8, 300 * 1024 * 1024);
    std::fs::write(agent.data_dir().join(&server).join("world/big.mca"), big).unwrap();
    let job = agent.start_backup(&server, KEY, json!({})).await;
    let url = format!("{}/jobs/{job}", agent.backups_url(&server));
    loop {
        let (_, view) = agent.call(Method::GET, &url, "", None).await;
        assert_ne!(view["status"], "succeeded", "finished too early: {view}");
        if view["progress"]["percent"].is_number() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let restic_pid = restic_pid_on(&agent.repo(&server)).expect("restic is running");
    agent.kill_hard();
    assert!(
        reap(restic_pid, Duration::from_secs(30)),
        "restic outlived the agent"
    );
    assert!(
        locks(&agent, &server).is_empty(),
        "restic left its lock behind"
    );
}

/// Another program's restic died holding a lock: the next change clears it
/// and succeeds in the same request, instead of answering 409.
#[tokio::test]
async fn a_stale_lock_left_by_another_program_does_not_fail_the_next_change() {
    let agent = TestAgent::start();
    let server = agent.add_server();
    let id = agent.backup(&server, KEY).await;
    let repo = agent.repo(&server);
    // `restic backup --stdin` holds its lock while its input stays open.
    let mut other = Command::new("restic")
        .args([
            "--repo",
            repo.to_str().unwrap(),
            "--no-cache",
            "backup",
            "--stdin",
        ])
        .env("RESTIC_PASSWORD", KEY)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    other.stdin.as_mut().unwrap().write_all(b"partial").unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while real_locks(&agent, &server).is_empty() {
        assert!(Instant::now() < deadline, "the other restic took no lock");
        std::thread::sleep(Duration::from_millis(20));
    }
    other.kill().unwrap();
    other.wait().unwrap();
    assert_eq!(real_locks(&agent, &server).len(), 1, "a stale lock is left");

    let (status, body) = agent
        .call(
            Method::POST,
            &format!("{}/{id}/lock", agent.backups_url(&server)),
            KEY,
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        real_locks(&agent, &server).is_empty(),
        "{:?}\n{}",
        locks(&agent, &server),
        agent.log()
    );
}

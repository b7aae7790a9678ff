//! `POST /api/servers/{uuid}/backups/restic/adopt`, the importer's key check:
//! which of the extension's `<uuid>+<owner>` repositories is moved into
//! place, and when nothing is moved.

use reqwest::Method;
use serde_json::json;
use testkit::{TestAgent, restic};

fn key(c: char) -> String {
    std::iter::repeat_n(c, 64).collect()
}

fn adopt_url(agent: &TestAgent, server: &str) -> String {
    format!("{}/adopt", agent.backups_url(server))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_repository_the_key_opens_is_moved_into_place_and_nothing_else() {
    let agent = TestAgent::start();
    let root = agent.repo_root();
    let (k1, k2) = (key('1'), key('2'));

    // No repository anywhere: 404, nothing created.
    let s = agent.add_server();
    let url = adopt_url(&agent, &s);
    assert_eq!(
        agent
            .refusal(Method::POST, &url, &k1, Some(json!({})))
            .await,
        (404, "repository_not_found".into())
    );
    assert!(!agent.repo(&s).exists());

    // The current owner's repository and an earlier owner's (another key).
    restic(&root.join(format!("{s}+steve")), &k1, None, &["init"]);
    restic(&root.join(format!("{s}+alex")), &k2, None, &["init"]);
    // A dry run names what it would move and moves nothing.
    let (status, body) = agent
        .call(Method::POST, &url, &k1, Some(json!({"dry_run": true})))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["adopted_from"], format!("{s}+steve"));
    assert!(!agent.repo(&s).exists());
    // A key that opens none of them.
    assert_eq!(
        agent
            .refusal(Method::POST, &url, &key('3'), Some(json!({})))
            .await,
        (403, "wrong_key".into())
    );
    let (status, body) = agent.call(Method::POST, &url, &k1, Some(json!({}))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["adopted_from"], format!("{s}+steve"));
    assert_eq!(body["left"], json!([format!("{s}+alex")]));
    assert!(agent.repo(&s).is_dir() && !root.join(format!("{s}+steve")).exists());
    assert_eq!(agent.list(&s, &k1).await["total"], 0);
    // Asked again: in place already, nothing moved.
    let (status, body) = agent.call(Method::POST, &url, &k1, Some(json!({}))).await;
    assert_eq!(
        (status, body["adopted_from"].is_null()),
        (200, true),
        "{body}"
    );
    assert_eq!(
        agent
            .refusal(Method::POST, &url, &k2, Some(json!({})))
            .await,
        (403, "wrong_key".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ambiguous_or_odd_repository_folders_are_left_alone() {
    let agent = TestAgent::start();
    let root = agent.repo_root();
    let k = key('1');

    // Two repositories the same key opens: which owner's is current is
    // unknown, so neither moves.
    let s = agent.add_server();
    restic(&root.join(format!("{s}+steve")), &k, None, &["init"]);
    restic(&root.join(format!("{s}+alex")), &k, None, &["init"]);
    assert_eq!(
        agent
            .refusal(Method::POST, &adopt_url(&agent, &s), &k, Some(json!({})))
            .await,
        (409, "ambiguous_repository".into())
    );
    assert!(!agent.repo(&s).exists());

    // A symlink named like the extension's repository is never followed
    // or moved.
    let s = agent.add_server();
    let elsewhere = tempfile::tempdir().unwrap();
    restic(&elsewhere.path().join("repo"), &k, None, &["init"]);
    std::os::unix::fs::symlink(
        elsewhere.path().join("repo"),
        root.join(format!("{s}+steve")),
    )
    .unwrap();
    assert_eq!(
        agent
            .refusal(Method::POST, &adopt_url(&agent, &s), &k, Some(json!({})))
            .await,
        (409, "unusable_repository".into())
    );
    assert!(!agent.repo(&s).exists());
    assert!(root.join(format!("{s}+steve")).is_symlink());

    // Bad input: unknown fields are refused.
    assert_eq!(
        agent
            .refusal(
                Method::POST,
                &adopt_url(&agent, &s),
                &k,
                Some(json!({"dry_run": true, "path": "/etc"}))
            )
            .await
            .0,
        400
    );
}

//! Hostile and broken requests get a clear 4xx, never a panic, and no restic
//! process ever sees the bad value.

use reqwest::Method;
use serde_json::{Value, json};
use testkit::{TOKEN, TestAgent};

const KEY: &str = "bad-input-key-1b2c3d4e";

async fn send(agent: &TestAgent, req: reqwest::RequestBuilder) -> (u16, Value) {
    let _ = agent;
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    let body: Value = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("answer is not JSON (status {status}): {text}"));
    (status, body)
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

#[tokio::test]
async fn malformed_ids_limits_cursors_and_bodies_are_refused_without_running_restic() {
    let agent = TestAgent::start();
    let server = agent.add_server();
    let id = agent.backup(&server, KEY).await;
    let base = agent.backups_url(&server);
    let long_hex = "a".repeat(200);

    let bad_snapshot_ids = [
        "--password-command=sh",
        "..%2F..%2Fetc",
        "zz",
        long_hex.as_str(),
        "deadbee",
        "%E2%9C%93%E2%9C%93%E2%9C%93%E2%9C%93%E2%9C%93%E2%9C%93%E2%9C%93%E2%9C%93",
        "-deadbeef",
    ];
    for bad in bad_snapshot_ids {
        for (method, suffix) in [
            (Method::POST, "/lock"),
            (Method::POST, "/unlock"),
            (Method::DELETE, ""),
        ] {
            let url = format!("{base}/{bad}{suffix}");
            let (status, body) = send(&agent, agent.req(method.clone(), &url, KEY)).await;
            assert_eq!(status, 400, "{method} {url}: {body}");
            assert_eq!(code(&body), "invalid_backup_id");
            assert!(
                !body.to_string().contains("password-command"),
                "the bad value is echoed: {body}"
            );
        }
    }

    let bad_servers = [
        "--password-command=sh",
        "..%2F..%2Fetc",
        "not-a-uuid",
        "1f0e2d3c-4b5a-6978-8796-a5b4c3d2e1f",
        "%C3%A9%C3%A9%C3%A9",
    ];
    for bad in bad_servers {
        let url = format!("{}/api/servers/{bad}/backups/restic", agent.url);
        let (status, body) = send(&agent, agent.req(Method::GET, &url, KEY)).await;
        assert_eq!(status, 400, "{url}: {body}");
        assert_eq!(code(&body), "invalid_server_id");
    }
    // A path with real slashes does not match any route at all.
    let (status, body) = send(
        &agent,
        agent.req(
            Method::GET,
            &format!("{}/api/servers/../../etc/backups/restic", agent.url),
            KEY,
        ),
    )
    .await;
    assert!(status == 404 || status == 400, "{status} {body}");

    for (query, expected) in [
        ("limit=0", "invalid_limit"),
        ("limit=101", "invalid_limit"),
        ("limit=abc", "invalid_limit"),
        ("limit=-1", "invalid_limit"),
        ("cursor=zz", "invalid_cursor"),
        (
            "cursor=2d2d70617373776f72642d636f6d6d616e64",
            "invalid_cursor",
        ),
    ] {
        let (status, body) = send(
            &agent,
            agent.req(Method::GET, &format!("{base}?{query}"), KEY),
        )
        .await;
        assert_eq!((status, code(&body)), (400, expected), "{query}: {body}");
    }

    for (raw, expected_status, expected) in [
        ("{not json", 400, "invalid_json"),
        ("{\"max_backups\": \"three\"}", 400, "invalid_json"),
        ("{\"max_backups\": -1}", 400, "invalid_json"),
        ("[1,2,3]", 400, "invalid_json"),
    ] {
        let req = agent
            .req(Method::POST, &base, KEY)
            .header("content-type", "application/json")
            .body(raw);
        let (status, body) = send(&agent, req).await;
        assert_eq!(
            (status, code(&body)),
            (expected_status, expected),
            "{raw}: {body}"
        );
    }
    let huge = json!({"ignore": "x".repeat(200 * 1024)}).to_string();
    let (status, body) = send(&agent, agent.req(Method::POST, &base, KEY).body(huge)).await;
    assert_eq!((status, code(&body)), (413, "payload_too_large"), "{body}");
    let control = json!({"ignore": "logs\u{7}"});
    let (status, body) = send(&agent, agent.req(Method::POST, &base, KEY).json(&control)).await;
    assert_eq!((status, code(&body)), (400, "invalid_ignore"), "{body}");

    let (status, body) = send(
        &agent,
        agent.req(Method::GET, &format!("{base}/jobs/not-a-job"), KEY),
    )
    .await;
    assert_eq!((status, code(&body)), (400, "invalid_job_id"));
    let (status, body) = send(
        &agent,
        agent.req(Method::GET, &format!("{base}/jobs/{}", "0".repeat(32)), KEY),
    )
    .await;
    assert_eq!((status, code(&body)), (404, "job_not_found"));
    let (status, body) = send(
        &agent,
        agent.req(Method::GET, &format!("{}/nope", agent.url), KEY),
    )
    .await;
    assert_eq!((status, code(&body)), (404, "not_found"));

    // The good ID still works after all that, and restic never saw a bad value.
    let (status, _) = send(
        &agent,
        agent.req(Method::POST, &format!("{base}/{id}/lock"), KEY),
    )
    .await;
    assert_eq!(status, 200);
    let log = agent.log();
    let restic_runs: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("running restic"))
        .collect();
    assert!(!restic_runs.is_empty());
    for line in restic_runs {
        let args = line.split("args=").nth(1).unwrap_or(line);
        let args = args.split(" repo=").next().unwrap_or(args);
        for bad in [
            "password-command",
            "..",
            "zz",
            &long_hex,
            "\u{2713}",
            "-deadbeef",
        ] {
            assert!(
                !args.contains(bad),
                "restic was started with {bad:?}: {line}"
            );
        }
    }
    assert!(!log.contains("panicked"), "the agent panicked:\n{log}");
}

#[tokio::test]
async fn tokens_keys_and_unknown_things_get_the_right_status() {
    let agent = TestAgent::start();
    let server = agent.add_server();
    let base = agent.backups_url(&server);

    let (status, body) = send(
        &agent,
        agent.http.get(&base).header("X-Restic-Password", KEY),
    )
    .await;
    assert_eq!((status, code(&body)), (401, "missing_token"));
    let (status, body) = send(
        &agent,
        agent
            .http
            .get(&base)
            .header("Authorization", format!("Basic {TOKEN}")),
    )
    .await;
    assert_eq!((status, code(&body)), (401, "missing_token"));
    for wrong in [
        "x",
        "test-node-token-6f1d2c3b4a5",
        "test-node-token-6f1d2c3b4a59x",
    ] {
        let (status, body) = send(
            &agent,
            agent
                .http
                .get(&base)
                .bearer_auth(wrong)
                .header("X-Restic-Password", KEY),
        )
        .await;
        assert_eq!((status, code(&body)), (403, "invalid_token"), "{wrong}");
    }

    let (status, body) = send(&agent, agent.http.get(&base).bearer_auth(TOKEN)).await;
    assert_eq!((status, code(&body)), (400, "missing_key"));

    // No repository yet: 404, and an unknown server directory: 404.
    let (status, body) = send(&agent, agent.req(Method::GET, &base, KEY)).await;
    assert_eq!((status, code(&body)), (404, "repository_not_found"));
    let stranger = testkit::new_uuid();
    let (status, body) = send(
        &agent,
        agent
            .req(Method::POST, &agent.backups_url(&stranger), KEY)
            .json(&json!({})),
    )
    .await;
    assert_eq!((status, code(&body)), (404, "server_not_found"));
    assert!(!agent.repo(&stranger).exists());

    agent.backup(&server, KEY).await;
    for wrong_key in [
        "not-the-key",
        "bad-input-key-1b2c3d4",
        "BAD-INPUT-KEY-1B2C3D4E",
    ] {
        for url in [base.clone(), format!("{base}/stats")] {
            let (status, body) = send(&agent, agent.req(Method::GET, &url, wrong_key)).await;
            assert_eq!(
                (status, code(&body)),
                (403, "wrong_key"),
                "{url} with {wrong_key:?}"
            );
        }
        let (status, body) = send(
            &agent,
            agent.req(Method::POST, &base, wrong_key).json(&json!({})),
        )
        .await;
        assert_eq!((status, code(&body)), (403, "wrong_key"));
    }
    // The right key still works, served from the index.
    assert_eq!(agent.list(&server, KEY).await["total"], 1);
    assert!(!agent.log().contains("panicked"));
}

#[tokio::test]
async fn a_wrong_method_gets_a_json_405() {
    let agent = TestAgent::start();
    let server = agent.add_server();
    for (method, url) in [
        (Method::PUT, format!("{}/api/restic/archive", agent.url)),
        (Method::PATCH, agent.backups_url(&server)),
    ] {
        let res = agent
            .http
            .request(method.clone(), &url)
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 405, "{method} {url}");
        let body: Value = res.json().await.expect("a JSON body");
        assert_eq!(body["error"]["code"], "method_not_allowed");
    }
}

#[tokio::test]
async fn ignore_rules_that_exclude_everything_are_refused() {
    let agent = TestAgent::start();
    let server = agent.add_server();
    let url = agent.backups_url(&server);
    for ignore in ["*", "/*", "world\n*.properties"] {
        let (status, code) = agent
            .refusal(
                Method::POST,
                &url,
                "a-key-for-ignore-1234",
                Some(json!({"ignore": ignore})),
            )
            .await;
        assert_eq!(
            (status, code.as_str()),
            (400, "nothing_to_back_up"),
            "{ignore:?}"
        );
    }
    // The server's own .pteroignore counts too.
    std::fs::write(agent.data_dir().join(&server).join(".pteroignore"), "*\n").unwrap();
    let (status, code) = agent
        .refusal(Method::POST, &url, "a-key-for-ignore-1234", Some(json!({})))
        .await;
    assert_eq!((status, code.as_str()), (400, "nothing_to_back_up"));
    assert!(!agent.repo(&server).exists(), "a repository was made");
}

//! The panel's agent client against the real agent binary: every call, the
//! agent's refusals passed on, TLS with a custom CA, and a stopped agent
//! reported as unavailable quickly.

use std::process::Command;
use std::time::{Duration, Instant};

use api::agent::CreateBackupRequest;
use api::download::DownloadFormat;
use api::{JobId, Secret, ServerUuid, SnapshotRef};
use panel::agent_client::{AgentClient, ClientError, NodeConn, Wanted};
use testkit::{TOKEN, TestAgent};

fn secret(s: &str) -> Secret {
    Secret::new(s).unwrap()
}

fn conn(agent: &TestAgent, ca_pem: Option<String>) -> NodeConn {
    NodeConn {
        url: agent.url.clone(),
        token: secret(TOKEN),
        ca_pem,
    }
}

async fn finish(client: &AgentClient, server: &ServerUuid, job: &JobId) -> api::agent::JobView {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let view = client.job(server, job).await.unwrap();
        if view.status.is_finished() {
            return view;
        }
        assert!(Instant::now() < deadline, "job did not finish");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn every_agent_call_works_through_the_client() {
    let mut agent = TestAgent::start();
    let uuid = agent.add_server();
    let server = ServerUuid::parse(&uuid).unwrap();
    let key = secret("client-key-7f6e5d4c3b");
    let client = AgentClient::new(&conn(&agent, None)).unwrap();

    let accepted = client
        .create_backup(
            &server,
            &key,
            &CreateBackupRequest {
                max_backups: Some(3),
                ignore: None,
            },
        )
        .await
        .unwrap();
    let view = finish(&client, &server, &accepted.job_id).await;
    assert_eq!(view.status, api::agent::JobStatus::Succeeded, "{view:?}");
    let list = client.list(&server, &key, 5, None).await.unwrap();
    assert_eq!(list.total, 1);
    let id = SnapshotRef::parse(list.backups[0].id.as_str()).unwrap();
    assert_eq!(
        client.stats(&server, &key).await.unwrap().snapshots_count,
        1
    );

    assert!(
        client
            .set_locked(&server, &key, &id, true)
            .await
            .unwrap()
            .locked
    );
    match client.delete(&server, &key, &id).await {
        Err(ClientError::Agent {
            status: 409, code, ..
        }) => assert_eq!(code, "backup_locked"),
        other => panic!("expected backup_locked, got {other:?}"),
    }
    assert!(
        !client
            .set_locked(&server, &key, &id, false)
            .await
            .unwrap()
            .locked
    );
    match client
        .list(&server, &secret("wrong-key-for-sure"), 5, None)
        .await
    {
        Err(ClientError::Agent {
            status: 403, code, ..
        }) => assert_eq!(code, "wrong_key"),
        other => panic!("expected wrong_key, got {other:?}"),
    }

    // A direct link for the browser: no token or key in clear in it.
    let full = SnapshotRef::parse(list.backups[0].id.as_str()).unwrap();
    let link = client.download_link(
        &server,
        &full,
        &Wanted {
            format: DownloadFormat::TarGz,
            path: None,
        },
        &key,
        now(),
    );
    assert!(!link.contains(TOKEN) && !link.contains(key.expose()));
    let res = reqwest::get(&link).await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.bytes().await.unwrap().starts_with(&[0x1f, 0x8b]),
        "not gzip"
    );
    let res = client
        .download(
            &server,
            &key,
            &id,
            &Wanted {
                format: DownloadFormat::Zip,
                path: None,
            },
        )
        .await
        .unwrap();
    assert!(res.bytes().await.unwrap().starts_with(b"PK"), "not zip");

    let restore = client
        .restore(&server, &key, &id, &api::agent::RestoreRequest::default())
        .await
        .unwrap();
    assert_eq!(
        finish(&client, &server, &restore.job_id).await.status,
        api::agent::JobStatus::Succeeded
    );

    let new_key = secret("client-key-rotated-0123456789");
    client.rotate_key(&server, &key, &new_key).await.unwrap();
    assert_eq!(
        client.list(&server, &new_key, 5, None).await.unwrap().total,
        2,
        "backup + safety snapshot"
    );

    let archived = client.archive(&server, &new_key).await.unwrap();
    let view = finish(&client, &server, &archived.job_id).await;
    let name = view.result.unwrap()["name"].as_str().unwrap().to_owned();
    let archives = client.archives().await.unwrap().archives;
    assert_eq!(archives.len(), 1);
    assert_eq!(archives[0].name, name);
    match client.delete_archive("../../etc", None).await {
        Err(ClientError::Agent { status: 400, .. }) => {}
        other => panic!("expected a refusal, got {other:?}"),
    }
    client.delete_archive(&name, None).await.unwrap();
    assert!(client.archives().await.unwrap().archives.is_empty());

    // A wrong node token is the agent's refusal, not an outage.
    let bad = AgentClient::new(&NodeConn {
        token: secret("not-the-node-token-123"),
        ..conn(&agent, None)
    })
    .unwrap();
    assert!(matches!(
        bad.archives().await,
        Err(ClientError::Agent { status: 403, .. })
    ));

    // A stopped agent: unavailable, quickly.
    assert!(agent.stop(Duration::from_secs(10)));
    let started = Instant::now();
    assert!(matches!(
        client.list(&server, &new_key, 5, None).await,
        Err(ClientError::Unavailable)
    ));
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "took {:?}",
        started.elapsed()
    );
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test]
async fn tls_is_verified_against_the_nodes_own_ca() {
    // A private CA and an agent certificate it signed, as a host would set up.
    let certs = tempfile::tempdir().unwrap();
    let d = certs.path();
    let (ca, cert, key) = (d.join("ca.pem"), d.join("cert.pem"), d.join("key.pem"));
    let sh = |script: &str| {
        let out = Command::new("sh")
            .arg("-c")
            .arg(script)
            .current_dir(d)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    sh(
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -subj /CN=test-ca -keyout ca-key.pem -out ca.pem",
    );
    sh(
        "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=localhost \
        -keyout key.pem -out agent.csr",
    );
    std::fs::write(
        d.join("ext.cnf"),
        "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    sh(
        "openssl x509 -req -in agent.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 2 \
        -extfile ext.cnf -out cert.pem",
    );
    let agent = TestAgent::start_with(&[
        &format!("tls_cert = \"{}\"", cert.display()),
        &format!("tls_key = \"{}\"", key.display()),
    ]);
    let pem = std::fs::read_to_string(&ca).unwrap();
    let trusted = AgentClient::new(&conn(&agent, Some(pem))).unwrap();
    assert!(trusted.archives().await.unwrap().archives.is_empty());
    let untrusted = AgentClient::new(&conn(&agent, None)).unwrap();
    assert!(matches!(
        untrusted.archives().await,
        Err(ClientError::Unavailable)
    ));
    assert!(matches!(
        AgentClient::new(&NodeConn {
            ca_pem: Some("not pem".into()),
            ..conn(&agent, None)
        }),
        Err(ClientError::Config(_))
    ));
    assert!(matches!(
        AgentClient::new(&NodeConn {
            url: "ftp://x".into(),
            ..conn(&agent, None)
        }),
        Err(ClientError::Config(_))
    ));
}

//! The agent serves HTTPS with the configured certificate.

use std::process::Command;

use testkit::{TOKEN, TestAgent, make_cert};

fn curl(args: &[&str]) -> (bool, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20"])
        .args(args)
        .output()
        .expect("curl is installed");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn serves_https_with_the_configured_certificate() {
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = make_cert(certs.path());
    let agent = TestAgent::start_with(&[
        &format!("tls_cert = \"{}\"", cert.display()),
        &format!("tls_key = \"{}\"", key.display()),
    ]);
    assert!(agent.url.starts_with("https://127.0.0.1:"), "{}", agent.url);
    let server = agent.add_server();
    let url = format!("{}/api/servers/{server}/backups/restic", agent.url);

    // Certificate verification against our CA works; headers come from a file
    // so the token is not in curl's argv either.
    let headers = certs.path().join("headers");
    std::fs::write(
        &headers,
        format!("Authorization: Bearer {TOKEN}\nX-Restic-Password: tls-key\n"),
    )
    .unwrap();
    let (ok, body) = curl(&[
        "--cacert",
        cert.to_str().unwrap(),
        "-H",
        &format!("@{}", headers.display()),
        &url,
    ]);
    assert!(ok, "{body}");
    assert!(body.contains("repository_not_found"), "{body}");

    // Without trusting the certificate the client refuses, and plain HTTP is not served.
    let (ok, body) = curl(&[&url]);
    assert!(!ok, "an untrusted certificate was accepted: {body}");
    let (ok, _) = curl(&[&url.replace("https://", "http://")]);
    assert!(!ok);
}

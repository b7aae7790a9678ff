//! Servers that cannot be held down: connections that never finish their
//! request head are closed after `header_timeout_secs`, and one address can
//! hold at most `max_connections_per_address` connections, so a flood of
//! idle connections from one place leaves the panel and agent serving
//! everyone else.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use testkit::TestAgent;
use testkit::panel::{Db, TestPanel};

fn addr_of(url: &str) -> SocketAddr {
    url.trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap()
}

/// Whether the server closed `stream` within `within` (a read sees EOF or a
/// reset instead of timing out).
fn closed_within(stream: &TcpStream, within: Duration) -> bool {
    let mut stream = stream;
    stream.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 512];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return false;
            }
            Err(_) => return true,
        }
    }
}

/// Opens `n` connections from 127.0.0.1 that send half a request head.
fn idle_flood(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    (0..n)
        .filter_map(|_| TcpStream::connect(addr).ok())
        .map(|mut s| {
            let _ = s.write_all(b"GET /login HTTP/1.1\r\nHost: x\r\n");
            s
        })
        .collect()
}

/// A client on another loopback address (127.0.0.2), like another user.
fn other_client() -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(Some("127.0.0.2".parse().unwrap()))
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_flood_from_one_address_does_not_hold_the_panel_down() {
    let panel = TestPanel::start_with(
        Db::Sqlite,
        &[
            "header_timeout_secs = 2",
            "max_connections_per_address = 20",
        ],
    );
    let addr = addr_of(&panel.url);
    let flood = idle_flood(addr, 300);
    // Beyond the per-address limit, connections are closed at once.
    let cut = flood
        .iter()
        .filter(|s| closed_within(s, Duration::from_millis(100)))
        .count();
    assert!(cut >= 280, "only {cut} of 300 connections were cut");
    // Everyone else is served meanwhile, quickly.
    let started = Instant::now();
    let res = other_client()
        .get(format!("{}/login", panel.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(started.elapsed() < Duration::from_secs(2));
    // The ones kept are closed once the header timeout passed.
    std::thread::sleep(Duration::from_secs(5));
    let still_open = flood
        .iter()
        .filter(|s| !closed_within(s, Duration::from_millis(100)))
        .count();
    assert_eq!(still_open, 0, "connections outlived the header timeout");
    eprintln!(
        "300 idle connections from one address: {cut} cut at once, the rest closed after 4 s"
    );
    // Slots are given back: the same address is served again.
    let res = reqwest::get(format!("{}/login", panel.url)).await.unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_closes_connections_that_never_finish_a_request() {
    let agent =
        TestAgent::start_with(&["header_timeout_secs = 2", "max_connections_per_address = 5"]);
    let addr = addr_of(&agent.url);
    let flood = idle_flood(addr, 10);
    let cut = flood
        .iter()
        .filter(|s| closed_within(s, Duration::from_millis(100)))
        .count();
    assert_eq!(cut, 5, "the per-address limit");
    std::thread::sleep(Duration::from_millis(2500));
    assert!(
        flood
            .iter()
            .all(|s| closed_within(s, Duration::from_millis(100)))
    );
    // A request sent in time is served as before.
    let res = other_client()
        .get(format!("{}/api/restic/archive", agent.url))
        .bearer_auth(testkit::TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

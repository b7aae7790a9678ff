//! Pterodactyl mode at a large host's size, against the Pterodactyl double:
//! 20,000 users, 2,000 nodes, 10,000 servers, 20,000 subusers (defaults).
//!
//! - full sync into an empty SQLite panel, against the baseline of only
//!   reading the same lists and node configurations (what any sync must do);
//! - a re-sync that finds no change (goal: ≤ 3 s, 0 rows written);
//! - sign-in through Pterodactyl's cookie with a warm cache, against a
//!   request with a session of ours (the same `/auth/session`).
//!
//! `BENCH_USERS=20000 BENCH_NODES=2000 BENCH_SERVERS=10000 BENCH_ROUNDS=3 \
//!  cargo bench -p restic-backups --bench pterodactyl_sync`

mod support;

use std::time::{Duration, Instant};

use panel::permissions::Operator;
use panel::pterodactyl::{ApplicationClient, SyncOrigin};
use support::{env_num, ms};
use testkit::pterodactyl::{Node, Pterodactyl, Server, User};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Fills the double: users 1..=u (1 is the key's admin), nodes, servers
/// spread over nodes and owners, two subusers per server.
async fn filled(users: u64, nodes: u64, servers: u64) -> Pterodactyl {
    let ptero = Pterodactyl::start().await;
    ptero.edit(|s| {
        s.user_mut(1).unwrap().email = "root@ptero.example".into();
        for id in 2..=users {
            s.add_user(User::new(id, &format!("user{id}")));
        }
        for id in 1..=nodes {
            s.add_node(Node::new(id));
        }
        for id in 1..=servers {
            s.add_server(Server::new(id, 2 + id % (users - 1), 1 + id % nodes));
        }
        for id in 1..=servers {
            for k in 0..2 {
                let user = 2 + (id * 7 + k * 13) % (users - 1);
                s.set_subuser(id, user, &["backup.read", "backup.create"]);
            }
        }
    });
    ptero
}

fn config(dir: &std::path::Path, ptero: &Pterodactyl) -> panel::config::PanelConfig {
    std::fs::write(
        dir.join("secret"),
        "bench-secret-key-0123456789abcdefghijkl",
    )
    .unwrap();
    std::fs::write(dir.join("ptla"), ptero.application_key()).unwrap();
    let file = dir.join("panel.toml");
    std::fs::write(
        &file,
        format!(
            "listen = \"127.0.0.1:0\"\nstate_dir = \"{0}/state\"\nsecret_key_file = \"{0}/secret\"\n\
             [pterodactyl]\nurl = \"{1}\"\napplication_key_file = \"{0}/ptla\"\nsync_interval = \"24h\"\n",
            dir.display(),
            ptero.url()
        ),
    )
    .unwrap();
    panel::config::PanelConfig::load(Some(&file), &|_| None).unwrap()
}

/// What any sync must do: every list and every node's configuration.
async fn read_only(ptero: &Pterodactyl) -> Duration {
    let app = ApplicationClient::new(
        ptero.url(),
        api::Secret::new(ptero.application_key()).unwrap(),
        Duration::from_secs(60),
    )
    .unwrap();
    let started = Instant::now();
    let (_, nodes, _) = tokio::try_join!(app.users(), app.nodes(), app.servers_with_subusers())
        .expect("the double answers");
    for chunk in nodes.chunks(4) {
        let mut set = tokio::task::JoinSet::new();
        for n in chunk {
            let (app, id) = (app.clone(), n.id);
            set.spawn(async move { app.node_configuration(id).await.map(|_| ()) });
        }
        while let Some(r) = set.join_next().await {
            r.unwrap().unwrap();
        }
    }
    started.elapsed()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let users = env_num("BENCH_USERS", 20_000) as u64;
    let nodes = env_num("BENCH_NODES", 2_000) as u64;
    let servers = env_num("BENCH_SERVERS", 10_000) as u64;
    let rounds = env_num("BENCH_ROUNDS", 3);
    let ptero = filled(users, nodes, servers).await;
    println!(
        "Pterodactyl double: {users} users, {nodes} nodes, {servers} servers, {} subusers; {rounds} rounds",
        servers * 2
    );
    let operator = Operator::at_the_host_shell();
    let (mut full, mut baseline, mut idle) = (Vec::new(), Vec::new(), Vec::new());
    let mut keep = None;
    for _ in 0..rounds {
        baseline.push(read_only(&ptero).await);
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path(), &ptero);
        let p = panel::open(&cfg).await.unwrap();
        let report = p
            .sync_pterodactyl(SyncOrigin::operator(&operator))
            .await
            .unwrap();
        assert!(report.ok, "{:?}", report.errors);
        assert_eq!(report.servers.added, servers);
        full.push(Duration::from_millis(report.duration_ms));
        let again = p
            .sync_pterodactyl(SyncOrigin::operator(&operator))
            .await
            .unwrap();
        assert_eq!(
            again.rows_written, 0,
            "a re-sync without changes wrote rows"
        );
        idle.push(Duration::from_millis(again.duration_ms));
        keep = Some((dir, cfg, p));
    }
    let (full, baseline, idle) = (median(full), median(baseline), median(idle));
    println!(
        "full sync          median {:>9.1} ms   read-only baseline {:>9.1} ms   ratio {:.2}",
        ms(full),
        ms(baseline),
        ms(full) / ms(baseline)
    );
    println!(
        "no-change re-sync  median {:>9.1} ms   (0 rows written)   ratio to baseline {:.2}",
        ms(idle),
        ms(idle) / ms(baseline)
    );

    // Sign-in latency, warm cache, against a plain session request.
    let (_dir, cfg, p) = keep.unwrap();
    let listener = httpd::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let serve_cfg = cfg.clone();
    tokio::spawn(
        async move { panel::run_on(listener, p, &serve_cfg, std::future::pending()).await },
    );
    let cookie = ptero.add_session(2, false);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let ptero_cookie = format!("{}={cookie}", ptero.cookie_name());
    let get = |c: String| {
        let (http, url) = (http.clone(), url.clone());
        async move {
            let started = Instant::now();
            let r = http
                .get(format!("{url}/auth/session"))
                .header("Cookie", c)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            let set = r
                .headers()
                .get("set-cookie")
                .map(|v| v.to_str().unwrap().to_owned());
            r.bytes().await.unwrap();
            (started.elapsed(), set)
        }
    };
    // The first sign-in fills the cache (and waits for the start sync).
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let r = http
            .get(format!("{url}/auth/session"))
            .header("Cookie", &ptero_cookie)
            .send()
            .await
            .unwrap();
        if r.status() == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "no sign-in: {}", r.status());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let n = env_num("BENCH_SIGNINS", 200);
    let (mut signin, mut plain) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let (t, set) = get(ptero_cookie.clone()).await;
        let ours = set.expect("no session opened");
        signin.push(t);
        // The session just opened, used as a browser would next.
        let ours = format!("{}; {ptero_cookie}", ours.split(';').next().unwrap());
        plain.push(get(ours).await.0);
    }
    let (signin, plain) = (median(signin), median(plain));
    println!(
        "sign-in (warm)     median {:>9.3} ms   session request    {:>9.3} ms   ratio {:.2}",
        ms(signin),
        ms(plain),
        ms(signin) / ms(plain)
    );
    assert!(ptero.writes().is_empty());
}

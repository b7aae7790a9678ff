//! What the benchmarks share: the agent binary started on a bench folder,
//! restic run directly as the baseline, and the table rows.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const TOKEN: &str = "bench-node-token-3c9a1e7f5b20";
pub const KEY: &str = "bench-repo-key-8d41f0c2a7e6";

pub fn env_num(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a whole number, got {v:?}")),
        Err(_) => default,
    }
}

/// `target/bench-data/<name>`: generated data, kept between runs.
pub fn bench_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .join("bench-data")
        .join(name)
}

/// A restic command on `repo`; the key goes through the environment only.
pub fn restic(repo: &Path) -> Command {
    let mut cmd = Command::new("restic");
    cmd.env("RESTIC_REPOSITORY", repo)
        .env("RESTIC_PASSWORD", KEY)
        .env_remove("RESTIC_PASSWORD_FILE")
        .env_remove("RESTIC_PASSWORD_COMMAND");
    cmd
}

/// restic with an explicit key (the panel's), through the environment.
pub fn restic_key(repo: &Path, key: &str) -> Command {
    let mut cmd = restic(repo);
    cmd.env("RESTIC_PASSWORD", key);
    cmd
}

pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run restic (is it installed?)");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn restic_version() -> String {
    let version = run(Command::new("restic").arg("version"));
    version.split_whitespace().nth(1).unwrap_or("?").to_owned()
}

/// Starts `restic-backups agent|panel` with warnings only (plus the line
/// that tells the port, which gives the URL); its other log lines go to
/// stderr prefixed with `name`.
fn spawn_service(mut cmd: Command, name: &'static str) -> (Child, String) {
    let mut child = cmd
        .env("RUST_LOG", "warn,httpd=info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start restic-backups {name}: {e}"));
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    let marker = format!("{name} listening on ");
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            match line.split(marker.as_str()).nth(1) {
                Some(url) => {
                    let _ = tx.send(url.trim().to_owned());
                }
                None => eprintln!("{name}: {line}"),
            }
        }
    });
    let url = rx
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("{name} did not start within 30 s (its log is above)"));
    (child, url)
}

/// The agent binary on `<root>/volumes` and `<root>/restic`, stopped with
/// SIGTERM when dropped.
pub struct Agent {
    child: Child,
    pub url: String,
}

impl Agent {
    pub fn start(root: &Path) -> Self {
        Self::start_with(root, &[])
    }

    /// With extra TOML lines (a remote `repository`, ...).
    pub fn start_with(root: &Path, extra: &[String]) -> Self {
        let config = root.join("agent.toml");
        let mut toml = format!(
            "listen = \"127.0.0.1:0\"\ntoken = \"{TOKEN}\"\ndata_dir = \"{}\"\nrepo_root = \"{}\"\n",
            root.join("volumes").display(),
            root.join("restic").display(),
        );
        for line in extra {
            toml.push_str(line);
            toml.push('\n');
        }
        std::fs::write(&config, toml).expect("write agent config");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_restic-backups"));
        cmd.arg("agent")
            .arg("--config")
            .arg(&config)
            .env("RESTIC_BACKUPS_AGENT_WINGS_CONFIG", "/dev/null");
        let (child, url) = spawn_service(cmd, "agent");
        Agent { child, url }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory now and at its peak (`VmRSS`, `VmHWM`), in bytes.
    pub fn rss(&self) -> (u64, u64) {
        rss_of(self.pid())
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        // SIGTERM for a clean shutdown, then wait for it to exit.
        if let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let _ = self.child.wait();
    }
}

/// xorshift bytes: fast, reproducible, not compressible.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        out.extend_from_slice(&s.to_le_bytes());
    }
    out.truncate(len);
    out
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn snapshot_count(repo: &Path) -> Option<usize> {
    if !repo.join("config").is_file() {
        return None;
    }
    Some(std::fs::read_dir(repo.join("snapshots")).map_or(0, |rd| rd.count()))
}

/// `<root>/volumes/<uuid>` (server files) and `<root>/restic/<uuid>` (its
/// repository) with `n` snapshots; resumes an interrupted generation.
pub fn prepare_snapshots(root: &Path, n: usize) -> String {
    let uuid = std::fs::read_to_string(root.join("server-uuid")).ok();
    let uuid = uuid.map(|u| u.trim().to_owned());
    let have = uuid
        .as_ref()
        .and_then(|u| snapshot_count(&root.join("restic").join(u)));
    let (uuid, have) = match (uuid, have) {
        (Some(u), Some(c)) if c <= n => (u, c),
        _ => {
            if root.exists() {
                std::fs::remove_dir_all(root).expect("remove stale bench data");
            }
            let raw = std::fs::read_to_string("/proc/sys/kernel/random/uuid").expect("new UUID");
            let uuid = raw.trim().to_owned();
            let dir = root.join("volumes").join(&uuid);
            std::fs::create_dir_all(dir.join("world")).expect("create server dir");
            std::fs::write(dir.join("server.properties"), "motd=Bench\n").expect("write file");
            std::fs::write(dir.join("world/level.dat"), "level ".repeat(4096)).expect("write file");
            let repo = root.join("restic").join(&uuid);
            run(restic(&repo).args(["init", "--repository-version", "2", "--no-cache"]));
            std::fs::write(root.join("server-uuid"), &uuid).expect("write server-uuid");
            (uuid, 0)
        }
    };
    if have == n {
        println!("reusing {n} snapshots in {}", root.display());
        return uuid;
    }
    println!("creating snapshots {}..{n} in {}", have + 1, root.display());
    let dir = root.join("volumes").join(&uuid);
    let repo = root.join("restic").join(&uuid);
    let started = Instant::now();
    for i in have + 1..=n {
        // A file that changes every time, as on a live server: each
        // snapshot gets its own tree (and its own size measurement).
        std::fs::write(dir.join("latest.log"), format!("tick {i}\n")).expect("write file");
        run(restic(&repo)
            .args(["backup", "--no-cache", "--quiet", "--host", &uuid, "."])
            .current_dir(&dir));
        if i % 100 == 0 || i == n {
            let per = started.elapsed().as_secs_f64() / (i - have) as f64;
            println!("  {i}/{n} snapshots ({per:.2} s each)");
        }
    }
    uuid
}

/// Peak and current resident memory of a process, in bytes.
pub fn rss_of(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|kb| kb.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

pub const PANEL_PASSWORD: &str = "bench admin password";

/// The database the benchmarks' panel uses: `BENCH_DATABASE_URL` (an empty
/// PostgreSQL database), else SQLite under `<root>/panel`.
pub fn panel_database() -> Option<String> {
    std::env::var("BENCH_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

/// "PostgreSQL" or "SQLite", for the reports.
pub fn panel_database_name() -> &'static str {
    if panel_database().is_some() {
        "PostgreSQL"
    } else {
        "SQLite"
    }
}

/// The panel binary on `<root>/panel` (see [`panel_database`]), with a root
/// admin created through the CLI. Stopped with SIGTERM when dropped.
pub struct Panel {
    child: Child,
    pub url: String,
}

impl Panel {
    pub fn start(root: &Path) -> Self {
        let dir = root.join("panel");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("panel dir");
        std::fs::write(
            dir.join("secret"),
            "bench-panel-secret-0123456789abcdef-0123",
        )
        .expect("secret");
        let config = dir.join("panel.toml");
        let mut toml = format!(
            "listen = \"127.0.0.1:0\"\nstate_dir = \"{}\"\nsecret_key_file = \"{}\"\nscheduler = false\n",
            dir.display(),
            dir.join("secret").display()
        );
        if let Some(url) = panel_database() {
            toml.push_str(&format!("database_url = {url:?}\n"));
        }
        std::fs::write(&config, toml).expect("panel config");
        let mut add = Command::new(env!("CARGO_BIN_EXE_restic-backups"))
            .args([
                "user",
                "add",
                "--email",
                "admin@example.com",
                "--admin",
                "--config",
            ])
            .arg(&config)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("user add");
        use std::io::Write;
        add.stdin
            .take()
            .unwrap()
            .write_all(PANEL_PASSWORD.as_bytes())
            .unwrap();
        assert!(add.wait().unwrap().success(), "user add failed");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_restic-backups"));
        cmd.arg("panel").arg("--config").arg(&config);
        let (child, url) = spawn_service(cmd, "panel");
        Panel { child, url }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Panel {
    fn drop(&mut self) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let _ = self.child.wait();
    }
}

/// A logged-in panel session (cookie + CSRF token).
#[derive(Clone)]
pub struct Session {
    pub http: reqwest::Client,
    pub base: String,
    cookie: String,
    csrf: String,
}

impl Session {
    pub async fn login(panel: &Panel) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(64)
            .build()
            .unwrap();
        let res = http
            .post(format!("{}/auth/login", panel.url))
            .json(&serde_json::json!({"email": "admin@example.com", "password": PANEL_PASSWORD}))
            .send()
            .await
            .expect("login");
        let cookie = res.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        let body: serde_json::Value = res.json().await.unwrap();
        Session {
            http,
            base: panel.url.clone(),
            cookie,
            csrf: body["csrf_token"].as_str().unwrap().to_owned(),
        }
    }

    pub fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .header("Cookie", &self.cookie)
            .header("X-CSRF-Token", &self.csrf)
    }

    /// A JSON call that must succeed.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> serde_json::Value {
        let mut r = self.req(method.clone(), path);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let res = r.send().await.expect("panel request");
        let status = res.status();
        let text = res.text().await.unwrap_or_default();
        assert!(status.is_success(), "{method} {path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)
    }
}

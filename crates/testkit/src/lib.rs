//! Test harness shared by the end-to-end tests (`tests/e2e`) and the
//! benchmarks: starts the real `restic-backups` binary against temp folders
//! and the real restic, and talks to it over HTTP; starts the databases and
//! stores the tests use, and doubles of Pterodactyl's panel and Wings.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};

pub mod mariadb;
pub mod panel;
pub mod ptero_world;
pub mod pterodactyl;
pub mod receivers;
pub mod stores;
pub mod webdriver;
pub mod wings;

/// The `restic-backups` binary cargo built beside the running test or
/// benchmark (`target/<profile>/restic-backups`; tests and benches run from
/// `target/<profile>/deps/`). `RESTIC_BACKUPS_BIN` names another one.
pub fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("RESTIC_BACKUPS_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("path of the running test");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("tests run from target/<profile>/deps");
    let bin = profile_dir.join("restic-backups");
    assert!(
        bin.is_file(),
        "{} is missing: build it first (cargo test and cargo bench do)",
        bin.display()
    );
    bin
}

pub const TOKEN: &str = "test-node-token-6f1d2c3b4a59";

/// Everything that must come back: kind, mode, owner, link target, content
/// hash, file mtime; by relative path.
pub fn manifest(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            let rel = path
                .strip_prefix(base)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let owner = format!("{:o} {}:{}", meta.mode() & 0o7777, meta.uid(), meta.gid());
            let desc = if meta.file_type().is_symlink() {
                format!("link -> {}", std::fs::read_link(&path).unwrap().display())
            } else if meta.is_dir() {
                walk(base, &path, out);
                format!("dir {owner}")
            } else {
                let mut hasher = Sha256::new();
                let mut f = std::fs::File::open(&path).unwrap();
                let mut buf = vec![0u8; 1 << 20];
                loop {
                    let n = f.read(&mut buf).unwrap();
                    if n == 0 {
                        break;
                    }
                    hasher.update(&buf[..n]);
                }
                format!(
                    "file {owner} {} mtime={} sha256={:x}",
                    meta.len(),
                    meta.mtime(),
                    hasher.finalize()
                )
            };
            out.insert(rel, desc);
        }
    }
    walk(root, root, &mut out);
    out
}

/// Starts a service binary with debug logs and waits for `marker` in its
/// log (followed by its URL). Returns the child, the growing log and the URL.
pub fn spawn_service(mut cmd: Command, marker: &str) -> (Child, Arc<Mutex<String>>, String) {
    let mut child = cmd
        .env("RUST_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start restic-backups");
    let log = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    let sink = log.clone();
    let marker = marker.to_owned();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split(marker.as_str()).nth(1)
                && let Some(tx) = tx.take()
            {
                // In JSON logs the URL ends at the message's closing quote.
                let url = rest.split('"').next().unwrap_or(rest);
                let _ = tx.send(url.trim().to_owned());
            }
            let mut l = sink.lock().unwrap();
            l.push_str(&line);
            l.push('\n');
        }
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(url) => (child, log, url),
        Err(_) => {
            let _ = child.kill();
            panic!("service did not start; log:\n{}", log.lock().unwrap());
        }
    }
}

/// A running agent and the folders it works in.
pub struct TestAgent {
    pub dir: Arc<tempfile::TempDir>,
    pub url: String,
    child: Child,
    log: Arc<Mutex<String>>,
    pub http: reqwest::Client,
}

impl TestAgent {
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("volumes")
    }

    pub fn repo_root(&self) -> PathBuf {
        self.dir.path().join("restic")
    }

    pub fn repo(&self, server: &str) -> PathBuf {
        self.repo_root().join(server)
    }

    /// Starts the agent with debug logging and waits until it listens.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    pub fn start_with(extra_toml: &[&str]) -> Self {
        Self::start_with_env(extra_toml, &[])
    }

    /// Starts with extra TOML lines and extra environment variables.
    pub fn start_with_env(extra_toml: &[&str], env: &[(&str, &str)]) -> Self {
        let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
        std::fs::create_dir_all(dir.path().join("volumes")).unwrap();
        let config = dir.path().join("agent.toml");
        let mut toml = format!(
            "listen = \"127.0.0.1:0\"\ntoken = \"{TOKEN}\"\ndata_dir = \"{}\"\nrepo_root = \"{}\"\n",
            dir.path().join("volumes").display(),
            dir.path().join("restic").display(),
        );
        for line in extra_toml {
            toml.push_str(line);
            toml.push('\n');
        }
        std::fs::write(&config, toml).unwrap();
        Self::spawn_in(dir, env)
    }

    /// Kills the agent with SIGKILL (no clean-up at all), as a crash would.
    pub fn kill_hard(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts a new agent process on the same folders and settings.
    pub fn restart(mut self) -> Self {
        self.kill_hard();
        let dir = self.dir.clone();
        drop(self);
        Self::spawn_in(dir, &[])
    }

    /// Waits for the agent process to end by itself (a failpoint abort).
    pub fn wait_exit(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    fn spawn_in(dir: Arc<tempfile::TempDir>, env: &[(&str, &str)]) -> Self {
        let config = dir.path().join("agent.toml");
        let mut cmd = Command::new(binary());
        cmd.arg("agent")
            .arg("--config")
            .arg(&config)
            // A stray Wings config on the test machine must not leak in
            // (a test may name its own, below).
            .env("RESTIC_BACKUPS_AGENT_WINGS_CONFIG", "/dev/null")
            .envs(env.iter().copied());
        let (child, log, url) = spawn_service(cmd, "agent listening on ");
        TestAgent {
            dir,
            url,
            child,
            log,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()
                .unwrap(),
        }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Creates a server directory with a few files and returns its UUID.
    pub fn add_server(&self) -> String {
        let uuid = new_uuid();
        let dir = self.data_dir().join(&uuid);
        std::fs::create_dir_all(dir.join("world/region")).unwrap();
        std::fs::write(
            dir.join("server.properties"),
            "motd=A test server\nmax-players=20\n",
        )
        .unwrap();
        std::fs::write(dir.join("world/level.dat"), pseudo_random(1, 64 * 1024)).unwrap();
        std::fs::write(
            dir.join("world/region/r.0.0.mca"),
            pseudo_random(2, 256 * 1024),
        )
        .unwrap();
        uuid
    }

    pub fn backups_url(&self, server: &str) -> String {
        format!("{}/api/servers/{server}/backups/restic", self.url)
    }

    pub fn req(&self, method: reqwest::Method, url: &str, key: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, url)
            .bearer_auth(TOKEN)
            .header("X-Restic-Password", key)
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        url: &str,
        key: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut r = self.req(method, url, key);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let res = r.send().await.expect("request");
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, json)
    }

    /// Status and error code of a request expected to be refused.
    pub async fn refusal(
        &self,
        method: reqwest::Method,
        url: &str,
        key: &str,
        body: Option<Value>,
    ) -> (u16, String) {
        let (status, body) = self.call(method, url, key, body).await;
        let code = body["error"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("no error code in {body}"))
            .to_owned();
        (status, code)
    }

    pub async fn list(&self, server: &str, key: &str) -> Value {
        let (status, body) = self
            .call(
                reqwest::Method::GET,
                &format!("{}?limit=100", self.backups_url(server)),
                key,
                None,
            )
            .await;
        assert_eq!(status, 200, "list failed: {body}");
        body
    }

    /// Starts a backup and returns the job ID (asserting 202).
    pub async fn start_backup(&self, server: &str, key: &str, body: Value) -> String {
        let (status, res) = self
            .call(
                reqwest::Method::POST,
                &self.backups_url(server),
                key,
                Some(body),
            )
            .await;
        assert_eq!(status, 202, "backup not accepted: {res}");
        res["job_id"].as_str().unwrap().to_owned()
    }

    /// Polls a job until it finished and returns its final view.
    pub async fn wait_job(&self, server: &str, job: &str) -> Value {
        self.wait_job_within(server, job, Duration::from_secs(300))
            .await
    }

    /// [`TestAgent::wait_job`] with its own bound: a backup cut off from a
    /// remote store ends only when restic gave up retrying (minutes, by
    /// restic's and its S3 client's own backoff).
    pub async fn wait_job_within(&self, server: &str, job: &str, within: Duration) -> Value {
        let url = format!("{}/jobs/{job}", self.backups_url(server));
        let deadline = Instant::now() + within;
        loop {
            let (status, view) = self.call(reqwest::Method::GET, &url, "unused", None).await;
            assert_eq!(status, 200, "job lookup failed: {view}");
            if view["status"] == "succeeded" || view["status"] == "failed" {
                return view;
            }
            assert!(Instant::now() < deadline, "job did not finish: {view}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Runs a restore to the end (asserting it was accepted and succeeded)
    /// and returns the job's final view.
    pub async fn restore(&self, server: &str, key: &str, id: &str, body: Value) -> Value {
        let url = format!("{}/{id}/restore", self.backups_url(server));
        let (status, res) = self
            .call(reqwest::Method::POST, &url, key, Some(body))
            .await;
        assert_eq!(status, 202, "restore not accepted: {res}");
        let view = self.wait_job(server, res["job_id"].as_str().unwrap()).await;
        assert_eq!(view["status"], "succeeded", "restore failed: {view}");
        assert_eq!(view["kind"], "restore");
        view
    }

    /// Runs a backup to the end and returns the new snapshot's public ID.
    pub async fn backup(&self, server: &str, key: &str) -> String {
        let job = self.start_backup(server, key, serde_json::json!({})).await;
        let view = self.wait_job(server, &job).await;
        assert_eq!(view["status"], "succeeded", "backup failed: {view}");
        view["result"]["snapshot"]["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

impl TestAgent {
    /// Sends SIGTERM and returns at once (see [`TestAgent::wait_exit`]).
    pub fn terminate(&self) {
        signal(self.child.id(), rustix::process::Signal::TERM);
    }

    /// SIGTERM for a clean shutdown; true if the agent exited within `wait`.
    pub fn stop(&mut self, wait: Duration) -> bool {
        if let Ok(Some(_)) = self.child.try_wait() {
            return true;
        }
        signal(self.child.id(), rustix::process::Signal::TERM);
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for TestAgent {
    fn drop(&mut self) {
        if !self.stop(Duration::from_secs(5)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs the real restic on a repository directly, as an operator would.
pub fn restic(repo: &Path, key: &str, cwd: Option<&Path>, args: &[&str]) -> String {
    let mut cmd = Command::new("restic");
    cmd.env("RESTIC_REPOSITORY", repo)
        .env("RESTIC_PASSWORD", key)
        .arg("--no-cache")
        .args(args);
    if let Some(cwd) = cwd {
        cmd.current_dir(cwd);
    }
    let out = cmd.output().expect("run restic");
    assert!(
        out.status.success(),
        "restic {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A random v4-style UUID (no crate needed for tests).
/// Bytes of the files under `dir` (links not followed).
pub fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

pub fn new_uuid() -> String {
    let mut b = [0u8; 16];
    let f = std::fs::read("/proc/sys/kernel/random/uuid").unwrap();
    let s = String::from_utf8(f).unwrap();
    let hex: String = s.trim().chars().filter(|c| *c != '-').collect();
    for (i, byte) in b.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[i * 2..i * 2 + 2], 16).unwrap();
    }
    format!(
        "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
        b[0],
        b[1],
        b[2],
        b[3],
        b[4],
        b[5],
        b[6],
        b[7],
        b[8],
        b[9],
        b[10],
        b[11],
        b[12],
        b[13],
        b[14],
        b[15]
    )
}

/// Incompressible bytes from a seed (xorshift), fast enough for hundreds of MB.
pub fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Command lines of all processes, NUL separators turned into spaces.
pub fn all_cmdlines() -> Vec<(u32, String)> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            if let Ok(raw) = std::fs::read(e.path().join("cmdline")) {
                let text = String::from_utf8_lossy(&raw).replace('\0', " ");
                out.push((pid, text));
            }
        }
    }
    out
}

/// Environment of a process (as root in CI; empty if unreadable).
pub fn environ(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/environ"))
        .map(|raw| String::from_utf8_lossy(&raw).replace('\0', "\n"))
        .unwrap_or_default()
}

/// The member names `tar <flags> <archive>` lists (asserting tar succeeded).
pub fn tar_list(archive: &Path, flags: &[&str]) -> String {
    let out = Command::new("tar")
        .args(flags)
        .arg(archive)
        .output()
        .expect("tar runs");
    assert!(
        out.status.success(),
        "tar {flags:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A self-signed certificate for 127.0.0.1 and localhost (PEM cert, key).
pub fn make_cert(dir: &Path) -> (PathBuf, PathBuf) {
    make_cert_named(dir, "localhost", "IP:127.0.0.1,DNS:localhost")
}

/// A self-signed certificate with common name `cn` and the names `san`
/// (`DNS:node.example.com`, …), as `<cn>.pem` and `<cn>.key.pem`.
pub fn make_cert_named(dir: &Path, cn: &str, san: &str) -> (PathBuf, PathBuf) {
    let (cert, key) = if cn == "localhost" {
        (dir.join("cert.pem"), dir.join("key.pem"))
    } else {
        (
            dir.join(format!("{cn}.pem")),
            dir.join(format!("{cn}.key.pem")),
        )
    };
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
        ])
        .arg("-subj")
        .arg(format!("/CN={cn}"))
        .arg("-addext")
        .arg(format!("subjectAltName={san}"))
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl is installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}

/// Sends `sig` to process `pid` (if it is still there).
pub fn signal(pid: u32, sig: rustix::process::Signal) {
    if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process(pid, sig);
    }
}

/// One sample of a Prometheus text answer.
#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Parses Prometheus' text format (0.0.4) strictly: every sample belongs
/// to a family announced by `# TYPE`, label values are quoted and
/// unescaped, values are numbers. Panics on anything else.
pub fn parse_prometheus(text: &str) -> Vec<Sample> {
    let mut families: Vec<(String, String)> = Vec::new();
    let mut samples = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE line");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "unknown type in {line}"
            );
            families.push((name.to_owned(), kind.to_owned()));
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        assert!(!line.starts_with('#'), "stray comment: {line}");
        let (head, value) = line.rsplit_once(' ').expect("sample line");
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value in {line}")),
        };
        let (name, labels) = match head.split_once('{') {
            None => (head.to_owned(), BTreeMap::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').expect("closing brace");
                let mut labels = BTreeMap::new();
                let mut chars = body.chars().peekable();
                while chars.peek().is_some() {
                    let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
                    assert_eq!(chars.next(), Some('"'), "unquoted label in {line}");
                    let mut v = String::new();
                    loop {
                        match chars.next().expect("unterminated label") {
                            '\\' => match chars.next().expect("escape") {
                                'n' => v.push('\n'),
                                c => v.push(c),
                            },
                            '"' => break,
                            c => v.push(c),
                        }
                    }
                    labels.insert(key, v);
                    if chars.peek() == Some(&',') {
                        chars.next();
                    }
                }
                (name.to_owned(), labels)
            }
        };
        let known = families.iter().any(|(family, kind)| {
            name == *family
                || (kind == "histogram"
                    && ["_bucket", "_sum", "_count"]
                        .iter()
                        .any(|s| name.strip_suffix(s) == Some(family)))
        });
        assert!(known, "sample without a # TYPE: {line}");
        samples.push(Sample {
            name,
            labels,
            value,
        });
    }
    samples
}

/// The value of the sample `name` whose labels include `labels`.
pub fn sample(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
}

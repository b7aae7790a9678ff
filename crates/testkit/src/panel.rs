//! Panel harness: the real `restic-backups panel` on SQLite or on a fresh
//! PostgreSQL database, beside a real agent, seeded through the CLI (the
//! first admin) and the admin API (everything else). Every response body
//! is recorded, so tests can scan them for secrets.

use std::process::{Child, Command};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use super::{TOKEN, TestAgent, spawn_service};

pub const SECRET: &str = "panel-secret-key-for-http-tests-0123456789";
pub const ADMIN: &str = "admin@example.com";
pub const PASSWORD: &str = "correct horse battery";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

static DB_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The PostgreSQL server `TEST_DATABASE_URL` names.
pub fn postgres_admin_url() -> String {
    std::env::var("TEST_DATABASE_URL").expect(
        "TEST_DATABASE_URL must name a PostgreSQL server (./scripts/test starts one and sets it)",
    )
}

/// Runs one SQL statement with `psql` (asserting success); returns its output.
pub fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .arg(url)
        .arg("-qtAc")
        .arg(sql)
        .output()
        .expect("psql runs");
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A fresh PostgreSQL database on the server `TEST_DATABASE_URL` names.
pub fn fresh_postgres(prefix: &str) -> String {
    let admin_url = postgres_admin_url();
    let name = format!(
        "{prefix}_{}_{}",
        std::process::id(),
        DB_COUNTER.fetch_add(1, Ordering::SeqCst)
    );
    psql(&admin_url, &format!("DROP DATABASE IF EXISTS {name}"));
    psql(&admin_url, &format!("CREATE DATABASE {name}"));
    let base = admin_url.rsplit_once('/').unwrap().0;
    format!("{base}/{name}")
}

/// Runs an admin command of the binary against `config`, with `stdin` as
/// its input; returns success and stdout + stderr.
pub fn run_cli(config: &std::path::Path, args: &[&str], stdin: &str) -> (bool, String) {
    use std::io::Write;
    let mut child = Command::new(super::binary())
        .args(args)
        .arg("--config")
        .arg(config)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// Every response body the tests saw, with the path it came from.
pub type Seen = Arc<Mutex<Vec<(String, String)>>>;

pub struct TestPanel {
    pub dir: tempfile::TempDir,
    pub url: String,
    child: Child,
    log: Arc<Mutex<String>>,
    pub seen: Seen,
    pub db: Db,
}

impl TestPanel {
    /// Starts a panel and creates the root admin through the CLI.
    pub fn start(db: Db) -> Self {
        Self::start_with(db, &[])
    }

    /// The panel's process ID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Like [`TestPanel::start`], with extra TOML lines in its settings.
    pub fn start_with(db: Db, extra_toml: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let database_url = match db {
            Db::Sqlite => format!("sqlite://{}", dir.path().join("panel.db").display()),
            Db::Postgres => fresh_postgres("panel_http"),
        };
        std::fs::write(dir.path().join("secret"), SECRET).unwrap();
        let config = dir.path().join("panel.toml");
        std::fs::write(
            &config,
            format!(
                "listen = \"127.0.0.1:0\"\nstate_dir = \"{}\"\ndatabase_url = \"{database_url}\"\nsecret_key_file = \"{}\"\n",
                dir.path().join("state").display(),
                dir.path().join("secret").display()
            ) + &extra_toml.iter().map(|l| format!("{l}\n")).collect::<String>(),
        )
        .unwrap();
        let (ok, out) = run_cli(
            &config,
            &["user", "add", "--email", ADMIN, "--admin"],
            PASSWORD,
        );
        assert!(ok, "user add: {out}");
        let mut cmd = Command::new(super::binary());
        cmd.arg("panel").arg("--config").arg(&config);
        let (child, log, url) = spawn_service(cmd, "panel listening on ");
        TestPanel {
            dir,
            url,
            child,
            log,
            seen: Arc::new(Mutex::new(Vec::new())),
            db,
        }
    }

    /// Kills the panel as a crash would (SIGKILL, nothing finishes) and
    /// starts it again on the same settings and database; `url` changes.
    pub fn crash_and_restart(&mut self) {
        super::signal(self.child.id(), rustix::process::Signal::KILL);
        let _ = self.child.wait();
        let mut cmd = Command::new(super::binary());
        cmd.arg("panel")
            .arg("--config")
            .arg(self.dir.path().join("panel.toml"));
        let (child, log, url) = spawn_service(cmd, "panel listening on ");
        self.child = child;
        self.log = log;
        self.url = url;
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn anonymous(&self) -> Client {
        Client {
            base: self.url.clone(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(120))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookie: None,
            csrf: None,
            seen: self.seen.clone(),
            other_cookie: None,
        }
    }

    /// Logs in (asserting success).
    pub async fn login(&self, email: &str, password: &str) -> Client {
        let mut c = self.anonymous();
        let (status, body) = c
            .send(
                Method::POST,
                "/auth/login",
                Some(json!({"email": email, "password": password})),
            )
            .await;
        assert_eq!(status, 200, "login of {email} failed: {body}");
        c.csrf = Some(body["csrf_token"].as_str().unwrap().to_owned());
        c
    }

    pub async fn admin(&self) -> Client {
        self.login(ADMIN, PASSWORD).await
    }

    /// Registers `agent` as a node named `name`.
    pub async fn add_node(&self, admin: &Client, name: &str, agent: &TestAgent) {
        let (s, b) = admin
            .clone()
            .send(
                Method::POST,
                "/extensions/resticbackups/admin/nodes",
                Some(json!({"name": name, "url": agent.url, "token": TOKEN})),
            )
            .await;
        assert_eq!(s, 201, "{b}");
    }

    pub async fn add_user(&self, admin: &Client, email: &str) {
        let (s, b) = admin
            .clone()
            .send(
                Method::POST,
                "/extensions/resticbackups/admin/users",
                Some(json!({"email": email, "password": PASSWORD})),
            )
            .await;
        assert_eq!(s, 201, "{b}");
    }

    /// Adds a server (its directory must exist on the agent).
    pub async fn add_server(
        &self,
        admin: &Client,
        uuid: &str,
        owner: &str,
        node: &str,
        limit: i64,
    ) {
        let (s, b) = admin
            .clone()
            .send(
                Method::POST,
                "/extensions/resticbackups/admin/servers",
                Some(json!({"uuid": uuid, "name": format!("server {uuid}"), "owner": owner, "node": node, "backup_limit": limit})),
            )
            .await;
        assert_eq!(s, 201, "{b}");
    }

    pub async fn set_subuser(&self, admin: &Client, uuid: &str, email: &str, perms: &[&str]) {
        let (s, b) = admin
            .clone()
            .send(
                Method::PUT,
                &format!("/extensions/resticbackups/admin/servers/{uuid}/subusers"),
                Some(json!({"email": email, "permissions": perms})),
            )
            .await;
        assert_eq!(s, 204, "{b}");
    }

    /// The server keys as the admin keys page shows them.
    pub async fn keys(&self, admin: &Client) -> Vec<(String, String)> {
        let (s, b) = admin
            .clone()
            .send(Method::GET, "/extensions/resticbackups/admin/keys", None)
            .await;
        assert_eq!(s, 200, "{b}");
        b["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| {
                (
                    k["server"].as_str().unwrap().to_owned(),
                    k["key"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    /// One server's key as the admin keys page shows it.
    pub async fn key_of(&self, admin: &Client, server: &str) -> String {
        self.keys(admin)
            .await
            .into_iter()
            .find(|(u, _)| u == server)
            .unwrap_or_else(|| panic!("no key listed for {server}"))
            .1
    }
}

impl Drop for TestPanel {
    fn drop(&mut self) {
        super::signal(self.child.id(), rustix::process::Signal::TERM);
        for _ in 0..250 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One browser-like client: the session cookie and CSRF token it holds.
#[derive(Clone)]
pub struct Client {
    pub base: String,
    pub http: reqwest::Client,
    pub cookie: Option<String>,
    pub csrf: Option<String>,
    pub seen: Seen,
    /// Another cookie the browser holds for this host (`name=value`), e.g.
    /// Pterodactyl's session cookie.
    pub other_cookie: Option<String>,
}

impl Client {
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let mut r = self.http.request(method, format!("{}{path}", self.base));
        let cookies: Vec<String> = self
            .cookie
            .iter()
            .map(|c| format!("rb_session={c}"))
            .chain(self.other_cookie.clone())
            .collect();
        if !cookies.is_empty() {
            r = r.header("Cookie", cookies.join("; "));
        }
        r
    }

    /// Sends a request with the cookie and the CSRF header; keeps a new
    /// session cookie; returns status and JSON (or text) body.
    pub async fn send(&mut self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut r = self.request(method, path);
        if let Some(t) = &self.csrf {
            r = r.header("X-CSRF-Token", t);
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        self.finish(path, r).await
    }

    /// Like [`send`] for a prepared request.
    pub async fn finish(&mut self, path: &str, r: reqwest::RequestBuilder) -> (u16, Value) {
        let res = r.send().await.expect("request");
        let status = res.status().as_u16();
        for v in res.headers().get_all("set-cookie") {
            let v = v.to_str().unwrap();
            if let Some(rest) = v.strip_prefix("rb_session=") {
                let value = rest.split(';').next().unwrap();
                self.cookie = (!value.is_empty()).then(|| value.to_owned());
            }
        }
        let location = res
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_owned());
        let text = res.text().await.unwrap_or_default();
        self.seen
            .lock()
            .unwrap()
            .push((path.to_owned(), text.clone()));
        let json = if let Some(loc) = location.filter(|_| (300..400).contains(&status)) {
            json!({ "location": loc })
        } else if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, json)
    }

    pub async fn get(&mut self, path: &str) -> (u16, Value) {
        self.send(Method::GET, path, None).await
    }

    pub async fn post(&mut self, path: &str, body: Value) -> (u16, Value) {
        self.send(Method::POST, path, Some(body)).await
    }

    /// Deletes a server as an admin. The panel answers 204 when done at
    /// once, or 202 with a task while the node archives the repository:
    /// then this waits for the task and returns 202 with the task as it
    /// ended. Any other answer comes back as it was.
    pub async fn delete_server(&mut self, server: &str) -> (u16, Value) {
        let (s, v) = self
            .send(
                Method::DELETE,
                &format!("/extensions/resticbackups/admin/servers/{server}"),
                None,
            )
            .await;
        if s != 202 {
            return (s, v);
        }
        assert_eq!(v["kind"], "server_deletion", "{v}");
        assert_eq!(v["server"], server, "{v}");
        let path = format!(
            "/extensions/resticbackups/admin/tasks/{}",
            v["id"].as_str().unwrap()
        );
        for _ in 0..3000 {
            let (s, task) = self.get(&path).await;
            assert_eq!(s, 200, "task lookup: {task}");
            if task["status"] != "running" {
                return (202, task);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("the deletion of {server} did not end");
    }

    /// Polls a panel job until it finished.
    pub async fn wait_job(&mut self, server: &str, job: &str) -> Value {
        let path = format!("/extensions/resticbackups/servers/{server}/backups/restic/jobs/{job}");
        for _ in 0..3000 {
            let (s, view) = self.get(&path).await;
            assert_eq!(s, 200, "job lookup: {view}");
            if view["status"] == "succeeded" || view["status"] == "failed" {
                return view;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("job {job} did not finish");
    }

    /// Runs a backup to the end through the panel; returns the snapshot ID.
    pub async fn backup(&mut self, server: &str) -> String {
        let (s, b) = self
            .post(
                &format!("/extensions/resticbackups/servers/{server}/backups/restic"),
                json!({}),
            )
            .await;
        assert_eq!(s, 202, "{b}");
        let view = self.wait_job(server, b["job_id"].as_str().unwrap()).await;
        assert_eq!(view["status"], "succeeded", "{view}");
        view["result"]["snapshot"]["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

/// The usual stage: an agent, a panel on `db` with the agent as `node-1`,
/// `owner@example.com` owning `servers` servers (backup limit `limit`), and
/// the admin and the owner logged in.
pub struct World {
    pub agent: TestAgent,
    pub panel: TestPanel,
    pub admin: Client,
    pub owner: Client,
    pub servers: Vec<String>,
}

impl World {
    pub async fn new(db: Db, servers: usize, limit: i64) -> Self {
        Self::with_agent(db, TestAgent::start(), servers, limit).await
    }

    /// The same stage around an agent started with its own settings.
    pub async fn with_agent(db: Db, agent: TestAgent, servers: usize, limit: i64) -> Self {
        Self::with_settings(db, agent, servers, limit, &[]).await
    }

    /// The same stage, the panel with extra TOML lines in its settings.
    pub async fn with_settings(
        db: Db,
        agent: TestAgent,
        servers: usize,
        limit: i64,
        extra_toml: &[&str],
    ) -> Self {
        let panel = TestPanel::start_with(db, extra_toml);
        let admin = panel.admin().await;
        panel.add_node(&admin, "node-1", &agent).await;
        panel.add_user(&admin, "owner@example.com").await;
        let mut uuids = Vec::new();
        for _ in 0..servers {
            let s = agent.add_server();
            panel
                .add_server(&admin, &s, "owner@example.com", "node-1", limit)
                .await;
            uuids.push(s);
        }
        let owner = panel.login("owner@example.com", PASSWORD).await;
        World {
            agent,
            panel,
            admin,
            owner,
            servers: uuids,
        }
    }
}

impl World {
    /// A new user made a subuser of `server` with `perms`, logged in.
    pub async fn subuser(&self, server: &str, email: &str, perms: &[&str]) -> Client {
        self.panel.add_user(&self.admin, email).await;
        self.panel
            .set_subuser(&self.admin, server, email, perms)
            .await;
        self.panel.login(email, PASSWORD).await
    }
}

/// Runs each named `async fn(Db)` as a test on SQLite and on PostgreSQL
/// (modules `sqlite` and `postgres`).
#[macro_export]
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Db::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Db::Postgres).await
                }
            )*
        }
    };
}

//! Real remote stores for the off-site tests, each started per test on
//! private ports with its own folder and credentials: Garage (S3), Debian's
//! OpenSSH server (SFTP) and rclone's restic REST server. `scripts/test`
//! installs them; a missing one fails the test with what to install.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    S3,
    Sftp,
    Rest,
}

pub const ALL: [Kind; 3] = [Kind::S3, Kind::Sftp, Kind::Rest];

/// A running store.
pub struct TestStore {
    pub kind: Kind,
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
    /// Agent settings (TOML lines): `repository` and the credentials.
    pub agent_toml: Vec<String>,
    /// The secrets among them (for "never leaked" checks).
    pub secrets: Vec<String>,
    s3_keys: Option<(String, String)>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn need(bin: &str, package: &str) -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(bin))
            .find(|p| p.is_file())
    });
    let extra = [
        PathBuf::from("/usr/sbin").join(bin),
        dirs_home().join(".cargo/bin").join(bin),
    ];
    found
        .or_else(|| extra.into_iter().find(|p| p.is_file()))
        .unwrap_or_else(|| {
            panic!("{bin} is needed for this test: install {package} (scripts/test does)")
        })
}

fn dirs_home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/root".into())
}

fn wait_port(port: u16, what: &str, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited at start: {status}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not listen on port {port}");
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run command");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn random_hex(bytes: usize) -> String {
    super::pseudo_random(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            ^ u64::from(std::process::id()),
        bytes,
    )
    .iter()
    .map(|b| format!("{b:02x}"))
    .collect()
}

impl TestStore {
    pub fn start(kind: Kind) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut store = TestStore {
            kind,
            dir,
            port,
            child: None,
            agent_toml: Vec::new(),
            secrets: Vec::new(),
            s3_keys: None,
        };
        match kind {
            Kind::S3 => store.setup_garage(),
            Kind::Sftp => store.setup_sftp(),
            Kind::Rest => store.setup_rest(),
        }
        store
    }

    pub fn name(&self) -> &'static str {
        match self.kind {
            Kind::S3 => "s3",
            Kind::Sftp => "sftp",
            Kind::Rest => "rest",
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    // ---- REST: rclone serve restic ----------------------------------------

    fn setup_rest(&mut self) {
        std::fs::create_dir_all(self.path("data")).unwrap();
        let password = format!("rest-{}", random_hex(12));
        self.agent_toml = vec![
            format!(
                "repository = \"rest:http://127.0.0.1:{}/{{server_uuid}}\"",
                self.port
            ),
            "rest_username = \"node1\"".into(),
            format!("rest_password = \"{password}\""),
        ];
        self.secrets.push(password);
        self.launch();
    }

    // ---- SFTP: Debian's sshd, root with a throwaway key --------------------

    fn setup_sftp(&mut self) {
        std::fs::create_dir_all(self.path("data")).unwrap();
        std::fs::create_dir_all("/run/sshd").unwrap();
        for key in ["host_key", "user_key"] {
            run(Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(self.path(key)));
        }
        std::fs::copy(self.path("user_key.pub"), self.path("authorized_keys")).unwrap();
        let host_pub = std::fs::read_to_string(self.path("host_key.pub")).unwrap();
        std::fs::write(
            self.path("known_hosts"),
            format!("[127.0.0.1]:{} {host_pub}", self.port),
        )
        .unwrap();
        let d = self.dir.path().display();
        std::fs::write(
            self.path("sshd_config"),
            format!(
                "Port {}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\n\
                 AuthorizedKeysFile {d}/authorized_keys\nPermitRootLogin prohibit-password\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
                 StrictModes no\nSubsystem sftp internal-sftp\n",
                self.port
            ),
        )
        .unwrap();
        self.agent_toml = vec![
            format!(
                "repository = \"sftp://root@127.0.0.1:{}/{d}/data/{{server_uuid}}\"",
                self.port
            ),
            format!("sftp_key_file = \"{d}/user_key\""),
            format!("sftp_known_hosts_file = \"{d}/known_hosts\""),
        ];
        self.launch();
    }

    // ---- S3: Garage, one node ----------------------------------------------

    fn garage(&self) -> Command {
        let mut cmd = Command::new(need("garage", "garage (cargo install --locked garage)"));
        cmd.arg("-c").arg(self.path("garage.toml"));
        cmd
    }

    fn setup_garage(&mut self) {
        let rpc = free_port();
        let admin = free_port();
        let d = self.dir.path().display();
        std::fs::write(
            self.path("garage.toml"),
            format!(
                "metadata_dir = \"{d}/meta\"\ndata_dir = \"{d}/data\"\ndb_engine = \"sqlite\"\n\
                 replication_factor = 1\nrpc_bind_addr = \"127.0.0.1:{rpc}\"\n\
                 rpc_public_addr = \"127.0.0.1:{rpc}\"\nrpc_secret = \"{}\"\n\
                 [s3_api]\ns3_region = \"garage\"\napi_bind_addr = \"127.0.0.1:{}\"\n\
                 root_domain = \".s3.garage.localhost\"\n\
                 [admin]\napi_bind_addr = \"127.0.0.1:{admin}\"\n",
                random_hex(32),
                self.port
            ),
        )
        .unwrap();
        self.launch();
        // One node, one zone, all of it for data.
        let status = run(self.garage().args(["node", "id", "-q"]));
        let node = status.trim().split('@').next().unwrap().to_owned();
        run(self
            .garage()
            .args(["layout", "assign", "-z", "dc1", "-c", "1G", &node]));
        run(self.garage().args(["layout", "apply", "--version", "1"]));
        run(self.garage().args(["bucket", "create", "restic"]));
        let created = run(self.garage().args(["key", "create", "node1"]));
        let field = |name: &str| {
            created
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    (k.trim() == name).then(|| v.trim().to_owned())
                })
                .unwrap_or_else(|| panic!("no {name} in: {created}"))
        };
        let (id, secret) = (field("Key ID"), field("Secret key"));
        run(self.garage().args([
            "bucket", "allow", "--read", "--write", "--owner", "restic", "--key", "node1",
        ]));
        self.agent_toml = vec![
            format!(
                "repository = \"s3:http://127.0.0.1:{}/restic/node1/{{server_uuid}}\"",
                self.port
            ),
            format!("s3_access_key_id = \"{id}\""),
            format!("s3_secret_access_key = \"{secret}\""),
            "s3_region = \"garage\"".into(),
        ];
        self.secrets.push(secret.clone());
        self.s3_keys = Some((id, secret));
    }

    /// Caps the bucket (S3 only), to see a full store.
    pub fn set_quota(&self, max_size: &str) {
        run(self
            .garage()
            .args(["bucket", "set-quotas", "restic", "--max-size", max_size]));
    }

    // ---- process control ---------------------------------------------------

    fn launch(&mut self) {
        let mut cmd = match self.kind {
            Kind::Rest => {
                let password = self.secrets[0].clone();
                let mut c = Command::new(need("rclone", "rclone"));
                c.args(["serve", "restic"])
                    .arg(self.path("data"))
                    .args(["--addr", &format!("127.0.0.1:{}", self.port)])
                    .args(["--user", "node1", "--pass", &password]);
                c
            }
            Kind::Sftp => {
                let mut c = Command::new(need("sshd", "openssh-server"));
                c.arg("-D")
                    .arg("-f")
                    .arg(self.path("sshd_config"))
                    .arg("-E")
                    .arg(self.path("sshd.log"));
                c
            }
            Kind::S3 => {
                let mut c = self.garage();
                c.arg("server").env("RUST_LOG", "garage=warn");
                c
            }
        };
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.path("server.log")).unwrap())
            .spawn()
            .expect("start the store");
        wait_port(self.port, self.name(), &mut child);
        if self.kind == Kind::S3 {
            // The S3 port opens before the node is ready for requests.
            std::thread::sleep(Duration::from_millis(300));
        }
        self.child = Some(child);
    }

    /// Kills the store (as a crash or a cut network would) and waits.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // sshd's per-connection children outlive the listener: they go
            // first.
            for pid in descendants(child.id()) {
                super::signal(pid, rustix::process::Signal::KILL);
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and data.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    /// The repository string restic gets by hand (credentials included) and
    /// the environment it needs.
    pub fn restic_env(&self, server: &str) -> Vec<(String, String)> {
        let d = self.dir.path().display();
        match self.kind {
            Kind::Rest => vec![(
                "RESTIC_REPOSITORY".into(),
                format!(
                    "rest:http://node1:{}@127.0.0.1:{}/{server}/",
                    self.secrets[0], self.port
                ),
            )],
            Kind::Sftp => vec![(
                "RESTIC_REPOSITORY".into(),
                format!("sftp:root@127.0.0.1:{d}/data/{server}"),
            )],
            Kind::S3 => {
                let (id, secret) = self.s3_keys.clone().unwrap();
                vec![
                    (
                        "RESTIC_REPOSITORY".into(),
                        format!("s3:http://127.0.0.1:{}/restic/node1/{server}", self.port),
                    ),
                    ("AWS_ACCESS_KEY_ID".into(), id),
                    ("AWS_SECRET_ACCESS_KEY".into(), secret),
                    ("AWS_DEFAULT_REGION".into(), "garage".into()),
                ]
            }
        }
    }

    /// Runs the real restic on a server's remote repository by hand.
    pub fn restic(&self, server: &str, key: &str, cwd: Option<&Path>, args: &[&str]) -> String {
        let mut cmd = Command::new("restic");
        cmd.envs(self.restic_env(server))
            .env("RESTIC_PASSWORD", key)
            .arg("--no-cache");
        if self.kind == Kind::Sftp {
            let d = self.dir.path().display();
            cmd.arg("-o").arg(format!(
                "sftp.command=ssh -F /dev/null -i {d}/user_key -o IdentitiesOnly=yes -o BatchMode=yes \
                 -o UserKnownHostsFile={d}/known_hosts -p {} -l root -s 127.0.0.1 sftp",
                self.port
            ));
        }
        cmd.args(args);
        if let Some(cwd) = cwd {
            cmd.current_dir(cwd);
        }
        run(&mut cmd)
    }

    /// Agent settings that make this store the second copy (`copy_to`).
    pub fn copy_toml(&self) -> Vec<String> {
        self.agent_toml
            .iter()
            .map(|line| match line.strip_prefix("repository") {
                Some(rest) => format!("copy_to{rest}"),
                None => format!("copy_{line}"),
            })
            .collect()
    }

    /// Agent settings with another secret than the store's (a wrong one).
    pub fn agent_toml_with_wrong_secret(&self) -> Vec<String> {
        self.agent_toml
            .iter()
            .map(|line| {
                if line.starts_with("rest_password") {
                    "rest_password = \"not-the-password\"".into()
                } else if line.starts_with("s3_secret_access_key") {
                    format!("s3_secret_access_key = \"{}\"", "0".repeat(64))
                } else if line.starts_with("sftp_key_file") {
                    // The host's key is not authorised for login.
                    format!("sftp_key_file = \"{}\"", self.path("host_key").display())
                } else {
                    line.clone()
                }
            })
            .collect()
    }
}

/// Every process below `root` (children, their children, ...).
fn descendants(root: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // The fields after the command name (which may hold spaces).
        let Some(after) = stat.rsplit_once(')').map(|(_, a)| a) else {
            continue;
        };
        if let Some(ppid) = after.split_whitespace().nth(1).and_then(|p| p.parse().ok()) {
            parents.push((pid, ppid));
        }
    }
    let mut out = Vec::new();
    let mut todo = vec![root];
    while let Some(p) = todo.pop() {
        for (pid, _) in parents.iter().filter(|(_, pp)| *pp == p) {
            out.push(*pid);
            todo.push(*pid);
        }
    }
    out
}

impl Drop for TestStore {
    fn drop(&mut self) {
        self.stop();
    }
}

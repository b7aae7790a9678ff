//! What the benchmarks share: the agent binary started on a bench folder,
//! restic run directly as the baseline, and the table rows.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

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

/// The agent binary on `<root>/volumes` and `<root>/restic`, stopped with
/// SIGTERM when dropped.
pub struct Agent {
    child: Child,
    pub url: String,
}

impl Agent {
    pub fn start(root: &Path) -> Self {
        let config = root.join("agent.toml");
        let toml = format!(
            "listen = \"127.0.0.1:0\"\ntoken = \"{TOKEN}\"\ndata_dir = \"{}\"\nrepo_root = \"{}\"\n",
            root.join("volumes").display(),
            root.join("restic").display(),
        );
        std::fs::write(&config, toml).expect("write agent config");
        let mut child = Command::new(env!("CARGO_BIN_EXE_restic-backups"))
            .arg("agent")
            .arg("--config")
            .arg(&config)
            // Warnings only, plus the one line that tells the port.
            .env("RUST_LOG", "warn,agent::web=info")
            .env("RESTIC_BACKUPS_AGENT_WINGS_CONFIG", "/dev/null")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start restic-backups agent");
        let stderr = child.stderr.take().expect("agent stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                match line.split("agent listening on ").nth(1) {
                    Some(url) => {
                        let _ = tx.send(url.trim().to_owned());
                    }
                    None => eprintln!("agent: {line}"),
                }
            }
        });
        let mut agent = Agent {
            child,
            url: String::new(),
        };
        agent.url = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("agent did not start within 30 s (its log is above)");
        agent
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory now and at its peak (`VmRSS`, `VmHWM`), in bytes.
    pub fn rss(&self) -> (u64, u64) {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
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
}

impl Drop for Agent {
    fn drop(&mut self) {
        // SIGTERM for a clean shutdown, then wait for it to exit.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

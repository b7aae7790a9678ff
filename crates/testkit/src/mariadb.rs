//! The MariaDB server `TEST_MYSQL_URL` names (`mysql://user:password@host:port`,
//! an admin; `./scripts/test` starts one), driven through the `mariadb`
//! client with the password in its environment, never on its command line.

use std::io::Write;
use std::process::{Command, Stdio};

pub struct Maria {
    pub user: String,
    pub password: String,
    pub host: String,
    pub port: String,
}

impl Maria {
    pub fn from_env() -> Self {
        let url = std::env::var("TEST_MYSQL_URL").expect(
            "TEST_MYSQL_URL must name a MariaDB server (./scripts/test starts one and sets it)",
        );
        let rest = url.strip_prefix("mysql://").expect("a mysql:// URL");
        let (userinfo, hostport) = rest.trim_end_matches('/').rsplit_once('@').unwrap();
        let (user, password) = userinfo.split_once(':').unwrap();
        let (host, port) = hostport.split_once(':').unwrap();
        Maria {
            user: user.into(),
            password: password.into(),
            host: host.into(),
            port: port.into(),
        }
    }

    /// Runs `sql` (any number of statements, given on standard input) in
    /// `db`; returns what it printed, tab-separated without headers.
    pub fn sql(&self, db: Option<&str>, sql: &str) -> String {
        let mut cmd = Command::new("mariadb");
        cmd.args([
            "--no-defaults",
            "-N",
            "-B",
            "-h",
            &self.host,
            "-P",
            &self.port,
        ])
        .arg("-u")
        .arg(&self.user)
        .env("MYSQL_PWD", &self.password)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        if let Some(db) = db {
            cmd.arg(db);
        }
        let mut child = cmd.spawn().expect("the mariadb client runs");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(sql.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            sql.chars().take(300).collect::<String>(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

//! Agent settings: defaults, then Wings' `config.yml` (so the agent drops in
//! beside Wings), then the TOML file, then environment variables
//! (`RESTIC_BACKUPS_AGENT_<KEY>`). Secrets may come from a `_file` variant so
//! they never need to be on a command line.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use api::Secret;
use serde::Deserialize;
use settings::{Env, invalid, load_toml, read};

pub const ENV_PREFIX: &str = "RESTIC_BACKUPS_AGENT_";
const DEFAULT_WINGS_CONFIG: &str = "/etc/pterodactyl/config.yml";

pub use settings::SettingsError as ConfigError;

/// The agent's settings after all layers were applied.
#[derive(Clone)]
pub struct AgentConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// The node token the panel presents as `Authorization: Bearer …`.
    pub token: Secret,
    /// Where the token came from (for the settings summary; never the token).
    pub token_source: String,
    /// A token that reads `/metrics` only (the node token reads it too).
    pub metrics_token: Option<Secret>,
    /// How long a stop (SIGTERM) waits for running jobs before it
    /// interrupts them.
    pub shutdown_grace: Duration,
    /// Wings' `config.yml` that was read, if any.
    pub wings_file: Option<PathBuf>,
    /// Root of the server directories (`<data_dir>/<server uuid>`).
    pub data_dir: PathBuf,
    /// Root of the local repositories (`<repo_root>/<server uuid>`) and the
    /// default parent of the cache and state folders.
    pub repo_root: PathBuf,
    /// Where repositories live (`repository`: local folders or a remote
    /// store's template).
    pub store: crate::store::Store,
    /// Where a second copy of each repository goes (`copy_to`), if anywhere.
    pub copy: Option<crate::store::Store>,
    /// How old a remote repository's listing may be before a request lists
    /// the store again (`remote_recheck_secs`, 1–3600, default 30).
    pub remote_recheck: Duration,
    /// The restic binary.
    pub restic_bin: PathBuf,
    /// restic's cache (speeds up listing and statistics).
    pub cache_dir: PathBuf,
    /// The agent's own small state (snapshot sizes measured once).
    pub state_dir: PathBuf,
    /// TLS certificate and key (PEM); both or neither.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Jobs (backups, ...) running at once on this node.
    pub max_parallel_jobs: usize,
    /// Forgotten snapshots that make a `restic prune` due (else once a day).
    pub prune_after_forgets: u64,
    /// Bounds on the connections clients hold open.
    pub connections: settings::ConnectionLimits,
    /// `text` (default) or `json` log lines.
    pub log_format: settings::LogFormat,
    /// Downloads (`restic dump`s) running at once on this node; more get
    /// 429 with `Retry-After`.
    pub max_parallel_downloads: usize,
    /// How to reach Wings' local API to stop a game server around a
    /// restore; `None` without a Wings `config.yml` holding a token.
    pub wings: Option<WingsLink>,
    /// How long a restore waits for the stopped game server to be `offline`.
    pub restore_stop_timeout: Duration,
    /// After that time, kill the game server (else the restore is refused).
    pub restore_kill_after_timeout: bool,
}

/// Wings' local API, as the agent reaches it (see [`crate::wings`]).
#[derive(Clone)]
pub struct WingsLink {
    /// `http(s)://host:port`, no trailing slash.
    pub url: String,
    /// Wings' `token` from its `config.yml` (not `token_id`).
    pub token: Secret,
    pub trust: WingsTrust,
}

impl std::fmt::Debug for WingsLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WingsLink")
            .field("url", &self.url)
            .field("token", &self.token)
            .field("trust", &self.trust)
            .finish()
    }
}

impl WingsLink {
    /// A CA file only means something for HTTPS.
    fn checked(self) -> Result<Self, ConfigError> {
        if self.url.starts_with("http://")
            && matches!(self.trust, WingsTrust::Roots { ca_file: Some(_) })
        {
            return Err(invalid(
                "wings_ca_file",
                "Wings is reached over plain HTTP here: wings_ca_file needs an https:// wings_url",
            ));
        }
        Ok(self)
    }
}

/// Which certificates the agent accepts from Wings over HTTPS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WingsTrust {
    /// The usual checks (public roots, the name in `url`), plus an extra
    /// root CA when `wings_ca_file` is set.
    Roots { ca_file: Option<PathBuf> },
    /// Exactly the certificate Wings serves, read from `api.ssl.cert` of
    /// its `config.yml`, whatever names it holds: the default URL is
    /// `https://127.0.0.1:<port>`, which a certificate for the node's
    /// domain never names.
    Pinned { cert_file: PathBuf },
}

/// Bounds of `restore_stop_timeout` (seconds). Wings itself kills a server
/// whose stop takes 10 minutes (`environment/docker/power.go`
/// `WaitForStop`, called with `time.Minute*10` by `server/power.go`), so
/// the wait ends well before: a kill happens only if the admin allowed it.
const STOP_TIMEOUT_SECS: std::ops::RangeInclusive<u64> = 1..=540;
const DEFAULT_STOP_TIMEOUT_SECS: u64 = 60;
/// A stop waits this long for running jobs by default (ten minutes).
const DEFAULT_SHUTDOWN_GRACE_SECS: u64 = 600;
const MAX_SHUTDOWN_GRACE_SECS: u64 = 86_400;

impl AgentConfig {
    /// The effective settings as `(key, value)` lines, never a secret: what
    /// `config check` prints and the agent logs at start.
    pub fn summary(&self) -> Vec<(&'static str, String)> {
        let shown = |p: &Path| p.display().to_string();
        vec![
            ("listen", self.listen.to_string()),
            (
                "tls",
                if self.tls.is_some() { "on" } else { "off" }.to_owned(),
            ),
            ("token", self.token_source.clone()),
            (
                "metrics_token",
                if self.metrics_token.is_some() {
                    "set"
                } else {
                    "not set (the node token reads /metrics)"
                }
                .to_owned(),
            ),
            (
                "shutdown_grace",
                format!("{}s", self.shutdown_grace.as_secs()),
            ),
            ("data_dir", shown(&self.data_dir)),
            ("repository", self.store.shown()),
            ("repo_root", shown(&self.repo_root)),
            (
                "copy_to",
                self.copy.as_ref().map_or("none".to_owned(), |c| c.shown()),
            ),
            ("state_dir", shown(&self.state_dir)),
            ("cache_dir", shown(&self.cache_dir)),
            ("restic_bin", shown(&self.restic_bin)),
            (
                "wings_config",
                self.wings_file.as_deref().map_or("none".to_owned(), shown),
            ),
            (
                "wings",
                self.wings
                    .as_ref()
                    .map_or("not used".to_owned(), |w| w.url.clone()),
            ),
            ("max_parallel_jobs", self.max_parallel_jobs.to_string()),
            (
                "max_parallel_downloads",
                self.max_parallel_downloads.to_string(),
            ),
            (
                "log_format",
                format!("{:?}", self.log_format).to_lowercase(),
            ),
        ]
    }
}

impl std::fmt::Debug for AgentConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentConfig")
            .field("listen", &self.listen)
            .field("token", &self.token)
            .field("data_dir", &self.data_dir)
            .field("repo_root", &self.repo_root)
            .field("store", &self.store.shown())
            .field("copy", &self.copy.as_ref().map(|c| c.shown()))
            .field("remote_recheck", &self.remote_recheck)
            .field("restic_bin", &self.restic_bin)
            .field("cache_dir", &self.cache_dir)
            .field("state_dir", &self.state_dir)
            .field("tls", &self.tls)
            .field("max_parallel_jobs", &self.max_parallel_jobs)
            .field("prune_after_forgets", &self.prune_after_forgets)
            .field("connections", &self.connections)
            .field("log_format", &self.log_format)
            .field("max_parallel_downloads", &self.max_parallel_downloads)
            .field("wings", &self.wings)
            .field("restore_stop_timeout", &self.restore_stop_timeout)
            .field(
                "restore_kill_after_timeout",
                &self.restore_kill_after_timeout,
            )
            .finish()
    }
}

/// The TOML file; every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    log_format: Option<String>,
    listen: Option<String>,
    token: Option<String>,
    token_file: Option<PathBuf>,
    metrics_token: Option<String>,
    metrics_token_file: Option<PathBuf>,
    shutdown_grace: Option<u64>,
    data_dir: Option<PathBuf>,
    repo_root: Option<PathBuf>,
    repository: Option<String>,
    copy_to: Option<String>,
    copy_s3_access_key_id: Option<String>,
    copy_s3_secret_access_key: Option<String>,
    copy_s3_secret_access_key_file: Option<PathBuf>,
    copy_s3_region: Option<String>,
    copy_sftp_key_file: Option<PathBuf>,
    copy_sftp_known_hosts_file: Option<PathBuf>,
    copy_rest_username: Option<String>,
    copy_rest_password: Option<String>,
    copy_rest_password_file: Option<PathBuf>,
    remote_recheck_secs: Option<u64>,
    s3_access_key_id: Option<String>,
    s3_secret_access_key: Option<String>,
    s3_secret_access_key_file: Option<PathBuf>,
    s3_region: Option<String>,
    sftp_key_file: Option<PathBuf>,
    sftp_known_hosts_file: Option<PathBuf>,
    rest_username: Option<String>,
    rest_password: Option<String>,
    rest_password_file: Option<PathBuf>,
    restic_bin: Option<PathBuf>,
    cache_dir: Option<PathBuf>,
    state_dir: Option<PathBuf>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    max_parallel_jobs: Option<usize>,
    prune_after_forgets: Option<u64>,
    wings_config: Option<PathBuf>,
    max_parallel_downloads: Option<usize>,
    header_timeout_secs: Option<u64>,
    max_connections: Option<usize>,
    max_connections_per_address: Option<usize>,
    write_timeout_secs: Option<u64>,
    wings_url: Option<String>,
    wings_ca_file: Option<PathBuf>,
    restore_stop_timeout: Option<u64>,
    restore_kill_after_timeout: Option<bool>,
}

/// The part of Wings' `config.yml` the agent reuses.
#[derive(Debug, Default, Deserialize)]
struct WingsConfig {
    token: Option<String>,
    #[serde(default)]
    system: WingsSystem,
    #[serde(default)]
    api: WingsApi,
}

#[derive(Debug, Default, Deserialize)]
struct WingsSystem {
    data: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
struct WingsApi {
    /// Wings' default is `0.0.0.0` (`config/config.go` `ApiConfiguration`).
    host: Option<String>,
    /// Wings' default is 8080.
    port: Option<u16>,
    #[serde(default)]
    ssl: WingsSsl,
}

#[derive(Debug, Default, Deserialize)]
struct WingsSsl {
    #[serde(default)]
    enabled: bool,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
}

pub use settings::EnvLookup;

impl AgentConfig {
    /// Loads the settings: `file` is the TOML file (optional), `env` looks up
    /// environment variables.
    pub fn load(file: Option<&Path>, env: EnvLookup<'_>) -> Result<Self, ConfigError> {
        let mut f: FileConfig = load_toml(file)?;
        let env = Env::new(ENV_PREFIX, env);
        macro_rules! overlay {
            ($($field:ident),*) => {$(
                if let Some(v) = env.get(stringify!($field)) {
                    f.$field = Some(v.into());
                }
            )*};
        }
        overlay!(
            listen,
            token,
            token_file,
            metrics_token,
            metrics_token_file,
            data_dir,
            repo_root,
            restic_bin,
            cache_dir,
            state_dir,
            tls_cert,
            tls_key,
            wings_config,
            wings_url,
            wings_ca_file,
            repository,
            s3_access_key_id,
            s3_secret_access_key,
            s3_secret_access_key_file,
            s3_region,
            sftp_key_file,
            sftp_known_hosts_file,
            rest_username,
            rest_password,
            rest_password_file,
            copy_to,
            copy_s3_access_key_id,
            copy_s3_secret_access_key,
            copy_s3_secret_access_key_file,
            copy_s3_region,
            copy_sftp_key_file,
            copy_sftp_known_hosts_file,
            copy_rest_username,
            copy_rest_password,
            copy_rest_password_file
        );
        if let Some(n) = env.number("shutdown_grace")? {
            f.shutdown_grace = Some(n);
        }
        if let Some(n) = env.number("restore_stop_timeout")? {
            f.restore_stop_timeout = Some(n);
        }
        if let Some(v) = env.get("restore_kill_after_timeout") {
            f.restore_kill_after_timeout = Some(match v.as_str() {
                "true" | "1" | "yes" => true,
                "false" | "0" | "no" => false,
                _ => {
                    return Err(invalid(
                        "restore_kill_after_timeout",
                        "must be true or false",
                    ));
                }
            });
        }
        if let Some(n) = env.number("remote_recheck_secs")? {
            f.remote_recheck_secs = Some(n);
        }
        if let Some(n) = env.number("prune_after_forgets")? {
            f.prune_after_forgets = Some(n);
        }
        if let Some(n) = env.number("max_parallel_downloads")? {
            f.max_parallel_downloads = Some(n);
        }
        if let Some(n) = env.number("max_parallel_jobs")? {
            f.max_parallel_jobs = Some(n);
        }

        // Wings' file gives defaults only where nothing more specific was set.
        let wings_file = match &f.wings_config {
            Some(path) => Some(path.clone()),
            None if Path::new(DEFAULT_WINGS_CONFIG).is_file() => Some(DEFAULT_WINGS_CONFIG.into()),
            None => None,
        };
        let wings = match &wings_file {
            Some(path) => Some(read(path)?),
            None => None,
        };
        let wings: WingsConfig = match wings {
            Some(text) => serde_saphyr::from_str(&text).map_err(|e| ConfigError::Syntax {
                path: f
                    .wings_config
                    .clone()
                    .unwrap_or_else(|| DEFAULT_WINGS_CONFIG.into()),
                message: e.to_string(),
            })?,
            None => WingsConfig::default(),
        };

        let wings_token = match wings.token.clone() {
            Some(t) => settings::secret("token", Some(t), None)
                .map_err(|_| invalid("wings_config", "Wings' `token` is not a usable token"))?,
            None => None,
        };
        let token_source = match (&f.token_file, &f.token, &wings_file) {
            (Some(path), _, _) => format!("token_file {}", path.display()),
            (None, Some(_), _) => "the token setting".to_owned(),
            (None, None, Some(path)) => format!("Wings' token in {}", path.display()),
            (None, None, None) => "none".to_owned(),
        };
        let token = match settings::secret("token", f.token, f.token_file.as_deref())? {
            Some(t) => t,
            None => match wings_token.clone() {
                Some(t) => t,
                None => {
                    return Err(ConfigError::Missing(format!(
                        "no node token configured: set `token` or `token_file` (or {ENV_PREFIX}TOKEN / {ENV_PREFIX}TOKEN_FILE)"
                    )));
                }
            },
        };
        if token.expose().len() < 16 {
            return Err(invalid("token", "must be at least 16 characters"));
        }
        let metrics_token = settings::token(
            "metrics_token",
            f.metrics_token,
            f.metrics_token_file.as_deref(),
            16,
        )?;
        let shutdown_grace = f.shutdown_grace.unwrap_or(DEFAULT_SHUTDOWN_GRACE_SECS);
        if shutdown_grace > MAX_SHUTDOWN_GRACE_SECS {
            return Err(invalid(
                "shutdown_grace",
                format!("must be at most {MAX_SHUTDOWN_GRACE_SECS} seconds (a day)"),
            ));
        }

        let listen = f.listen.unwrap_or_else(|| "127.0.0.1:8090".to_owned());
        let listen: SocketAddr = listen
            .parse()
            .map_err(|_| invalid("listen", "must be an address such as 0.0.0.0:8090"))?;
        let repo_root = f
            .repo_root
            .unwrap_or_else(|| "/var/lib/pterodactyl/restic".into());
        let creds = crate::store::Credentials {
            s3_access_key_id: f.s3_access_key_id,
            s3_secret_access_key: settings::secret(
                "s3_secret_access_key",
                f.s3_secret_access_key,
                f.s3_secret_access_key_file.as_deref(),
            )?,
            s3_region: f.s3_region,
            sftp_key_file: f.sftp_key_file,
            sftp_known_hosts_file: f.sftp_known_hosts_file,
            rest_username: f.rest_username,
            rest_password: settings::secret(
                "rest_password",
                f.rest_password,
                f.rest_password_file.as_deref(),
            )?,
        };
        let store =
            crate::store::Store::parse("repository", f.repository.as_deref(), &repo_root, &creds)?;
        let copy = match f.copy_to.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(template) => {
                // The copy's own credentials, else the repository's.
                let copy_creds = crate::store::Credentials {
                    s3_access_key_id: f.copy_s3_access_key_id.or(creds.s3_access_key_id.clone()),
                    s3_secret_access_key: settings::secret(
                        "copy_s3_secret_access_key",
                        f.copy_s3_secret_access_key,
                        f.copy_s3_secret_access_key_file.as_deref(),
                    )?
                    .or(creds.s3_secret_access_key.clone()),
                    s3_region: f.copy_s3_region.or(creds.s3_region.clone()),
                    sftp_key_file: f.copy_sftp_key_file.or(creds.sftp_key_file.clone()),
                    sftp_known_hosts_file: f
                        .copy_sftp_known_hosts_file
                        .or(creds.sftp_known_hosts_file.clone()),
                    rest_username: f.copy_rest_username.or(creds.rest_username.clone()),
                    rest_password: settings::secret(
                        "copy_rest_password",
                        f.copy_rest_password,
                        f.copy_rest_password_file.as_deref(),
                    )?
                    .or(creds.rest_password.clone()),
                };
                let copy =
                    crate::store::Store::parse("copy_to", Some(template), &repo_root, &copy_creds)?;
                store.check_copy(&copy)?;
                Some(copy)
            }
        };
        let recheck = f.remote_recheck_secs.unwrap_or(30);
        if !(1..=3600).contains(&recheck) {
            return Err(invalid(
                "remote_recheck_secs",
                "must be between 1 and 3600 seconds",
            ));
        }
        let wings_link = wings_link(&wings, wings_token, f.wings_url.as_deref(), f.wings_ca_file)?;
        let stop_secs = f.restore_stop_timeout.unwrap_or(DEFAULT_STOP_TIMEOUT_SECS);
        if !STOP_TIMEOUT_SECS.contains(&stop_secs) {
            return Err(invalid(
                "restore_stop_timeout",
                format!(
                    "must be between {} and {} seconds (Wings itself kills a server whose stop takes 10 minutes; the wait ends before that)",
                    STOP_TIMEOUT_SECS.start(),
                    STOP_TIMEOUT_SECS.end()
                ),
            ));
        }
        let wings_tls = match (wings.api.ssl.enabled, wings.api.ssl.cert, wings.api.ssl.key) {
            (true, Some(c), Some(k)) => Some((c, k)),
            _ => None,
        };
        let tls = match (f.tls_cert, f.tls_key) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => wings_tls,
            _ => return Err(invalid("tls_cert", "tls_cert and tls_key go together")),
        };
        let max_parallel_jobs = f.max_parallel_jobs.unwrap_or(2);
        if max_parallel_jobs == 0 {
            return Err(invalid("max_parallel_jobs", "must be at least 1"));
        }
        let max_parallel_downloads = f.max_parallel_downloads.unwrap_or(4);
        if max_parallel_downloads == 0 {
            return Err(invalid("max_parallel_downloads", "must be at least 1"));
        }
        let log_format = settings::LogFormat::load(&env, f.log_format.as_deref())?;
        let connections = settings::ConnectionLimits::load(
            &env,
            f.header_timeout_secs,
            f.max_connections,
            f.max_connections_per_address,
            f.write_timeout_secs,
        )?;
        Ok(Self {
            listen,
            token,
            token_source,
            metrics_token,
            shutdown_grace: Duration::from_secs(shutdown_grace),
            wings_file,
            data_dir: f
                .data_dir
                .or(wings.system.data)
                .unwrap_or_else(|| "/var/lib/pterodactyl/volumes".into()),
            cache_dir: f.cache_dir.unwrap_or_else(|| repo_root.join(".cache")),
            state_dir: f.state_dir.unwrap_or_else(|| repo_root.join(".agent")),
            repo_root,
            store,
            copy,
            remote_recheck: Duration::from_secs(recheck),
            restic_bin: f.restic_bin.unwrap_or_else(|| "restic".into()),
            tls,
            max_parallel_jobs,
            prune_after_forgets: f.prune_after_forgets.unwrap_or(10).max(1),
            connections,
            log_format,
            max_parallel_downloads,
            wings: wings_link,
            restore_stop_timeout: Duration::from_secs(stop_secs),
            restore_kill_after_timeout: f.restore_kill_after_timeout.unwrap_or(false),
        })
    }
}

/// Where Wings' local API is and how to trust it: `wings_url`, else built
/// from `api.host`/`api.port`/`api.ssl.enabled` (a wildcard host means this
/// machine). Without Wings' token there is no link: the agent then runs
/// without Wings (no `config.yml`, or one without `token`).
fn wings_link(
    wings: &WingsConfig,
    token: Option<Secret>,
    url: Option<&str>,
    ca_file: Option<PathBuf>,
) -> Result<Option<WingsLink>, ConfigError> {
    let Some(token) = token else {
        if url.is_some() || ca_file.is_some() {
            return Err(invalid(
                "wings_url",
                "wings_url and wings_ca_file need Wings' config.yml (its `token`): set wings_config",
            ));
        }
        return Ok(None);
    };
    if let Some(url) = url {
        let link = WingsLink {
            url: checked_wings_url(url)?,
            token,
            trust: WingsTrust::Roots { ca_file },
        };
        return Ok(Some(link.checked()?));
    }
    let host = match wings.api.host.as_deref().map(str::trim) {
        None | Some("" | "0.0.0.0" | "::" | "[::]") => "127.0.0.1".to_owned(),
        Some(h) if h.contains(':') && !h.starts_with('[') => format!("[{h}]"),
        Some(h) => h.to_owned(),
    };
    let port = wings.api.port.unwrap_or(8080);
    let ssl = &wings.api.ssl;
    let (scheme, trust) = if ssl.enabled {
        if ca_file.is_some() {
            return Err(invalid(
                "wings_ca_file",
                "set wings_url too: without it the agent trusts exactly the certificate in Wings' api.ssl.cert",
            ));
        }
        let cert_file = ssl.cert.clone().ok_or_else(|| {
            invalid(
                "wings_url",
                "Wings' config.yml enables api.ssl without api.ssl.cert: set wings_url (and wings_ca_file)",
            )
        })?;
        ("https", WingsTrust::Pinned { cert_file })
    } else {
        ("http", WingsTrust::Roots { ca_file })
    };
    let url = checked_wings_url(&format!("{scheme}://{host}:{port}"))?;
    Ok(Some(WingsLink { url, token, trust }.checked()?))
}

/// An `http(s)://host[:port]` URL without credentials, path or query.
fn checked_wings_url(raw: &str) -> Result<String, ConfigError> {
    let bad = |why: &str| invalid("wings_url", format!("must be http(s)://host:port ({why})"));
    let url = reqwest::Url::parse(raw.trim()).map_err(|_| bad("not a URL"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("another scheme"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("credentials do not belong in it"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("no host"));
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(bad("no path or query"));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use settings::env_of;

    #[test]
    fn file_then_environment_override() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("agent.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9000\"\ntoken = \"file-token-0123456789\"\nrepo_root = \"/srv/restic\"\n",
        )
        .unwrap();
        let env = env_of(&[("RESTIC_BACKUPS_AGENT_LISTEN", "127.0.0.1:9001")]);
        let cfg = AgentConfig::load(Some(&file), &env).unwrap();
        assert_eq!(cfg.listen.port(), 9001);
        assert_eq!(cfg.token.expose(), "file-token-0123456789");
        assert_eq!(cfg.cache_dir, PathBuf::from("/srv/restic/.cache"));
        assert_eq!(cfg.max_parallel_jobs, 2);
        assert!(!format!("{cfg:?}").contains("file-token"));
    }

    #[test]
    fn token_file_and_wings_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "from-a-file-0123456789\n").unwrap();
        let wings = dir.path().join("config.yml");
        std::fs::write(
            &wings,
            "token: wings-token-0123456789\nsystem:\n  data: /srv/volumes\napi:\n  ssl:\n    enabled: true\n    cert: /c.pem\n    key: /k.pem\n",
        )
        .unwrap();
        let env = env_of(&[("RESTIC_BACKUPS_AGENT_WINGS_CONFIG", wings.to_str().unwrap())]);
        let cfg = AgentConfig::load(None, &env).unwrap();
        assert_eq!(cfg.token.expose(), "wings-token-0123456789");
        assert_eq!(cfg.data_dir, PathBuf::from("/srv/volumes"));
        assert_eq!(cfg.tls, Some(("/c.pem".into(), "/k.pem".into())));

        let env = env_of(&[
            ("RESTIC_BACKUPS_AGENT_WINGS_CONFIG", wings.to_str().unwrap()),
            ("RESTIC_BACKUPS_AGENT_TOKEN_FILE", token.to_str().unwrap()),
        ]);
        let cfg = AgentConfig::load(None, &env).unwrap();
        assert_eq!(cfg.token.expose(), "from-a-file-0123456789");
    }

    #[test]
    fn refuses_missing_short_or_odd_settings() {
        let none = env_of(&[]);
        let dir = tempfile::tempdir().unwrap();
        let missing_wings = dir.path().join("absent.yml");
        let env = env_of(&[(
            "RESTIC_BACKUPS_AGENT_WINGS_CONFIG",
            missing_wings.to_str().unwrap(),
        )]);
        assert!(matches!(
            AgentConfig::load(None, &env),
            Err(ConfigError::Read { .. })
        ));
        let file = dir.path().join("a.toml");
        std::fs::write(&file, "token = \"short\"\n").unwrap();
        assert!(AgentConfig::load(Some(&file), &none).is_err());
        std::fs::write(&file, "tokn = \"typo-typo-typo-typo\"\n").unwrap();
        assert!(matches!(
            AgentConfig::load(Some(&file), &none),
            Err(ConfigError::Syntax { .. })
        ));
        std::fs::write(
            &file,
            "token = \"long-enough-token-123\"\nlisten = \"nope\"\n",
        )
        .unwrap();
        assert!(AgentConfig::load(Some(&file), &none).is_err());
    }

    /// A Wings config.yml in a temp dir, and the environment naming it.
    fn with_wings(dir: &Path, yaml: &str) -> PathBuf {
        let path = dir.join("config.yml");
        std::fs::write(&path, yaml).unwrap();
        path
    }

    fn load_with(wings: &Path, extra: &[(&str, &str)]) -> Result<AgentConfig, ConfigError> {
        let mut pairs = vec![("RESTIC_BACKUPS_AGENT_WINGS_CONFIG", wings.to_str().unwrap())];
        pairs.extend_from_slice(extra);
        AgentConfig::load(None, &env_of(&pairs))
    }

    #[test]
    fn wings_url_comes_from_wings_api_settings() {
        let dir = tempfile::tempdir().unwrap();
        // Wings' defaults: 0.0.0.0:8080 without TLS.
        let wings = with_wings(
            dir.path(),
            "token: wings-token-0123456789
token_id: abc
",
        );
        let cfg = load_with(&wings, &[]).unwrap();
        let link = cfg.wings.clone().unwrap();
        assert_eq!(link.url, "http://127.0.0.1:8080");
        assert_eq!(link.token.expose(), "wings-token-0123456789");
        assert_eq!(link.trust, WingsTrust::Roots { ca_file: None });
        assert!(!format!("{cfg:?}").contains("wings-token"));
        assert_eq!(cfg.restore_stop_timeout, Duration::from_secs(60));
        assert!(!cfg.restore_kill_after_timeout);

        for (host, url) in [
            ("\"::\"", "http://127.0.0.1:9090"),
            ("0.0.0.0", "http://127.0.0.1:9090"),
            ("10.0.0.5", "http://10.0.0.5:9090"),
            ("\"fd00::1\"", "http://[fd00::1]:9090"),
        ] {
            let wings = with_wings(
                dir.path(),
                &format!("token: wings-token-0123456789\napi:\n  host: {host}\n  port: 9090\n"),
            );
            assert_eq!(
                load_with(&wings, &[]).unwrap().wings.unwrap().url,
                url,
                "{host}"
            );
        }

        // TLS: 127.0.0.1 with exactly Wings' own certificate trusted.
        let wings = with_wings(
            dir.path(),
            "token: wings-token-0123456789\napi:\n  ssl:\n    enabled: true\n    cert: /etc/le/fullchain.pem\n    key: /etc/le/privkey.pem\n",
        );
        let link = load_with(&wings, &[]).unwrap().wings.unwrap();
        assert_eq!(link.url, "https://127.0.0.1:8080");
        assert_eq!(
            link.trust,
            WingsTrust::Pinned {
                cert_file: "/etc/le/fullchain.pem".into()
            }
        );
        // An explicit URL gets the usual checks, with an extra CA if given.
        let link = load_with(
            &wings,
            &[
                (
                    "RESTIC_BACKUPS_AGENT_WINGS_URL",
                    "https://node1.example.com:8080/",
                ),
                ("RESTIC_BACKUPS_AGENT_WINGS_CA_FILE", "/etc/ca.pem"),
                ("RESTIC_BACKUPS_AGENT_RESTORE_STOP_TIMEOUT", "120"),
                ("RESTIC_BACKUPS_AGENT_RESTORE_KILL_AFTER_TIMEOUT", "true"),
            ],
        )
        .unwrap();
        assert_eq!(link.restore_stop_timeout, Duration::from_secs(120));
        assert!(link.restore_kill_after_timeout);
        let link = link.wings.unwrap();
        assert_eq!(link.url, "https://node1.example.com:8080");
        assert_eq!(
            link.trust,
            WingsTrust::Roots {
                ca_file: Some("/etc/ca.pem".into())
            }
        );
    }

    #[test]
    fn without_a_wings_token_there_is_no_wings_link() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.toml");
        std::fs::write(&file, "token = \"long-enough-token-123\"\n").unwrap();
        let wings = with_wings(dir.path(), "system:\n  data: /srv\n");
        let env = env_of(&[("RESTIC_BACKUPS_AGENT_WINGS_CONFIG", wings.to_str().unwrap())]);
        assert!(
            AgentConfig::load(Some(&file), &env)
                .unwrap()
                .wings
                .is_none()
        );
        // …and then a Wings URL has no token to go with it.
        let env = env_of(&[
            ("RESTIC_BACKUPS_AGENT_WINGS_CONFIG", wings.to_str().unwrap()),
            ("RESTIC_BACKUPS_AGENT_WINGS_URL", "http://127.0.0.1:8080"),
        ]);
        let err = AgentConfig::load(Some(&file), &env)
            .unwrap_err()
            .to_string();
        assert!(err.contains("wings_url"), "{err}");
    }

    #[test]
    fn degenerate_wings_and_restore_settings_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let wings = with_wings(dir.path(), "token: wings-token-0123456789\n");
        for (key, value, says) in [
            ("RESTORE_STOP_TIMEOUT", "0", "restore_stop_timeout"),
            ("RESTORE_STOP_TIMEOUT", "901", "restore_stop_timeout"),
            (
                "RESTORE_STOP_TIMEOUT",
                "18446744073709551616",
                "restore_stop_timeout",
            ),
            ("RESTORE_STOP_TIMEOUT", "-5", "restore_stop_timeout"),
            (
                "RESTORE_KILL_AFTER_TIMEOUT",
                "maybe",
                "restore_kill_after_timeout",
            ),
            ("WINGS_URL", "ftp://127.0.0.1:21", "wings_url"),
            ("WINGS_URL", "http://user:pw@127.0.0.1:8080", "wings_url"),
            ("WINGS_URL", "http://127.0.0.1:8080/api", "wings_url"),
            ("WINGS_URL", "http://127.0.0.1:8080/?x=1", "wings_url"),
            ("WINGS_URL", "127.0.0.1:8080", "wings_url"),
            ("WINGS_URL", "", "wings_url"),
        ] {
            let var = format!("RESTIC_BACKUPS_AGENT_{key}");
            let err = match load_with(&wings, &[(var.as_str(), value)]) {
                Ok(_) => panic!("{key}={value} was accepted"),
                Err(e) => e.to_string(),
            };
            assert!(err.contains(says), "{key}={value}: {err}");
            assert!(!err.contains("pw@"), "{err}");
        }
        // In the TOML file too, and unknown keys stay refused.
        let file = dir.path().join("a.toml");
        for (toml, says) in [
            ("restore_stop_timeout = 0", "restore_stop_timeout"),
            ("restore_stop_timeout = 100000", "restore_stop_timeout"),
            ("restore_kill_after_timeout = \"yes\"", "expected a boolean"),
            ("restore_stop_timeot = 5", "restore_stop_timeot"),
        ] {
            std::fs::write(&file, format!("{toml}\n")).unwrap();
            let env = env_of(&[("RESTIC_BACKUPS_AGENT_WINGS_CONFIG", wings.to_str().unwrap())]);
            let err = match AgentConfig::load(Some(&file), &env) {
                Ok(_) => panic!("{toml} was accepted"),
                Err(e) => e.to_string(),
            };
            assert!(err.contains(says), "{toml}: {err}");
        }
        // TLS without a certificate to trust, or a CA without a URL.
        let tls = with_wings(
            dir.path(),
            "token: wings-token-0123456789\napi:\n  ssl:\n    enabled: true\n",
        );
        assert!(load_with(&tls, &[]).is_err());
        assert!(
            load_with(
                &tls,
                &[(
                    "RESTIC_BACKUPS_AGENT_WINGS_URL",
                    "https://node.example.com:8080"
                )]
            )
            .is_ok()
        );
        let tls = with_wings(
            dir.path(),
            "token: wings-token-0123456789\napi:\n  ssl:\n    enabled: true\n    cert: /c.pem\n    key: /k.pem\n",
        );
        let err = load_with(&tls, &[("RESTIC_BACKUPS_AGENT_WINGS_CA_FILE", "/ca.pem")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("wings_ca_file"), "{err}");
        // A CA for a plain HTTP connection is a mistake.
        for extra in [
            vec![("RESTIC_BACKUPS_AGENT_WINGS_CA_FILE", "/ca.pem")],
            vec![
                ("RESTIC_BACKUPS_AGENT_WINGS_CA_FILE", "/ca.pem"),
                ("RESTIC_BACKUPS_AGENT_WINGS_URL", "http://10.0.0.5:8080"),
            ],
        ] {
            let err = load_with(&wings, &extra).unwrap_err().to_string();
            assert!(err.contains("wings_ca_file"), "{err}");
        }
    }
}

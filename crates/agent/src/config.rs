//! Agent settings: defaults, then Wings' `config.yml` (so the agent drops in
//! beside Wings), then the TOML file, then environment variables
//! (`RESTIC_BACKUPS_AGENT_<KEY>`). Secrets may come from a `_file` variant so
//! they never need to be on a command line.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

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
    /// Root of the server directories (`<data_dir>/<server uuid>`).
    pub data_dir: PathBuf,
    /// Root of the repositories (`<repo_root>/<server uuid>`).
    pub repo_root: PathBuf,
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
    /// Downloads (`restic dump`s) running at once on this node; more get
    /// 429 with `Retry-After`.
    pub max_parallel_downloads: usize,
}

impl std::fmt::Debug for AgentConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentConfig")
            .field("listen", &self.listen)
            .field("token", &self.token)
            .field("data_dir", &self.data_dir)
            .field("repo_root", &self.repo_root)
            .field("restic_bin", &self.restic_bin)
            .field("cache_dir", &self.cache_dir)
            .field("state_dir", &self.state_dir)
            .field("tls", &self.tls)
            .field("max_parallel_jobs", &self.max_parallel_jobs)
            .field("prune_after_forgets", &self.prune_after_forgets)
            .field("connections", &self.connections)
            .field("max_parallel_downloads", &self.max_parallel_downloads)
            .finish()
    }
}

/// The TOML file; every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    token: Option<String>,
    token_file: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    repo_root: Option<PathBuf>,
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
            data_dir,
            repo_root,
            restic_bin,
            cache_dir,
            state_dir,
            tls_cert,
            tls_key,
            wings_config
        );
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
        let wings = match &f.wings_config {
            Some(path) => Some(read(path)?),
            None if Path::new(DEFAULT_WINGS_CONFIG).is_file() => {
                Some(read(Path::new(DEFAULT_WINGS_CONFIG))?)
            }
            None => None,
        };
        let wings: WingsConfig = match wings {
            Some(text) => serde_yaml::from_str(&text).map_err(|e| ConfigError::Syntax {
                path: f
                    .wings_config
                    .clone()
                    .unwrap_or_else(|| DEFAULT_WINGS_CONFIG.into()),
                message: e.to_string(),
            })?,
            None => WingsConfig::default(),
        };

        let token = match settings::secret("token", f.token, f.token_file.as_deref())? {
            Some(t) => t,
            None => match wings.token {
                Some(t) => settings::secret("token", Some(t), None)?.expect("given inline"),
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

        let listen = f.listen.unwrap_or_else(|| "127.0.0.1:8090".to_owned());
        let listen: SocketAddr = listen
            .parse()
            .map_err(|_| invalid("listen", "must be an address such as 0.0.0.0:8090"))?;
        let repo_root = f
            .repo_root
            .unwrap_or_else(|| "/var/lib/pterodactyl/restic".into());
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
            data_dir: f
                .data_dir
                .or(wings.system.data)
                .unwrap_or_else(|| "/var/lib/pterodactyl/volumes".into()),
            cache_dir: f.cache_dir.unwrap_or_else(|| repo_root.join(".cache")),
            state_dir: f.state_dir.unwrap_or_else(|| repo_root.join(".agent")),
            repo_root,
            restic_bin: f.restic_bin.unwrap_or_else(|| "restic".into()),
            tls,
            max_parallel_jobs,
            prune_after_forgets: f.prune_after_forgets.unwrap_or(10).max(1),
            connections,
            max_parallel_downloads,
        })
    }
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
}

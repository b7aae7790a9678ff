//! Panel settings: defaults, then the TOML file, then environment variables
//! (`RESTIC_BACKUPS_PANEL_<KEY>`). The secret key may come from a file
//! (`secret_key_file`) so it never needs to be on a command line.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use api::Secret;
use serde::Deserialize;
use settings::{Env, invalid, load_toml};

pub const ENV_PREFIX: &str = "RESTIC_BACKUPS_PANEL_";

pub use settings::ConnectionLimits;
pub use settings::SettingsError as ConfigError;

/// The panel's settings after all layers were applied.
#[derive(Clone)]
pub struct PanelConfig {
    pub listen: SocketAddr,
    /// `sqlite://…` (default: `<state_dir>/panel.db`) or `postgres://…`.
    pub database_url: String,
    pub state_dir: PathBuf,
    /// Seals node tokens and server keys in the database.
    pub secret_key: Secret,
    pub session_idle: Duration,
    pub session_absolute: Duration,
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Run scheduled backups inside the panel (else use `schedule run-due`).
    pub scheduler: bool,
    /// Reverse proxies whose `X-Forwarded-For` is believed (addresses or
    /// CIDR ranges); empty: the peer address is the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Bounds on the connections clients hold open.
    pub connections: settings::ConnectionLimits,
}

impl std::fmt::Debug for PanelConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PanelConfig")
            .field("listen", &self.listen)
            .field(
                "database_url",
                &crate::storage::redact_url(&self.database_url),
            )
            .field("state_dir", &self.state_dir)
            .field("secret_key", &self.secret_key)
            .field("session_idle", &self.session_idle)
            .field("session_absolute", &self.session_absolute)
            .field("tls", &self.tls)
            .field("scheduler", &self.scheduler)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("connections", &self.connections)
            .finish()
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    database_url: Option<String>,
    state_dir: Option<PathBuf>,
    secret_key: Option<String>,
    secret_key_file: Option<PathBuf>,
    session_idle_minutes: Option<u64>,
    session_absolute_hours: Option<u64>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    scheduler: Option<bool>,
    trusted_proxies: Option<Vec<String>>,
    header_timeout_secs: Option<u64>,
    max_connections: Option<usize>,
    max_connections_per_address: Option<usize>,
    write_timeout_secs: Option<u64>,
}

impl PanelConfig {
    pub fn load(
        file: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
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
            database_url,
            state_dir,
            secret_key,
            secret_key_file,
            tls_cert,
            tls_key
        );
        for (key, field) in [
            ("session_idle_minutes", &mut f.session_idle_minutes),
            ("session_absolute_hours", &mut f.session_absolute_hours),
        ] {
            if let Some(n) = env.number::<u64>(key)? {
                *field = Some(n);
            }
            if *field == Some(0) {
                return Err(invalid(key, "must be a whole number above 0"));
            }
        }

        if let Some(v) = env.get("scheduler") {
            f.scheduler = Some(match v.as_str() {
                "true" | "1" | "yes" => true,
                "false" | "0" | "no" => false,
                _ => return Err(invalid("scheduler", "must be true or false")),
            });
        }
        if let Some(v) = env.get("trusted_proxies") {
            f.trusted_proxies = Some(v.split(',').map(|s| s.trim().to_owned()).collect());
        }
        let trusted_proxies = f
            .trusted_proxies
            .unwrap_or_default()
            .iter()
            .filter(|s| !s.is_empty())
            .map(|s| parse_net(s))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| {
                invalid(
                    "trusted_proxies",
                    "must be IP addresses or CIDR ranges such as 10.0.0.0/8",
                )
            })?;
        let connections = settings::ConnectionLimits::load(
            &env,
            f.header_timeout_secs,
            f.max_connections,
            f.max_connections_per_address,
            f.write_timeout_secs,
        )?;
        let secret_key = settings::secret("secret_key", f.secret_key, f.secret_key_file.as_deref())?
            .ok_or_else(|| {
                ConfigError::Missing(format!(
                    "no secret key configured: set `secret_key_file` (or {ENV_PREFIX}SECRET_KEY_FILE) to a file holding at least 32 random characters"
                ))
            })?;
        if secret_key.expose().len() < 32 {
            return Err(invalid("secret_key", "must be at least 32 characters"));
        }
        let state_dir = f
            .state_dir
            .unwrap_or_else(|| "/var/lib/restic-backups-panel".into());
        let database_url = f
            .database_url
            .unwrap_or_else(|| format!("sqlite://{}", state_dir.join("panel.db").display()));
        if !(database_url.starts_with("sqlite:")
            || database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://"))
        {
            return Err(invalid(
                "database_url",
                "must start with sqlite:// or postgres://",
            ));
        }
        let listen = f.listen.unwrap_or_else(|| "127.0.0.1:8080".to_owned());
        let listen = listen
            .parse()
            .map_err(|_| invalid("listen", "must be an address such as 0.0.0.0:8080"))?;
        let tls = match (f.tls_cert, f.tls_key) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => return Err(invalid("tls_cert", "tls_cert and tls_key go together")),
        };
        Ok(Self {
            listen,
            database_url,
            state_dir,
            secret_key,
            session_idle: Duration::from_secs(60 * f.session_idle_minutes.unwrap_or(120)),
            session_absolute: Duration::from_secs(3600 * f.session_absolute_hours.unwrap_or(24)),
            tls,
            scheduler: f.scheduler.unwrap_or(true),
            trusted_proxies,
            connections,
        })
    }
}

/// `10.0.0.0/8`, or a single address as its own range.
fn parse_net(raw: &str) -> Option<ipnet::IpNet> {
    raw.parse::<ipnet::IpNet>()
        .ok()
        .or_else(|| raw.parse::<std::net::IpAddr>().ok().map(ipnet::IpNet::from))
}

#[cfg(test)]
mod tests {
    use super::*;
    use settings::env_of;

    #[test]
    fn defaults_file_and_environment() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("secret");
        std::fs::write(&key, "0123456789abcdef0123456789abcdef\n").unwrap();
        let file = dir.path().join("panel.toml");
        std::fs::write(
            &file,
            format!(
                "secret_key_file = \"{}\"\nstate_dir = \"/srv/panel\"\n",
                key.display()
            ),
        )
        .unwrap();
        let cfg = PanelConfig::load(
            Some(&file),
            &env_of(&[("RESTIC_BACKUPS_PANEL_SESSION_IDLE_MINUTES", "30")]),
        )
        .unwrap();
        assert_eq!(cfg.database_url, "sqlite:///srv/panel/panel.db");
        assert_eq!(cfg.session_idle, Duration::from_secs(1800));
        assert_eq!(cfg.listen.port(), 8080);
        assert!(!format!("{cfg:?}").contains("0123456789abcdef"));

        let cfg = PanelConfig::load(
            Some(&file),
            &env_of(&[(
                "RESTIC_BACKUPS_PANEL_DATABASE_URL",
                "postgres://panel:pw@db/panel",
            )]),
        )
        .unwrap();
        assert!(format!("{cfg:?}").contains("postgres://panel:***@db/panel"));
    }

    #[test]
    fn refuses_missing_or_weak_secrets_and_odd_settings() {
        let none = env_of(&[]);
        assert!(matches!(
            PanelConfig::load(None, &none),
            Err(ConfigError::Missing(_))
        ));
        let weak = env_of(&[("RESTIC_BACKUPS_PANEL_SECRET_KEY", "short")]);
        assert!(PanelConfig::load(None, &weak).is_err());
        let good = "RESTIC_BACKUPS_PANEL_SECRET_KEY";
        let key = "0123456789abcdef0123456789abcdef";
        for (k, v) in [
            ("RESTIC_BACKUPS_PANEL_DATABASE_URL", "mysql://x"),
            ("RESTIC_BACKUPS_PANEL_LISTEN", "nowhere"),
            ("RESTIC_BACKUPS_PANEL_SESSION_ABSOLUTE_HOURS", "0"),
        ] {
            assert!(
                PanelConfig::load(None, &env_of(&[(good, key), (k, v)])).is_err(),
                "{k}={v}"
            );
        }
    }
}

//! Panel settings: defaults, then the TOML file, then environment variables
//! (`RESTIC_BACKUPS_PANEL_<KEY>`). The secret key may come from a file
//! (`secret_key_file`) so it never needs to be on a command line.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use api::Secret;
use serde::Deserialize;
use thiserror::Error;

pub const ENV_PREFIX: &str = "RESTIC_BACKUPS_PANEL_";

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("could not read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not valid: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("setting {key}: {message}")]
    Invalid { key: String, message: String },
    #[error(
        "no secret key configured: set `secret_key_file` (or {ENV_PREFIX}SECRET_KEY_FILE) to a file holding at least 32 random characters"
    )]
    MissingSecret,
}

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
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })
}

fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_owned(),
        message: message.into(),
    }
}

fn number(key: &str, raw: String) -> Result<u64, ConfigError> {
    raw.parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| invalid(key, "must be a whole number above 0"))
}

impl PanelConfig {
    pub fn load(
        file: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut f: FileConfig = match file {
            Some(path) => toml::from_str(&read(path)?).map_err(|e| ConfigError::Syntax {
                path: path.to_owned(),
                message: e.message().to_owned(),
            })?,
            None => FileConfig::default(),
        };
        let var = |key: &str| env(&format!("{ENV_PREFIX}{}", key.to_ascii_uppercase()));
        if let Some(v) = var("listen") {
            f.listen = Some(v);
        }
        if let Some(v) = var("database_url") {
            f.database_url = Some(v);
        }
        if let Some(v) = var("state_dir") {
            f.state_dir = Some(v.into());
        }
        if let Some(v) = var("secret_key") {
            f.secret_key = Some(v);
        }
        if let Some(v) = var("secret_key_file") {
            f.secret_key_file = Some(v.into());
        }
        if let Some(v) = var("session_idle_minutes") {
            f.session_idle_minutes = Some(number("session_idle_minutes", v)?);
        }
        if let Some(v) = var("session_absolute_hours") {
            f.session_absolute_hours = Some(number("session_absolute_hours", v)?);
        }
        if let Some(v) = var("tls_cert") {
            f.tls_cert = Some(v.into());
        }
        if let Some(v) = var("tls_key") {
            f.tls_key = Some(v.into());
        }

        let secret = match (f.secret_key, f.secret_key_file) {
            (Some(s), _) => s,
            (None, Some(path)) => read(&path)?.trim_end_matches(['\n', '\r']).to_owned(),
            (None, None) => return Err(ConfigError::MissingSecret),
        };
        let secret_key = Secret::new(secret).map_err(|e| invalid("secret_key", e.to_string()))?;
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
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

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
            Err(ConfigError::MissingSecret)
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

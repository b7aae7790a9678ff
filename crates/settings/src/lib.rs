//! The settings layering the agent and the panel share: a TOML file, then
//! environment variables with a prefix, and secrets that may come from a file
//! so they never need to be on a command line. Each side keeps its own keys
//! and defaults; this crate only holds the mechanics and the error type.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use api::Secret;
use serde::de::DeserializeOwned;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum SettingsError {
    #[error("could not read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not valid: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("setting {key}: {message}")]
    Invalid { key: String, message: String },
    /// A required setting is absent; the message says how to give it.
    #[error("{0}")]
    Missing(String),
}

pub type Result<T> = std::result::Result<T, SettingsError>;

/// Where environment values come from; a closure so tests need not touch the
/// process environment.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

pub fn invalid(key: &str, message: impl Into<String>) -> SettingsError {
    SettingsError::Invalid {
        key: key.to_owned(),
        message: message.into(),
    }
}

pub fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| SettingsError::Read {
        path: path.to_owned(),
        source,
    })
}

/// The TOML file's settings, or all defaults without a file.
pub fn load_toml<T: DeserializeOwned + Default>(file: Option<&Path>) -> Result<T> {
    match file {
        Some(path) => toml::from_str(&read(path)?).map_err(|e| SettingsError::Syntax {
            path: path.to_owned(),
            message: e.message().to_owned(),
        }),
        None => Ok(T::default()),
    }
}

/// Environment variables named `<prefix><KEY>`.
pub struct Env<'a> {
    prefix: &'static str,
    lookup: EnvLookup<'a>,
}

impl<'a> Env<'a> {
    pub fn new(prefix: &'static str, lookup: EnvLookup<'a>) -> Self {
        Self { prefix, lookup }
    }

    pub fn get(&self, key: &str) -> Option<String> {
        (self.lookup)(&format!("{}{}", self.prefix, key.to_ascii_uppercase()))
    }

    /// A number, if the variable is set.
    pub fn number<N: FromStr>(&self, key: &str) -> Result<Option<N>> {
        self.get(key)
            .map(|v| {
                v.parse()
                    .map_err(|_| invalid(key, "must be a whole number"))
            })
            .transpose()
    }
}

/// A secret given inline (wins) or in a file (its line end dropped).
pub fn secret(key: &str, inline: Option<String>, file: Option<&Path>) -> Result<Option<Secret>> {
    let raw = match (inline, file) {
        (Some(v), _) => v,
        (None, Some(path)) => read(path)?,
        (None, None) => return Ok(None),
    };
    Secret::new(raw.trim_end_matches(['\n', '\r']).to_owned())
        .map(Some)
        .map_err(|e| invalid(key, e.to_string()))
}

/// A bearer token from `<key>` or `<key>_file` that, when set, must have
/// at least `min_len` characters.
pub fn token(
    key: &str,
    inline: Option<String>,
    file: Option<&Path>,
    min_len: usize,
) -> Result<Option<Secret>> {
    let token = secret(key, inline, file)?;
    if token.as_ref().is_some_and(|t| t.expose().len() < min_len) {
        return Err(invalid(
            key,
            format!("must be at least {min_len} characters"),
        ));
    }
    Ok(token)
}

/// An environment made of fixed pairs (tests, embedding).
/// How log lines are written (`log_format` in both settings files).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// One human-readable line per event (the default).
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

impl LogFormat {
    /// The file's value, overridden by the environment's `LOG_FORMAT`.
    pub fn load(env: &Env<'_>, file: Option<&str>) -> Result<Self> {
        match env.get("log_format").as_deref().or(file) {
            None | Some("text") => Ok(LogFormat::Text),
            Some("json") => Ok(LogFormat::Json),
            Some(_) => Err(invalid("log_format", "must be \"text\" or \"json\"")),
        }
    }
}

/// How a web server bounds the connections clients hold open (the keys
/// `header_timeout_secs`, `max_connections`, `max_connections_per_address`
/// in both settings files).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    pub header_timeout: std::time::Duration,
    pub max_connections: usize,
    /// 0: no per-address limit.
    pub max_connections_per_address: usize,
    /// A write to a client that makes no progress this long ends the
    /// connection.
    pub write_timeout: std::time::Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_timeout: std::time::Duration::from_secs(10),
            max_connections: 4096,
            max_connections_per_address: 64,
            write_timeout: std::time::Duration::from_secs(60),
        }
    }
}

impl ConnectionLimits {
    /// The file's values, overridden by the environment, else the defaults
    /// (10 s, 4096, 64). A timeout or total of 0 is refused.
    pub fn load(
        env: &Env<'_>,
        header_timeout_secs: Option<u64>,
        max_connections: Option<usize>,
        max_connections_per_address: Option<usize>,
        write_timeout_secs: Option<u64>,
    ) -> Result<Self> {
        let d = Self::default();
        let timeout = env
            .number("header_timeout_secs")?
            .or(header_timeout_secs)
            .unwrap_or(d.header_timeout.as_secs());
        let total = env
            .number("max_connections")?
            .or(max_connections)
            .unwrap_or(d.max_connections);
        let per = env
            .number("max_connections_per_address")?
            .or(max_connections_per_address)
            .unwrap_or(d.max_connections_per_address);
        let write = env
            .number("write_timeout_secs")?
            .or(write_timeout_secs)
            .unwrap_or(d.write_timeout.as_secs());
        if !(1..=3600).contains(&write) {
            return Err(invalid("write_timeout_secs", "must be from 1 to 3600"));
        }
        if !(1..=3600).contains(&timeout) {
            return Err(invalid("header_timeout_secs", "must be from 1 to 3600"));
        }
        if total == 0 {
            return Err(invalid("max_connections", "must be above 0"));
        }
        Ok(Self {
            header_timeout: std::time::Duration::from_secs(timeout),
            max_connections: total,
            max_connections_per_address: per,
            write_timeout: std::time::Duration::from_secs(write),
        })
    }
}

pub fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| map.get(k).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        a: Option<u32>,
    }

    #[test]
    fn file_env_and_secrets() {
        let dir = std::env::temp_dir().join(format!("settings-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("s.toml");
        std::fs::write(&f, "a = 3\n").unwrap();
        assert_eq!(load_toml::<File>(Some(&f)).unwrap().a, Some(3));
        std::fs::write(&f, "b = 3\n").unwrap();
        assert!(matches!(
            load_toml::<File>(Some(&f)),
            Err(SettingsError::Syntax { .. })
        ));
        assert!(load_toml::<File>(None).unwrap().a.is_none());

        let lookup = env_of(&[("X_N", "12"), ("X_BAD", "twelve")]);
        let env = Env::new("X_", &lookup);
        assert_eq!(env.number::<u32>("n").unwrap(), Some(12));
        assert!(env.number::<u32>("bad").is_err());
        assert_eq!(env.number::<u32>("absent").unwrap(), None);

        let sf = dir.join("secret");
        std::fs::write(&sf, "from-file\n").unwrap();
        assert_eq!(
            secret("k", None, Some(&sf)).unwrap().unwrap().expose(),
            "from-file"
        );
        assert_eq!(
            secret("k", Some("inline".into()), Some(&sf))
                .unwrap()
                .unwrap()
                .expose(),
            "inline"
        );
        assert!(secret("k", None, None).unwrap().is_none());
        assert!(matches!(
            secret("k", None, Some(&dir.join("nope"))),
            Err(SettingsError::Read { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

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
    /// A bearer token that reads `/metrics` only (root admins' sessions
    /// read it too).
    pub metrics_token: Option<Secret>,
    pub session_idle: Duration,
    pub session_absolute: Duration,
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Run scheduled backups inside the panel (else use `schedule run-due`).
    pub scheduler: bool,
    /// Audit entries older than this many days are removed (0: never).
    pub audit_retention_days: u32,
    /// Reverse proxies whose `X-Forwarded-For` is believed (addresses or
    /// CIDR ranges); empty: the peer address is the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Bounds on the connections clients hold open.
    pub connections: settings::ConnectionLimits,
    /// `text` (default) or `json` log lines.
    pub log_format: settings::LogFormat,
    /// The path every page, asset, API route and cookie lives under
    /// (`/` or, e.g., `/extensions/resticbackups`, without a trailing `/`).
    pub base_path: String,
    /// Pterodactyl mode: users, nodes, servers and permissions come from
    /// this Pterodactyl install.
    pub pterodactyl: Option<PterodactylConfig>,
    /// `[smtp]`: how e-mail notifications leave; `None`: e-mail channels
    /// can not be added.
    pub smtp: Option<SmtpConfig>,
    /// A failed notification is tried again after this long, then 4×
    /// longer each time (at most 6 h), 6 attempts in all.
    pub notify_retry: Duration,
    /// The hosts a server owner's own webhook may point at.
    pub owner_webhook_hosts: Vec<String>,
}

/// Discord's webhook hosts: where owners' own webhooks may point by default.
pub const DEFAULT_OWNER_WEBHOOK_HOSTS: &[&str] = &[
    "discord.com",
    "discordapp.com",
    "ptb.discord.com",
    "canary.discord.com",
];

/// How the panel's e-mail leaves (`[smtp]`).
#[derive(Clone)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// `Backups <backups@example.com>`.
    pub from: String,
}

impl std::fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "set"))
            .field("from", &self.from)
            .finish()
    }
}

/// `[smtp] security`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// Plain connection upgraded with STARTTLS (port 587); the default.
    Starttls,
    /// TLS from the start (port 465).
    Tls,
    /// No encryption: only for a relay on this machine.
    None,
}

/// `[pterodactyl]`: where Pterodactyl is and how to read it.
#[derive(Clone)]
pub struct PterodactylConfig {
    /// Pterodactyl's own URL, e.g. `https://panel.example.com`.
    pub url: String,
    /// An Application API key (`ptla_…`) of a root admin, read-only use.
    pub application_key: Secret,
    /// How often users, nodes, servers and subusers are synced.
    pub sync_interval: Duration,
    /// The port of the agent beside Wings on every node.
    pub agent_port: u16,
    /// What a Pterodactyl backup limit of 0 means here.
    pub zero_backup_limit: ZeroBackupLimit,
    /// The name of Pterodactyl's session cookie (its `SESSION_COOKIE`).
    pub session_cookie: String,
    /// The token every node's agent takes, instead of each node's Wings
    /// token (which also controls Wings itself).
    pub agent_token: Option<Secret>,
}

impl std::fmt::Debug for PterodactylConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PterodactylConfig")
            .field("url", &self.url)
            .field("application_key", &self.application_key)
            .field("sync_interval", &self.sync_interval)
            .field("agent_port", &self.agent_port)
            .field("zero_backup_limit", &self.zero_backup_limit)
            .field("session_cookie", &self.session_cookie)
            .field("agent_token", &self.agent_token)
            .finish()
    }
}

/// What a Pterodactyl backup limit of 0 means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZeroBackupLimit {
    /// No limit (the PHP extension's behaviour).
    Unlimited,
    /// No backups for that server.
    Disabled,
}

impl PanelConfig {
    /// The effective settings as `(key, value)` lines, never a secret (the
    /// database URL without its password): what `config check` prints.
    pub fn summary(&self) -> Vec<(&'static str, String)> {
        vec![
            ("listen", self.listen.to_string()),
            (
                "tls",
                if self.tls.is_some() { "on" } else { "off" }.to_owned(),
            ),
            (
                "base_path",
                if self.base_path.is_empty() {
                    "/".to_owned()
                } else {
                    self.base_path.clone()
                },
            ),
            (
                "database_url",
                crate::storage::redact_url(&self.database_url),
            ),
            ("state_dir", self.state_dir.display().to_string()),
            ("secret_key", "set".to_owned()),
            (
                "metrics_token",
                if self.metrics_token.is_some() {
                    "set"
                } else {
                    "not set (root admins' sessions read /metrics)"
                }
                .to_owned(),
            ),
            (
                "scheduler",
                if self.scheduler { "on" } else { "off" }.to_owned(),
            ),
            (
                "audit_retention_days",
                match self.audit_retention_days {
                    0 => "0 (kept forever)".to_owned(),
                    n => n.to_string(),
                },
            ),
            ("trusted_proxies", self.trusted_proxies.len().to_string()),
            (
                "pterodactyl",
                self.pterodactyl
                    .as_ref()
                    .map_or("off".to_owned(), |p| p.url.clone()),
            ),
            (
                "pterodactyl.agent_token",
                match &self.pterodactyl {
                    None => "-".to_owned(),
                    Some(p) if p.agent_token.is_some() => {
                        "set (agents take their own token)".to_owned()
                    }
                    Some(_) => "not set (agents take each node's Wings token)".to_owned(),
                },
            ),
            (
                "smtp",
                self.smtp
                    .as_ref()
                    .map_or("off (no e-mail channels)".to_owned(), |m| {
                        format!("{}:{} ({:?}) from {}", m.host, m.port, m.security, m.from)
                            .to_lowercase()
                    }),
            ),
            ("notify_retry_secs", self.notify_retry.as_secs().to_string()),
            ("owner_webhook_hosts", self.owner_webhook_hosts.join(", ")),
            (
                "log_format",
                format!("{:?}", self.log_format).to_lowercase(),
            ),
        ]
    }
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
            .field("log_format", &self.log_format)
            .field("base_path", &self.base_path)
            .field("pterodactyl", &self.pterodactyl)
            .field("smtp", &self.smtp)
            .field("notify_retry", &self.notify_retry)
            .field("owner_webhook_hosts", &self.owner_webhook_hosts)
            .finish()
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    log_format: Option<String>,
    listen: Option<String>,
    database_url: Option<String>,
    state_dir: Option<PathBuf>,
    secret_key: Option<String>,
    secret_key_file: Option<PathBuf>,
    metrics_token: Option<String>,
    metrics_token_file: Option<PathBuf>,
    session_idle_minutes: Option<u64>,
    session_absolute_hours: Option<u64>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    scheduler: Option<bool>,
    audit_retention_days: Option<u32>,
    trusted_proxies: Option<Vec<String>>,
    header_timeout_secs: Option<u64>,
    max_connections: Option<usize>,
    max_connections_per_address: Option<usize>,
    write_timeout_secs: Option<u64>,
    base_path: Option<String>,
    pterodactyl: Option<FilePterodactyl>,
    smtp: Option<FileSmtp>,
    notify_retry_secs: Option<u64>,
    owner_webhook_hosts: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSmtp {
    host: Option<String>,
    port: Option<u16>,
    security: Option<String>,
    username: Option<String>,
    password: Option<String>,
    password_file: Option<PathBuf>,
    from: Option<String>,
}

/// `[smtp]` checked; `None` without a host.
fn smtp(file: Option<FileSmtp>, env: &Env<'_>) -> Result<Option<SmtpConfig>, ConfigError> {
    let mut f = file.unwrap_or_default();
    for (key, field) in [
        ("smtp_host", &mut f.host),
        ("smtp_security", &mut f.security),
        ("smtp_username", &mut f.username),
        ("smtp_password", &mut f.password),
        ("smtp_from", &mut f.from),
    ] {
        if let Some(v) = env.get(key) {
            *field = Some(v);
        }
    }
    if let Some(v) = env.get("smtp_password_file") {
        f.password_file = Some(v.into());
    }
    if let Some(port) = env.number::<u16>("smtp_port")? {
        f.port = Some(port);
    }
    let Some(host) = f.host.filter(|h| !h.trim().is_empty()) else {
        if f.from.is_some() || f.username.is_some() || f.port.is_some() {
            return Err(invalid(
                "smtp.host",
                "is needed for the other [smtp] settings",
            ));
        }
        return Ok(None);
    };
    if host.contains(['/', ' ', '@']) {
        return Err(invalid("smtp.host", "must be a host name or address"));
    }
    let security = match f.security.as_deref().unwrap_or("starttls") {
        "starttls" => SmtpSecurity::Starttls,
        "tls" => SmtpSecurity::Tls,
        "none" => SmtpSecurity::None,
        _ => {
            return Err(invalid(
                "smtp.security",
                "must be \"starttls\", \"tls\" or \"none\"",
            ));
        }
    };
    let port = f.port.unwrap_or(match security {
        SmtpSecurity::Tls => 465,
        SmtpSecurity::Starttls => 587,
        SmtpSecurity::None => 25,
    });
    if port == 0 {
        return Err(invalid("smtp.port", "must be a port from 1 to 65535"));
    }
    let from = f.from.ok_or_else(|| {
        invalid(
            "smtp.from",
            "is required: the sender, e.g. \"Backups <backups@example.com>\"",
        )
    })?;
    if from.parse::<lettre::message::Mailbox>().is_err() {
        return Err(invalid(
            "smtp.from",
            "must be an address such as \"Backups <backups@example.com>\"",
        ));
    }
    let password = settings::secret("smtp.password", f.password, f.password_file.as_deref())?;
    if password.is_some() && f.username.is_none() {
        return Err(invalid("smtp.username", "goes with smtp.password"));
    }
    let local = matches!(host.as_str(), "localhost" | "127.0.0.1" | "::1" | "[::1]");
    if password.is_some() && security == SmtpSecurity::None && !local {
        return Err(invalid(
            "smtp.security",
            "\"none\" would send the password in the clear; use starttls or tls (none is for a relay on this machine)",
        ));
    }
    Ok(Some(SmtpConfig {
        host,
        port,
        security,
        username: f.username,
        password,
        from,
    }))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilePterodactyl {
    url: Option<String>,
    application_key: Option<String>,
    application_key_file: Option<PathBuf>,
    sync_interval: Option<String>,
    agent_port: Option<u16>,
    zero_backup_limit: Option<String>,
    session_cookie: Option<String>,
    agent_token: Option<String>,
    agent_token_file: Option<PathBuf>,
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
            metrics_token,
            metrics_token_file,
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
        if let Some(n) = env.number::<u32>("audit_retention_days")? {
            f.audit_retention_days = Some(n);
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
        let log_format = settings::LogFormat::load(&env, f.log_format.as_deref())?;
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
        let metrics_token = settings::token(
            "metrics_token",
            f.metrics_token,
            f.metrics_token_file.as_deref(),
            16,
        )?;
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
        if let Some(v) = env.get("base_path") {
            f.base_path = Some(v);
        }
        let base_path = base_path(f.base_path.as_deref().unwrap_or("/"))?;
        let pterodactyl = pterodactyl(f.pterodactyl, &env)?;
        let smtp = smtp(f.smtp, &env)?;
        if let Some(n) = env.number::<u64>("notify_retry_secs")? {
            f.notify_retry_secs = Some(n);
        }
        if let Some(v) = env.get("owner_webhook_hosts") {
            f.owner_webhook_hosts = Some(
                v.split(',')
                    .map(|h| h.trim().to_owned())
                    .filter(|h| !h.is_empty())
                    .collect(),
            );
        }
        let owner_webhook_hosts = f.owner_webhook_hosts.unwrap_or_else(|| {
            DEFAULT_OWNER_WEBHOOK_HOSTS
                .iter()
                .map(|h| (*h).to_owned())
                .collect()
        });
        if owner_webhook_hosts
            .iter()
            .any(|h| h.is_empty() || h.contains(['/', ':', '@', ' ']))
        {
            return Err(invalid(
                "owner_webhook_hosts",
                "must be host names such as \"discord.com\" (no scheme, port or path)",
            ));
        }
        let retry = f.notify_retry_secs.unwrap_or(60);
        if !(1..=3600).contains(&retry) {
            return Err(invalid(
                "notify_retry_secs",
                "must be between 1 and 3600 seconds",
            ));
        }
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
            metrics_token,
            session_idle: Duration::from_secs(60 * f.session_idle_minutes.unwrap_or(120)),
            session_absolute: Duration::from_secs(3600 * f.session_absolute_hours.unwrap_or(24)),
            tls,
            scheduler: f.scheduler.unwrap_or(true),
            audit_retention_days: f.audit_retention_days.unwrap_or(365),
            trusted_proxies,
            connections,
            log_format,
            base_path,
            pterodactyl,
            smtp,
            notify_retry: Duration::from_secs(retry),
            owner_webhook_hosts,
        })
    }
}

/// `/` or a path of plain segments without a trailing `/`.
fn base_path(raw: &str) -> Result<String, ConfigError> {
    let trimmed = raw.trim_end_matches('/');
    let ok = raw.starts_with('/')
        && trimmed.split('/').skip(1).all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        });
    if !ok {
        return Err(invalid(
            "base_path",
            "must be / or a path such as /extensions/resticbackups (letters, digits, - _ .)",
        ));
    }
    Ok(if trimmed.is_empty() {
        "/".to_owned()
    } else {
        trimmed.to_owned()
    })
}

/// `30s`, `5m`, `1h`: at least 30 seconds, at most a day.
fn interval(key: &str, raw: &str) -> Result<Duration, ConfigError> {
    let raw = raw.trim();
    let split = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    let (n, unit) = raw.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| invalid(key, "must be a number and a unit, such as 5m"))?;
    let secs = match unit {
        "s" => Some(n),
        "m" => n.checked_mul(60),
        "h" => n.checked_mul(3600),
        _ => None,
    }
    .ok_or_else(|| invalid(key, "must be a number and a unit (s, m or h), such as 5m"))?;
    if !(30..=86_400).contains(&secs) {
        return Err(invalid(key, "must be between 30s and 24h"));
    }
    Ok(Duration::from_secs(secs))
}

/// The `[pterodactyl]` table with `RESTIC_BACKUPS_PANEL_PTERODACTYL_<KEY>`
/// overrides; `None` when no URL is set (stand-alone mode).
fn pterodactyl(
    file: Option<FilePterodactyl>,
    env: &Env<'_>,
) -> Result<Option<PterodactylConfig>, ConfigError> {
    let mut p = file.unwrap_or_default();
    for (key, field) in [
        ("pterodactyl_url", &mut p.url),
        ("pterodactyl_application_key", &mut p.application_key),
        ("pterodactyl_sync_interval", &mut p.sync_interval),
        ("pterodactyl_zero_backup_limit", &mut p.zero_backup_limit),
        ("pterodactyl_session_cookie", &mut p.session_cookie),
    ] {
        if let Some(v) = env.get(key) {
            *field = Some(v);
        }
    }
    if let Some(v) = env.get("pterodactyl_application_key_file") {
        p.application_key_file = Some(v.into());
    }
    if let Some(v) = env.get("pterodactyl_agent_token") {
        p.agent_token = Some(v);
    }
    if let Some(v) = env.get("pterodactyl_agent_token_file") {
        p.agent_token_file = Some(v.into());
    }
    if let Some(port) = env.number::<u16>("pterodactyl_agent_port")? {
        p.agent_port = Some(port);
    }
    let Some(url) = p.url else {
        let stray = p.application_key.is_some()
            || p.application_key_file.is_some()
            || p.sync_interval.is_some()
            || p.agent_port.is_some()
            || p.zero_backup_limit.is_some()
            || p.session_cookie.is_some()
            || p.agent_token.is_some()
            || p.agent_token_file.is_some();
        if stray {
            return Err(invalid(
                "pterodactyl.url",
                "is needed for the other [pterodactyl] settings",
            ));
        }
        return Ok(None);
    };
    let base = url.trim_end_matches('/');
    let parsed = reqwest::Url::parse(base).map_err(|_| {
        invalid(
            "pterodactyl.url",
            "must be a URL such as https://panel.example.com",
        )
    })?;
    if !matches!(parsed.scheme(), "http" | "https")
        || parsed.host_str().is_none()
        || !parsed.username().is_empty()
        || parsed.password().is_some()
        || parsed.query().is_some()
    {
        return Err(invalid(
            "pterodactyl.url",
            "must be an http(s) URL without credentials or query, such as https://panel.example.com",
        ));
    }
    let application_key = settings::secret(
        "pterodactyl.application_key",
        p.application_key,
        p.application_key_file.as_deref(),
    )?
    .ok_or_else(|| {
        ConfigError::Missing(
            "[pterodactyl] needs `application_key_file`: a file holding an Application API key (ptla_…)"
                .into(),
        )
    })?;
    let zero_backup_limit = match p.zero_backup_limit.as_deref().unwrap_or("unlimited") {
        "unlimited" => ZeroBackupLimit::Unlimited,
        "disabled" => ZeroBackupLimit::Disabled,
        _ => {
            return Err(invalid(
                "pterodactyl.zero_backup_limit",
                "must be \"unlimited\" or \"disabled\"",
            ));
        }
    };
    let session_cookie = p
        .session_cookie
        .unwrap_or_else(|| "pterodactyl_session".to_owned());
    if session_cookie.is_empty()
        || !session_cookie
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        return Err(invalid(
            "pterodactyl.session_cookie",
            "must be a cookie name (letters, digits, - _ .)",
        ));
    }
    let agent_token = settings::token(
        "pterodactyl.agent_token",
        p.agent_token,
        p.agent_token_file.as_deref(),
        16,
    )?;
    let agent_port = p.agent_port.unwrap_or(8090);
    if agent_port == 0 {
        return Err(invalid(
            "pterodactyl.agent_port",
            "must be a port from 1 to 65535",
        ));
    }
    Ok(Some(PterodactylConfig {
        url: base.to_owned(),
        application_key,
        sync_interval: interval(
            "pterodactyl.sync_interval",
            p.sync_interval.as_deref().unwrap_or("5m"),
        )?,
        agent_port,
        zero_backup_limit,
        session_cookie,
        agent_token,
    }))
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

    #[test]
    fn pterodactyl_settings_and_base_path_refuse_degenerate_values() {
        let key = (
            "RESTIC_BACKUPS_PANEL_SECRET_KEY",
            "0123456789abcdef0123456789abcdef",
        );
        let ptero = [
            (
                "RESTIC_BACKUPS_PANEL_PTERODACTYL_URL",
                "https://panel.example.com/",
            ),
            (
                "RESTIC_BACKUPS_PANEL_PTERODACTYL_APPLICATION_KEY",
                "ptla_0123456789",
            ),
        ];
        let load = |extra: &[(&str, &str)]| {
            let mut vars = vec![key];
            vars.extend_from_slice(extra);
            PanelConfig::load(None, &env_of(&vars))
        };
        // Stand-alone by default; the trailing slash of the URL is dropped.
        assert!(load(&[]).unwrap().pterodactyl.is_none());
        let cfg = load(&ptero).unwrap();
        let p = cfg.pterodactyl.as_ref().unwrap();
        assert_eq!(p.url, "https://panel.example.com");
        assert_eq!(p.sync_interval, Duration::from_secs(300));
        assert_eq!(p.zero_backup_limit, ZeroBackupLimit::Unlimited);
        assert!(!format!("{cfg:?}").contains("ptla_0123456789"));
        let bad = [
            ("RESTIC_BACKUPS_PANEL_PTERODACTYL_SYNC_INTERVAL", "0s"),
            ("RESTIC_BACKUPS_PANEL_PTERODACTYL_SYNC_INTERVAL", "29s"),
            ("RESTIC_BACKUPS_PANEL_PTERODACTYL_SYNC_INTERVAL", "25h"),
            (
                "RESTIC_BACKUPS_PANEL_PTERODACTYL_SYNC_INTERVAL",
                "99999999999999999999h",
            ),
            ("RESTIC_BACKUPS_PANEL_PTERODACTYL_SYNC_INTERVAL", "5"),
            ("RESTIC_BACKUPS_PANEL_PTERODACTYL_SYNC_INTERVAL", ""),
            ("RESTIC_BACKUPS_PANEL_PTERODACTYL_AGENT_PORT", "0"),
            ("RESTIC_BACKUPS_PANEL_PTERODACTYL_ZERO_BACKUP_LIMIT", "none"),
            ("RESTIC_BACKUPS_PANEL_PTERODACTYL_SESSION_COOKIE", "a;b"),
            (
                "RESTIC_BACKUPS_PANEL_PTERODACTYL_URL",
                "https://admin:pw@panel.example.com",
            ),
            (
                "RESTIC_BACKUPS_PANEL_PTERODACTYL_URL",
                "ftp://panel.example.com",
            ),
        ];
        for b in bad {
            let mut vars = ptero.to_vec();
            vars.retain(|(k, _)| *k != b.0);
            vars.push(b);
            let err = load(&vars)
                .err()
                .unwrap_or_else(|| panic!("{b:?} was accepted"));
            assert!(!err.to_string().contains("pw"), "{err}");
        }
        // Settings without a URL are a mistake, not stand-alone mode.
        assert!(load(&[ptero[1]]).is_err());
        assert!(load(&[ptero[0]]).is_err(), "no application key");

        // Trailing slashes go: `//` is the root.
        for (raw, want) in [
            ("/", "/"),
            ("//", "/"),
            ("/x/", "/x"),
            ("/extensions/resticbackups", "/extensions/resticbackups"),
        ] {
            let cfg = load(&[("RESTIC_BACKUPS_PANEL_BASE_PATH", raw)]).unwrap();
            assert_eq!(cfg.base_path, want);
        }
        for raw in [
            "", "x", "/a//b", "/../x", "/a/./b", "/a b", "/a?b", "/a%2Fb",
        ] {
            assert!(
                load(&[("RESTIC_BACKUPS_PANEL_BASE_PATH", raw)]).is_err(),
                "{raw:?} was accepted"
            );
        }
    }
}

//! The panel: users, sessions, permissions, nodes, servers and keys; proxies
//! backup operations to the agents and serves the session API.

pub mod admin;
pub mod agent_client;
pub mod auth;
pub mod config;
mod error;
pub mod import;
pub mod metrics;
pub mod password;
pub mod permissions;
pub mod pterodactyl;
pub mod schedule;
pub mod scheduler;
pub mod seal;
pub mod service;
pub mod storage;
pub mod web;

pub use error::{Missing, PanelError};
pub use service::Panel;

use std::future::Future;
use std::time::Duration;

use config::PanelConfig;

/// Why the panel could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Storage(#[from] storage::StorageError),
    #[error(transparent)]
    Seal(#[from] seal::SealError),
    #[error("could not create {path}: {source}")]
    Dir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("HTTP server: {0}")]
    Serve(std::io::Error),
    #[error("[pterodactyl]: {0}")]
    Pterodactyl(#[from] pterodactyl::PteroError),
    #[error(
        "the secret key does not open the secrets stored in the database; is `secret_key` the one this database was set up with?"
    )]
    WrongSecretKey,
}

/// Opens (and migrates) the database and builds the panel core.
pub async fn open(cfg: &PanelConfig) -> Result<Panel, RunError> {
    let (storage, sealer) = connect(cfg).await?;
    let mut panel = Panel::new(storage, sealer, cfg.session_idle, cfg.session_absolute)
        .with_notifications(service::notify::NotifySettings {
            smtp: cfg.smtp.clone(),
            retry: cfg.notify_retry,
            owner_webhook_hosts: cfg.owner_webhook_hosts.clone(),
        });
    if let Some(p) = &cfg.pterodactyl {
        panel = panel.with_pterodactyl(pterodactyl::Setup::new(p.clone())?);
    }
    // A wrong secret key shows now, not as a 500 at the first backup: the
    // same check `/readyz` makes.
    if !panel.secret_key_opens_secrets().await? {
        return Err(RunError::WrongSecretKey);
    }
    Ok(panel)
}

/// Opens the database for the operator's commands, without serving.
pub async fn open_operator(
    cfg: &PanelConfig,
    _: &permissions::Operator,
) -> Result<admin::Admin, RunError> {
    let (storage, sealer) = connect(cfg).await?;
    Ok(admin::Admin::new(storage, sealer))
}

/// What `db status` reports.
pub struct DbStatus {
    /// The database URL without its password.
    pub url: String,
    /// `None`: a SQLite file that does not exist yet.
    pub schema: Option<storage::SchemaStatus>,
    /// Users, nodes and servers, when the schema can be read.
    pub counts: Option<(usize, usize, usize)>,
}

/// `db status`: the database's schema beside this build's, changing
/// nothing (no migration runs, no SQLite file is created).
pub async fn db_status(cfg: &PanelConfig, _: &permissions::Operator) -> Result<DbStatus, RunError> {
    let url = storage::redact_url(&cfg.database_url);
    if let Some(path) = cfg
        .database_url
        .strip_prefix("sqlite://")
        .or_else(|| cfg.database_url.strip_prefix("sqlite:"))
    {
        let path = path.split('?').next().unwrap_or(path);
        if !std::path::Path::new(path).exists() {
            return Ok(DbStatus {
                url,
                schema: None,
                counts: None,
            });
        }
    }
    let storage = storage::Storage::open_read_only(&cfg.database_url).await?;
    let schema = storage.schema_status().await?;
    let counts = if schema.pending().is_empty() && schema.unknown().is_empty() {
        match (
            storage.users().await,
            storage.nodes().await,
            storage.servers().await,
        ) {
            (Ok(u), Ok(n), Ok(s)) => Some((u.len(), n.len(), s.len())),
            _ => None,
        }
    } else {
        None
    };
    Ok(DbStatus {
        url,
        schema: Some(schema),
        counts,
    })
}

/// The database (migrated; its folder private for SQLite) and the sealer.
async fn connect(cfg: &PanelConfig) -> Result<(storage::Storage, seal::Sealer), RunError> {
    if cfg.database_url.starts_with("sqlite:") {
        private_dir(&cfg.state_dir).map_err(|source| RunError::Dir {
            path: cfg.state_dir.clone(),
            source,
        })?;
    }
    let storage = storage::Storage::connect(&cfg.database_url).await?;
    let sealer = seal::Sealer::new(&cfg.secret_key)?;
    Ok((storage, sealer))
}

/// Creates `dir` (and parents) readable by the panel's user only.
pub fn private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// Serves the panel on `cfg.listen` until `shutdown` completes.
pub async fn run(
    cfg: PanelConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let listener = httpd::bind(cfg.listen).map_err(RunError::Serve)?;
    let panel = open(&cfg).await?;
    run_on(listener, panel, &cfg, shutdown).await
}

/// Serves an opened panel on a bound socket; expired sessions and audit
/// entries past `audit_retention_days` are swept every ten minutes meanwhile,
/// and the database is watched for changes other processes make (the read
/// cache answers only while it is).
pub async fn run_on(
    listener: std::net::TcpListener,
    panel: Panel,
    cfg: &PanelConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let watcher = panel.storage().watch_changes();
    let sweeper = {
        let panel = panel.clone();
        let audit_days = cfg.audit_retention_days;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(600));
            loop {
                tick.tick().await;
                if let Err(e) = panel.sessions().sweep(service::now()).await {
                    tracing::warn!(error = %e, "expired sessions not swept");
                }
                panel.sweep_audit(audit_days, service::now()).await;
                // Delivered and given-up notifications are kept 30 days.
                if let Err(e) = panel
                    .storage()
                    .sweep_messages(service::now() - 30 * 86_400)
                    .await
                {
                    tracing::warn!(error = %e, "old notifications not swept");
                }
            }
        })
    };
    // Pterodactyl mode: a sync at start, then every `sync_interval`.
    let syncer = cfg.pterodactyl.as_ref().map(|p| {
        let panel = panel.clone();
        let every = p.sync_interval;
        tokio::spawn(async move {
            let _ = panel
                .sync_pterodactyl(pterodactyl::SyncOrigin::start())
                .await;
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let _ = panel
                    .sync_pterodactyl(pterodactyl::SyncOrigin::interval())
                    .await;
            }
        })
    });
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let scheduler = cfg.scheduler.then(|| {
        let mut rx = stop_rx.clone();
        tokio::spawn(
            scheduler::Scheduler::new(panel.clone()).run_forever(async move {
                let _ = rx.wait_for(|v| *v).await;
            }),
        )
    });
    let notifier = {
        let panel = panel.clone();
        let mut rx = stop_rx.clone();
        tokio::spawn(async move {
            panel
                .deliver_forever(async move {
                    let _ = rx.wait_for(|v| *v).await;
                })
                .await;
        })
    };
    let state = web::AppState {
        panel,
        metrics_token: cfg.metrics_token.clone(),
        secure_cookies: cfg.tls.is_some(),
        session_max_age: cfg.session_absolute.as_secs() as i64,
        trusted_proxies: cfg.trusted_proxies.clone().into(),
        base: if cfg.base_path == "/" {
            "".into()
        } else {
            cfg.base_path.as_str().into()
        },
    };
    let served = web::serve(listener, cfg.tls.clone(), cfg.connections, state, shutdown).await;
    sweeper.abort();
    watcher.abort();
    if let Some(s) = syncer {
        s.abort();
    }
    let _ = stop_tx.send(true);
    if let Some(s) = scheduler {
        let _ = s.await;
    }
    let _ = notifier.await;
    served.map_err(RunError::Serve)
}

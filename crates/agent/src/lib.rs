//! The node agent: runs restic for the game servers on one node and serves
//! the agent HTTP API the panel calls. It holds no repository keys at rest:
//! each request brings the key in `X-Restic-Password`.

mod clock;
pub mod config;
mod error;
mod failpoint;
mod ignore;
mod index;
mod jobs;
mod layout;
mod listing;
pub mod metrics;
mod pgzip;
mod retention;
mod service;
pub mod store;
mod swap;
pub mod web;
mod wings;

use std::future::Future;

pub use config::{AgentConfig, ConfigError};
pub use error::AgentError;
pub use service::Agent;

/// Why the agent could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Engine(#[from] engine::EngineError),
    #[error("could not create {path}: {source}")]
    Dir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("HTTP server: {0}")]
    Serve(std::io::Error),
}

/// Checks restic, prepares the agent's folders and serves the API until
/// `shutdown` completes; settings sent on `reloads` (SIGHUP) replace the
/// tokens and Wings' link.
pub async fn run(
    cfg: AgentConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
    reloads: Option<tokio::sync::mpsc::Receiver<AgentConfig>>,
) -> Result<(), RunError> {
    let listener = httpd::bind(cfg.listen).map_err(RunError::Serve)?;
    run_on(listener, cfg, shutdown, reloads).await
}

/// [`run`] on a socket already bound (the demo binds port 0 first).
pub async fn run_on(
    listener: std::net::TcpListener,
    cfg: AgentConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
    reloads: Option<tokio::sync::mpsc::Receiver<AgentConfig>>,
) -> Result<(), RunError> {
    for dir in [&cfg.repo_root, &cfg.state_dir, &cfg.cache_dir] {
        std::fs::create_dir_all(dir)
            .and_then(|()| {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            })
            .map_err(|source| RunError::Dir {
                path: dir.clone(),
                source,
            })?;
    }
    let restic = engine::Restic::detect(
        &cfg.restic_bin,
        Some(cfg.cache_dir.clone()),
        engine::Timeouts::default(),
    )
    .await?;
    tracing::info!(version = %restic.version(), bin = %restic.bin().display(), "restic found");
    let settings: Vec<String> = cfg
        .summary()
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    tracing::info!(settings = %settings.join(" "), "effective settings");
    let agent = Agent::new(&cfg, restic);
    let state = web::AppState {
        agent: agent.clone(),
    };
    // SIGHUP (through `reloads`): new tokens and Wings' link.
    if let Some(mut reloads) = reloads {
        let agent = agent.clone();
        tokio::spawn(async move {
            while let Some(cfg) = reloads.recv().await {
                agent.reload(&cfg);
            }
        });
    }
    // The API answers while running jobs get `shutdown_grace` to finish;
    // then they get SIGINT through their restic runs and time to remove
    // their locks, and only then does the server stop.
    let draining = agent.clone();
    let grace = cfg.shutdown_grace;
    let stop = async move {
        shutdown.await;
        draining
            .drain(
                grace,
                engine::Timeouts::default().grace + std::time::Duration::from_secs(5),
            )
            .await;
    };
    web::serve(listener, cfg.tls.clone(), cfg.connections, state, stop)
        .await
        .map_err(RunError::Serve)
}

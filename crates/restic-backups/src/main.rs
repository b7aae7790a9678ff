//! `restic-backups`: the one binary. Subcommands wire the crates together;
//! no product logic lives here.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

mod admin_cli;
mod demo;
mod import_cli;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// This build: the crate version and the git commit it was built from.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("RESTIC_BACKUPS_COMMIT"),
    ")"
);

#[derive(Parser)]
#[command(
    name = "restic-backups",
    version = VERSION,
    about = "Encrypted, deduplicated per-server restic backups for game-server hosts"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the node agent (beside Wings on every node).
    Agent {
        /// TOML settings file; every key can also come from
        /// RESTIC_BACKUPS_AGENT_<KEY> environment variables.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Run the panel (web API and pages).
    Panel {
        /// TOML settings file; every key can also come from
        /// RESTIC_BACKUPS_PANEL_<KEY> environment variables.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Try it out: the panel and an agent in one process, SQLite, a sample
    /// server and three logins (printed). Keeps its data in --dir.
    Demo {
        /// Where the demo keeps its database, repositories and server files.
        #[arg(long, default_value = "restic-backups-demo")]
        dir: PathBuf,
        /// Address the panel listens on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
    },
    /// Scheduled backups outside the panel process (cron, systemd timers).
    Schedule {
        #[arg(long, short, global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        command: ScheduleCommand,
    },
    /// Manage the panel's users.
    User {
        /// The panel's TOML settings (or RESTIC_BACKUPS_PANEL_<KEY> variables).
        #[arg(long, short, global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        command: admin_cli::UserCommand,
    },
    /// Manage the panel's nodes.
    Node {
        #[arg(long, short, global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        command: admin_cli::NodeCommand,
    },
    /// Manage the panel's servers.
    Server {
        #[arg(long, short, global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        command: admin_cli::ServerCommand,
    },
    /// Repository keys, for disaster recovery.
    Key {
        #[arg(long, short, global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        command: admin_cli::KeyCommand,
    },
    /// Pterodactyl mode: sync users, nodes, servers and subusers now.
    Pterodactyl {
        #[arg(long, short, global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        command: PterodactylCommand,
    },
    /// Carry an existing install over (see README, "Moving from the PHP
    /// extension").
    Import {
        #[arg(long, short, global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        command: import_cli::ImportCommand,
    },
    /// Check a settings file (and its environment overrides and secret
    /// files) as the agent or panel would read it, and print the effective
    /// settings without secrets. Exits non-zero on the first problem.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// The panel's database: `db status` shows its schema beside this
    /// build's (changing nothing).
    Db {
        #[arg(long, short, global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        command: DbCommand,
    },
    /// Manage the panel's subusers.
    Subuser {
        #[arg(long, short, global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        command: admin_cli::SubuserCommand,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Read the settings as `restic-backups agent` or `panel` would.
    Check {
        /// Which side's settings: `agent` or `panel`.
        #[arg(value_enum)]
        side: Side,
        /// TOML settings file (environment variables apply on top).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum DbCommand {
    /// The schema version the database has, the one this build has, the
    /// migrations the next start applies, and the database's size. Exits
    /// non-zero when the database is newer than this build.
    Status,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Side {
    Agent,
    Panel,
}

#[derive(Subcommand)]
enum PterodactylCommand {
    /// Read Pterodactyl's users, nodes, servers and subusers and apply the
    /// changes; prints what changed. Exits non-zero when something failed.
    Sync {
        /// Retire servers even when Pterodactyl no longer lists most of them
        /// (more than 10 and more than half), or none at all.
        #[arg(long)]
        allow_mass_removal: bool,
    },
}

#[derive(Subcommand)]
enum ScheduleCommand {
    /// Run every scheduled backup that is due, wait for them, and exit. Safe
    /// beside running panels: each due run is claimed once.
    RunDue {
        /// Take this time (Unix seconds) as "now" instead of the clock.
        #[arg(long, value_name = "UNIX_SECONDS")]
        at: Option<i64>,
    },
}

/// A server (agent, panel) set up its log: its fatal error goes there.
static SERVER_LOG: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn init_logging(format: settings::LogFormat) {
    // PostgreSQL's notices ("relation already exists, skipping" at every
    // start) are not news to an operator.
    let filter = EnvFilter::try_from_env("RUST_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx::postgres::notice=warn"));
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        settings::LogFormat::Text => fmt.with_ansi(std::io::stderr().is_terminal()).init(),
        settings::LogFormat::Json => fmt.json().with_current_span(true).init(),
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down");
}

/// SIGHUP: the agent's settings read again (as at start: file,
/// environment, token files, Wings' `config.yml`) and sent on; settings
/// that do not read are logged and the running ones kept.
fn reload_on_sighup(
    config: Option<std::path::PathBuf>,
) -> Option<tokio::sync::mpsc::Receiver<agent::AgentConfig>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "SIGHUP can not be watched; settings reload at restart only");
            return None;
        }
    };
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            let env = |k: &str| std::env::var(k).ok();
            match agent::AgentConfig::load(config.as_deref(), &env) {
                Ok(cfg) => {
                    if tx.send(cfg).await.is_err() {
                        break;
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "SIGHUP: the settings do not read; the running ones are kept")
                }
            }
        }
    });
    Some(rx)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The servers log in the format their settings ask for, once those are
    // read; every other command logs text from the start.
    if !matches!(cli.command, Command::Agent { .. } | Command::Panel { .. }) {
        init_logging(settings::LogFormat::Text);
    }
    // Everything this program creates (databases, state, job records,
    // repositories) is its user's alone; restic restores set their own modes.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: could not start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result: anyhow::Result<()> = runtime.block_on(async {
        match cli.command {
            Command::Agent { config } => {
                let env = |k: &str| std::env::var(k).ok();
                let cfg = agent::AgentConfig::load(config.as_deref(), &env)?;
                init_logging(cfg.log_format);
                SERVER_LOG.store(true, std::sync::atomic::Ordering::Relaxed);
                let reloads = reload_on_sighup(config);
                agent::run(cfg, shutdown_signal(), reloads)
                    .await
                    .map_err(anyhow::Error::from)
            }
            Command::Config {
                command: ConfigCommand::Check { side, config },
            } => {
                let env = |k: &str| std::env::var(k).ok();
                let (name, summary) = match side {
                    Side::Agent => (
                        "agent",
                        agent::AgentConfig::load(config.as_deref(), &env)?.summary(),
                    ),
                    Side::Panel => (
                        "panel",
                        panel::config::PanelConfig::load(config.as_deref(), &env)?.summary(),
                    ),
                };
                println!("{name} settings are valid:");
                for (key, value) in summary {
                    println!("  {key} = {value}");
                }
                Ok(())
            }
            Command::Panel { config } => {
                let env = |k: &str| std::env::var(k).ok();
                let cfg = panel::config::PanelConfig::load(config.as_deref(), &env)?;
                init_logging(cfg.log_format);
                SERVER_LOG.store(true, std::sync::atomic::Ordering::Relaxed);
                panel::run(cfg, shutdown_signal())
                    .await
                    .map_err(anyhow::Error::from)
            }
            Command::Schedule {
                config,
                command: ScheduleCommand::RunDue { at },
            } => {
                let env = |k: &str| std::env::var(k).ok();
                let cfg = panel::config::PanelConfig::load(config.as_deref(), &env)?;
                let p = panel::open(&cfg).await?;
                let scheduler = match at {
                    None => panel::scheduler::Scheduler::new(p.clone()),
                    Some(t) => {
                        let runner = panel::scheduler::agent_runner(p.clone());
                        panel::scheduler::Scheduler::with(
                            p.clone(),
                            runner,
                            std::sync::Arc::new(move || t),
                        )
                    }
                };
                let (n, failed) = scheduler.run_due().await?;
                println!("scheduled backups run: {n}");
                // What the runs queued (a failure notice) leaves now; a
                // receiver that is down gets it from a panel later.
                let sent = p.deliver_due().await;
                if sent > 0 {
                    println!("notifications sent: {sent}");
                }
                if failed > 0 {
                    return Err(anyhow::anyhow!("{failed} of {n} scheduled backups failed"));
                }
                Ok(())
            }
            Command::Db {
                config,
                command: DbCommand::Status,
            } => admin_cli::db_status(config.as_deref()).await,
            Command::Demo { dir, listen } => {
                demo::run(dir, listen, shutdown_signal(), |l| {
                    println!("url: {}", l.url);
                    println!("admin: {} {}", l.admin.0, l.admin.1);
                    println!("owner: {} {}", l.owner.0, l.owner.1);
                    println!("subuser: {} {}", l.subuser.0, l.subuser.1);
                    println!("server: {}", l.server);
                    use std::io::Write;
                    let _ = std::io::stdout().flush();
                })
                .await
            }
            Command::User { config, command } => {
                admin_cli::user(&admin_cli::admin(config.as_deref()).await?, command).await
            }
            Command::Node { config, command } => {
                admin_cli::node(&admin_cli::admin(config.as_deref()).await?, command).await
            }
            Command::Server { config, command } => {
                admin_cli::server(&admin_cli::admin(config.as_deref()).await?, command).await
            }
            Command::Key { config, command } => {
                admin_cli::key(&admin_cli::admin(config.as_deref()).await?, command).await
            }
            Command::Pterodactyl {
                config,
                command: PterodactylCommand::Sync { allow_mass_removal },
            } => {
                let env = |k: &str| std::env::var(k).ok();
                let cfg = panel::config::PanelConfig::load(config.as_deref(), &env)?;
                if cfg.pterodactyl.is_none() {
                    anyhow::bail!("no [pterodactyl] url is configured: the panel runs stand-alone");
                }
                let p = panel::open(&cfg).await?;
                let operator = panel::permissions::Operator::at_the_host_shell();
                let origin = if allow_mass_removal {
                    panel::pterodactyl::SyncOrigin::operator_allowing_mass_removal(&operator)
                } else {
                    panel::pterodactyl::SyncOrigin::operator(&operator)
                };
                let report = p.sync_pterodactyl(origin).await?;
                println!(
                    "synced in {} ms: {}; {} rows written",
                    report.duration_ms,
                    report.summary(),
                    report.rows_written
                );
                for e in &report.errors {
                    eprintln!("problem: {e}");
                }
                if report.ok {
                    Ok(())
                } else {
                    Err(anyhow::anyhow!(
                        "{} problems (listed above)",
                        report.errors.len()
                    ))
                }
            }
            Command::Import { config, command } => {
                let env = |k: &str| std::env::var(k).ok();
                let cfg = panel::config::PanelConfig::load(config.as_deref(), &env)?;
                let p = panel::open(&cfg).await?;
                import_cli::run(&p, command).await
            }
            Command::Subuser { config, command } => {
                admin_cli::subuser(&admin_cli::admin(config.as_deref()).await?, command).await
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // Said once: in a server's log (its format, e.g. JSON), or on
        // stderr for commands and for settings a server could not read.
        Err(e) => {
            if SERVER_LOG.load(std::sync::atomic::Ordering::Relaxed) {
                tracing::error!("{e:#}");
            } else {
                eprintln!("error: {e:#}");
            }
            ExitCode::FAILURE
        }
    }
}

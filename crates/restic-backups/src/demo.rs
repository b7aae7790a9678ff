//! `restic-backups demo`: the panel and an agent in one process on loopback,
//! SQLite and folders under one directory, seeded with a root admin, a
//! server owner, a `backup.read`-only subuser, one node and one server with
//! sample game-server files. Started again on the same directory it keeps
//! everything (and the same logins).

use anyhow::Context;
use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use api::{Secret, ServerUuid};
use panel::config::PanelConfig;
use serde::{Deserialize, Serialize};

pub const ADMIN_EMAIL: &str = "admin@example.com";
pub const OWNER_EMAIL: &str = "owner@example.com";
pub const SUBUSER_EMAIL: &str = "subuser@example.com";
const NODE_NAME: &str = "demo-node";

/// Generated once per demo directory, kept in `demo-secrets.toml` (mode 0600).
#[derive(Serialize, Deserialize)]
struct DemoSecrets {
    panel_secret: String,
    node_token: String,
    admin_password: String,
    owner_password: String,
    subuser_password: String,
    server_uuid: String,
}

fn random_hex(len: usize) -> String {
    panel::seal::random_secret().expose()[..len].to_owned()
}

fn random_uuid() -> String {
    let h = random_hex(32);
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

fn load_or_create_secrets(path: &Path) -> anyhow::Result<DemoSecrets> {
    if let Ok(text) = std::fs::read_to_string(path) {
        return toml::from_str(&text).with_context(|| format!("{}", path.display()));
    }
    let s = DemoSecrets {
        panel_secret: random_hex(64),
        node_token: random_hex(64),
        admin_password: random_hex(16),
        owner_password: random_hex(16),
        subuser_password: random_hex(16),
        server_uuid: random_uuid(),
    };
    let text = toml::to_string(&s)?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts
        .open(path)
        .with_context(|| format!("{}", path.display()))?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("{}", path.display()))?;
    Ok(s)
}

/// A few MB that look like a small Minecraft server.
fn write_sample_files(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir.join("world/region"))?;
    std::fs::create_dir_all(dir.join("logs"))?;
    std::fs::create_dir_all(dir.join("plugins/Essentials"))?;
    std::fs::write(
        dir.join("server.properties"),
        "motd=Restic Backups demo\nmax-players=20\nlevel-name=world\ndifficulty=normal\n",
    )?;
    std::fs::write(dir.join("eula.txt"), "eula=true\n")?;
    std::fs::write(dir.join("ops.json"), "[]\n")?;
    std::fs::write(
        dir.join("plugins/Essentials/config.yml"),
        "spawn-on-join: true\n",
    )?;
    let mut log = String::new();
    for i in 0..2000 {
        log.push_str(&format!(
            "[12:{:02}:{:02}] [Server thread/INFO]: Player{} joined the game\n",
            i / 60 % 60,
            i % 60,
            i % 17
        ));
    }
    std::fs::write(dir.join("logs/latest.log"), log)?;
    // Region files: part repetitive (compresses), part noise (does not).
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for (x, z) in [(0, 0), (0, -1), (-1, 0), (-1, -1)] {
        let mut data = vec![0u8; 1024 * 1024];
        for (i, b) in data.iter_mut().enumerate() {
            if i % 4096 < 2048 {
                *b = (i / 4096) as u8;
            } else {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                *b = state as u8;
            }
        }
        std::fs::write(dir.join(format!("world/region/r.{x}.{z}.mca")), data)?;
    }
    Ok(())
}

pub struct DemoLines {
    pub url: String,
    pub admin: (String, String),
    pub owner: (String, String),
    pub subuser: (String, String),
    pub server: String,
}

async fn seed(
    p: &panel::Panel,
    s: &DemoSecrets,
    agent_url: &str,
    uuid: &ServerUuid,
) -> anyhow::Result<()> {
    // The demo seeds its data as the host's operator would, from the shell.
    let admin = p.operator(&panel::permissions::Operator::at_the_host_shell());
    for (email, pass, root) in [
        (ADMIN_EMAIL, &s.admin_password, true),
        (OWNER_EMAIL, &s.owner_password, false),
        (SUBUSER_EMAIL, &s.subuser_password, false),
    ] {
        let exists = admin.user_by_email(email).await?.is_some();
        if !exists {
            admin.add_user(email, pass, root).await?;
        }
    }
    let token = Secret::new(s.node_token.clone())?;
    match admin.node_by_name(NODE_NAME).await? {
        // The agent gets a new port on every start.
        Some(node) => {
            admin
                .update_node(&node, Some(agent_url), Some(&token), None, None)
                .await?;
        }
        None => {
            admin
                .add_node(NODE_NAME, agent_url, &token, None, true)
                .await?;
        }
    }
    if admin.server_by_uuid(uuid).await?.is_none() {
        admin
            .add_server(uuid, "Survival (demo)", OWNER_EMAIL, NODE_NAME, 10)
            .await?;
        admin
            .set_subuser(uuid, SUBUSER_EMAIL, &["backup.read".to_owned()])
            .await?;
    }
    Ok(())
}

/// Runs the demo until `shutdown`; `ready` gets the lines to print once
/// both halves listen.
pub async fn run(
    dir: PathBuf,
    listen: SocketAddr,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ready: impl FnOnce(&DemoLines),
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&dir).with_context(|| format!("{}", dir.display()))?;
    let dir = dir
        .canonicalize()
        .with_context(|| format!("{}", dir.display()))?;
    let secrets = load_or_create_secrets(&dir.join("demo-secrets.toml"))?;
    let uuid = ServerUuid::parse(&secrets.server_uuid)?;
    let server_dir = dir.join("servers").join(uuid.as_str());
    if !server_dir.exists() {
        write_sample_files(&server_dir).context("sample files")?;
    }

    // The agent, on a free loopback port.
    let agent_listener = httpd::bind("127.0.0.1:0".parse().expect("literal")).context("agent")?;
    let agent_addr = agent_listener.local_addr()?;
    let vars: HashMap<String, String> = [
        ("TOKEN", secrets.node_token.clone()),
        ("DATA_DIR", dir.join("servers").display().to_string()),
        ("REPO_ROOT", dir.join("repos").display().to_string()),
        ("CACHE_DIR", dir.join("cache").display().to_string()),
        ("STATE_DIR", dir.join("agent-state").display().to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (format!("{}{k}", agent::config::ENV_PREFIX), v))
    .collect();
    let agent_cfg = agent::AgentConfig::load(None, &|k: &str| {
        vars.get(k).cloned().or_else(|| {
            // The restic binary may still be chosen from the environment.
            (k == "RESTIC_BACKUPS_AGENT_RESTIC_BIN")
                .then(|| std::env::var(k).ok())
                .flatten()
        })
    })
    .context("agent settings")?;

    // The panel.
    let panel_listener =
        httpd::bind(listen).with_context(|| format!("could not listen on {listen}"))?;
    let panel_addr = panel_listener.local_addr()?;
    let panel_cfg = PanelConfig {
        listen: panel_addr,
        database_url: format!("sqlite://{}", dir.join("panel.db").display()),
        state_dir: dir.clone(),
        secret_key: Secret::new(secrets.panel_secret.clone())?,
        metrics_token: None,
        session_idle: std::time::Duration::from_secs(120 * 60),
        session_absolute: std::time::Duration::from_secs(24 * 3600),
        tls: None,
        scheduler: true,
        audit_retention_days: 365,
        trusted_proxies: Vec::new(),
        connections: panel::config::ConnectionLimits::default(),
        log_format: settings::LogFormat::Text,
        base_path: "/".to_owned(),
        pterodactyl: None,
        smtp: None,
        notify_retry: std::time::Duration::from_secs(60),
        owner_webhook_hosts: panel::config::DEFAULT_OWNER_WEBHOOK_HOSTS
            .iter()
            .map(|h| (*h).to_owned())
            .collect(),
    };
    let p = panel::open(&panel_cfg).await?;
    seed(&p, &secrets, &format!("http://{agent_addr}"), &uuid).await?;

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stop_tx = std::sync::Arc::new(stop_tx);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|v| *v).await;
    };
    let mut agent_task = tokio::spawn(agent::run_on(
        agent_listener,
        agent_cfg,
        stopped(stop_rx.clone()),
        None,
    ));
    let mut panel_task = {
        let rx = stop_rx.clone();
        tokio::spawn(async move { panel::run_on(panel_listener, p, &panel_cfg, stopped(rx)).await })
    };
    ready(&DemoLines {
        url: format!("http://{panel_addr}"),
        admin: (ADMIN_EMAIL.into(), secrets.admin_password.clone()),
        owner: (OWNER_EMAIL.into(), secrets.owner_password.clone()),
        subuser: (SUBUSER_EMAIL.into(), secrets.subuser_password.clone()),
        server: uuid.to_string(),
    });
    {
        let stop_tx = stop_tx.clone();
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });
    }
    // Whichever half ends first (on shutdown, or failing) stops the other.
    let flat = |r: Result<anyhow::Result<()>, tokio::task::JoinError>| {
        r.map_err(anyhow::Error::from).and_then(|x| x)
    };
    let (first, second) = tokio::select! {
        a = &mut agent_task => {
            let _ = stop_tx.send(true);
            let a = flat(a.map(|r| r.context("agent")));
            (a, flat(panel_task.await.map(|r| r.context("panel"))))
        }
        p = &mut panel_task => {
            let _ = stop_tx.send(true);
            let p = flat(p.map(|r| r.context("panel")));
            (p, flat(agent_task.await.map(|r| r.context("agent"))))
        }
    };
    first.and(second)
}

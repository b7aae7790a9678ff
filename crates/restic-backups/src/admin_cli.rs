//! Admin commands against the panel's database: add users, nodes, servers
//! and subusers. Secrets (passwords, node tokens) are read from standard
//! input, never from the command line.

use std::io::Read;
use std::path::PathBuf;

use api::{Secret, ServerUuid};
use clap::Subcommand;
use panel::admin::Admin;
use panel::config::PanelConfig;
use panel::seal::Sealer;
use panel::storage::Storage;

#[derive(Subcommand)]
pub enum UserCommand {
    /// Add a user; the password is read from standard input.
    Add {
        #[arg(long)]
        email: String,
        /// Make the user a root admin.
        #[arg(long)]
        admin: bool,
    },
}

#[derive(Subcommand)]
pub enum NodeCommand {
    /// Add a node; its agent's token is read from standard input.
    Add {
        #[arg(long)]
        name: String,
        /// The agent's URL, e.g. https://node1.example.com:8090
        #[arg(long)]
        url: String,
        /// PEM file of the CA that signed the agent's certificate.
        #[arg(long)]
        ca_file: Option<PathBuf>,
        /// Browsers can not reach the agent: stream downloads through the panel.
        #[arg(long)]
        no_browser_downloads: bool,
    },
    /// Check that a node's agent is reachable, its TLS certificate trusted
    /// and the node token accepted.
    Test {
        /// The node's name.
        name: String,
    },
}

#[derive(Subcommand)]
pub enum ServerCommand {
    /// Add a server (a new random repository key is created with it).
    Add {
        #[arg(long)]
        uuid: String,
        #[arg(long)]
        name: String,
        /// Email of the owning user.
        #[arg(long)]
        owner: String,
        /// Name of the node the server runs on.
        #[arg(long)]
        node: String,
        /// Keep at most this many backups (0: no limit).
        #[arg(long, default_value_t = 0)]
        backup_limit: i64,
    },
}

#[derive(Subcommand)]
pub enum SubuserCommand {
    /// Give a user exactly these permissions on a server.
    Set {
        #[arg(long)]
        server: String,
        #[arg(long)]
        email: String,
        /// Comma-separated: backup.read, backup.create, backup.download,
        /// backup.restore, backup.delete
        #[arg(long, value_delimiter = ',')]
        permissions: Vec<String>,
    },
}

#[derive(Subcommand)]
pub enum KeyCommand {
    /// Print every repository key the panel holds, to standard output, for
    /// disaster recovery: current, pending and earlier keys of every server,
    /// and the keys of archived repositories. One line each, tab-separated:
    /// server UUID, state, node, archive name (or -), key.
    Export,
}

/// Opens the panel's database with the panel's settings.
pub async fn admin(config: Option<&std::path::Path>) -> Result<Admin, String> {
    let env = |k: &str| std::env::var(k).ok();
    let cfg = PanelConfig::load(config, &env).map_err(|e| e.to_string())?;
    if cfg.database_url.starts_with("sqlite:") {
        panel::private_dir(&cfg.state_dir)
            .map_err(|e| format!("could not create {}: {e}", cfg.state_dir.display()))?;
    }
    let storage = Storage::connect(&cfg.database_url)
        .await
        .map_err(|e| e.to_string())?;
    let sealer = Sealer::new(&cfg.secret_key).map_err(|e| e.to_string())?;
    Ok(Admin::new(storage, sealer))
}

/// One line of standard input, without its line end.
fn read_secret(what: &str) -> Result<String, String> {
    let mut raw = String::new();
    std::io::stdin()
        .take(4096)
        .read_to_string(&mut raw)
        .map_err(|e| format!("could not read the {what} from standard input: {e}"))?;
    let line = raw.lines().next().unwrap_or("").to_owned();
    if line.is_empty() {
        return Err(format!("give the {what} on standard input"));
    }
    Ok(line)
}

pub async fn user(admin: &Admin, cmd: UserCommand) -> Result<(), String> {
    match cmd {
        UserCommand::Add { email, admin: root } => {
            let password = read_secret("password")?;
            let user = admin
                .add_user(&email, &password, root)
                .await
                .map_err(|e| e.to_string())?;
            println!(
                "user {} added (id {}{})",
                user.email,
                user.id,
                if root { ", root admin" } else { "" }
            );
        }
    }
    Ok(())
}

pub async fn node(admin: &Admin, cmd: NodeCommand) -> Result<(), String> {
    match cmd {
        NodeCommand::Add {
            name,
            url,
            ca_file,
            no_browser_downloads,
        } => {
            let token = Secret::new(read_secret("node token")?).map_err(|e| e.to_string())?;
            let ca = match ca_file {
                Some(path) => Some(
                    std::fs::read_to_string(&path)
                        .map_err(|e| format!("could not read {}: {e}", path.display()))?,
                ),
                None => None,
            };
            let node = admin
                .add_node(&name, &url, &token, ca, !no_browser_downloads)
                .await
                .map_err(|e| e.to_string())?;
            println!("node {} added (id {}, {})", node.name, node.id, node.url);
        }
        NodeCommand::Test { name } => {
            let node = admin
                .storage()
                .node_by_name(&name)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("no node named {name}"))?;
            let token = admin.node_token(&node).map_err(|e| e.to_string())?;
            let client = panel::agent_client::AgentClient::new(&panel::agent_client::NodeConn {
                url: node.url.clone(),
                token,
                ca_pem: node.ca_pem.clone(),
            })
            .map_err(|e| format!("node {name}: {e}"))?;
            client
                .probe()
                .await
                .map_err(|why| format!("node {name} ({}): {why}", node.url))?;
            let tls = if node.url.starts_with("https://") {
                "TLS verified, "
            } else {
                ""
            };
            println!("node {name} ({}): reachable, {tls}token accepted", node.url);
        }
    }
    Ok(())
}

pub async fn server(admin: &Admin, cmd: ServerCommand) -> Result<(), String> {
    match cmd {
        ServerCommand::Add {
            uuid,
            name,
            owner,
            node,
            backup_limit,
        } => {
            let uuid = ServerUuid::parse(&uuid).map_err(|e| e.to_string())?;
            let server = admin
                .add_server(&uuid, &name, &owner, &node, backup_limit)
                .await
                .map_err(|e| e.to_string())?;
            println!(
                "server {} added ({}), with a new repository key",
                server.name, server.uuid
            );
        }
    }
    Ok(())
}

pub async fn subuser(admin: &Admin, cmd: SubuserCommand) -> Result<(), String> {
    match cmd {
        SubuserCommand::Set {
            server,
            email,
            permissions,
        } => {
            let uuid = ServerUuid::parse(&server).map_err(|e| e.to_string())?;
            admin
                .set_subuser(&uuid, &email, &permissions)
                .await
                .map_err(|e| e.to_string())?;
            println!("{email} on {uuid}: {}", permissions.join(", "));
        }
    }
    Ok(())
}

pub async fn key(admin: &Admin, cmd: KeyCommand) -> Result<(), String> {
    match cmd {
        KeyCommand::Export => {
            let (lines, problems) = key_export_lines(admin).await?;
            let mut out = std::io::stdout().lock();
            for line in lines {
                use std::io::Write;
                writeln!(out, "{line}").map_err(|e| format!("could not write the keys: {e}"))?;
            }
            // A disaster-recovery tool prints every key it can, then says
            // which it could not.
            for p in &problems {
                eprintln!("could not export: {p}");
            }
            if !problems.is_empty() {
                return Err(format!(
                    "{} keys could not be exported (listed above)",
                    problems.len()
                ));
            }
        }
    }
    Ok(())
}

/// The export's lines, and what could not be opened.
async fn key_export_lines(admin: &Admin) -> Result<(Vec<String>, Vec<String>), String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let storage = admin.storage();
    let nodes = storage.nodes().await.map_err(|e| err(&e))?;
    let mut lines = vec!["# server_uuid\tstate\tnode\tarchive\tkey".to_owned()];
    let mut problems = Vec::new();
    let mut push = |uuid: &ServerUuid, state: &str, node: &str, archive: &str, key: &Secret| {
        lines.push(format!(
            "{uuid}\t{state}\t{node}\t{archive}\t{}",
            key.expose()
        ));
    };
    for server in storage.servers().await.map_err(|e| err(&e))? {
        let node = nodes
            .iter()
            .find(|n| n.id == server.node_id)
            .map_or("-", |n| n.name.as_str());
        // A current key that does not open still leaves the others to export.
        let current = match admin.server_key(&server).await {
            Ok(k) => {
                push(&server.uuid, "current", node, "-", &k);
                Some(k)
            }
            Err(e) => {
                problems.push(format!("{} current key: {e}", server.uuid));
                None
            }
        };
        let same = |k: &Secret| current.as_ref().is_some_and(|c| c.expose() == k.expose());
        let pending = storage.pending_key(server.id).await.map_err(|e| err(&e))?;
        let history = storage.key_history(server.id).await.map_err(|e| err(&e))?;
        let others = pending
            .iter()
            .map(|p| ("pending", p.as_str()))
            .chain(history.iter().map(|g| ("previous", g.key_enc.as_str())));
        for (state, sealed) in others {
            match admin.open_key_of(&server.uuid, sealed) {
                Ok(k) if same(&k) => {}
                Ok(k) => push(&server.uuid, state, node, "-", &k),
                Err(e) => problems.push(format!("{} {state} key: {e}", server.uuid)),
            }
        }
    }
    for r in storage.archived_keys().await.map_err(|e| err(&e))? {
        let Ok(uuid) = ServerUuid::parse(&r.server_uuid) else {
            problems.push(format!("archived key record {}: bad server UUID", r.id));
            continue;
        };
        let archive = r.archive_name.as_deref().unwrap_or("-");
        let current = match admin.open_key_of(&uuid, &r.key_enc) {
            Ok(k) => {
                push(&uuid, "archived", &r.node_name, archive, &k);
                Some(k)
            }
            Err(e) => {
                problems.push(format!("{uuid} archived key: {e}"));
                None
            }
        };
        let same = |k: &Secret| current.as_ref().is_some_and(|c| c.expose() == k.expose());
        let history = storage
            .archived_key_history(r.id)
            .await
            .map_err(|e| err(&e))?;
        let others = r
            .pending_key_enc
            .iter()
            .map(|p| ("archived-pending", p.as_str()))
            .chain(
                history
                    .iter()
                    .map(|g| ("archived-previous", g.key_enc.as_str())),
            );
        for (state, sealed) in others {
            match admin.open_key_of(&uuid, sealed) {
                Ok(k) if same(&k) && state == "archived-previous" => {}
                Ok(k) => push(&uuid, state, &r.node_name, archive, &k),
                Err(e) => problems.push(format!("{uuid} {state} key: {e}")),
            }
        }
    }
    Ok((lines, problems))
}

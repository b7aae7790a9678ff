//! Admin commands against the panel's database: add users, nodes, servers
//! and subusers. Secrets (passwords, node tokens) are read from standard
//! input, never from the command line.

use anyhow::Context;
use std::io::Read;
use std::path::PathBuf;

use api::{Secret, ServerUuid};
use clap::Subcommand;
use panel::admin::Admin;
use panel::config::PanelConfig;
use panel::permissions::Operator;

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
    /// List the users: id, e-mail, root admin.
    List,
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
pub async fn admin(config: Option<&std::path::Path>) -> anyhow::Result<Admin> {
    let env = |k: &str| std::env::var(k).ok();
    let cfg = PanelConfig::load(config, &env)?;
    // These commands run at the host's shell, with the panel's settings and
    // secret key: the operator's authority.
    panel::open_operator(&cfg, &Operator::at_the_host_shell())
        .await
        .map_err(anyhow::Error::from)
}

/// `db status`.
pub async fn db_status(config: Option<&std::path::Path>) -> anyhow::Result<()> {
    let env = |k: &str| std::env::var(k).ok();
    let cfg = PanelConfig::load(config, &env)?;
    let status = panel::db_status(&cfg, &Operator::at_the_host_shell()).await?;
    println!("database: {}", status.url);
    let Some(schema) = status.schema else {
        println!("schema: none yet (the panel creates the database at its first start)");
        return Ok(());
    };
    println!("backend: {}", schema.backend.name());
    let newest_known = schema.known.iter().map(|(v, _)| *v).max().unwrap_or(0);
    match schema.applied.last() {
        None => println!("schema: empty (the panel creates it at its first start)"),
        Some((v, d)) => println!("schema: version {v} ({d})"),
    }
    println!("this build: version {newest_known}");
    let unknown = schema.unknown();
    if !unknown.is_empty() {
        let list: Vec<String> = unknown.iter().map(|(v, d)| format!("{v} ({d})")).collect();
        anyhow::bail!(
            "the database has migrations this build does not know: {}. A newer restic-backups wrote them; run that version (or restore the database backup taken before the upgrade). This build refuses to start on it",
            list.join(", ")
        );
    }
    let pending = schema.pending();
    if pending.is_empty() {
        println!("status: up to date");
    } else {
        let list: Vec<String> = pending.iter().map(|(v, d)| format!("{v} ({d})")).collect();
        println!(
            "status: {} migration(s) to apply at the next start: {}",
            pending.len(),
            list.join(", ")
        );
    }
    if let Some((users, nodes, servers)) = status.counts {
        println!("users: {users}, nodes: {nodes}, servers: {servers}");
    }
    Ok(())
}

/// One line of standard input, without its line end.
fn read_secret(what: &str) -> anyhow::Result<String> {
    let mut raw = String::new();
    std::io::stdin()
        .take(4096)
        .read_to_string(&mut raw)
        .with_context(|| format!("could not read the {what} from standard input"))?;
    let line = raw.lines().next().unwrap_or("").to_owned();
    if line.is_empty() {
        return Err(anyhow::anyhow!("give the {what} on standard input"));
    }
    Ok(line)
}

pub async fn user(admin: &Admin, cmd: UserCommand) -> anyhow::Result<()> {
    match cmd {
        UserCommand::Add { email, admin: root } => {
            let password = read_secret("password")?;
            let user = admin.add_user(&email, &password, root).await?;
            println!(
                "user {} added (id {}{})",
                user.email,
                user.id,
                if root { ", root admin" } else { "" }
            );
        }
        UserCommand::List => {
            for user in admin.users().await? {
                println!(
                    "{}\t{}{}",
                    user.id,
                    user.email,
                    if user.root_admin { "\troot admin" } else { "" }
                );
            }
        }
    }
    Ok(())
}

pub async fn node(admin: &Admin, cmd: NodeCommand) -> anyhow::Result<()> {
    match cmd {
        NodeCommand::Add {
            name,
            url,
            ca_file,
            no_browser_downloads,
        } => {
            let token = Secret::new(read_secret("node token")?)?;
            let ca = match ca_file {
                Some(path) => Some(
                    std::fs::read_to_string(&path)
                        .with_context(|| format!("could not read {}", path.display()))?,
                ),
                None => None,
            };
            let node = admin
                .add_node(&name, &url, &token, ca, !no_browser_downloads)
                .await?;
            println!("node {} added (id {}, {})", node.name, node.id, node.url);
        }
        NodeCommand::Test { name } => {
            let node = admin
                .node_by_name(&name)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no node named {name}"))?;
            let token = admin.node_token(&node)?;
            let client = panel::agent_client::AgentClient::new(&panel::agent_client::NodeConn {
                url: node.url.clone(),
                token,
                ca_pem: node.ca_pem.clone(),
            })
            .with_context(|| format!("node {name}"))?;
            client
                .probe()
                .await
                .map_err(|why| anyhow::anyhow!("node {name} ({}): {why}", node.url))?;
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

pub async fn server(admin: &Admin, cmd: ServerCommand) -> anyhow::Result<()> {
    match cmd {
        ServerCommand::Add {
            uuid,
            name,
            owner,
            node,
            backup_limit,
        } => {
            let uuid = ServerUuid::parse(&uuid)?;
            let server = admin
                .add_server(&uuid, &name, &owner, &node, backup_limit)
                .await?;
            println!(
                "server {} added ({}), with a new repository key",
                server.name, server.uuid
            );
        }
    }
    Ok(())
}

pub async fn subuser(admin: &Admin, cmd: SubuserCommand) -> anyhow::Result<()> {
    match cmd {
        SubuserCommand::Set {
            server,
            email,
            permissions,
        } => {
            let uuid = ServerUuid::parse(&server)?;
            admin.set_subuser(&uuid, &email, &permissions).await?;
            println!("{email} on {uuid}: {}", permissions.join(", "));
        }
    }
    Ok(())
}

pub async fn key(admin: &Admin, cmd: KeyCommand) -> anyhow::Result<()> {
    match cmd {
        KeyCommand::Export => {
            let (lines, problems) = admin.export_keys().await?;
            let mut out = std::io::stdout().lock();
            for line in lines {
                use std::io::Write;
                writeln!(out, "{line}").context("could not write the keys")?;
            }
            // A disaster-recovery tool prints every key it can, then says
            // which it could not.
            for p in &problems {
                eprintln!("could not export: {p}");
            }
            if !problems.is_empty() {
                return Err(anyhow::anyhow!(
                    "{} keys could not be exported (listed above)",
                    problems.len()
                ));
            }
        }
    }
    Ok(())
}

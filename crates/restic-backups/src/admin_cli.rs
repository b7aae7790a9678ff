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

/// Opens the panel's database with the panel's settings.
pub async fn admin(config: Option<&std::path::Path>) -> Result<Admin, String> {
    let env = |k: &str| std::env::var(k).ok();
    let cfg = PanelConfig::load(config, &env).map_err(|e| e.to_string())?;
    if cfg.database_url.starts_with("sqlite:") {
        std::fs::create_dir_all(&cfg.state_dir)
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

//! Administration: users, nodes, servers and subusers, with validation and
//! sealing of secrets. Used by the CLI admin commands (and the admin API).

use api::{Permission, Secret, ServerUuid};
use thiserror::Error;

use crate::error::Missing;
use crate::password;
use crate::seal::{SealError, Sealer, random_secret};
use crate::storage::{NewNode, NewServer, Node, Server, Storage, StorageError, User};

#[derive(Debug, Error)]
pub enum AdminError {
    #[error("{0}")]
    BadInput(String),
    #[error("no {} with that name", .0.noun())]
    NotFound(Missing),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Seal(#[from] SealError),
}

fn bad(message: impl Into<String>) -> AdminError {
    AdminError::BadInput(message.into())
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Context a node token is sealed under (binds it to its row).
fn node_context(name: &str) -> String {
    format!("node:{name}")
}

/// Context a server key is sealed under.
fn server_context(uuid: &ServerUuid) -> String {
    format!("server:{uuid}")
}

pub fn normalize_email(raw: &str) -> Result<String, AdminError> {
    let email = raw.trim().to_lowercase();
    let ok = email.len() <= 254
        && email
            .split_once('@')
            .is_some_and(|(a, b)| !a.is_empty() && !b.is_empty())
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(email)
    } else {
        Err(bad("the email address is not valid"))
    }
}

fn check_password(pass: &str) -> Result<(), AdminError> {
    if pass.chars().count() < password::MIN_PASSWORD_LEN {
        return Err(bad(format!(
            "the password needs at least {} characters",
            password::MIN_PASSWORD_LEN
        )));
    }
    Ok(())
}

async fn hash_password(pass: &str) -> Result<String, AdminError> {
    check_password(pass)?;
    let pass = pass.to_owned();
    tokio::task::spawn_blocking(move || password::hash(&pass))
        .await
        .map_err(|e| bad(e.to_string()))
}

fn check_node_url(url: &str) -> Result<&str, AdminError> {
    let url = url.trim_end_matches('/');
    if !(url.starts_with("https://") || url.starts_with("http://"))
        || url.contains(char::is_whitespace)
        || url.len() > 2048
    {
        return Err(bad(
            "the node URL must start with https:// (or http:// on a trusted network)",
        ));
    }
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| bad(format!("the node URL is not a valid URL: {e}")))?;
    if parsed.host_str().is_none_or(str::is_empty)
        || !parsed.username().is_empty()
        || parsed.password().is_some()
        || parsed.query().is_some()
        || parsed.fragment().is_some()
        || !matches!(parsed.path(), "" | "/")
    {
        return Err(bad(
            "the node URL is the agent's address only, like https://node1.example.com:8090 (no user, path or query)",
        ));
    }
    Ok(url)
}

/// Builds the node's client once: a CA that TLS can not use is refused now,
/// not at the first backup.
fn check_client(url: &str, token: &Secret, ca_pem: Option<&str>) -> Result<(), AdminError> {
    crate::agent_client::AgentClient::new(&crate::agent_client::NodeConn {
        url: url.to_owned(),
        token: token.clone(),
        ca_pem: ca_pem.map(str::to_owned),
    })
    .map(|_| ())
    .map_err(|e| bad(e.to_string()))
}

fn check_node_token(token: &Secret) -> Result<(), AdminError> {
    if token.expose().len() < 16 {
        return Err(bad("the node token needs at least 16 characters"));
    }
    Ok(())
}

fn check_ca(pem: &str) -> Result<(), AdminError> {
    if !pem.contains("-----BEGIN CERTIFICATE-----") || pem.len() > 256 * 1024 {
        return Err(bad("the CA holds no PEM certificate"));
    }
    Ok(())
}

fn check_server_name(name: &str) -> Result<&str, AdminError> {
    if name.trim().is_empty() || name.len() > 191 || name.chars().any(char::is_control) {
        return Err(bad("server names are 1 to 191 printable characters"));
    }
    Ok(name.trim())
}

fn check_backup_limit(limit: i64) -> Result<(), AdminError> {
    if !(0..=10_000).contains(&limit) {
        return Err(bad("the backup limit is 0 (none) to 10000"));
    }
    Ok(())
}

#[derive(Clone)]
pub struct Admin {
    storage: Storage,
    sealer: Sealer,
}

impl Admin {
    pub(crate) fn new(storage: Storage, sealer: Sealer) -> Self {
        Self { storage, sealer }
    }

    pub async fn user_by_email(&self, email: &str) -> Result<Option<User>, AdminError> {
        Ok(self.storage.user_by_email(email).await?)
    }

    pub async fn node_by_name(&self, name: &str) -> Result<Option<Node>, AdminError> {
        Ok(self.storage.node_by_name(name).await?)
    }

    pub async fn server_by_uuid(&self, uuid: &ServerUuid) -> Result<Option<Server>, AdminError> {
        Ok(self.storage.server_by_uuid(uuid).await?)
    }

    /// Every user, for the operator's listing.
    pub async fn users(&self) -> Result<Vec<User>, AdminError> {
        Ok(self.storage.users().await?)
    }

    /// `key export`: one line per key a repository has (current, pending,
    /// previous; archived ones too), and what could not be opened.
    pub async fn export_keys(&self) -> Result<(Vec<String>, Vec<String>), AdminError> {
        let storage = &self.storage;
        crate::service::audit::write(
            storage,
            crate::storage::AuditRecord {
                at: now(),
                action: api::AuditAction::KeysExport,
                status: 0,
                actor: Some("operator".to_owned()),
                server_uuid: None,
                target: None,
                client: None,
                request_id: None,
            },
        )
        .await;
        let nodes = storage.nodes().await?;
        let mut lines = vec!["# server_uuid\tstate\tnode\tarchive\tkey".to_owned()];
        let mut problems = Vec::new();
        let mut push = |uuid: &ServerUuid, state: &str, node: &str, archive: &str, key: &Secret| {
            lines.push(format!(
                "{uuid}\t{state}\t{node}\t{archive}\t{}",
                key.expose()
            ));
        };
        for server in storage.servers().await? {
            let node = nodes
                .iter()
                .find(|n| n.id == server.node_id)
                .map_or("-", |n| n.name.as_str());
            // A current key that does not open still leaves the others to export.
            let current = match self.server_key(&server).await {
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
            let pending = storage.pending_key(server.id).await?;
            let history = storage.key_history(server.id).await?;
            let others = pending
                .iter()
                .map(|p| ("pending", p.as_str()))
                .chain(history.iter().map(|g| ("previous", g.key_enc.as_str())));
            for (state, sealed) in others {
                match self.open_key_of(&server.uuid, sealed) {
                    Ok(k) if same(&k) => {}
                    Ok(k) => push(&server.uuid, state, node, "-", &k),
                    Err(e) => problems.push(format!("{} {state} key: {e}", server.uuid)),
                }
            }
        }
        for r in storage.archived_keys().await? {
            let Ok(uuid) = ServerUuid::parse(&r.server_uuid) else {
                problems.push(format!("archived key record {}: bad server UUID", r.id));
                continue;
            };
            let archive = r.archive_name.as_deref().unwrap_or("-");
            let current = match self.open_key_of(&uuid, &r.key_enc) {
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
            let history = storage.archived_key_history(r.id).await?;
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
                match self.open_key_of(&uuid, sealed) {
                    Ok(k) if same(&k) && state == "archived-previous" => {}
                    Ok(k) => push(&uuid, state, &r.node_name, archive, &k),
                    Err(e) => problems.push(format!("{uuid} {state} key: {e}")),
                }
            }
        }
        Ok((lines, problems))
    }

    pub async fn add_user(
        &self,
        email: &str,
        pass: &str,
        root_admin: bool,
    ) -> Result<User, AdminError> {
        let email = normalize_email(email)?;
        let hash = hash_password(pass).await?;
        Ok(self
            .storage
            .create_user(&email, &hash, root_admin, now())
            .await?)
    }

    pub async fn add_node(
        &self,
        name: &str,
        url: &str,
        token: &Secret,
        ca_pem: Option<String>,
        browser_downloads: bool,
    ) -> Result<Node, AdminError> {
        let name_ok = (1..=64).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !name_ok {
            return Err(bad(
                "node names are 1 to 64 letters, digits, '-', '_' or '.'",
            ));
        }
        let url = check_node_url(url)?;
        check_node_token(token)?;
        if let Some(pem) = &ca_pem {
            check_ca(pem)?;
        }
        check_client(url, token, ca_pem.as_deref())?;
        let node = NewNode {
            name: name.to_owned(),
            url: url.to_owned(),
            token_enc: self.sealer.seal(token, &node_context(name)),
            ca_pem,
            browser_downloads,
        };
        Ok(self.storage.create_node(&node, now()).await?)
    }

    /// Creates a server with a new random repository key (256 bits).
    pub async fn add_server(
        &self,
        uuid: &ServerUuid,
        name: &str,
        owner_email: &str,
        node_name: &str,
        backup_limit: i64,
    ) -> Result<Server, AdminError> {
        let name = check_server_name(name)?;
        check_backup_limit(backup_limit)?;
        let owner = self
            .storage
            .user_by_email(&normalize_email(owner_email)?)
            .await?
            .ok_or(AdminError::NotFound(Missing::User))?;
        let node = self
            .storage
            .node_by_name(node_name)
            .await?
            .ok_or(AdminError::NotFound(Missing::Node))?;
        let key_enc = self.sealer.seal(&random_secret(), &server_context(uuid));
        let server = NewServer {
            uuid: uuid.clone(),
            name: name.to_owned(),
            owner_id: owner.id,
            node_id: node.id,
            backup_limit,
        };
        Ok(self.storage.create_server(&server, &key_enc, now()).await?)
    }

    /// Grants a user exactly `permissions` on a server.
    pub async fn set_subuser(
        &self,
        uuid: &ServerUuid,
        email: &str,
        permissions: &[String],
    ) -> Result<(), AdminError> {
        let permissions = permissions
            .iter()
            .map(|p| p.parse::<Permission>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(e.to_string()))?;
        let server = self
            .storage
            .server_by_uuid(uuid)
            .await?
            .ok_or(AdminError::NotFound(Missing::Server))?;
        let user = self
            .storage
            .user_by_email(&normalize_email(email)?)
            .await?
            .ok_or(AdminError::NotFound(Missing::User))?;
        if user.id == server.owner_id {
            return Err(bad("the owner already has every permission"));
        }
        Ok(self
            .storage
            .set_subuser(server.id, user.id, &permissions)
            .await?)
    }

    /// Changes what is given of a user.
    pub async fn update_user(
        &self,
        id: i64,
        email: Option<&str>,
        pass: Option<&str>,
        root_admin: Option<bool>,
    ) -> Result<User, AdminError> {
        let email = email.map(normalize_email).transpose()?;
        let hash = match pass {
            Some(p) => Some(hash_password(p).await?),
            None => None,
        };
        if !self
            .storage
            .update_user(id, email.as_deref(), hash.as_deref(), root_admin)
            .await?
        {
            return Err(AdminError::NotFound(Missing::User));
        }
        self.storage
            .user(id)
            .await?
            .ok_or(AdminError::NotFound(Missing::User))
    }

    /// Changes what is given of a node; `ca_pem: Some("")` removes the CA.
    pub async fn update_node(
        &self,
        node: &Node,
        url: Option<&str>,
        token: Option<&Secret>,
        ca_pem: Option<&str>,
        browser_downloads: Option<bool>,
    ) -> Result<Node, AdminError> {
        let url = url.map(check_node_url).transpose()?;
        let token_enc = match token {
            Some(t) => {
                check_node_token(t)?;
                Some(self.sealer.seal(t, &node_context(&node.name)))
            }
            None => None,
        };
        let ca = match ca_pem {
            Some("") => Some(None),
            Some(pem) => {
                check_ca(pem)?;
                Some(Some(pem))
            }
            None => None,
        };
        let token_now = match token {
            Some(t) => t.clone(),
            None => self.node_token(node)?,
        };
        check_client(
            url.unwrap_or(&node.url),
            &token_now,
            match ca {
                Some(c) => c,
                None => node.ca_pem.as_deref(),
            },
        )?;
        self.storage
            .update_node(node.id, url, token_enc.as_deref(), ca, browser_downloads)
            .await?;
        self.storage
            .node(node.id)
            .await?
            .ok_or(AdminError::NotFound(Missing::Node))
    }

    /// Changes what is given of a server.
    pub async fn update_server(
        &self,
        server: &Server,
        name: Option<&str>,
        owner_email: Option<&str>,
        backup_limit: Option<i64>,
    ) -> Result<Server, AdminError> {
        let name = name.map(check_server_name).transpose()?;
        if let Some(l) = backup_limit {
            check_backup_limit(l)?;
        }
        let owner = match owner_email {
            Some(e) => Some(
                self.storage
                    .user_by_email(&normalize_email(e)?)
                    .await?
                    .ok_or(AdminError::NotFound(Missing::User))?,
            ),
            None => None,
        };
        if let Some(o) = &owner {
            // An owner is never also a subuser of their own server.
            self.storage.remove_subuser(server.id, o.id).await?;
        }
        self.storage
            .update_server(server.id, name, owner.map(|o| o.id), backup_limit)
            .await?;
        self.storage
            .server_by_uuid(&server.uuid)
            .await?
            .ok_or(AdminError::NotFound(Missing::Server))
    }

    /// A key sealed for `server`, for storing.
    /// A node token sealed for the node named `name`.
    /// Seals any other stored secret (a notification channel's target)
    /// under its own `context`.
    pub(crate) fn seal_with(&self, secret: &Secret, context: &str) -> String {
        self.sealer.seal(secret, context)
    }

    pub(crate) fn open_with(&self, sealed: &str, context: &str) -> Result<Secret, AdminError> {
        Ok(self.sealer.open(sealed, context)?)
    }

    pub(crate) fn seal_node_token(&self, name: &str, token: &Secret) -> String {
        self.sealer.seal(token, &node_context(name))
    }

    /// A new random repository key, sealed for the server `uuid`.
    pub(crate) fn new_sealed_server_key(&self, uuid: &ServerUuid) -> String {
        self.sealer.seal(&random_secret(), &server_context(uuid))
    }

    pub fn seal_server_key(&self, server: &Server, key: &Secret) -> String {
        self.sealer.seal(key, &server_context(&server.uuid))
    }

    /// Opens a sealed key of the server with `uuid` (which may be deleted:
    /// archived keys keep their binding).
    pub fn open_key_of(&self, uuid: &ServerUuid, sealed: &str) -> Result<Secret, AdminError> {
        Ok(self.sealer.open(sealed, &server_context(uuid))?)
    }

    pub fn open_server_key(&self, server: &Server, sealed: &str) -> Result<Secret, AdminError> {
        Ok(self.sealer.open(sealed, &server_context(&server.uuid))?)
    }

    pub fn node_token(&self, node: &Node) -> Result<Secret, AdminError> {
        Ok(self
            .sealer
            .open(&node.token_enc, &node_context(&node.name))?)
    }

    pub async fn server_key(&self, server: &Server) -> Result<Secret, AdminError> {
        let sealed = self
            .storage
            .server_key(server.id)
            .await?
            .ok_or(AdminError::NotFound(Missing::ServerKey))?;
        Ok(self.sealer.open(&sealed, &server_context(&server.uuid))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalized_and_checked() {
        assert_eq!(
            normalize_email(" Admin@Example.COM ").unwrap(),
            "admin@example.com"
        );
        for bad in ["", "no-at", "@x", "x@", "a b@c", "a@b\u{7}"] {
            assert!(normalize_email(bad).is_err(), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn secrets_are_sealed_at_rest_and_open_again() {
        let dir = tempfile::tempdir().unwrap();
        let db_path = dir.path().join("p.db");
        let storage = Storage::connect(&format!("sqlite://{}", db_path.display()))
            .await
            .unwrap();
        let sealer =
            Sealer::new(&Secret::new("panel-secret-0123456789abcdef-0123").unwrap()).unwrap();
        let admin = Admin::new(storage, sealer);
        admin
            .add_user("owner@example.com", "a long password", false)
            .await
            .unwrap();
        assert!(
            admin
                .add_user("x@example.com", "short", false)
                .await
                .is_err()
        );
        let token = Secret::new("node-token-that-must-not-leak-1").unwrap();
        let node = admin
            .add_node("node-1", "http://127.0.0.1:8090/", &token, None, true)
            .await
            .unwrap();
        assert_eq!(node.url, "http://127.0.0.1:8090");
        assert_eq!(admin.node_token(&node).unwrap(), token);
        let uuid = ServerUuid::parse("1f0e2d3c-4b5a-6978-8796-a5b4c3d2e1f0").unwrap();
        let server = admin
            .add_server(&uuid, "Survival", "OWNER@example.com", "node-1", 3)
            .await
            .unwrap();
        let key = admin.server_key(&server).await.unwrap();
        assert_eq!(key.expose().len(), 64);
        assert!(matches!(
            admin
                .add_server(&uuid, "x", "nobody@example.com", "node-1", 3)
                .await,
            Err(AdminError::NotFound(Missing::User))
        ));
        assert!(
            admin
                .set_subuser(&uuid, "owner@example.com", &["backup.read".into()])
                .await
                .is_err()
        );
        assert!(
            admin
                .set_subuser(&uuid, "owner@example.com", &["backup.everything".into()])
                .await
                .is_err()
        );

        // A dump of the database file shows neither secret.
        drop(admin);
        let mut raw = std::fs::read(&db_path).unwrap();
        if let Ok(wal) = std::fs::read(dir.path().join("p.db-wal")) {
            raw.extend(wal);
        }
        let text = String::from_utf8_lossy(&raw);
        assert!(!text.contains(token.expose()) && !text.contains(key.expose()));
        assert!(!text.contains("a long password"));
    }
}

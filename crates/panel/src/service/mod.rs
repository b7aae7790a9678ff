//! The panel's services: what the HTTP handlers call once a request is parsed
//! and authorized. Each operation takes the capability its check produced
//! (`Authorized<A>` or `RootAdmin`), so none can run unchecked.

mod archives;
pub mod audit;
mod backups;
mod deletion;
mod directory;
pub mod import;
mod keys;
pub mod notify;
mod schedule;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use api::Secret;

use crate::PanelError;
use crate::admin::Admin;
use crate::agent_client::{AgentClient, NodeConn};
use crate::auth::Sessions;
use crate::seal::Sealer;
use crate::storage::{Node, Server, Storage};

pub use backups::DownloadAnswer;
pub(crate) use backups::job_outcome;
pub use deletion::Deletion;
pub use schedule::ScheduledRun;
pub(crate) use schedule::{cadence_of, check_retention};

/// The panel core. Cheap to clone.
#[derive(Clone)]
pub struct Panel {
    inner: Arc<Inner>,
}

struct Inner {
    storage: Storage,
    admin: Admin,
    sessions: Sessions,
    /// One HTTP client per node, rebuilt when the node's settings change.
    clients: Mutex<HashMap<i64, (NodeFingerprint, AgentClient)>>,
    /// Pterodactyl mode's clients and sync state.
    pterodactyl: Option<Arc<crate::pterodactyl::Setup>>,
    metrics: crate::metrics::Metrics,
    /// Notifications: the mail relay and retry pace, the webhook client,
    /// and the delivery worker's wake-up.
    notify: notify::NotifySettings,
    notify_http: reqwest::Client,
    notify_wake: tokio::sync::Notify,
    /// When each server's owner last sent a test message.
    notify_tests: Mutex<HashMap<i64, std::time::Instant>>,
}

#[derive(PartialEq, Eq)]
struct NodeFingerprint {
    url: String,
    token_enc: String,
    ca_pem: Option<String>,
}

impl NodeFingerprint {
    fn of(node: &Node) -> Self {
        Self {
            url: node.url.clone(),
            token_enc: node.token_enc.clone(),
            ca_pem: node.ca_pem.clone(),
        }
    }
}

pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

impl Panel {
    pub fn new(
        storage: Storage,
        sealer: Sealer,
        session_idle: Duration,
        session_absolute: Duration,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                admin: Admin::new(storage.clone(), sealer),
                sessions: Sessions::new(storage.clone(), session_idle, session_absolute),
                storage,
                clients: Mutex::new(HashMap::new()),
                pterodactyl: None,
                metrics: crate::metrics::Metrics::new(),
                notify: notify::NotifySettings::default(),
                notify_http: reqwest::Client::builder()
                    .timeout(Duration::from_secs(15))
                    .connect_timeout(Duration::from_secs(5))
                    .redirect(reqwest::redirect::Policy::none())
                    .user_agent(concat!("restic-backups/", env!("CARGO_PKG_VERSION")))
                    .build()
                    .expect("a client without custom TLS builds"),
                notify_wake: tokio::sync::Notify::new(),
                notify_tests: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Turns on Pterodactyl mode (before the panel is shared).
    pub fn with_pterodactyl(mut self, setup: crate::pterodactyl::Setup) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.pterodactyl = Some(Arc::new(setup));
        }
        self
    }

    /// How notifications leave (before the panel is shared).
    pub fn with_notifications(mut self, settings: notify::NotifySettings) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.notify = settings;
        }
        self
    }

    /// Delivers due notifications until `stop`: at once when one is
    /// queued, else every 5 s (retries, other panels' messages).
    pub async fn deliver_forever(&self, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            // A stop does not wait for a round (its leased messages are
            // taken again when their lease ends).
            tokio::select! {
                () = &mut stop => return,
                _ = self.deliver_due() => {}
            }
            tokio::select! {
                () = &mut stop => return,
                () = self.inner.notify_wake.notified() => {}
                () = tokio::time::sleep(Duration::from_secs(5)) => {}
            }
        }
    }

    /// This panel's Prometheus metrics.
    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.inner.metrics
    }

    /// Pterodactyl mode's state; `None` for a stand-alone panel.
    pub fn pterodactyl(&self) -> Option<&crate::pterodactyl::Setup> {
        self.inner.pterodactyl.as_deref()
    }

    pub(crate) fn storage(&self) -> &Storage {
        &self.inner.storage
    }

    /// Which of the panel's needs are not met now (`GET /readyz`): the
    /// database answers with current migrations, and the secret key opens
    /// what is stored. Names only.
    pub async fn unready(&self) -> Vec<&'static str> {
        let mut failing = Vec::new();
        if !self.storage().ready().await {
            failing.push("database");
            return failing;
        }
        match self.secret_key_opens_secrets().await {
            Ok(true) => {}
            Ok(false) => failing.push("secret_key"),
            Err(_) => failing.push("database"),
        }
        failing
    }

    /// Whether the panel's secret key opens what is sealed in the database
    /// (tried on the first node's token; true when nothing is sealed yet).
    pub async fn secret_key_opens_secrets(&self) -> Result<bool, crate::storage::StorageError> {
        Ok(match self.storage().nodes().await?.first() {
            Some(node) => self.admin().node_token(node).is_ok(),
            None => true,
        })
    }

    pub(crate) fn sessions(&self) -> &Sessions {
        &self.inner.sessions
    }

    pub(crate) fn admin(&self) -> &Admin {
        &self.inner.admin
    }

    /// The operator's commands (adding users, nodes, servers; key export).
    pub fn operator(&self, _: &crate::permissions::Operator) -> &Admin {
        &self.inner.admin
    }

    /// Checks that `user` may do `A` on the server `uuid` (see
    /// [`crate::permissions::authorize`]).
    pub async fn authorize<A: crate::permissions::Action>(
        &self,
        user: &crate::storage::User,
        uuid: &api::ServerUuid,
    ) -> Result<crate::permissions::Authorized<A>, crate::permissions::Denied> {
        crate::permissions::authorize::<A>(self.storage(), user, uuid).await
    }

    /// The client for a node's agent (cached while the node is unchanged).
    fn client(&self, node: &Node) -> Result<AgentClient, PanelError> {
        let fp = NodeFingerprint::of(node);
        let mut clients = self.inner.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((known, client)) = clients.get(&node.id)
            && *known == fp
        {
            return Ok(client.clone());
        }
        let client = AgentClient::new(&NodeConn {
            url: node.url.clone(),
            token: self.admin().node_token(node)?,
            ca_pem: node.ca_pem.clone(),
        })?;
        clients.insert(node.id, (fp, client.clone()));
        Ok(client)
    }

    async fn node(&self, id: i64) -> Result<Node, PanelError> {
        self.storage()
            .node(id)
            .await?
            .ok_or_else(|| PanelError::Internal(format!("server refers to missing node {id}")))
    }

    /// Everything needed to call the agent about a server: its node, the
    /// client and the repository key.
    async fn target(&self, server: &Server) -> Result<Target, PanelError> {
        let (node, sealed) = self
            .storage()
            .node_and_key(server.node_id, server.id)
            .await?
            .ok_or_else(|| {
                PanelError::Internal(format!("server refers to missing node {}", server.node_id))
            })?;
        let client = self.client(&node)?;
        let sealed = sealed.ok_or(crate::admin::AdminError::NotFound(
            crate::error::Missing::ServerKey,
        ))?;
        let key = self.admin().open_server_key(server, &sealed)?;
        Ok(Target { node, client, key })
    }
}

struct Target {
    node: Node,
    client: AgentClient,
    key: Secret,
}

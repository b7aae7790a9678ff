//! Server keys for root admins: the keys page and regeneration.
//!
//! Regeneration keeps the repository openable with the key the panel holds
//! at every step: the new key is stored as *pending* before the agent is
//! asked, the agent adds it, proves it and removes the old one, and only
//! then the panel makes it current. A failed or interrupted attempt leaves
//! the current key in place and the next attempt reuses the pending key, so
//! the agent can finish a rotation that got half way.

use api::ServerUuid;
use api::panel::{KeyRegenerated, ServerKey};

use super::{Panel, now};
use crate::PanelError;
use crate::error::Missing;
use crate::permissions::RootAdmin;
use crate::seal::random_secret;

impl Panel {
    pub async fn keys(&self, _: &RootAdmin) -> Result<Vec<ServerKey>, PanelError> {
        let nodes = self.storage().nodes().await?;
        let mut out = Vec::new();
        for server in self.storage().servers().await? {
            let node = nodes
                .iter()
                .find(|n| n.id == server.node_id)
                .map(|n| n.name.clone())
                .unwrap_or_default();
            out.push(ServerKey {
                server: server.uuid.to_string(),
                name: server.name.clone(),
                node,
                key: self.admin().server_key(&server).await?.expose().to_owned(),
                updated_at: self.storage().key_updated_at(server.id).await?,
                generations: self.storage().key_history_len(server.id).await?,
            });
        }
        Ok(out)
    }

    /// Starts a prune of the server's repository now.
    pub async fn prune_now(
        &self,
        _admin: &RootAdmin,
        uuid: &ServerUuid,
    ) -> Result<api::agent::JobAccepted, PanelError> {
        let server = self
            .storage()
            .server_by_uuid(uuid)
            .await?
            .ok_or(PanelError::NotFound(Missing::Server))?;
        let t = self.target(&server).await?;
        Ok(t.client.prune(&server.uuid, &t.key).await?)
    }

    pub async fn regenerate_key(
        &self,
        admin: &RootAdmin,
        uuid: &ServerUuid,
    ) -> Result<KeyRegenerated, PanelError> {
        let server = self
            .storage()
            .server_by_uuid(uuid)
            .await?
            .ok_or(PanelError::NotFound(Missing::Server))?;
        let t = self.target(&server).await?;
        let (new, sealed) = match self.storage().pending_key(server.id).await? {
            Some(sealed) => (self.admin().open_server_key(&server, &sealed)?, sealed),
            None => {
                let new = random_secret();
                let sealed = self.admin().seal_server_key(&server, &new);
                self.storage().set_pending_key(server.id, &sealed).await?;
                (new, sealed)
            }
        };
        let key_id = match t.client.rotate_key(&server.uuid, &t.key, &new).await {
            Ok(done) => Some(done.key_id),
            // No repository yet (never backed up): nothing to rotate.
            Err(e) if super::backups::no_repository(&e) => None,
            Err(e) => return Err(e.into()),
        };
        self.storage()
            .replace_server_key(server.id, &sealed, now())
            .await?;
        tracing::info!(server = %server.uuid, "server key regenerated");
        self.notify_key_rotated(&server, admin.user());
        Ok(KeyRegenerated {
            server: server.uuid.to_string(),
            key_id,
        })
    }
}

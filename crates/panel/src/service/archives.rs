//! Archived repositories across all nodes, for root admins.

use api::panel::{PanelArchiveList, PanelArchivedRepo};

use super::Panel;
use crate::PanelError;
use crate::permissions::RootAdmin;

impl Panel {
    /// Every node's archived repositories; nodes that can not be asked are
    /// named, not fatal.
    pub async fn archived_repos(&self, _: &RootAdmin) -> Result<PanelArchiveList, PanelError> {
        let mut out = PanelArchiveList {
            archives: Vec::new(),
            unavailable_nodes: Vec::new(),
        };
        for node in self.storage().nodes().await? {
            let listed = match self.client(&node) {
                Ok(c) => c.archives().await.map_err(PanelError::from),
                Err(e) => Err(e),
            };
            match listed {
                Ok(list) => {
                    out.archives
                        .extend(list.archives.into_iter().map(|a| PanelArchivedRepo {
                            node: node.name.clone(),
                            name: a.name,
                            server_uuid: a.server_uuid,
                            size_bytes: a.size_bytes,
                            archived_at: a.archived_at,
                        }))
                }
                Err(e) => {
                    tracing::warn!(node = %node.name, error = %e, "archives not listed");
                    out.unavailable_nodes.push(node.name.clone());
                }
            }
        }
        out.archives
            .sort_by(|a, b| b.archived_at.cmp(&a.archived_at));
        Ok(out)
    }

    /// Deletes an archived repository named exactly as a node lists it;
    /// `node` picks the node when the name exists on several.
    pub async fn delete_archived_repo(
        &self,
        admin: &RootAdmin,
        name: &str,
        node: Option<&str>,
    ) -> Result<(), PanelError> {
        let list = self.archived_repos(admin).await?;
        let hits: Vec<&PanelArchivedRepo> = list
            .archives
            .iter()
            .filter(|a| a.name == name && node.is_none_or(|n| a.node == n))
            .collect();
        let hit = match hits.as_slice() {
            [one] => *one,
            [] if !list.unavailable_nodes.is_empty() => return Err(PanelError::NodeUnavailable),
            [] => return Err(PanelError::NotFound("archived repository")),
            _ => {
                return Err(PanelError::bad_request(
                    "ambiguous_archive",
                    "several nodes hold an archive of this name; add ?node=<node name>",
                ));
            }
        };
        let node = self
            .storage()
            .node_by_name(&hit.node)
            .await?
            .ok_or(PanelError::NotFound("node"))?;
        self.client(&node)?.delete_archive(&hit.name).await?;
        tracing::info!(node = %node.name, archive = %hit.name, "archived repository deleted");
        Ok(())
    }
}

//! Archived repositories across all nodes, with the keys that open them,
//! for root admins. The panel keeps a deleted server's keys (see
//! `storage::archived_keys`); this joins them with what each node lists.

use api::Secret;
use api::panel::{PanelArchiveList, PanelArchivedRepo};

use super::Panel;
use crate::PanelError;
use crate::error::Missing;
use crate::permissions::RootAdmin;
use crate::storage::ArchivedKey;

/// Where an archive is, as the list says it.
const ON_NODE: &str = "on_node";
const NODE_UNAVAILABLE: &str = "node_unavailable";
const UNREACHABLE_NODE: &str = "unreachable_node";
const MISSING: &str = "missing";

/// One list entry and the key record behind it, if any.
struct Listed {
    repo: PanelArchivedRepo,
    record: Option<i64>,
}

impl Panel {
    /// Every node's archived repositories, with their keys; nodes that can
    /// not be asked are named, and their recorded archives still listed.
    pub async fn archived_repos(&self, admin: &RootAdmin) -> Result<PanelArchiveList, PanelError> {
        let (listed, unavailable_nodes) = self.list_archives(admin).await?;
        Ok(PanelArchiveList {
            archives: listed.into_iter().map(|l| l.repo).collect(),
            unavailable_nodes,
        })
    }

    async fn list_archives(&self, _: &RootAdmin) -> Result<(Vec<Listed>, Vec<String>), PanelError> {
        let mut records = self.storage().archived_keys().await?;
        let mut out = Vec::new();
        let mut unavailable = Vec::new();
        // Every node at once: a hung node costs one read timeout, not one
        // per node.
        let mut asked = tokio::task::JoinSet::new();
        for node in self.storage().nodes().await? {
            let client = self.client(&node);
            asked.spawn(async move {
                let listed = match client {
                    Ok(c) => c.archives().await.map_err(PanelError::from),
                    Err(e) => Err(e),
                };
                (node, listed)
            });
        }
        let mut answers = Vec::new();
        while let Some(answer) = asked.join_next().await {
            answers.extend(answer.ok());
        }
        answers.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        for (node, listed) in answers {
            let archives = match listed {
                Ok(list) => list.archives,
                Err(e) => {
                    tracing::warn!(node = %node.name, error = %e, "archives not listed");
                    unavailable.push(node.name.clone());
                    continue;
                }
            };
            for a in archives {
                let hit = records.iter().position(|r| {
                    r.node_name == node.name && r.archive_name.as_deref() == Some(a.name.as_str())
                });
                let record = hit.map(|i| records.remove(i));
                let mut repo = PanelArchivedRepo {
                    node: node.name.clone(),
                    name: a.name,
                    server_uuid: a.server_uuid,
                    server_name: None,
                    size_bytes: a.size_bytes,
                    archived_at: a.archived_at,
                    location: ON_NODE.into(),
                    store: a.store,
                    key: None,
                    other_keys: Vec::new(),
                };
                if let Some(r) = &record {
                    self.fill_keys(&mut repo, r).await;
                }
                out.push(Listed {
                    repo,
                    record: record.map(|r| r.id),
                });
            }
        }
        // Records no node listed: gone with their node, on a node that did
        // not answer, or removed behind the panel's back.
        for r in records {
            let location = match &r.archive_name {
                None => UNREACHABLE_NODE,
                Some(_) if unavailable.contains(&r.node_name) => NODE_UNAVAILABLE,
                Some(_) => MISSING,
            };
            let mut repo = PanelArchivedRepo {
                node: r.node_name.clone(),
                name: r
                    .archive_name
                    .clone()
                    .unwrap_or_else(|| r.server_uuid.clone()),
                server_uuid: r.server_uuid.clone(),
                server_name: None,
                size_bytes: 0,
                archived_at: super::schedule::at_unix(r.archived_at),
                location: location.into(),
                store: None,
                key: None,
                other_keys: Vec::new(),
            };
            self.fill_keys(&mut repo, &r).await;
            out.push(Listed {
                repo,
                record: Some(r.id),
            });
        }
        out.sort_by_key(|a| std::cmp::Reverse(a.repo.archived_at));
        Ok((out, unavailable))
    }

    /// The record's keys, opened for the admin. One record that can not be
    /// opened is logged and shown without keys; it does not hide the rest.
    async fn fill_keys(&self, repo: &mut PanelArchivedRepo, r: &ArchivedKey) {
        repo.server_name = Some(r.server_name.clone());
        if let Err(e) = self.open_keys(repo, r).await {
            tracing::error!(server = %r.server_uuid, archive = ?r.archive_name, error = %e, "an archived key could not be opened");
        }
    }

    async fn open_keys(
        &self,
        repo: &mut PanelArchivedRepo,
        r: &ArchivedKey,
    ) -> Result<(), PanelError> {
        let uuid = api::ServerUuid::parse(&r.server_uuid)
            .map_err(|_| PanelError::Internal("an archived key record has a bad UUID".into()))?;
        let open = |sealed: &str| self.admin().open_key_of(&uuid, sealed);
        let key = open(&r.key_enc)?.expose().to_owned();
        let mut others = Vec::new();
        for g in self.storage().archived_key_history(r.id).await? {
            let k = open(&g.key_enc)?.expose().to_owned();
            if k != key && !others.contains(&k) {
                others.push(k);
            }
        }
        if let Some(p) = &r.pending_key_enc {
            let k = open(p)?.expose().to_owned();
            if k != key && !others.contains(&k) {
                others.push(k);
            }
        }
        repo.key = Some(key);
        repo.other_keys = others;
        Ok(())
    }

    /// Deletes an archived repository named exactly as the list names it,
    /// and its key record; `node` picks the node when the name exists on
    /// several. An archive whose node is gone (force-deleted server) or that
    /// is missing from its node only has its record deleted.
    pub async fn delete_archived_repo(
        &self,
        admin: &RootAdmin,
        name: &str,
        node: Option<&str>,
    ) -> Result<(), PanelError> {
        let (list, unavailable) = self.list_archives(admin).await?;
        let hits: Vec<&Listed> = list
            .iter()
            .filter(|a| a.repo.name == name && node.is_none_or(|n| a.repo.node == n))
            .collect();
        let hit = match hits.as_slice() {
            [one] => *one,
            [] if !unavailable.is_empty() => return Err(PanelError::NodeUnavailable),
            [] => return Err(PanelError::NotFound(Missing::ArchivedRepository)),
            _ => {
                return Err(PanelError::bad_request(
                    "ambiguous_archive",
                    "several nodes hold an archive of this name; add ?node=<node name>",
                ));
            }
        };
        match hit.repo.location.as_str() {
            ON_NODE => {
                let node = self
                    .storage()
                    .node_by_name(&hit.repo.node)
                    .await?
                    .ok_or(PanelError::NotFound(Missing::Node))?;
                // A remote repository archived in place is emptied with
                // its key; a folder on the node needs none.
                let key = match (&hit.repo.store, &hit.repo.key) {
                    (Some(_), Some(k)) => Some(Secret::new(k.clone()).map_err(|e| {
                        PanelError::Internal(format!("archived key unusable: {e}"))
                    })?),
                    _ => None,
                };
                self.client(&node)?
                    .delete_archive(&hit.repo.name, key.as_ref())
                    .await?;
            }
            NODE_UNAVAILABLE => return Err(PanelError::NodeUnavailable),
            _ => {}
        }
        if let Some(id) = hit.record {
            self.storage().delete_archived_key(id).await?;
        }
        tracing::info!(node = %hit.repo.node, archive = %hit.repo.name, location = %hit.repo.location, "archived repository deleted");
        Ok(())
    }
}

//! Users, nodes, servers and subusers for root admins. Validation and
//! sealing live in [`crate::admin`]; here are the views and the rules that
//! span several records (an admin can not delete themselves; deleting a
//! server is in `deletion.rs`).

use api::ServerUuid;
use api::panel::{
    NewNodeRequest, NewServerRequest, NewUserRequest, NodeView, ServerView, SetSubuserRequest,
    SubuserView, UpdateNodeRequest, UpdateServerRequest, UpdateUserRequest, UserView,
};

use super::Panel;
use crate::PanelError;
use crate::error::Missing;
use crate::permissions::RootAdmin;
use crate::storage::{Node, Server, User};

fn user_view(u: User) -> UserView {
    UserView {
        id: u.id,
        email: u.email,
        root_admin: u.root_admin,
        created_at: u.created_at,
    }
}

fn node_view(n: Node) -> NodeView {
    NodeView {
        id: n.id,
        name: n.name,
        url: n.url,
        has_ca: n.ca_pem.is_some(),
        browser_downloads: n.browser_downloads,
        repository: None,
        copy_to: None,
    }
}

fn parse_uuid(raw: &str) -> Result<ServerUuid, PanelError> {
    ServerUuid::parse(raw).map_err(|e| PanelError::bad_request("invalid_server_id", e.to_string()))
}

impl Panel {
    // ---- users ----

    pub async fn users(&self, _: &RootAdmin) -> Result<Vec<UserView>, PanelError> {
        Ok(self
            .storage()
            .users()
            .await?
            .into_iter()
            .map(user_view)
            .collect())
    }

    pub async fn create_user(
        &self,
        _: &RootAdmin,
        req: NewUserRequest,
    ) -> Result<UserView, PanelError> {
        let u = self
            .admin()
            .add_user(&req.email, req.password.expose(), req.root_admin)
            .await?;
        Ok(user_view(u))
    }

    pub async fn update_user(
        &self,
        admin: &RootAdmin,
        id: i64,
        req: UpdateUserRequest,
        current_session: Option<&str>,
    ) -> Result<UserView, PanelError> {
        if id == admin.user().id && req.root_admin == Some(false) {
            return Err(PanelError::Conflict(
                "you can not take away your own admin rights".into(),
            ));
        }
        let u = self
            .admin()
            .update_user(
                id,
                req.email.as_deref(),
                req.password.as_ref().map(|p| p.expose()),
                req.root_admin,
            )
            .await?;
        if req.password.is_some() {
            // A new password ends the user's other sessions (the admin's own
            // current one stays when they change their own password).
            let keep = current_session.filter(|_| id == admin.user().id);
            let ended = self.sessions().end_sessions_of(id, keep).await?;
            tracing::info!(user = id, ended, "password changed; other sessions ended");
        }
        Ok(user_view(u))
    }

    pub async fn delete_user(&self, admin: &RootAdmin, id: i64) -> Result<(), PanelError> {
        if id == admin.user().id {
            return Err(PanelError::Conflict("you can not delete yourself".into()));
        }
        if !self.storage().delete_user(id).await? {
            return Err(PanelError::NotFound(Missing::User));
        }
        Ok(())
    }

    // ---- nodes ----

    /// The nodes, each with where it keeps repositories (every agent asked
    /// at once; one that does not answer shows none).
    pub async fn nodes(&self, _: &RootAdmin) -> Result<Vec<NodeView>, PanelError> {
        let nodes = self.storage().nodes().await?;
        let mut asked = tokio::task::JoinSet::new();
        for (i, node) in nodes.iter().enumerate() {
            let client = self.client(node);
            asked.spawn(async move {
                let info = match client {
                    Ok(c) => c.node_info().await.ok(),
                    Err(_) => None,
                };
                (i, info)
            });
        }
        let mut views: Vec<NodeView> = nodes.into_iter().map(node_view).collect();
        while let Some(answer) = asked.join_next().await {
            if let Ok((i, Some(info))) = answer {
                views[i].repository = Some(info.repository);
                views[i].copy_to = info.copy_to;
            }
        }
        Ok(views)
    }

    pub async fn create_node(
        &self,
        _: &RootAdmin,
        req: NewNodeRequest,
    ) -> Result<NodeView, PanelError> {
        let n = self
            .admin()
            .add_node(
                &req.name,
                &req.url,
                &req.token,
                req.ca_pem.filter(|p| !p.is_empty()),
                req.browser_downloads,
            )
            .await?;
        Ok(node_view(n))
    }

    async fn node_named(&self, name: &str) -> Result<Node, PanelError> {
        self.storage()
            .node_by_name(name)
            .await?
            .ok_or(PanelError::NotFound(Missing::Node))
    }

    pub async fn update_node(
        &self,
        _: &RootAdmin,
        name: &str,
        req: UpdateNodeRequest,
    ) -> Result<NodeView, PanelError> {
        let node = self.node_named(name).await?;
        let n = self
            .admin()
            .update_node(
                &node,
                req.url.as_deref(),
                req.token.as_ref(),
                req.ca_pem.as_deref(),
                req.browser_downloads,
            )
            .await?;
        Ok(node_view(n))
    }

    pub async fn delete_node(&self, _: &RootAdmin, name: &str) -> Result<(), PanelError> {
        let node = self.node_named(name).await?;
        self.storage().delete_node(node.id).await?;
        Ok(())
    }

    // ---- servers ----

    async fn server_view(&self, s: Server) -> Result<ServerView, PanelError> {
        let owner = self.storage().user(s.owner_id).await?;
        let node = self.storage().node(s.node_id).await?;
        Ok(ServerView {
            uuid: s.uuid,
            name: s.name,
            owner: owner.map(|u| u.email).unwrap_or_default(),
            node: node.map(|n| n.name).unwrap_or_default(),
            backup_limit: s.backup_limit,
        })
    }

    pub async fn servers(&self, _: &RootAdmin) -> Result<Vec<ServerView>, PanelError> {
        let mut out = Vec::new();
        for s in self.storage().servers().await? {
            out.push(self.server_view(s).await?);
        }
        Ok(out)
    }

    pub async fn create_server(
        &self,
        _: &RootAdmin,
        req: NewServerRequest,
    ) -> Result<ServerView, PanelError> {
        let uuid = parse_uuid(&req.uuid)?;
        let s = self
            .admin()
            .add_server(&uuid, &req.name, &req.owner, &req.node, req.backup_limit)
            .await?;
        self.server_view(s).await
    }

    pub(super) async fn server(&self, uuid: &ServerUuid) -> Result<Server, PanelError> {
        self.storage()
            .server_by_uuid(uuid)
            .await?
            .ok_or(PanelError::NotFound(Missing::Server))
    }

    pub async fn update_server(
        &self,
        _: &RootAdmin,
        uuid: &ServerUuid,
        req: UpdateServerRequest,
    ) -> Result<ServerView, PanelError> {
        let server = self.server(uuid).await?;
        let s = self
            .admin()
            .update_server(
                &server,
                req.name.as_deref(),
                req.owner.as_deref(),
                req.backup_limit,
            )
            .await?;
        self.server_view(s).await
    }

    // ---- subusers ----

    pub async fn subusers(
        &self,
        _: &RootAdmin,
        uuid: &ServerUuid,
    ) -> Result<Vec<SubuserView>, PanelError> {
        let server = self.server(uuid).await?;
        Ok(self
            .storage()
            .subusers_of(server.id)
            .await?
            .into_iter()
            .map(|(u, permissions)| SubuserView {
                user_id: u.id,
                email: u.email,
                permissions,
            })
            .collect())
    }

    pub async fn set_subuser(
        &self,
        _: &RootAdmin,
        uuid: &ServerUuid,
        req: SetSubuserRequest,
    ) -> Result<(), PanelError> {
        Ok(self
            .admin()
            .set_subuser(uuid, &req.email, &req.permissions)
            .await?)
    }

    pub async fn remove_subuser(
        &self,
        _: &RootAdmin,
        uuid: &ServerUuid,
        user_id: i64,
    ) -> Result<(), PanelError> {
        let server = self.server(uuid).await?;
        if !self.storage().remove_subuser(server.id, user_id).await? {
            return Err(PanelError::NotFound(Missing::Subuser));
        }
        Ok(())
    }
}

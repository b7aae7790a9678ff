//! The sync of Pterodactyl mode: users, nodes (with their Wings tokens),
//! servers (with backup limits) and subusers' `backup.*` permissions are
//! read from the Application API and made to match here, keyed by
//! Pterodactyl's ids. It only reads from Pterodactyl.
//!
//! Everything is read first; if any list cannot be read completely, nothing
//! is changed (the last good data stays). Then only what differs is
//! written, so a sync that finds no change writes nothing. A server that is
//! gone from Pterodactyl goes through the normal deletion (its repository
//! archived on its node, its keys kept); a user who is gone or no longer an
//! admin loses access and sessions in the same sync.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use api::panel::{PteroSync, PteroSyncStatus, SyncChange};
use api::{Permission, Secret};
use serde::Serialize;

use super::{ApplicationClient, ClientApi, PteroError, PteroNode, PteroServer, PteroUser};
use crate::Panel;
use crate::PanelError;
use crate::admin::normalize_email;
use crate::config::{PterodactylConfig, ZeroBackupLimit};
use crate::error::Missing;
use crate::permissions::{Operator, RootAdmin};
use crate::storage::{NewServer, SyncNode, SyncRecord, SyncServer, SyncUser};

/// How long one request to Pterodactyl may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// Node configurations read at once.
const PARALLEL_NODE_READS: usize = 4;

/// Pterodactyl mode's state in the panel: the clients and the last sync.
pub struct Setup {
    pub(crate) cfg: PterodactylConfig,
    pub(crate) app: ApplicationClient,
    pub(crate) client: ClientApi,
    /// Recent answers of `/api/client/account`, by a hash of the credential.
    pub(crate) identities: Mutex<super::signin::IdentityCache>,
    /// Bounds the questions to Pterodactyl in flight for sign-ins.
    pub(crate) lookups: tokio::sync::Semaphore,
    last: Mutex<Option<SyncReport>>,
    /// One sync at a time in this process.
    running: tokio::sync::Mutex<()>,
}

impl Setup {
    pub fn new(cfg: PterodactylConfig) -> Result<Self, PteroError> {
        let app = ApplicationClient::new(&cfg.url, cfg.application_key.clone(), REQUEST_TIMEOUT)?;
        let client = ClientApi::new(&cfg.url, REQUEST_TIMEOUT)?
            .with_session_cookie_name(&cfg.session_cookie)?;
        Ok(Self {
            cfg,
            app,
            client,
            identities: Mutex::new(super::signin::IdentityCache::default()),
            lookups: tokio::sync::Semaphore::new(super::signin::PARALLEL_LOOKUPS),
            last: Mutex::new(None),
            running: tokio::sync::Mutex::new(()),
        })
    }

    /// Drops every cached sign-in answer.
    pub(crate) fn forget_identities(&self) {
        *self.identities.lock().unwrap_or_else(|p| p.into_inner()) =
            super::signin::IdentityCache::default();
    }

    pub fn last(&self) -> Option<SyncReport> {
        self.last.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Who asked for a sync; made only from the capability that allows it.
#[derive(Debug, Clone, Copy)]
pub struct SyncOrigin {
    name: &'static str,
    /// Retire more servers at once than [`MASS_REMOVAL`] allows.
    allow_mass_removal: bool,
}

/// More servers gone at once than this many, and more than half of them,
/// looks like the wrong Pterodactyl (or a broken one) rather than a host
/// deleting servers: nothing is retired without the operator's word.
const MASS_REMOVAL: usize = 10;

impl SyncOrigin {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            allow_mass_removal: false,
        }
    }
    /// The admin page's button.
    pub fn admin(_: &RootAdmin) -> Self {
        Self::new("admin")
    }
    /// `restic-backups pterodactyl sync`.
    pub fn operator(_: &Operator) -> Self {
        Self::new("command")
    }
    /// `restic-backups pterodactyl sync --allow-mass-removal`.
    pub fn operator_allowing_mass_removal(_: &Operator) -> Self {
        Self {
            name: "command",
            allow_mass_removal: true,
        }
    }
    pub(crate) fn start() -> Self {
        Self::new("start")
    }
    pub(crate) fn interval() -> Self {
        Self::new("interval")
    }
}

/// Rows added, changed and removed of one kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Change {
    pub added: u64,
    pub updated: u64,
    pub removed: u64,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "+{} ~{} -{}", self.added, self.updated, self.removed)
    }
}

/// What one sync did.
#[derive(Debug, Clone, Serialize)]
pub struct SyncReport {
    pub origin: &'static str,
    pub started_at: i64,
    pub duration_ms: u64,
    /// Everything was read and applied without error.
    pub ok: bool,
    pub rows_written: u64,
    pub users: Change,
    pub nodes: Change,
    pub servers: Change,
    pub subusers: Change,
    /// What went wrong, one sentence each (never a key or token).
    pub errors: Vec<String>,
}

impl SyncReport {
    fn view(&self) -> PteroSync {
        let change = |c: &Change| SyncChange {
            added: c.added,
            updated: c.updated,
            removed: c.removed,
        };
        PteroSync {
            origin: self.origin.to_owned(),
            started_at: self.started_at,
            duration_ms: self.duration_ms,
            ok: self.ok,
            rows_written: self.rows_written,
            users: Some(change(&self.users)),
            nodes: Some(change(&self.nodes)),
            servers: Some(change(&self.servers)),
            subusers: Some(change(&self.subusers)),
            summary: self.summary(),
            errors: self.errors.clone(),
        }
    }

    pub fn summary(&self) -> String {
        format!(
            "users {}, nodes {}, servers {}, subusers {}",
            self.users, self.nodes, self.servers, self.subusers
        )
    }
}

impl Panel {
    /// Runs one sync now (waiting for one already running in this process).
    pub async fn sync_pterodactyl(&self, origin: SyncOrigin) -> Result<SyncReport, PanelError> {
        let setup = self
            .pterodactyl()
            .ok_or(PanelError::NotFound(Missing::PterodactylMode))?;
        let _one = setup.running.lock().await;
        let started = Instant::now();
        let mut report = SyncReport {
            origin: origin.name,
            started_at: crate::service::now(),
            duration_ms: 0,
            ok: false,
            rows_written: 0,
            users: Change::default(),
            nodes: Change::default(),
            servers: Change::default(),
            subusers: Change::default(),
            errors: Vec::new(),
        };
        let read = tokio::try_join!(
            setup.app.users(),
            setup.app.nodes(),
            setup.app.servers_with_subusers()
        );
        match read {
            Err(e) => report.errors.push(format!(
                "nothing changed, Pterodactyl could not be read: {e}"
            )),
            Ok((users, nodes, servers)) => {
                let mut sync = Sync {
                    panel: self,
                    setup,
                    report: &mut report,
                    allow_mass_removal: origin.allow_mass_removal,
                };
                if let Err(e) = sync.apply(&users, &nodes, &servers).await {
                    report.errors.push(format!("the sync stopped: {e}"));
                }
            }
        }
        report.ok = report.errors.is_empty();
        self.metrics().sync(report.ok, crate::service::now());
        if report.rows_written > 0 {
            // Sign-ins answered before this sync may carry what it changed
            // (an admin flag, a user now gone): ask Pterodactyl again.
            setup.forget_identities();
        }
        report.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let summary = report.summary();
        if report.ok {
            tracing::info!(
                origin = report.origin,
                duration_ms = report.duration_ms,
                rows_written = report.rows_written,
                "Pterodactyl sync: {summary}"
            );
        } else {
            tracing::warn!(
                origin = report.origin,
                duration_ms = report.duration_ms,
                rows_written = report.rows_written,
                errors = %report.errors.join("; "),
                "Pterodactyl sync: {summary}"
            );
        }
        // Kept in the database when it changed something, or failed
        // differently from the last time (a steady failure is one row).
        let previous_errors = setup.last().map(|l| l.errors).unwrap_or_default();
        if report.rows_written > 0 || (!report.ok && report.errors != previous_errors) {
            let record = SyncRecord {
                id: 0,
                origin: report.origin.to_owned(),
                started_at: report.started_at,
                duration_ms: i64::try_from(report.duration_ms).unwrap_or(i64::MAX),
                ok: report.ok,
                rows_written: i64::try_from(report.rows_written).unwrap_or(i64::MAX),
                summary,
                errors: report.errors.join("\n"),
            };
            if let Err(e) = self.storage().record_sync(&record).await {
                tracing::warn!(error = %e, "Pterodactyl sync result not recorded");
            }
        }
        *setup.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(report.clone());
        Ok(report)
    }

    /// The last sync of this process and the 20 most recent recorded ones
    /// (syncs that changed something or failed).
    pub async fn pterodactyl_sync_status(
        &self,
        _: &RootAdmin,
    ) -> Result<PteroSyncStatus, PanelError> {
        let setup = self
            .pterodactyl()
            .ok_or(PanelError::NotFound(Missing::PterodactylMode))?;
        let recorded = self.storage().recent_syncs(20).await?;
        Ok(PteroSyncStatus {
            last: setup.last().map(|r| r.view()),
            recorded: recorded
                .into_iter()
                .map(|r| PteroSync {
                    origin: r.origin,
                    started_at: r.started_at,
                    duration_ms: u64::try_from(r.duration_ms).unwrap_or(0),
                    ok: r.ok,
                    rows_written: u64::try_from(r.rows_written).unwrap_or(0),
                    users: None,
                    nodes: None,
                    servers: None,
                    subusers: None,
                    summary: r.summary,
                    errors: r.errors.lines().map(str::to_owned).collect(),
                })
                .collect(),
        })
    }
}

struct Sync<'a> {
    panel: &'a Panel,
    setup: &'a Setup,
    report: &'a mut SyncReport,
    allow_mass_removal: bool,
}

fn id_of(id: u64, what: &str) -> Result<i64, PanelError> {
    i64::try_from(id).map_err(|_| PanelError::Internal(format!("{what} id {id} is out of range")))
}

impl Sync<'_> {
    async fn apply(
        &mut self,
        users: &[PteroUser],
        nodes: &[PteroNode],
        servers: &[PteroServer],
    ) -> Result<(), PanelError> {
        if users.is_empty() {
            // Pterodactyl always has the admin whose key this is: an empty
            // list is a fault, not a reason to remove every user.
            self.report
                .errors
                .push("Pterodactyl listed no users; nothing changed".into());
            return Ok(());
        }
        self.users(users).await?;
        self.nodes(nodes).await?;
        self.servers(servers).await?;
        self.subusers(servers).await?;
        self.removals(users, nodes, servers).await?;
        Ok(())
    }

    async fn users(&mut self, users: &[PteroUser]) -> Result<(), PanelError> {
        let storage = self.panel.storage();
        let existing = storage.users().await?;
        let by_ptero: HashMap<i64, _> = existing
            .iter()
            .filter_map(|u| u.ptero_id.map(|p| (p, u)))
            .collect();
        let local_emails: HashSet<&str> = existing
            .iter()
            .filter(|u| u.ptero_id.is_none())
            .map(|u| u.email.as_str())
            .collect();
        let (mut add, mut update, mut demoted) = (Vec::new(), Vec::new(), Vec::new());
        let mut parked = Vec::new();
        for pu in users {
            let ptero_id = id_of(pu.id, "user")?;
            let email = normalize_email(&pu.email).ok();
            // Never joined to a local account by e-mail: a Pterodactyl user
            // may set any address on their account.
            let why = match &email {
                None => Some("its e-mail address is not usable".to_owned()),
                Some(e) if local_emails.contains(e.as_str()) => {
                    Some(format!("a local account has the e-mail {e}"))
                }
                Some(_) => None,
            };
            if let Some(why) = why {
                self.report.errors.push(format!(
                    "Pterodactyl user {} is not synced and has no access here: {why}",
                    pu.id
                ));
                // Known before: no access (and no e-mail held) until fixed.
                if let Some(u) = by_ptero.get(&ptero_id) {
                    parked.push((u.id, ptero_id));
                }
                continue;
            }
            let Some(email) = email else { continue };
            let want = SyncUser {
                ptero_id,
                email,
                username: pu.username.clone(),
                root_admin: pu.root_admin,
            };
            match by_ptero.get(&ptero_id) {
                None => add.push(want),
                Some(u)
                    if u.email != want.email
                        || u.username.as_deref() != Some(want.username.as_str())
                        || u.root_admin != want.root_admin =>
                {
                    if u.root_admin && !want.root_admin {
                        demoted.push(u.id);
                    }
                    update.push((u.id, want));
                }
                Some(_) => {}
            }
        }
        for (id, ptero_id) in parked {
            self.report.rows_written += storage.park_user(id, ptero_id).await?;
        }
        if add.is_empty() && update.is_empty() {
            return Ok(());
        }
        let now = crate::service::now();
        match storage.sync_users(&add, &update, now).await {
            Ok(rows) => {
                self.report.rows_written += rows;
                self.report.users.added += add.len() as u64;
                self.report.users.updated += update.len() as u64;
            }
            // One row that can not be written (an e-mail another synced
            // user still holds) must not stop the sync: row by row.
            Err(crate::storage::StorageError::Conflict(_)) => {
                for u in &add {
                    match storage.sync_users(std::slice::from_ref(u), &[], now).await {
                        Ok(rows) => {
                            self.report.rows_written += rows;
                            self.report.users.added += 1;
                        }
                        Err(e) => self.report.errors.push(format!(
                            "Pterodactyl user {} is not synced: {e}",
                            u.ptero_id
                        )),
                    }
                }
                for row in &update {
                    match storage
                        .sync_users(&[], std::slice::from_ref(row), now)
                        .await
                    {
                        Ok(rows) => {
                            self.report.rows_written += rows;
                            self.report.users.updated += 1;
                        }
                        Err(e) => {
                            self.report.errors.push(format!(
                                "Pterodactyl user {} is not synced and has no access here: {e}",
                                row.1.ptero_id
                            ));
                            self.report.rows_written +=
                                storage.park_user(row.0, row.1.ptero_id).await?;
                        }
                    }
                }
            }
            Err(e) => return Err(e.into()),
        }
        // A demoted admin's open sessions end now, not at their timeout.
        for id in demoted {
            self.report.rows_written += storage.delete_sessions_of(id, None).await?;
        }
        Ok(())
    }

    async fn nodes(&mut self, nodes: &[PteroNode]) -> Result<(), PanelError> {
        let storage = self.panel.storage();
        let existing = storage.nodes().await?;
        let by_ptero: HashMap<i64, _> = existing
            .iter()
            .filter_map(|n| n.ptero_id.map(|p| (p, n)))
            .collect();
        let local_names: HashSet<&str> = existing
            .iter()
            .filter(|n| n.ptero_id.is_none())
            .map(|n| n.name.as_str())
            .collect();
        let port = self.setup.cfg.agent_port;
        let agent_token = self.setup.cfg.agent_token.clone();
        let admin = self.panel.admin();
        let mut wanted = Vec::new();
        let mut need_token = Vec::new();
        for pn in nodes {
            let ptero_id = id_of(pn.id, "node")?;
            if local_names.contains(pn.name.as_str()) {
                self.report.errors.push(format!(
                    "Pterodactyl node {} is not synced: a local node is named {:?}",
                    pn.id, pn.name
                ));
                continue;
            }
            let url = pn.url_with_port(port);
            let old = by_ptero.get(&ptero_id);
            // The token is read again when the node changed in Pterodactyl
            // (a token reset moves `updated_at`) or was renamed here (the
            // seal is bound to the name).
            let stale = old.is_none_or(|o| {
                o.ptero_updated_at != pn.updated_at
                    || o.name != pn.name
                    || o.token_enc.is_empty()
                    // `agent_token` set, changed or removed since.
                    || match (&agent_token, admin.node_token(o)) {
                        (Some(t), Ok(has)) => has.expose() != t.expose(),
                        (Some(_), Err(_)) => true,
                        (None, _) => false,
                    }
            });
            let changed = stale || old.is_some_and(|o| o.url != url);
            if changed {
                if stale {
                    need_token.push(pn.id);
                }
                wanted.push((old.map(|o| o.id), ptero_id, pn, url));
            }
        }
        if wanted.is_empty() {
            return Ok(());
        }
        // With `agent_token`, Wings' tokens are never read: every agent
        // takes that one token.
        let tokens = match &agent_token {
            Some(t) => need_token.iter().map(|id| (*id, Ok(t.clone()))).collect(),
            None => self.read_tokens(&need_token).await,
        };
        let (mut add, mut update) = (Vec::new(), Vec::new());
        for (id, ptero_id, pn, url) in wanted {
            let token_enc = match tokens.get(&pn.id) {
                Some(Ok(token)) => Some(admin.seal_node_token(&pn.name, token)),
                Some(Err(e)) => {
                    self.report.errors.push(format!(
                        "node {:?}: its Wings token could not be read: {e}",
                        pn.name
                    ));
                    continue;
                }
                None => None,
            };
            let row = SyncNode {
                ptero_id,
                name: pn.name.clone(),
                url,
                token_enc,
                ptero_updated_at: pn.updated_at.clone(),
            };
            match id {
                Some(id) => update.push((id, row)),
                None => add.push(row),
            }
        }
        if add.is_empty() && update.is_empty() {
            return Ok(());
        }
        self.report.rows_written += storage
            .sync_nodes(&add, &update, crate::service::now())
            .await?;
        self.report.nodes.added += add.len() as u64;
        self.report.nodes.updated += update.len() as u64;
        Ok(())
    }

    /// The Wings tokens of `ids`, a few nodes at a time.
    async fn read_tokens(&self, ids: &[u64]) -> HashMap<u64, Result<Secret, PteroError>> {
        let mut out = HashMap::new();
        for chunk in ids.chunks(PARALLEL_NODE_READS) {
            let mut set = tokio::task::JoinSet::new();
            for &id in chunk {
                let app = self.setup.app.clone();
                set.spawn(async move { (id, app.node_configuration(id).await.map(|c| c.token)) });
            }
            while let Some(joined) = set.join_next().await {
                if let Ok((id, token)) = joined {
                    out.insert(id, token);
                }
            }
        }
        out
    }

    fn backup_limit(&self, limit: u64) -> i64 {
        match (limit, self.setup.cfg.zero_backup_limit) {
            (0, ZeroBackupLimit::Unlimited) => 0,
            (0, ZeroBackupLimit::Disabled) => -1,
            (n, _) => i64::try_from(n).unwrap_or(i64::MAX),
        }
    }

    async fn servers(&mut self, servers: &[PteroServer]) -> Result<(), PanelError> {
        let storage = self.panel.storage();
        let users = ptero_ids(storage.users().await?.iter().map(|u| (u.ptero_id, u.id)));
        let nodes = ptero_ids(storage.nodes().await?.iter().map(|n| (n.ptero_id, n.id)));
        let existing = storage.servers().await?;
        let by_ptero: HashMap<i64, _> = existing
            .iter()
            .filter_map(|s| s.ptero_id.map(|p| (p, s)))
            .collect();
        let by_uuid: HashMap<&str, _> = existing.iter().map(|s| (s.uuid.as_str(), s)).collect();
        let admin = self.panel.admin();
        let (mut add, mut update) = (Vec::new(), Vec::new());
        for ps in servers {
            let ptero_id = id_of(ps.id, "server")?;
            let owner = users.get(&id_of(ps.owner_id, "user")?);
            let node = nodes.get(&id_of(ps.node_id, "node")?);
            let (Some(&owner_id), Some(&node_id)) = (owner, node) else {
                self.report.errors.push(format!(
                    "server {} is not synced: its owner or node is not synced",
                    ps.uuid
                ));
                continue;
            };
            let want = SyncServer {
                ptero_id,
                name: ps.name.clone(),
                owner_id,
                node_id,
                backup_limit: self.backup_limit(ps.backup_limit),
            };
            // A server added by hand before Pterodactyl mode is the same
            // server when its UUID matches (Pterodactyl made the UUID).
            let old = by_ptero.get(&ptero_id).or_else(|| {
                by_uuid
                    .get(ps.uuid.as_str())
                    .filter(|s| s.ptero_id.is_none())
            });
            match old {
                None if by_uuid.contains_key(ps.uuid.as_str()) => {
                    self.report.errors.push(format!(
                        "server {} is not synced: its UUID belongs to another synced server",
                        ps.uuid
                    ));
                }
                None => {
                    let key_enc = admin.new_sealed_server_key(&ps.uuid);
                    let new = NewServer {
                        uuid: ps.uuid.clone(),
                        name: want.name,
                        owner_id,
                        node_id,
                        backup_limit: want.backup_limit,
                    };
                    add.push((new, key_enc, ptero_id));
                }
                Some(s)
                    if s.ptero_id != Some(ptero_id)
                        || s.name != want.name
                        || s.owner_id != want.owner_id
                        || s.node_id != want.node_id
                        || s.backup_limit != want.backup_limit =>
                {
                    update.push((s.id, want));
                }
                Some(_) => {}
            }
        }
        if add.is_empty() && update.is_empty() {
            return Ok(());
        }
        self.report.rows_written += storage
            .sync_servers(&add, &update, crate::service::now())
            .await?;
        self.report.servers.added += add.len() as u64;
        self.report.servers.updated += update.len() as u64;
        Ok(())
    }

    async fn subusers(&mut self, servers: &[PteroServer]) -> Result<(), PanelError> {
        let storage = self.panel.storage();
        let users = ptero_ids(storage.users().await?.iter().map(|u| (u.ptero_id, u.id)));
        let synced = ptero_ids(storage.servers().await?.iter().map(|s| (s.ptero_id, s.id)));
        let synced_ids: HashSet<i64> = synced.values().copied().collect();
        let mut want: HashMap<(i64, i64), Vec<Permission>> = HashMap::new();
        for ps in servers {
            let Some(&server_id) = synced.get(&id_of(ps.id, "server")?) else {
                continue;
            };
            for su in &ps.subusers {
                let Some(&user_id) = users.get(&id_of(su.user_id, "user")?) else {
                    continue;
                };
                let perms: Vec<Permission> = Permission::ALL
                    .iter()
                    .copied()
                    .filter(|p| su.has(p.as_str()))
                    .collect();
                if !perms.is_empty() {
                    want.insert((server_id, user_id), perms);
                }
            }
        }
        let mut current: HashMap<(i64, i64), Vec<Permission>> = HashMap::new();
        for (server_id, user_id, perms) in storage.all_subusers().await? {
            if synced_ids.contains(&server_id) {
                current.insert((server_id, user_id), perms);
            }
        }
        let mut set = Vec::new();
        for (&(server_id, user_id), perms) in &want {
            match current.get(&(server_id, user_id)) {
                Some(old) if old == perms => {}
                Some(_) => {
                    self.report.subusers.updated += 1;
                    set.push((server_id, user_id, perms.clone()));
                }
                None => {
                    self.report.subusers.added += 1;
                    set.push((server_id, user_id, perms.clone()));
                }
            }
        }
        let remove: Vec<(i64, i64)> = current
            .keys()
            .filter(|k| !want.contains_key(k))
            .copied()
            .collect();
        self.report.subusers.removed += remove.len() as u64;
        if !set.is_empty() || !remove.is_empty() {
            self.report.rows_written += storage.sync_subusers(&set, &remove).await?;
        }
        Ok(())
    }

    /// Servers, then users, then nodes that Pterodactyl no longer has.
    async fn removals(
        &mut self,
        users: &[PteroUser],
        nodes: &[PteroNode],
        servers: &[PteroServer],
    ) -> Result<(), PanelError> {
        let storage = self.panel.storage();
        let keep: HashSet<u64> = servers.iter().map(|s| s.id).collect();
        let synced: Vec<_> = storage
            .servers()
            .await?
            .into_iter()
            .filter(|s| s.ptero_id.is_some())
            .collect();
        let gone: Vec<_> = synced
            .iter()
            .filter(|s| {
                s.ptero_id
                    .is_some_and(|p| !keep.contains(&u64::try_from(p).unwrap_or(u64::MAX)))
            })
            .collect();
        let mass = gone.len() > MASS_REMOVAL && gone.len() * 2 > synced.len();
        if !gone.is_empty() && (servers.is_empty() || mass) && !self.allow_mass_removal {
            self.report.errors.push(format!(
                "Pterodactyl no longer lists {} of the {} synced servers; none was retired \
                 and no user or node removed. If that is right, run \
                 `restic-backups pterodactyl sync --allow-mass-removal`",
                gone.len(),
                synced.len()
            ));
            return Ok(());
        }
        for server in gone {
            match self.panel.retire_server(server).await {
                Ok(()) => {
                    self.report.servers.removed += 1;
                    self.report.rows_written += 1;
                }
                Err(e) => self.report.errors.push(format!(
                    "server {} was deleted in Pterodactyl but is kept until its repository \
                     can be archived (tried again at the next sync): {e}",
                    server.uuid
                )),
            }
        }
        let keep: HashSet<u64> = users.iter().map(|u| u.id).collect();
        for user in storage.users().await? {
            let Some(pid) = user.ptero_id else { continue };
            if keep.contains(&u64::try_from(pid).unwrap_or(u64::MAX)) {
                continue;
            }
            match storage.delete_user(user.id).await {
                Ok(_) => {
                    self.report.users.removed += 1;
                    self.report.rows_written += 1;
                }
                // Still owns a server that waits for its archive: no access
                // meanwhile, removed at a later sync.
                Err(crate::storage::StorageError::InUse) => {
                    self.report.rows_written += storage.disable_user(user.id).await?;
                }
                Err(e) => return Err(e.into()),
            }
        }
        let keep: HashSet<u64> = nodes.iter().map(|n| n.id).collect();
        for node in storage.nodes().await? {
            let Some(pid) = node.ptero_id else { continue };
            if keep.contains(&u64::try_from(pid).unwrap_or(u64::MAX)) {
                continue;
            }
            match storage.delete_node(node.id).await {
                Ok(_) => {
                    self.report.nodes.removed += 1;
                    self.report.rows_written += 1;
                }
                Err(crate::storage::StorageError::InUse) => self.report.errors.push(format!(
                    "node {:?} was deleted in Pterodactyl but still has servers here",
                    node.name
                )),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

/// Pterodactyl id → our id, for synced rows.
fn ptero_ids(rows: impl Iterator<Item = (Option<i64>, i64)>) -> HashMap<i64, i64> {
    rows.filter_map(|(p, id)| p.map(|p| (p, id))).collect()
}

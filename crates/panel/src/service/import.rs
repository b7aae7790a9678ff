//! Carrying an install of the PHP/Go extension over: the operator's
//! `import extension` command. The plan comes from [`crate::import`]; this
//! checks every key with the server's agent (a key is only made current if it
//! opens its repository, or if there is no repository yet) and writes each
//! server in one transaction. Running it twice changes nothing the second
//! time; `dry_run` does every check and writes nothing.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use api::Secret;

use super::{Panel, now};
use crate::PanelError;
use crate::agent_client::ClientError;
use crate::import::{self, MappedPolicy, PolicyFrom, ServerPlan, SourceKey, UnknownServer};
use crate::permissions::Operator;
use crate::storage::extension::ExtensionSource;
use crate::storage::{ImportState, ImportWritten, KeyRow, Policy, Server, ServerImportWrite};

/// Agents asked at once while keys are checked.
const KEY_CHECKS_AT_ONCE: usize = 16;

/// What happened to a server's current key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyOutcome {
    /// The extension had no key for it.
    None,
    /// The panel already uses this key.
    Unchanged,
    /// It opened the repository and is now the current key; `moved` names
    /// the extension's repository folder that was moved into place.
    Imported { moved: Option<String> },
    /// There is no repository yet; the key is current and will create it.
    ImportedNoRepository,
    /// It does not open the repository: not stored as current.
    WrongKey,
    /// The agent could not be asked: not stored; run the import again.
    Unchecked(String),
}

/// What happened to a server's schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyOutcome {
    None,
    Imported(PolicyFrom),
    Unchanged,
    /// A schedule saved in this panel is kept (it differs).
    KeptOurs,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerReport {
    pub uuid: String,
    pub name: String,
    pub key: KeyOutcome,
    pub history_added: usize,
    pub policy: PolicyOutcome,
    /// The imported schedule, e.g. "every 6 hours, on, keep last 7".
    pub policy_text: Option<String>,
    pub notes_written: usize,
    pub jobs_written: usize,
    pub problems: Vec<String>,
}

impl ServerReport {
    /// A report with nothing done yet but `problems`.
    fn new(uuid: String, name: String, problems: Vec<String>) -> Self {
        Self {
            uuid,
            name,
            key: KeyOutcome::None,
            history_added: 0,
            policy: PolicyOutcome::None,
            policy_text: None,
            notes_written: 0,
            jobs_written: 0,
            problems,
        }
    }

    fn failed(uuid: String, name: String, e: PanelError) -> Self {
        tracing::warn!(server = %uuid, error = %e, "a server's import failed");
        let why = format!("nothing was imported for this server ({e}); run the import again");
        Self::new(uuid, name, vec![why])
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    pub dry_run: bool,
    pub servers: Vec<ServerReport>,
    pub unknown: Vec<UnknownServer>,
    pub problems: Vec<String>,
    pub legacy_rows: usize,
    pub tables: Vec<(String, usize)>,
    pub notes_found: usize,
    pub jobs_found: usize,
    pub duration_ms: u128,
}

impl ImportReport {
    /// Rows written (or that would be).
    pub fn changes(&self) -> usize {
        self.servers
            .iter()
            .map(|s| {
                usize::from(matches!(
                    s.key,
                    KeyOutcome::Imported { .. } | KeyOutcome::ImportedNoRepository
                )) + s.history_added
                    + usize::from(matches!(s.policy, PolicyOutcome::Imported(_)))
                    + s.notes_written
                    + s.jobs_written
            })
            .sum()
    }

    /// Problems of every kind, unknown servers included.
    pub fn problem_count(&self) -> usize {
        self.problems.len()
            + self.unknown.len()
            + self
                .servers
                .iter()
                .map(|s| {
                    s.problems.len()
                        + usize::from(matches!(
                            s.key,
                            KeyOutcome::WrongKey | KeyOutcome::Unchecked(_)
                        ))
                })
                .sum::<usize>()
    }
}

fn policy_text(p: &Policy) -> String {
    let mut s = format!(
        "every {} {}, {}",
        p.interval_value,
        p.interval_unit,
        if p.enabled { "on" } else { "off" }
    );
    for (name, v) in [
        ("last", p.keep_last),
        ("daily", p.keep_daily),
        ("weekly", p.keep_weekly),
        ("monthly", p.keep_monthly),
        ("yearly", p.keep_yearly),
    ] {
        if let Some(v) = v {
            s.push_str(&format!(", keep {name} {v}"));
        }
    }
    if let Some(w) = &p.keep_within {
        s.push_str(&format!(", keep within {w}"));
    }
    s
}

/// The settings of a policy, without its run record.
fn same_settings(a: &Policy, b: &Policy) -> bool {
    (
        a.enabled,
        a.interval_value,
        &a.interval_unit,
        a.keep_last,
        a.keep_daily,
        a.keep_weekly,
        a.keep_monthly,
        a.keep_yearly,
        &a.keep_within,
    ) == (
        b.enabled,
        b.interval_value,
        &b.interval_unit,
        b.keep_last,
        b.keep_daily,
        b.keep_weekly,
        b.keep_monthly,
        b.keep_yearly,
        &b.keep_within,
    )
}

impl Panel {
    /// Imports (or with `dry_run` plans) what `source` holds.
    pub async fn import_extension(
        &self,
        _: &Operator,
        source: &ExtensionSource,
        dry_run: bool,
    ) -> Result<ImportReport, PanelError> {
        let started = Instant::now();
        let at = now();
        let servers: HashMap<_, _> = self
            .storage()
            .servers()
            .await?
            .into_iter()
            .map(|s| (s.uuid.clone(), s))
            .collect();
        let known: HashSet<_> = servers.keys().cloned().collect();
        let plan = import::plan(source, &known, at);
        let mut report = ImportReport {
            dry_run,
            unknown: plan.unknown,
            problems: plan.problems,
            legacy_rows: plan.legacy_rows,
            tables: plan.tables,
            notes_found: plan.servers.iter().map(|s| s.notes.len()).sum(),
            jobs_found: plan.servers.iter().map(|s| s.jobs.len()).sum(),
            ..ImportReport::default()
        };

        let known = Arc::new(self.storage().import_state().await?);
        let limit = Arc::new(tokio::sync::Semaphore::new(KEY_CHECKS_AT_ONCE));
        let mut tasks = tokio::task::JoinSet::new();
        for p in plan.servers {
            let Some(server) = servers.get(&p.uuid).cloned() else {
                continue;
            };
            let (panel, limit, known) = (self.clone(), limit.clone(), known.clone());
            tasks.spawn(async move {
                let _slot = limit.acquire_owned().await;
                let (uuid, name) = (server.uuid.to_string(), server.name.clone());
                // One server's failure is reported with it; the others go on.
                panel
                    .import_server(&server, p, &known, dry_run, at)
                    .await
                    .unwrap_or_else(|e| ServerReport::failed(uuid, name, e))
            });
        }
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok(r) => report.servers.push(r),
                Err(e) => report.problems.push(format!("an import task stopped: {e}")),
            }
        }
        report.servers.sort_by(|a, b| a.uuid.cmp(&b.uuid));
        report.duration_ms = started.elapsed().as_millis();
        tracing::info!(
            dry_run,
            servers = report.servers.len(),
            unknown = report.unknown.len(),
            changes = report.changes(),
            problems = report.problem_count(),
            ms = report.duration_ms as u64,
            "extension import"
        );
        Ok(report)
    }

    async fn import_server(
        &self,
        server: &Server,
        plan: ServerPlan,
        known: &ImportState,
        dry_run: bool,
        at: i64,
    ) -> Result<ServerReport, PanelError> {
        let mut out =
            ServerReport::new(server.uuid.to_string(), server.name.clone(), plan.problems);
        let mut write = ServerImportWrite {
            server_id: server.id,
            ..ServerImportWrite::default()
        };

        // Keys: what this panel holds, opened, to compare with.
        let no_rows = Vec::new();
        let rows = known.key_rows.get(&server.id).unwrap_or(&no_rows);
        let mut held: Vec<Secret> = Vec::new();
        for r in rows {
            match self.admin().open_server_key(server, &r.key_enc) {
                Ok(k) => held.push(k),
                Err(e) => return Err(e.into()),
            }
        }
        let current = match known.current_keys.get(&server.id) {
            Some(sealed) => Some(self.admin().open_server_key(server, sealed)?),
            None => None,
        };
        // Notes or finished runs mean the extension had a repository.
        let had_repository = !plan.notes.is_empty()
            || plan
                .jobs
                .iter()
                .any(|j| j.status == api::RunStatus::Succeeded);
        let mut new_current: Option<&SourceKey> = None;
        if let Some(k) = &plan.key {
            out.key = if current.as_ref() == Some(&k.key) {
                KeyOutcome::Unchanged
            } else {
                self.check_key(server, &k.key, dry_run).await
            };
            if out.key == KeyOutcome::ImportedNoRepository && had_repository {
                out.key = KeyOutcome::Unchecked(
                    "the extension has notes or runs for this server but its node has no repository for it: is `repo_root` where the extension kept them?".into(),
                );
            }
            if matches!(
                out.key,
                KeyOutcome::Imported { .. } | KeyOutcome::ImportedNoRepository
            ) {
                new_current = Some(k);
                let owner = plan
                    .history
                    .iter()
                    .find(|h| h.key == k.key)
                    .and_then(|h| h.owner_username.clone());
                write.current_key = Some(KeyRow {
                    key_enc: self.admin().seal_server_key(server, &k.key),
                    created_at: k.at.unwrap_or(at),
                    retired_at: None,
                    owner_username: owner,
                });
            }
        }
        // Earlier keys: each one once; a key retired when the next came.
        let mut seen: Vec<&Secret> = held.iter().collect();
        if let Some(k) = new_current {
            seen.push(&k.key);
        }
        if let Some(k) = &plan.key {
            // The extension's current key is never filed as retired.
            seen.push(&k.key);
        }
        for (i, h) in plan.history.iter().enumerate() {
            if seen.contains(&&h.key) {
                continue;
            }
            seen.push(&h.key);
            let created = h.at.unwrap_or(at);
            let retired = plan
                .history
                .get(i + 1)
                .and_then(|next| next.at)
                .unwrap_or(at)
                .max(created);
            write.history.push(KeyRow {
                key_enc: self.admin().seal_server_key(server, &h.key),
                created_at: created,
                retired_at: Some(retired),
                owner_username: h.owner_username.clone(),
            });
        }
        out.history_added = write.history.len();

        // The schedule: only where this panel has none saved.
        if let Some(MappedPolicy { policy, from }) = plan.policy {
            let policy = Policy {
                server_id: server.id,
                ..policy
            };
            out.policy_text = Some(policy_text(&policy));
            out.policy = match known.policies.get(&server.id) {
                Some(ours) if same_settings(ours, &policy) => PolicyOutcome::Unchanged,
                Some(_) => PolicyOutcome::KeptOurs,
                None => {
                    write.policy = Some(policy);
                    PolicyOutcome::Imported(from)
                }
            };
        }

        // Notes and jobs: only what is new or changed.
        let no_notes = HashMap::new();
        let notes = known.notes.get(&server.id).unwrap_or(&no_notes);
        write.notes = plan
            .notes
            .into_iter()
            .filter(|(id, note)| notes.get(id) != Some(note))
            .collect();
        let no_refs = HashSet::new();
        let refs = known.job_refs.get(&server.id).unwrap_or(&no_refs);
        write.jobs = plan
            .jobs
            .into_iter()
            .filter(|j| !refs.contains(&j.import_ref))
            .collect();
        out.notes_written = write.notes.len();
        out.jobs_written = write.jobs.len();

        if !dry_run
            && write
                != (ServerImportWrite {
                    server_id: server.id,
                    ..ServerImportWrite::default()
                })
        {
            let written: ImportWritten = self.storage().write_import(&write, at).await?;
            tracing::info!(server = %server.uuid, rows = written.total(), "imported from the extension");
        }
        Ok(out)
    }

    /// Asks the server's agent whether `key` opens its repository (moving
    /// the extension's repository into place unless `dry_run`).
    async fn check_key(&self, server: &Server, key: &Secret, dry_run: bool) -> KeyOutcome {
        let client = match self
            .node(server.node_id)
            .await
            .and_then(|n| self.client(&n))
        {
            Ok(c) => c,
            Err(e) => return KeyOutcome::Unchecked(e.to_string()),
        };
        match client.adopt(&server.uuid, key, dry_run).await {
            Ok(a) => KeyOutcome::Imported {
                moved: a.adopted_from,
            },
            Err(e) if super::backups::no_repository(&e) => KeyOutcome::ImportedNoRepository,
            Err(ClientError::Agent { code, .. }) if code == "wrong_key" => KeyOutcome::WrongKey,
            Err(e) => KeyOutcome::Unchecked(PanelError::from(e).to_string()),
        }
    }
}

//! The agent's operations on server repositories. HTTP handlers call these;
//! these call the engine. Every mutating restic run on a repository holds
//! that repository's writer lock, so there is never more than one at a time.

mod adopt;
mod archive;
mod backup;
mod download;
mod files;
mod history;
mod keys;
mod prune;
mod restore;
mod retention;

pub use download::Download;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use api::agent::{BackupList, JobView, LockState, RepoStats};
use api::{JobId, Secret, ServerUuid, SnapshotRef};
use engine::{Cancel, Repo, Restic, StatsMode};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::{Mutex as AsyncMutex, MutexGuard};

use crate::index::{Cursor, Entry, LOCKED_TAG, RepoFingerprints, RepoIndex};
use crate::jobs::Jobs;
use crate::layout::Layout;
use crate::{AgentConfig, AgentError};

/// How long a short operation (lock, unlock, delete) waits for a running
/// operation on the same repository before answering `job_in_progress`.
const WRITER_WAIT: Duration = Duration::from_secs(10);

/// Page size limits of the listing.
pub const DEFAULT_LIMIT: usize = 25;
pub const MAX_LIMIT: usize = 100;

/// Per-repository state.
#[derive(Default)]
struct RepoSlot {
    /// Held by every restic process that changes the repository.
    writer: AsyncMutex<()>,
    index: AsyncMutex<RepoIndex>,
    /// The job that owns the repository (queued or running), if any.
    active_job: Mutex<Option<JobId>>,
    /// A background size measurement is running.
    measuring: AtomicBool,
    /// Held while a snapshot is listed for the file browser.
    listing_build: AsyncMutex<()>,
    /// The storage history, once read (see [`history`]).
    history: Mutex<Option<Arc<history::History>>>,
    /// A restic run may have died holding a lock: run `restic unlock` (which
    /// removes stale locks only) before the next change.
    needs_unlock: AtomicBool,
    /// A prune job is queued or running.
    prune_queued: AtomicBool,
    /// Serialises read-modify-write of the persisted prune state.
    prune_state: Mutex<()>,
    /// Commands run that may have changed the repository.
    changes: AtomicU64,
    /// A remote repository's last listing (see `Inner::remote_recheck`).
    remote_seen: Mutex<Option<RemoteSeen>>,
    /// Commands run that may have changed the second copy.
    copy_changes: AtomicU64,
    /// The stable IDs of the snapshots the second copy holds, when read.
    copy_seen: Mutex<Option<CopySeen>>,
    /// A background reading of the second copy is running.
    copy_refreshing: AtomicBool,
    /// A local repository's master key, opened with the password of this
    /// MAC: new snapshot files are read with it instead of a restic run.
    master: Mutex<Option<([u8; 32], engine::MasterKey)>>,
    /// The master key is being opened in the background.
    master_opening: AtomicBool,
    /// The last failed opening (for which password, when): not tried
    /// again for that password for ten minutes.
    master_failed: Mutex<Option<([u8; 32], std::time::Instant)>>,
}

/// What the second copy held when last read.
#[derive(Clone)]
struct CopySeen {
    at: std::time::Instant,
    changes: u64,
    /// Stable IDs (`original`, else the ID) of the copied snapshots;
    /// `None`: the copy could not be read.
    originals: Option<Arc<std::collections::HashSet<String>>>,
}

/// What a listing of a remote repository's `snapshots/` found.
#[derive(Clone)]
struct RemoteSeen {
    at: std::time::Instant,
    /// `changes` when the listing was taken.
    changes: u64,
    /// The snapshot file IDs, or `None`: no repository there.
    snapshot_ids: Option<Vec<String>>,
}

impl RepoSlot {
    fn active_job(&self) -> Option<JobId> {
        self.active_job
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// A repository's claim by one user-started job (backup, restore, archive);
/// released however the job ends.
struct JobClaim {
    slot: Arc<RepoSlot>,
    kind: api::agent::JobKind,
}

/// What a job's work receives: everything owned, so it can run on its own task.
struct JobCtx {
    agent: Agent,
    server: ServerUuid,
    slot: Arc<RepoSlot>,
    key: Secret,
    job: JobId,
}

impl Drop for JobClaim {
    fn drop(&mut self) {
        *self
            .slot
            .active_job
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = None;
    }
}

struct Inner {
    layout: Layout,
    restic: Restic,
    jobs: Arc<Jobs>,
    metrics: Arc<crate::metrics::Metrics>,
    repos: Mutex<HashMap<ServerUuid, Arc<RepoSlot>>>,
    /// Per-process secret for MACs of verified keys (keys themselves are
    /// never kept).
    mac_key: [u8; 32],
    /// Cancelled when the agent shuts down; every job's restic run watches it.
    shutdown: Cancel,
    /// Cancelled when a stop begins: no new job is taken, queued jobs end
    /// without starting, running ones may finish (see [`Agent::drain`]).
    draining: Cancel,
    /// Jobs spawned and not yet finished (queued or running).
    live_jobs: tokio_util::task::TaskTracker,
    /// Forgets that make a prune due.
    prune_after_forgets: u64,
    /// The node token (it also signs download links), the metrics token and
    /// Wings' link: replaced by [`Agent::reload`] (SIGHUP).
    creds: std::sync::RwLock<Creds>,
    used_links: download::UsedLinks,
    /// The snapshot listings read last (see [`crate::listing`]).
    listings: crate::listing::Cache,
    /// One permit per snapshot listing being made.
    listing_builds: tokio::sync::Semaphore,
    /// Trees (`<server>/<tree>`) found too big to list: refused at once
    /// after the first try.
    listings_refused: Mutex<std::collections::HashSet<String>>,
    /// One permit per download (`restic dump`) running.
    downloads: Arc<tokio::sync::Semaphore>,
    /// The last readiness answer and when it was found.
    readiness: tokio::sync::Mutex<Option<(std::time::Instant, Vec<&'static str>)>>,
    restore_stop_timeout: Duration,
    restore_kill_after_timeout: bool,
    /// How old a remote repository's listing may be before a request lists
    /// the store again: a snapshot made or removed by hand on a remote
    /// store shows within this time (changes the agent makes show at once).
    remote_recheck: Duration,
}

/// What SIGHUP reloads: the tokens (from their files, or Wings'
/// `config.yml`) and Wings' link.
struct Creds {
    node_token: Secret,
    metrics_token: Option<Secret>,
    /// Wings' local API, to stop a game server around a restore.
    wings: Option<crate::config::WingsLink>,
}

impl Creds {
    fn of(cfg: &AgentConfig) -> Self {
        Self {
            node_token: cfg.token.clone(),
            metrics_token: cfg.metrics_token.clone(),
            wings: cfg.wings.clone(),
        }
    }
}

/// The agent's service object. Cheap to clone.
#[derive(Clone)]
pub struct Agent {
    inner: Arc<Inner>,
}

impl Agent {
    pub fn new(cfg: &AgentConfig, restic: Restic) -> Self {
        let mut mac_key = [0u8; 32];
        getrandom::getrandom(&mut mac_key).expect("the system random number generator failed");
        let layout = Layout::new(
            cfg.data_dir.clone(),
            cfg.repo_root.clone(),
            cfg.state_dir.clone(),
            cfg.store.clone(),
        )
        .with_copy(cfg.copy.clone());
        let (jobs, interrupted) = Jobs::load(cfg.max_parallel_jobs, layout.jobs_dir());
        // Restores a crash interrupted are completed or rolled back before
        // anything else touches the server directories.
        for (server, phase) in crate::swap::repair(&layout) {
            if phase != crate::swap::Phase::Restoring {
                jobs.completed_at_restart(&server);
            }
        }
        let jobs = Arc::new(jobs);
        let metrics = Arc::new(crate::metrics::Metrics::new(
            layout.figures_dir(),
            [
                ("version", env!("CARGO_PKG_VERSION").to_owned()),
                ("restic_version", restic.version().to_string()),
                ("store", layout.store().kind().to_owned()),
            ],
            jobs.clone(),
        ));
        let layout_links = layout.used_links_file();
        let mut repos: HashMap<ServerUuid, Arc<RepoSlot>> = HashMap::new();
        for server in interrupted {
            let slot = repos.entry(server).or_default();
            slot.needs_unlock.store(true, Ordering::SeqCst);
        }
        Self {
            inner: Arc::new(Inner {
                layout,
                restic,
                jobs,
                metrics,
                repos: Mutex::new(repos),
                mac_key,
                shutdown: Cancel::new(),
                draining: Cancel::new(),
                live_jobs: tokio_util::task::TaskTracker::new(),
                prune_after_forgets: cfg.prune_after_forgets,
                creds: std::sync::RwLock::new(Creds::of(cfg)),
                used_links: download::UsedLinks::load(layout_links),
                listings: crate::listing::Cache::new(files::CACHE_BUDGET),
                listing_builds: tokio::sync::Semaphore::new(files::BUILDS),
                listings_refused: Mutex::new(std::collections::HashSet::new()),
                downloads: Arc::new(tokio::sync::Semaphore::new(cfg.max_parallel_downloads)),
                readiness: tokio::sync::Mutex::new(None),
                restore_stop_timeout: cfg.restore_stop_timeout,
                restore_kill_after_timeout: cfg.restore_kill_after_timeout,
                remote_recheck: cfg.remote_recheck,
            }),
        }
    }

    /// Which of the agent's needs are not met now (`GET /readyz`): restic
    /// runs, the server directories can be read, and the repository and state
    /// folders written. Names only, never paths or errors.
    pub async fn unready(&self) -> Vec<&'static str> {
        /// How long one readiness answer is reused.
        const READY_CACHE: Duration = Duration::from_secs(2);
        // One check at a time, and an answer reused for two seconds: a
        // flood of probes costs the node next to nothing.
        let mut cached = self.inner.readiness.lock().await;
        if let Some((at, failing)) = cached.as_ref()
            && at.elapsed() < READY_CACHE
        {
            return failing.clone();
        }
        let failing = self.check_ready().await;
        *cached = Some((std::time::Instant::now(), failing.clone()));
        failing
    }

    async fn check_ready(&self) -> Vec<&'static str> {
        let layout = self.inner.layout.clone();
        let mut failing = tokio::task::spawn_blocking(move || layout.unusable())
            .await
            .unwrap_or_else(|_| vec!["storage"]);
        if !self.inner.restic.runnable().await {
            failing.push("restic");
        }
        failing
    }

    fn creds(&self) -> std::sync::RwLockReadGuard<'_, Creds> {
        self.inner.creds.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The token the panel must present.
    pub fn node_token(&self) -> Secret {
        self.creds().node_token.clone()
    }

    /// The token that reads `/metrics` only, if one is set.
    pub fn metrics_token(&self) -> Option<Secret> {
        self.creds().metrics_token.clone()
    }

    fn wings_link(&self) -> Option<crate::config::WingsLink> {
        self.creds().wings.clone()
    }

    /// SIGHUP: takes the tokens and Wings' link of settings read again
    /// (a rotated token file, a new Wings token). Everything else needs a
    /// restart. Running jobs keep what they started with.
    pub fn reload(&self, cfg: &AgentConfig) {
        let new = Creds::of(cfg);
        let mut creds = self.inner.creds.write().unwrap_or_else(|p| p.into_inner());
        let changed = [
            new.node_token.expose() != creds.node_token.expose(),
            new.metrics_token.as_ref().map(Secret::expose)
                != creds.metrics_token.as_ref().map(Secret::expose),
            new.wings
                .as_ref()
                .map(|w| (w.url.as_str(), w.token.expose()))
                != creds
                    .wings
                    .as_ref()
                    .map(|w| (w.url.as_str(), w.token.expose())),
        ];
        *creds = new;
        drop(creds);
        tracing::info!(
            node_token = if changed[0] { "replaced" } else { "unchanged" },
            metrics_token = if changed[1] { "replaced" } else { "unchanged" },
            wings = if changed[2] { "replaced" } else { "unchanged" },
            token_source = %cfg.token_source,
            "settings reloaded (tokens and Wings' link; other settings take effect at restart)"
        );
    }

    /// `GET /api/restic/node`.
    pub fn node_info(&self) -> api::agent::NodeInfo {
        let store = self.inner.layout.store();
        api::agent::NodeInfo {
            store: store.kind().to_owned(),
            repository: store.shown(),
            copy_to: self.inner.layout.copy_store().map(|c| c.shown()),
            restic_version: self.inner.restic.version().to_string(),
            agent_version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }

    pub fn restic(&self) -> &Restic {
        &self.inner.restic
    }

    /// What `GET /metrics` answers.
    pub fn metrics(&self) -> &prometheus_client::registry::Registry {
        self.inner.metrics.registry()
    }

    /// The folder of `server`'s repository when it is local (`None` for a
    /// remote store).
    fn local_repo(&self, server: &ServerUuid) -> Option<std::path::PathBuf> {
        self.inner
            .layout
            .repo(server)
            .local_path()
            .map(ToOwned::to_owned)
    }

    /// A local repository's size on disk, kept for `/metrics` too (a
    /// remote one's comes from restic's own measurement, see
    /// [`Agent::stats`]; `None` here).
    async fn measure_repository(&self, server: &ServerUuid) -> Option<u64> {
        let path = self.local_repo(server)?;
        let bytes = tokio::task::spawn_blocking(move || crate::layout::dir_size(&path))
            .await
            .ok()?;
        self.inner
            .metrics
            .update(server, |f| f.repository_bytes = Some(bytes));
        Some(bytes)
    }

    /// Ends a job with `outcome` and counts it.
    fn finish_job(&self, id: &JobId, outcome: Result<serde_json::Value, AgentError>) {
        let metrics = &self.inner.metrics;
        self.inner
            .jobs
            .finish(id, outcome, |kind, code| metrics.job_ended(kind, code));
    }

    /// A stop: new jobs are refused (`shutting_down`) and queued ones end
    /// without starting; running jobs get up to `grace` to finish, then
    /// are interrupted (restic gets SIGINT and removes its lock) and given
    /// `after` to end. The HTTP API keeps answering meanwhile, so the panel
    /// sees how its jobs ended.
    pub async fn drain(&self, grace: Duration, after: Duration) {
        self.inner.draining.cancel();
        self.inner.live_jobs.close();
        let (queued, running) = self.inner.jobs.depth();
        if queued + running > 0 {
            tracing::info!(
                running,
                queued,
                grace_secs = grace.as_secs(),
                "stopping: waiting for running jobs to finish"
            );
        }
        if tokio::time::timeout(grace, self.inner.live_jobs.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                grace_secs = grace.as_secs(),
                "stopping: jobs still running after shutdown_grace; interrupting them"
            );
        }
        self.shutdown(after).await;
    }

    /// Interrupts running jobs (restic gets SIGINT and removes its lock) and
    /// waits up to `wait` for them to end.
    pub async fn shutdown(&self, wait: Duration) {
        self.inner.shutdown.cancel();
        self.inner.live_jobs.close();
        if tokio::time::timeout(wait, self.inner.live_jobs.wait())
            .await
            .is_err()
        {
            tracing::warn!("jobs still running at shutdown");
        }
    }

    fn slot(&self, server: &ServerUuid) -> Arc<RepoSlot> {
        self.inner
            .repos
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(server.clone())
            .or_default()
            .clone()
    }

    fn repo(&self, server: &ServerUuid, key: &Secret) -> Repo {
        let repo = self
            .inner
            .restic
            .repo(self.inner.layout.repo(server), key.clone());
        if self.inner.layout.store().is_remote() {
            // A remote listing taken before a change is stale after it.
            let slot = self.slot(server);
            repo.on_change(Arc::new(move || {
                slot.changes.fetch_add(1, Ordering::SeqCst);
            }))
        } else {
            repo
        }
    }

    /// The server's second copy (`copy_to`), opened with `key`.
    fn copy_repo(&self, server: &ServerUuid, key: &Secret) -> Option<Repo> {
        let location = self.inner.layout.copy_repo(server)?;
        let slot = self.slot(server);
        Some(
            self.inner
                .restic
                .repo(location, key.clone())
                .on_change(Arc::new(move || {
                    slot.copy_changes.fetch_add(1, Ordering::SeqCst);
                })),
        )
    }

    /// Which snapshots (stable IDs) the second copy holds, as last read
    /// (`None` without a copy, before its first reading, or when it could
    /// not be read). Never waits for the copy's store: a reading older
    /// than `remote_recheck` (or made before a change) is answered and
    /// renewed in the background; a copy run renews it at once.
    fn copied(
        &self,
        server: &ServerUuid,
        slot: &Arc<RepoSlot>,
        key: &Secret,
    ) -> Option<Arc<std::collections::HashSet<String>>> {
        self.inner.layout.copy_store()?;
        let changes = slot.copy_changes.load(Ordering::SeqCst);
        let seen = slot
            .copy_seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let current = seen
            .as_ref()
            .is_some_and(|s| s.changes == changes && s.at.elapsed() < self.inner.remote_recheck);
        if !current && !slot.copy_refreshing.swap(true, Ordering::SeqCst) {
            let (agent, server, key, slot) =
                (self.clone(), server.clone(), key.clone(), slot.clone());
            tokio::spawn(async move {
                agent.refresh_copied(&server, &slot, &key).await;
                slot.copy_refreshing.store(false, Ordering::SeqCst);
            });
        }
        seen.and_then(|s| s.originals)
    }

    /// Reads which snapshots the second copy holds and keeps the answer.
    async fn refresh_copied(&self, server: &ServerUuid, slot: &RepoSlot, key: &Secret) {
        let Some(copy) = self.copy_repo(server, key) else {
            return;
        };
        let changes = slot.copy_changes.load(Ordering::SeqCst);
        let at = std::time::Instant::now();
        let originals = match copy.snapshots().await {
            Ok(snaps) => Some(Arc::new(
                snaps.iter().map(|s| s.stable_id().to_string()).collect(),
            )),
            Err(engine::EngineError::RepoNotFound) => Some(Arc::default()),
            Err(e) => {
                tracing::debug!(server = %server, error = %e, "second copy not readable now");
                None
            }
        };
        *slot.copy_seen.lock().unwrap_or_else(|p| p.into_inner()) = Some(CopySeen {
            at,
            changes,
            originals,
        });
    }

    /// The snapshot `pick` finds and the repository to read it from: the
    /// server's repository, or, when its store fails, the second copy if
    /// that holds it (`true` then). Restore and download read this way.
    async fn readable(
        &self,
        server: &ServerUuid,
        slot: &RepoSlot,
        key: &Secret,
        pick: impl Fn(&RepoIndex) -> Result<Entry, AgentError>,
    ) -> Result<(Entry, Repo, bool), AgentError> {
        let failure = match self.fresh(server, slot, key).await {
            Ok(idx) => return Ok((pick(&idx)?, self.repo(server, key), false)),
            Err(AgentError::Store(failure)) => failure,
            Err(e) => return Err(e),
        };
        let Some(copy) = self.copy_repo(server, key) else {
            return Err(AgentError::Store(failure));
        };
        let snapshots = match copy.snapshots().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(server = %server, error = %e, "second copy not readable either");
                return Err(AgentError::Store(failure));
            }
        };
        let mut idx = RepoIndex::default();
        idx.replace(
            snapshots,
            &crate::index::Fingerprint::listed::<&str>(&[], &[]),
            server.as_str(),
        );
        let entry = pick(&idx)?;
        tracing::warn!(server = %server, error = %failure, snapshot = %entry.id.short(), "the repository's store fails; reading from the second copy");
        Ok((entry, copy, true))
    }

    fn mac(&self, key: &Secret) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.inner.mac_key)
            .expect("HMAC accepts any key length");
        mac.update(key.expose().as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// The repository's fingerprints, and whether `key` was just proven by
    /// taking them (a remote listing runs restic with it).
    async fn fingerprints(
        &self,
        server: &ServerUuid,
        slot: &RepoSlot,
        key: &Secret,
    ) -> Result<(RepoFingerprints, bool), AgentError> {
        let location = self.inner.layout.repo(server);
        let Some(path) = location.local_path().map(ToOwned::to_owned) else {
            return self.remote_fingerprints(server, slot, key).await;
        };
        tokio::task::spawn_blocking(move || {
            if !engine::repo_exists(&path) {
                return Err(AgentError::RepoNotFound);
            }
            RepoFingerprints::read(&path)
                .map(|fp| (fp, false))
                .map_err(AgentError::from)
        })
        .await
        .map_err(|e| AgentError::Internal(e.to_string()))?
    }

    /// A remote repository's fingerprints: its listing, reused while it
    /// is younger than `remote_recheck` and no change was made since.
    async fn remote_fingerprints(
        &self,
        server: &ServerUuid,
        slot: &RepoSlot,
        key: &Secret,
    ) -> Result<(RepoFingerprints, bool), AgentError> {
        let changes = slot.changes.load(Ordering::SeqCst);
        let cached = slot
            .remote_seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .filter(|seen| {
                seen.changes == changes && seen.at.elapsed() < self.inner.remote_recheck
            });
        let (seen, proven) = match cached {
            Some(seen) => (seen, false),
            None => {
                let at = std::time::Instant::now();
                let snapshot_ids = match self.repo(server, key).snapshot_files().await {
                    Ok(ids) => Some(ids),
                    Err(engine::EngineError::RepoNotFound) => None,
                    Err(e) => return Err(e.into()),
                };
                let seen = RemoteSeen {
                    at,
                    changes,
                    snapshot_ids,
                };
                *slot.remote_seen.lock().unwrap_or_else(|p| p.into_inner()) = Some(seen.clone());
                let proven = seen.snapshot_ids.is_some();
                (seen, proven)
            }
        };
        match seen.snapshot_ids {
            Some(ids) => Ok((RepoFingerprints::listed(&ids, seen.changes), proven)),
            None => Err(AgentError::RepoNotFound),
        }
    }

    /// A remote repository the agent changed since its last listing (or
    /// never listed): `restic snapshots` at once, which gives the listing
    /// and the index in one run (the cheap `restic list` would only say
    /// what is known: it changed). `None` when the listing is current or
    /// only old (then [`Agent::fingerprints`] checks it cheaply), and for
    /// local repositories.
    async fn remote_load(
        &self,
        server: &ServerUuid,
        slot: &RepoSlot,
        key: &Secret,
    ) -> Result<Option<(RepoFingerprints, Vec<engine::Snapshot>)>, AgentError> {
        if !self.inner.layout.store().is_remote() {
            return Ok(None);
        }
        let changes = slot.changes.load(Ordering::SeqCst);
        let changed = slot
            .remote_seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_none_or(|seen| seen.changes != changes);
        if !changed {
            return Ok(None);
        }
        let at = std::time::Instant::now();
        let found = match self.repo(server, key).snapshots().await {
            Ok(snapshots) => Some(snapshots),
            Err(engine::EngineError::RepoNotFound) => None,
            Err(e) => return Err(e.into()),
        };
        let snapshot_ids = found
            .as_ref()
            .map(|snaps| snaps.iter().map(|s| s.id.to_string()).collect::<Vec<_>>());
        let fp = snapshot_ids
            .as_ref()
            .map(|ids| RepoFingerprints::listed(ids, changes));
        *slot.remote_seen.lock().unwrap_or_else(|p| p.into_inner()) = Some(RemoteSeen {
            at,
            changes,
            snapshot_ids,
        });
        match (fp, found) {
            (Some(fp), Some(snapshots)) => Ok(Some((fp, snapshots))),
            _ => Err(AgentError::RepoNotFound),
        }
    }

    /// Whether the server's repository exists (a remote one is asked, or
    /// its recent listing reused).
    async fn repo_exists(
        &self,
        server: &ServerUuid,
        slot: &RepoSlot,
        key: &Secret,
    ) -> Result<bool, AgentError> {
        match self.inner.layout.repo(server).local_path() {
            Some(path) => Ok(engine::repo_exists(path)),
            None => match self.remote_fingerprints(server, slot, key).await {
                Ok(_) => Ok(true),
                Err(AgentError::RepoNotFound) => Ok(false),
                Err(e) => Err(e),
            },
        }
    }

    /// The repository's index, brought up to date if the repository changed
    /// or the key was not seen yet (which also proves the key).
    async fn fresh<'a>(
        &self,
        server: &ServerUuid,
        slot: &'a RepoSlot,
        key: &Secret,
    ) -> Result<MutexGuard<'a, RepoIndex>, AgentError> {
        let (fp, proven, loaded) = match self.remote_load(server, slot, key).await? {
            Some((fp, snapshots)) => (fp, true, Some(snapshots)),
            None => {
                let (fp, proven) = self.fingerprints(server, slot, key).await?;
                (fp, proven, None)
            }
        };
        let mac = self.mac(key);
        let mut idx = slot.index.lock().await;
        if !idx.sizes_loaded {
            idx.sizes = self.load_sizes(server).await;
            idx.sizes_loaded = true;
        }
        idx.observe_keys(&fp.keys);
        if proven {
            idx.set_verified_key(mac);
        }
        if loaded.is_none() && idx.is_fresh(&fp, &mac) {
            return Ok(idx);
        }
        let snapshots = match loaded {
            Some(snapshots) => snapshots,
            None => match self.read_changed_snapshots(server, slot, &idx, &mac).await {
                Some(snapshots) => snapshots,
                None => self.repo(server, key).snapshots().await?,
            },
        };
        idx.replace(snapshots, &fp.snapshots, server.as_str());
        idx.set_verified_key(mac);
        self.drop_stale_listings(server, &idx);
        let count = idx.entries().len() as u64;
        self.inner
            .metrics
            .update(server, |f| f.snapshots = Some(count));
        if !idx.without_size().is_empty() {
            self.measure_sizes_in_background(server, key);
        }
        self.open_master_in_background(server, slot, key, mac);
        Ok(idx)
    }

    /// A local repository this agent just created with `key`: its (empty)
    /// listing and its key are known without asking restic, and its master
    /// key is kept (written by the engine) or opened meanwhile, so the first
    /// backup's new snapshot is read directly too.
    async fn index_new_repository(
        &self,
        server: &ServerUuid,
        slot: &RepoSlot,
        key: &Secret,
        master: Option<engine::MasterKey>,
    ) {
        let Some(path) = self.local_repo(server) else {
            return;
        };
        let Ok(Ok(fp)) = tokio::task::spawn_blocking(move || RepoFingerprints::read(&path)).await
        else {
            return;
        };
        let mac = self.mac(key);
        let mut idx = slot.index.lock().await;
        idx.observe_keys(&fp.keys);
        idx.replace(Vec::new(), &fp.snapshots, server.as_str());
        idx.set_verified_key(mac);
        drop(idx);
        match master {
            Some(master) => {
                *slot.master.lock().unwrap_or_else(|p| p.into_inner()) = Some((mac, master));
            }
            None => self.open_master_in_background(server, slot, key, mac),
        }
    }

    /// The snapshots of a local repository after its `snapshots/` changed,
    /// read from the files that changed with the cached master key, so no
    /// restic run (and its key derivation) is needed. `None` (ask restic)
    /// without a master key for this password, before the first listing,
    /// for a password not verified since the keys last changed (a removed
    /// key must not pass), for many new files, or when anything is off.
    async fn read_changed_snapshots(
        &self,
        server: &ServerUuid,
        slot: &RepoSlot,
        idx: &RepoIndex,
        mac: &[u8; 32],
    ) -> Option<Vec<engine::Snapshot>> {
        const MAX_NEW: usize = 16;
        let path = self.local_repo(server)?;
        if idx.snapshots_fp.is_none() || !idx.key_verified(mac) {
            return None;
        }
        let master = slot
            .master
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .filter(|(m, _)| m == mac)
            .map(|(_, k)| k.clone())?;
        let known = idx.listed.clone();
        tokio::task::spawn_blocking(move || {
            let names: std::collections::HashSet<String> =
                std::fs::read_dir(path.join("snapshots"))
                    .ok()?
                    .filter_map(Result::ok)
                    .filter_map(|e| e.file_name().into_string().ok())
                    .collect();
            let mut out: Vec<engine::Snapshot> = known
                .into_iter()
                .filter(|s| names.contains(s.id.as_str()))
                .collect();
            let have: std::collections::HashSet<String> =
                out.iter().map(|s| s.id.to_string()).collect();
            let new: Vec<&String> = names.iter().filter(|n| !have.contains(*n)).collect();
            if new.len() > MAX_NEW {
                return None;
            }
            for id in new {
                match master.read_snapshot(&path, id) {
                    Ok(snapshot) => out.push(snapshot),
                    // A key for another repository (archived, adopted
                    // meanwhile) or a file being written: ask restic, and
                    // open the key again.
                    Err(_) => return Some(None),
                }
            }
            Some(Some(out))
        })
        .await
        .ok()
        .flatten()
        .and_then(|read| {
            if read.is_none() {
                *slot.master.lock().unwrap_or_else(|p| p.into_inner()) = None;
            }
            read
        })
    }

    /// Opens a local repository's master key in the background once its
    /// password is verified (scrypt: as long as one restic start), for
    /// [`Agent::read_changed_snapshots`].
    fn open_master_in_background(
        &self,
        server: &ServerUuid,
        slot: &RepoSlot,
        key: &Secret,
        mac: [u8; 32],
    ) {
        let Some(path) = self.local_repo(server) else {
            return;
        };
        let cached = slot
            .master
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(|(m, _)| *m == mac);
        let failed_lately = slot
            .master_failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(|(m, at)| *m == mac && at.elapsed() < Duration::from_secs(600));
        if cached || failed_lately || slot.master_opening.swap(true, Ordering::SeqCst) {
            return;
        }
        let (key, slot, server) = (key.clone(), self.slot(server), server.clone());
        tokio::task::spawn_blocking(move || {
            match engine::MasterKey::open(&path, &key) {
                Ok(master) => {
                    *slot.master.lock().unwrap_or_else(|p| p.into_inner()) = Some((mac, master));
                }
                Err(e) => {
                    *slot.master_failed.lock().unwrap_or_else(|p| p.into_inner()) =
                        Some((mac, std::time::Instant::now()));
                    tracing::debug!(server = %server, error = %e, "master key not opened; restic lists snapshots");
                }
            }
            slot.master_opening.store(false, Ordering::SeqCst);
        });
    }

    /// restic 0.14 does not record a snapshot's size; for snapshots not made by
    /// this agent it is measured once (`stats --mode restore-size`) and kept.
    fn measure_sizes_in_background(&self, server: &ServerUuid, key: &Secret) {
        let slot = self.slot(server);
        if slot.measuring.swap(true, Ordering::SeqCst) {
            return;
        }
        let agent = self.clone();
        let server = server.clone();
        let key = key.clone();
        tokio::spawn(async move {
            let todo = slot.index.lock().await.without_size();
            // Nobody waits for these: at the lowest CPU priority.
            let repo = agent.repo(&server, &key).low_priority();
            for (current, tree) in todo {
                match repo.stats(StatsMode::RestoreSize, &[&current]).await {
                    // A snapshot forgotten meanwhile is reported as 0 snapshots.
                    Ok(s) if s.snapshots_count == 1 => {
                        slot.index.lock().await.set_size(&tree, s.total_size);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(server = %server, error = %e, "could not measure a snapshot's size");
                        break;
                    }
                }
            }
            let sizes = slot.index.lock().await.sizes.clone();
            agent.save_sizes(&server, &sizes).await;
            slot.measuring.store(false, Ordering::SeqCst);
        });
    }

    async fn load_sizes(&self, server: &ServerUuid) -> HashMap<String, u64> {
        let path = self.inner.layout.sizes_file(server);
        match tokio::fs::read(&path).await {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!(path = %path.display(), error = %e, "ignoring unreadable size cache");
                HashMap::new()
            }),
            Err(_) => HashMap::new(),
        }
    }

    async fn save_sizes(&self, server: &ServerUuid, sizes: &HashMap<String, u64>) {
        let path = self.inner.layout.sizes_file(server);
        let result = match serde_json::to_vec(sizes) {
            Ok(bytes) => {
                let p = path.clone();
                tokio::task::spawn_blocking(move || crate::layout::write_atomically(&p, &bytes))
                    .await
                    .unwrap_or_else(|e| Err(std::io::Error::other(e)))
            }
            Err(e) => Err(e.into()),
        };
        if let Err(e) = result {
            tracing::warn!(path = %path.display(), error = %e, "could not save the size cache");
        }
    }

    /// `GET …/backups/restic`
    pub async fn list(
        &self,
        server: &ServerUuid,
        key: &Secret,
        limit: usize,
        cursor: Option<&Cursor>,
        range: &api::TimeRange,
    ) -> Result<BackupList, AgentError> {
        let slot = self.slot(server);
        let mut page = self
            .fresh(server, &slot, key)
            .await?
            .page(limit, cursor, range);
        self.fill_added(server, &slot, &mut page.backups).await;
        if self.inner.layout.copy_store().is_some() {
            let copied = self.copied(server, &slot, key);
            for item in &mut page.backups {
                item.copied = copied.as_ref().map(|c| c.contains(item.id.as_str()));
            }
        }
        Ok(page)
    }

    /// `GET …/backups/restic/stats`, cached until the repository changes.
    pub async fn stats(&self, server: &ServerUuid, key: &Secret) -> Result<RepoStats, AgentError> {
        let slot = self.slot(server);
        let fp = {
            let mut idx = self.fresh(server, &slot, key).await?;
            let (fp, _) = self.fingerprints(server, &slot, key).await?;
            if let Some(stats) = idx.cached_stats(&fp) {
                return Ok(stats);
            }
            fp
        };
        // Measured without holding the index, so listing is not held up.
        let repo = self.repo(server, key);
        let raw = repo.stats(StatsMode::RawData, &[]).await?;
        let restore = repo.stats(StatsMode::RestoreSize, &[]).await?;
        let stats = RepoStats {
            total_size: raw.total_size,
            total_uncompressed_size: restore.total_size,
            snapshots_count: restore.snapshots_count,
            dedup_ratio: if raw.total_size == 0 {
                0.0
            } else {
                restore.total_size as f64 / raw.total_size as f64
            },
            computed_at: api::Timestamp::now(),
        };
        slot.index.lock().await.set_stats(&fp, stats.clone());
        if self.inner.layout.store().is_remote() {
            self.inner
                .metrics
                .update(server, |f| f.repository_bytes = Some(raw.total_size));
        }
        Ok(stats)
    }

    /// Claims the repository for a new job of `kind`, or answers
    /// `job_in_progress` if another one holds it.
    fn claim(
        &self,
        server: &ServerUuid,
        slot: &Arc<RepoSlot>,
        kind: api::agent::JobKind,
    ) -> Result<(JobId, JobClaim), AgentError> {
        if self.inner.draining.is_cancelled() {
            return Err(AgentError::ShuttingDown);
        }
        let mut active = slot.active_job.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(running) = active.as_ref() {
            return Err(AgentError::JobInProgress {
                job_id: Some(running.to_string()),
            });
        }
        let job = self.inner.jobs.create(server, kind);
        *active = Some(job.clone());
        Ok((
            job,
            JobClaim {
                slot: slot.clone(),
                kind,
            },
        ))
    }

    /// Runs `work` as the job: it waits for a node slot and the repository's
    /// writer lock, then runs, and its outcome becomes the job's result.
    fn spawn_job<F, Fut>(
        &self,
        server: &ServerUuid,
        slot: Arc<RepoSlot>,
        key: &Secret,
        (job, claim): (JobId, JobClaim),
        work: F,
    ) -> JobId
    where
        F: FnOnce(JobCtx) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<serde_json::Value, AgentError>> + Send,
    {
        let ctx = JobCtx {
            agent: self.clone(),
            server: server.clone(),
            slot,
            key: key.clone(),
            job: job.clone(),
        };
        self.inner.live_jobs.spawn(async move {
            let kind = claim.kind;
            let _claim = claim;
            let agent = ctx.agent.clone();
            let slot = ctx.slot.clone();
            let id = ctx.job.clone();
            let ctx_server = ctx.server.clone();
            let jobs = &agent.inner.jobs;
            // A stop that begins while the job waits ends it unstarted.
            let ready = tokio::select! {
                biased;
                () = agent.inner.draining.cancelled() => None,
                ready = async { (jobs.slot().await, slot.writer.lock().await) } => Some(ready),
            };
            let started = ready.is_some();
            let outcome = match ready {
                None => Err(AgentError::ShuttingDown),
                Some(_held) => {
                    jobs.start(&id);
                    // A store that fails now is the work's to report (a
                    // restore may read from the second copy meanwhile); its
                    // stale locks are cleared at the next change that
                    // reaches it.
                    match agent.clear_stale_locks(&ctx.server, &slot, &ctx.key).await {
                        Ok(()) | Err(AgentError::Store(_)) => work(ctx).await,
                        Err(e) => Err(e),
                    }
                }
            };
            // A job a stop ended before it started is no failure of the
            // server's backups (no alert after a routine restart).
            if !started {
                agent.inner.jobs.finish(&id, outcome, |_, _| ());
                return;
            }
            if let Err(e) = &outcome {
                Agent::note_failure(&slot, e);
                if kind == api::agent::JobKind::Backup {
                    let now = time::OffsetDateTime::now_utc().unix_timestamp();
                    agent
                        .inner
                        .metrics
                        .update(&ctx_server, |f| f.last_failure = Some(now));
                }
            }
            agent.finish_job(&id, outcome);
        });
        job
    }

    /// The repository's writer lock for a short operation, after a bounded wait.
    async fn writer<'a>(&self, slot: &'a RepoSlot) -> Result<MutexGuard<'a, ()>, AgentError> {
        tokio::time::timeout(WRITER_WAIT, slot.writer.lock())
            .await
            .map_err(|_| AgentError::JobInProgress {
                job_id: slot.active_job().map(|j| j.to_string()),
            })
    }

    /// Call while holding the writer lock, before changing the repository:
    /// clears locks left by restic runs that died (agent killed, restic's own
    /// races). `restic unlock` only removes locks whose process is gone.
    async fn clear_stale_locks(
        &self,
        server: &ServerUuid,
        slot: &RepoSlot,
        key: &Secret,
    ) -> Result<(), AgentError> {
        if slot.needs_unlock.load(Ordering::SeqCst) && self.repo_exists(server, slot, key).await? {
            self.repo(server, key).unlock_stale().await?;
            slot.needs_unlock.store(false, Ordering::SeqCst);
            tracing::info!(server = %server, "stale restic locks cleared");
        }
        Ok(())
    }

    /// Notes a failed change: a `repository_locked` answer may come from a
    /// stale lock, and a restic cut off from its store could not remove
    /// its own; the next change clears them.
    fn note_failure(slot: &RepoSlot, e: &AgentError) {
        if matches!(e, AgentError::RepoLocked | AgentError::Store(_)) {
            slot.needs_unlock.store(true, Ordering::SeqCst);
        }
    }

    /// Runs one restic change. If restic finds the repository locked, the
    /// lock may be stale (left by a restic that died, ours or another
    /// program's): `restic unlock` (which keeps live locks) and one more
    /// try, so a dead process's lock never fails the request.
    async fn change<T, F>(
        &self,
        server: &ServerUuid,
        slot: &RepoSlot,
        key: &Secret,
        op: impl Fn(Repo) -> F,
    ) -> Result<T, AgentError>
    where
        F: Future<Output = Result<T, engine::EngineError>>,
    {
        match op(self.repo(server, key)).await {
            Err(engine::EngineError::RepoLocked) => {
                self.repo(server, key).unlock_stale().await?;
                tracing::info!(server = %server, "repository was locked; stale locks cleared, trying again");
                op(self.repo(server, key))
                    .await
                    .map_err(|e| Self::failed_change(slot, e))
            }
            other => other.map_err(|e| Self::failed_change(slot, e)),
        }
    }

    /// [`Agent::note_failure`] for a failed restic change, as an `AgentError`.
    fn failed_change(slot: &RepoSlot, e: engine::EngineError) -> AgentError {
        let e = AgentError::from(e);
        Self::note_failure(slot, &e);
        e
    }

    /// Call with the writer lock held: the entry `snapshot` names, after
    /// stale locks were cleared, ready to be changed.
    async fn entry_to_change(
        &self,
        server: &ServerUuid,
        slot: &RepoSlot,
        key: &Secret,
        snapshot: &SnapshotRef,
    ) -> Result<Entry, AgentError> {
        let entry = self
            .fresh(server, slot, key)
            .await?
            .resolve(snapshot)?
            .clone();
        self.clear_stale_locks(server, slot, key).await?;
        Ok(entry)
    }

    /// `POST …/{id}/lock` and `…/unlock`.
    pub async fn set_locked(
        &self,
        server: &ServerUuid,
        key: &Secret,
        snapshot: &SnapshotRef,
        locked: bool,
    ) -> Result<LockState, AgentError> {
        let slot = self.slot(server);
        let _writer = self.writer(&slot).await?;
        let entry = self.entry_to_change(server, &slot, key, snapshot).await?;
        if entry.locked() != locked {
            self.change(server, &slot, key, |repo| {
                let id = entry.current.clone();
                async move { repo.tag(&id, LOCKED_TAG, locked).await }
            })
            .await?;
        }
        let idx = self.fresh(server, &slot, key).await?;
        let now = idx
            .by_stable_id(&entry.id)
            .ok_or(AgentError::BackupNotFound)?;
        Ok(LockState {
            id: now.id.clone(),
            locked: now.locked(),
        })
    }

    /// `DELETE …/{id}`: forgets the snapshot unless it is locked.
    pub async fn delete(
        &self,
        server: &ServerUuid,
        key: &Secret,
        snapshot: &SnapshotRef,
    ) -> Result<(), AgentError> {
        let slot = self.slot(server);
        let _writer = self.writer(&slot).await?;
        let entry = self.entry_to_change(server, &slot, key, snapshot).await?;
        if entry.locked() {
            return Err(AgentError::BackupLocked);
        }
        self.change(server, &slot, key, |repo| {
            let id = entry.current.clone();
            async move { repo.forget(&[&id]).await }
        })
        .await?;
        tracing::info!(server = %server, snapshot = %entry.id.short(), "backup deleted");
        self.note_forgotten(server, &[entry.id.to_string()]);
        self.prune_if_due(server, key);
        Ok(())
    }

    /// `GET …/jobs/{job_id}`
    /// `GET …/jobs[?active=true]`
    pub fn jobs(&self, server: &ServerUuid, active: bool) -> api::agent::JobList {
        api::agent::JobList {
            jobs: self.inner.jobs.of_server(server, active),
        }
    }

    pub fn job(&self, server: &ServerUuid, id: &JobId) -> Result<JobView, AgentError> {
        self.inner
            .jobs
            .get(server, id)
            .ok_or(AgentError::JobNotFound)
    }
}

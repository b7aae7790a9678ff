//! The scheduler: every tick it claims the due runs and starts them. A run
//! is claimed with a conditional UPDATE on its stored next-run time, so two
//! panels on one database never run it twice. Claiming moves the next run to
//! the next slot of the schedule's grid (no drift; a missed window runs once);
//! a failure pulls it in again with exponential backoff. Each run is written
//! to the job history.
//!
//! The clock and the backup itself are injectable, so the timing rules are
//! tested without waiting and without an agent.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use api::agent::JobKind;
use api::{RunOrigin, RunStatus};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::service::{ScheduledRun, now as system_now};
use crate::storage::{Policy, Server};
use crate::{Panel, PanelError, schedule};

/// Seconds since the epoch, from wherever the caller wants time to come from.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

pub type RunFuture<'a> = Pin<Box<dyn Future<Output = Result<ScheduledRun, String>> + Send + 'a>>;

/// Performs one scheduled backup (and retention).
pub trait BackupRunner: Send + Sync + 'static {
    /// `history_row` is the run's `job_history` row, for the runner to note
    /// the agent's job in as soon as there is one.
    fn run<'a>(&'a self, server: &'a Server, policy: &'a Policy, history_row: i64)
    -> RunFuture<'a>;
}

/// The real runner: through the server's node agent.
struct AgentRunner(Panel);

/// The runner that backs up through the agents.
pub fn agent_runner(panel: Panel) -> Arc<dyn BackupRunner> {
    Arc::new(AgentRunner(panel))
}

impl BackupRunner for AgentRunner {
    fn run<'a>(
        &'a self,
        server: &'a Server,
        policy: &'a Policy,
        history_row: i64,
    ) -> RunFuture<'a> {
        Box::pin(async move {
            self.0
                .scheduled_backup(server, policy, Some(history_row))
                .await
                .map_err(|e| e.to_string())
        })
    }
}

/// Due runs fetched per tick (more wait for the next tick).
const BATCH: i64 = 1000;
/// Scheduled runs in flight per panel process.
const PARALLEL_RUNS: usize = 8;
/// How often the panel looks for due runs.
pub const TICK: Duration = Duration::from_secs(60);

#[derive(Clone)]
pub struct Scheduler {
    panel: Panel,
    runner: Arc<dyn BackupRunner>,
    clock: Clock,
    slots: Arc<Semaphore>,
    /// History rows of the runs this process is running now.
    in_flight: Arc<std::sync::Mutex<std::collections::HashSet<i64>>>,
    /// When "no backup for N hours" was last checked (scheduler clock).
    missing_checked: Arc<std::sync::atomic::AtomicI64>,
}

/// A run without an agent job this long after it started was interrupted
/// before the agent accepted it.
const UNACCEPTED_AFTER_SECS: i64 = 600;
/// An agent job finished this long ago whose run still reads `running` lost
/// its panel (a live panel records the end, retention included, well within
/// this).
const UNRECORDED_AFTER_SECS: i64 = 600;

impl Scheduler {
    /// Real backups, real time.
    pub fn new(panel: Panel) -> Self {
        let runner = agent_runner(panel.clone());
        Self::with(panel, runner, Arc::new(system_now))
    }

    pub fn with(panel: Panel, runner: Arc<dyn BackupRunner>, clock: Clock) -> Self {
        Self {
            panel,
            runner,
            clock,
            slots: Arc::new(Semaphore::new(PARALLEL_RUNS)),
            in_flight: Default::default(),
            missing_checked: Default::default(),
        }
    }

    /// Claims every run due now and starts it; the handles end with the runs.
    pub async fn tick(&self) -> Result<Vec<JoinHandle<bool>>, PanelError> {
        let now = (self.clock)();
        let storage = self.panel.storage();
        // Every ten minutes is soon enough for "no backup for N hours".
        let last = self
            .missing_checked
            .load(std::sync::atomic::Ordering::Relaxed);
        if now - last >= 600 || now < last {
            self.missing_checked
                .store(now, std::sync::atomic::Ordering::Relaxed);
            self.panel.check_missing_backups(now).await;
        }
        let mut started = Vec::new();
        let mut lag = 0;
        for policy in storage.due_policies(now, BATCH).await? {
            let Some(due_at) = policy.next_run_at else {
                continue;
            };
            let server_id = policy.server_id;
            let cadence = match crate::service::cadence_of(&policy) {
                Ok(c) => c,
                Err(e) => {
                    // Not stuck in silence: the run fails where people see
                    // it, is told, and is tried again in an hour.
                    self.unusable_schedule(&policy, due_at, now, &e).await?;
                    continue;
                }
            };
            let anchor = policy.anchor_at.unwrap_or(due_at);
            let next = cadence.next_after(anchor, now);
            if !storage.claim_run(server_id, due_at, next, now).await? {
                continue; // another panel got it, or the schedule changed
            }
            lag = lag.max(now - due_at);
            let me = self.clone();
            started.push(tokio::spawn(async move {
                match me.run(policy, anchor, cadence, next, now).await {
                    Ok(succeeded) => succeeded,
                    Err(e) => {
                        tracing::error!(server_id, error = %e, "scheduled run not recorded");
                        false
                    }
                }
            }));
        }
        self.panel.metrics().scheduler_tick(now, lag);
        Ok(started)
    }

    /// A due schedule whose stored settings this panel can not use (a time
    /// zone its system does not know, say): a failed run, told like one,
    /// tried again in an hour.
    async fn unusable_schedule(
        &self,
        policy: &Policy,
        due_at: i64,
        now: i64,
        e: &PanelError,
    ) -> Result<(), PanelError> {
        const AGAIN_SECS: i64 = 3600;
        let storage = self.panel.storage();
        let retry = now + AGAIN_SECS;
        if !storage
            .claim_run(policy.server_id, due_at, retry, now)
            .await?
        {
            return Ok(());
        }
        let detail = match e {
            PanelError::Internal(detail) => detail.as_str(),
            _ => "unreadable",
        };
        let message = format!("this schedule can not be run ({detail}); save it again");
        tracing::error!(server_id = policy.server_id, error = %message, "schedule not run");
        storage
            .finish_run(policy.server_id, Err(&message), retry, retry)
            .await?;
        if let Some(server) = storage.server(policy.server_id).await? {
            self.panel
                .notify_backup_failed(&server, &message, policy.failures + 1)
                .await;
        }
        Ok(())
    }

    async fn run(
        &self,
        policy: Policy,
        anchor: i64,
        cadence: schedule::Cadence,
        claimed_next: i64,
        claimed_at: i64,
    ) -> Result<bool, PanelError> {
        let _slot = self.slots.acquire().await;
        let storage = self.panel.storage();
        let Some(server) = storage.server(policy.server_id).await? else {
            return Ok(true); // deleted meanwhile
        };
        let job = storage
            .start_job(server.id, JobKind::Backup, RunOrigin::Schedule, claimed_at)
            .await?;
        self.in_flight_set().insert(job);
        tracing::info!(server = %server.uuid, "scheduled backup started");
        let outcome = self.runner.run(&server, &policy, job).await;
        self.in_flight_set().remove(&job);
        let succeeded = outcome.is_ok();
        self.panel.metrics().scheduled_backup(succeeded);
        let now = (self.clock)();
        match outcome {
            Ok(run) => {
                storage
                    .finish_run(
                        server.id,
                        Ok(run.snapshot_id.as_deref()),
                        claimed_next,
                        claimed_next,
                    )
                    .await?;
                storage
                    .finish_job(
                        job,
                        RunStatus::Succeeded,
                        Some(&run.agent_job_id),
                        run.snapshot_id.as_deref(),
                        run.retention_error.as_deref(),
                        now,
                    )
                    .await?;
                tracing::info!(server = %server.uuid, "scheduled backup succeeded");
            }
            Err(message) => {
                let failures = u32::try_from(policy.failures + 1).unwrap_or(u32::MAX);
                let retry = cadence.retry_at(anchor, failures, now);
                storage
                    .finish_run(server.id, Err(&message), claimed_next, retry)
                    .await?;
                storage
                    .finish_job(job, RunStatus::Failed, None, None, Some(&message), now)
                    .await?;
                tracing::warn!(server = %server.uuid, error = %message, failures, "scheduled backup failed");
                self.panel
                    .notify_backup_failed(&server, &message, i64::from(failures))
                    .await;
            }
        }
        Ok(succeeded)
    }

    fn in_flight_set(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<i64>> {
        self.in_flight.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Settles runs that read `running` but have no panel behind them (it
    /// stopped mid-run): with the agent's outcome when the agent has one,
    /// as interrupted when the agent never accepted or no longer knows the
    /// job. Runs of live panels are left alone: this process's own, agent
    /// jobs still running, and ones that ended too recently to tell.
    pub async fn reconcile(&self) -> Result<usize, PanelError> {
        let now = (self.clock)();
        let storage = self.panel.storage();
        let mut settled = 0;
        for row in storage.running_jobs().await? {
            if self.in_flight_set().contains(&row.id) {
                continue;
            }
            let Some(server) = storage.server(row.server_id).await? else {
                continue;
            };
            let interrupted = "interrupted: the panel stopped during this run";
            let (status, snapshot, error) = match row.agent_job_id.as_deref() {
                None if now - row.started_at < UNACCEPTED_AFTER_SECS => continue,
                None => (RunStatus::Failed, None, Some(interrupted.to_owned())),
                Some(agent_job) => {
                    let Ok(id) = api::JobId::parse(agent_job) else {
                        continue;
                    };
                    match self.panel.agent_job(&server, &id).await {
                        Err(e) => {
                            tracing::debug!(server = %server.uuid, error = %e, "run not reconciled yet");
                            continue;
                        }
                        Ok(None) => (RunStatus::Failed, None, Some(interrupted.to_owned())),
                        Ok(Some(view)) if !view.status.is_finished() => continue,
                        Ok(Some(view)) => {
                            let ended = view.finished_at.map_or(0, |t| t.unix());
                            if now - ended < UNRECORDED_AFTER_SECS {
                                continue;
                            }
                            let (status, snapshot, why) = crate::service::job_outcome(&view);
                            let why = match status {
                                RunStatus::Failed => why.or(Some(interrupted.to_owned())),
                                RunStatus::Running | RunStatus::Succeeded => why,
                            };
                            (status, snapshot, why)
                        }
                    }
                }
            };
            let end = crate::storage::JobEnd {
                status,
                agent_job_id: row.agent_job_id.as_deref(),
                snapshot_id: snapshot.as_deref(),
                error: error.as_deref(),
                now,
            };
            let settled_now = storage.settle_job(row.id, &end).await?;
            if !settled_now {
                continue; // its panel recorded it meanwhile
            }
            let outcome = match &error {
                None => Ok(snapshot.as_deref()),
                Some(e) => Err(e.as_str()),
            };
            // Only scheduled runs are the schedule's last result. -1: never
            // a stored next-run time, so the schedule stays put.
            if row.origin == RunOrigin::Schedule {
                storage.finish_run(server.id, outcome, -1, -1).await?;
            }
            tracing::warn!(server = %server.uuid, status = %status, "a run left by a stopped panel was settled");
            settled += 1;
        }
        Ok(settled)
    }

    /// Ticks every [`TICK`] until `shutdown`; runs in flight finish in the
    /// background.
    pub async fn run_forever(self, shutdown: impl Future<Output = ()>) {
        let mut every = tokio::time::interval(TICK);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => return,
                _ = every.tick() => {
                    if let Err(e) = self.reconcile().await {
                        tracing::warn!(error = %e, "unfinished runs not reconciled");
                    }
                    if let Err(e) = self.tick().await {
                        tracing::warn!(error = %e, "scheduler tick failed");
                    }
                }
            }
        }
    }

    /// Settles runs stopped panels left, then one tick, waiting for the runs
    /// it started (`schedule run-due`). Returns runs started and failed.
    pub async fn run_due(&self) -> Result<(usize, usize), PanelError> {
        if let Err(e) = self.reconcile().await {
            tracing::warn!(error = %e, "unfinished runs not reconciled");
        }
        let handles = self.tick().await?;
        let n = handles.len();
        let mut failed = 0;
        for h in handles {
            if !h.await.unwrap_or(false) {
                failed += 1;
            }
        }
        Ok((n, failed))
    }
}

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
    fn run<'a>(&'a self, server: &'a Server, policy: &'a Policy) -> RunFuture<'a>;
}

/// The real runner: through the server's node agent.
struct AgentRunner(Panel);

/// The runner that backs up through the agents.
pub fn agent_runner(panel: Panel) -> Arc<dyn BackupRunner> {
    Arc::new(AgentRunner(panel))
}

impl BackupRunner for AgentRunner {
    fn run<'a>(&'a self, server: &'a Server, policy: &'a Policy) -> RunFuture<'a> {
        Box::pin(async move {
            self.0
                .scheduled_backup(server, policy)
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
}

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
        }
    }

    /// Claims every run due now and starts it; the handles end with the runs.
    pub async fn tick(&self) -> Result<Vec<JoinHandle<()>>, PanelError> {
        let now = (self.clock)();
        let storage = self.panel.storage();
        let mut started = Vec::new();
        for policy in storage.due_policies(now, BATCH).await? {
            let Some(due_at) = policy.next_run_at else {
                continue;
            };
            let server_id = policy.server_id;
            let interval = match crate::service::interval_of(&policy) {
                Ok(i) => i,
                Err(e) => {
                    tracing::error!(server_id, error = %e, "schedule skipped");
                    continue;
                }
            };
            let anchor = policy.anchor_at.unwrap_or(due_at);
            let next = schedule::next_after(anchor, interval, now);
            if !storage.claim_run(server_id, due_at, next, now).await? {
                continue; // another panel got it, or the schedule changed
            }
            let me = self.clone();
            started.push(tokio::spawn(async move {
                if let Err(e) = me.run(policy, anchor, interval, next, now).await {
                    tracing::error!(server_id, error = %e, "scheduled run not recorded");
                }
            }));
        }
        Ok(started)
    }

    async fn run(
        &self,
        policy: Policy,
        anchor: i64,
        interval: schedule::Interval,
        claimed_next: i64,
        claimed_at: i64,
    ) -> Result<(), PanelError> {
        let _slot = self.slots.acquire().await;
        let storage = self.panel.storage();
        let Some(server) = storage.server(policy.server_id).await? else {
            return Ok(()); // deleted meanwhile
        };
        let job = storage
            .start_job(server.id, "backup", "schedule", claimed_at)
            .await?;
        tracing::info!(server = %server.uuid, "scheduled backup started");
        let outcome = self.runner.run(&server, &policy).await;
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
                        "succeeded",
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
                let retry = schedule::retry_at(anchor, interval, failures, now);
                storage
                    .finish_run(server.id, Err(&message), claimed_next, retry)
                    .await?;
                storage
                    .finish_job(job, "failed", None, None, Some(&message), now)
                    .await?;
                tracing::warn!(server = %server.uuid, error = %message, failures, "scheduled backup failed");
            }
        }
        Ok(())
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
                    if let Err(e) = self.tick().await {
                        tracing::warn!(error = %e, "scheduler tick failed");
                    }
                }
            }
        }
    }

    /// One tick, waiting for the runs it started (`schedule run-due`).
    pub async fn run_due(&self) -> Result<usize, PanelError> {
        let handles = self.tick().await?;
        let n = handles.len();
        for h in handles {
            let _ = h.await;
        }
        Ok(n)
    }
}

//! Long operations run as jobs: the request answers 202 with a job ID at
//! once, and `GET …/jobs/{id}` reports status, progress and outcome. A node
//! runs at most `max_parallel_jobs` at a time; the rest wait in the queue.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use api::agent::{ErrorDetail, JobKind, JobProgress, JobStatus, JobView};
use api::{JobId, ServerUuid};
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::AgentError;
use crate::clock::now_rfc3339;

/// Finished jobs stay readable at least this long.
const KEEP_FINISHED: Duration = Duration::from_secs(2 * 60 * 60);

struct Record {
    server: ServerUuid,
    view: JobView,
    finished: Option<Instant>,
}

pub struct Jobs {
    records: Mutex<HashMap<JobId, Record>>,
    slots: Semaphore,
}

fn random_id() -> JobId {
    let mut bytes = [0u8; 16];
    // A failing system RNG leaves no safe way on.
    getrandom::getrandom(&mut bytes).expect("the system random number generator failed");
    JobId::from_bytes(bytes)
}

impl Jobs {
    pub fn new(max_parallel: usize) -> Self {
        Self {
            records: Mutex::new(HashMap::new()),
            slots: Semaphore::new(max_parallel),
        }
    }

    fn records(&self) -> std::sync::MutexGuard<'_, HashMap<JobId, Record>> {
        // A panic while holding this lock can only have left a record half
        // updated; the map itself is still usable.
        self.records.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a queued job.
    pub fn create(&self, server: &ServerUuid, kind: JobKind) -> JobId {
        let id = random_id();
        let view = JobView {
            id: id.to_string(),
            kind,
            status: JobStatus::Queued,
            progress: JobProgress::default(),
            result: None,
            error: None,
            created_at: now_rfc3339(),
            started_at: None,
            finished_at: None,
        };
        let mut records = self.records();
        records.retain(|_, r| r.finished.is_none_or(|at| at.elapsed() < KEEP_FINISHED));
        records.insert(
            id.clone(),
            Record {
                server: server.clone(),
                view,
                finished: None,
            },
        );
        id
    }

    /// Waits for a free slot on this node.
    pub async fn slot(&self) -> SemaphorePermit<'_> {
        // The semaphore is never closed.
        self.slots.acquire().await.expect("job semaphore closed")
    }

    pub fn start(&self, id: &JobId) {
        self.update(id, |v| {
            v.status = JobStatus::Running;
            v.started_at = Some(now_rfc3339());
        });
    }

    pub fn progress(&self, id: &JobId, progress: JobProgress) {
        self.update(id, |v| v.progress = progress);
    }

    pub fn finish(&self, id: &JobId, outcome: Result<serde_json::Value, AgentError>) {
        let mut records = self.records();
        if let Some(r) = records.get_mut(id) {
            r.finished = Some(Instant::now());
            r.view.finished_at = Some(now_rfc3339());
            match outcome {
                Ok(result) => {
                    r.view.status = JobStatus::Succeeded;
                    r.view.result = Some(result);
                    if r.view.progress.percent.is_some() {
                        r.view.progress.percent = Some(100.0);
                        r.view.progress.seconds_remaining = Some(0);
                    }
                }
                Err(e) => {
                    if let AgentError::Internal(detail) = &e {
                        tracing::error!(job = %id, %detail, "job failed");
                    } else {
                        tracing::info!(job = %id, error = %e, "job failed");
                    }
                    r.view.status = JobStatus::Failed;
                    r.view.error = Some(ErrorDetail {
                        code: e.code().to_owned(),
                        message: e.public_message(),
                    });
                }
            }
        }
    }

    /// Removes a job that never started (its request was refused).
    pub fn discard(&self, id: &JobId) {
        self.records().remove(id);
    }

    fn update(&self, id: &JobId, f: impl FnOnce(&mut JobView)) {
        if let Some(r) = self.records().get_mut(id) {
            f(&mut r.view);
        }
    }

    /// The job, if it exists and belongs to `server`.
    pub fn get(&self, server: &ServerUuid, id: &JobId) -> Option<JobView> {
        self.records()
            .get(id)
            .filter(|r| &r.server == server)
            .map(|r| r.view.clone())
    }
}

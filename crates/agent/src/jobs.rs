//! Long operations run as jobs: the request answers 202 with a job ID at
//! once, and `GET …/jobs/{id}` reports status, progress and outcome. A node
//! runs at most `max_parallel_jobs` at a time; the rest wait in the queue.
//!
//! Every job is also written to `<state_dir>/jobs/<id>.json` when it is
//! queued, starts and ends, so a job that was running when the agent died is
//! reported as failed after a restart instead of vanishing.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use api::agent::{ErrorDetail, JobKind, JobPhase, JobProgress, JobStatus, JobView};
use api::{JobId, ServerUuid};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::AgentError;
use api::Timestamp;

/// Finished jobs stay readable at least this long (seconds).
const KEEP_FINISHED_SECS: i64 = 2 * 60 * 60;

#[derive(Clone, Serialize, Deserialize)]
struct Record {
    server: String,
    view: JobView,
    /// Unix seconds the job ended.
    #[serde(default)]
    finished_unix: Option<i64>,
}

pub struct Jobs {
    records: Mutex<HashMap<JobId, Record>>,
    slots: Semaphore,
    dir: PathBuf,
}

fn random_id() -> JobId {
    let mut bytes = [0u8; 16];
    // A failing system RNG leaves no safe way on.
    getrandom::getrandom(&mut bytes).expect("the system random number generator failed");
    JobId::from_bytes(bytes)
}

fn now_unix() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

impl Jobs {
    /// Loads the jobs of the previous run from `dir`. Jobs that had not
    /// finished are marked failed; their servers are returned so their
    /// repositories get stale restic locks cleared.
    pub fn load(max_parallel: usize, dir: PathBuf) -> (Self, Vec<ServerUuid>) {
        let mut records = HashMap::new();
        let mut interrupted = Vec::new();
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                let path = entry.path();
                let Some(id) = path
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .and_then(|s| JobId::parse(s).ok())
                else {
                    continue;
                };
                let record: Option<Record> = std::fs::read(&path)
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok());
                let Some(mut record) = record else {
                    tracing::warn!(path = %path.display(), "removing unreadable job record");
                    let _ = std::fs::remove_file(&path);
                    continue;
                };
                if let Some(done) = record.finished_unix {
                    if now_unix() - done > KEEP_FINISHED_SECS {
                        let _ = std::fs::remove_file(&path);
                        continue;
                    }
                } else {
                    let err = AgentError::Interrupted;
                    record.view.status = JobStatus::Failed;
                    record.view.error = Some(ErrorDetail {
                        code: err.code().to_owned(),
                        message: err.public_message(),
                    });
                    record.view.finished_at = Some(Timestamp::now());
                    record.finished_unix = Some(now_unix());
                    if let Ok(server) = ServerUuid::parse(&record.server) {
                        interrupted.push(server);
                    }
                    write_record(&dir, &id, &record);
                    tracing::warn!(job = %id, server = %record.server, "job was interrupted by an agent restart");
                }
                records.insert(id, record);
            }
        }
        (
            Self {
                records: Mutex::new(records),
                slots: Semaphore::new(max_parallel),
                dir,
            },
            interrupted,
        )
    }

    /// A restore the crash interrupted after its swap began was completed
    /// at start-up by the swap repair: its job reads succeeded, not
    /// interrupted.
    pub fn completed_at_restart(&self, server: &ServerUuid) {
        let mut records = self.records();
        // The latest interrupted restore of the server: that is the one the
        // swap belonged to (one restore runs per server at a time).
        let hit = records
            .iter_mut()
            .filter(|(_, r)| {
                r.server == server.as_str()
                    && r.view.kind == JobKind::Restore
                    && r.view.status == JobStatus::Failed
                    && r.view
                        .error
                        .as_ref()
                        .is_some_and(|e| e.code == AgentError::Interrupted.code())
            })
            .max_by(|a, b| a.1.view.created_at.cmp(&b.1.view.created_at));
        if let Some((id, record)) = hit {
            record.view.status = JobStatus::Succeeded;
            record.view.error = None;
            record.view.result = Some(serde_json::json!({"completed_at_restart": true}));
            write_record(&self.dir, id, record);
            tracing::info!(job = %id, %server, "the interrupted restore was completed at start-up");
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
        let record = Record {
            server: server.to_string(),
            view: JobView {
                id: id.clone(),
                kind,
                status: JobStatus::Queued,
                progress: JobProgress::default(),
                result: None,
                error: None,
                created_at: Timestamp::now(),
                started_at: None,
                finished_at: None,
            },
            finished_unix: None,
        };
        let mut records = self.records();
        let now = now_unix();
        records.retain(|id, r| {
            let keep = r
                .finished_unix
                .is_none_or(|at| now - at < KEEP_FINISHED_SECS);
            if !keep {
                let _ = std::fs::remove_file(self.dir.join(format!("{id}.json")));
            }
            keep
        });
        write_record(&self.dir, &id, &record);
        records.insert(id.clone(), record);
        id
    }

    /// Waits for a free slot on this node.
    pub async fn slot(&self) -> SemaphorePermit<'_> {
        // The semaphore is never closed.
        self.slots.acquire().await.expect("job semaphore closed")
    }

    pub fn start(&self, id: &JobId) {
        self.update(id, true, |r| {
            r.view.status = JobStatus::Running;
            r.view.started_at = Some(Timestamp::now());
        });
    }

    /// Progress is kept in memory only (it changes every second). The
    /// job's phase stays as [`Jobs::phase`] set it.
    pub fn progress(&self, id: &JobId, progress: JobProgress) {
        self.update(id, false, |r| {
            r.view.progress = JobProgress {
                phase: r.view.progress.phase,
                ..progress
            }
        });
    }

    /// A multi-step job enters its next step; the numbers of the last
    /// step are cleared.
    pub fn phase(&self, id: &JobId, phase: JobPhase) {
        self.update(id, false, |r| {
            r.view.progress = JobProgress {
                phase: Some(phase),
                ..JobProgress::default()
            }
        });
    }

    /// Ends the job (an unknown one is left alone).
    ///
    /// `counted` is told the job's kind and error code before anyone can
    /// see it ended (under the same lock), so a reader who sees the job
    /// finished also sees it counted.
    pub fn finish(
        &self,
        id: &JobId,
        outcome: Result<serde_json::Value, AgentError>,
        counted: impl FnOnce(JobKind, Option<&'static str>),
    ) {
        let code = outcome.as_ref().err().map(AgentError::code);
        self.update(id, true, |r| {
            counted(r.view.kind, code);
            r.finished_unix = Some(now_unix());
            r.view.finished_at = Some(Timestamp::now());
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
        });
    }

    /// Jobs queued and running now.
    pub fn depth(&self) -> (u64, u64) {
        let records = self.records();
        let count = |status| records.values().filter(|r| r.view.status == status).count() as u64;
        (count(JobStatus::Queued), count(JobStatus::Running))
    }

    /// Removes a job that never started (its request was refused).
    pub fn discard(&self, id: &JobId) {
        self.records().remove(id);
        let _ = std::fs::remove_file(self.dir.join(format!("{id}.json")));
    }

    fn update(&self, id: &JobId, persist: bool, f: impl FnOnce(&mut Record)) {
        let mut records = self.records();
        if let Some(r) = records.get_mut(id) {
            f(r);
            if persist {
                write_record(&self.dir, id, r);
            }
        }
    }

    /// `server`'s jobs the agent remembers (finished ones for two hours),
    /// newest first; only the queued and running ones with `active`.
    pub fn of_server(&self, server: &ServerUuid, active: bool) -> Vec<JobView> {
        let mut jobs: Vec<JobView> = self
            .records()
            .values()
            .filter(|r| r.server == server.as_str())
            .filter(|r| !active || !r.view.status.is_finished())
            .map(|r| r.view.clone())
            .collect();
        jobs.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        jobs
    }

    /// The job, if it exists and belongs to `server`.
    pub fn get(&self, server: &ServerUuid, id: &JobId) -> Option<JobView> {
        self.records()
            .get(id)
            .filter(|r| r.server == server.as_str())
            .map(|r| r.view.clone())
    }
}

impl crate::metrics::QueueDepth for Jobs {
    fn depth(&self) -> (u64, u64) {
        Jobs::depth(self)
    }
}

/// Small files written whole (temp file + rename), so a crash never leaves a
/// half-written record.
fn write_record(dir: &Path, id: &JobId, record: &Record) {
    let result = serde_json::to_vec(record)
        .map_err(std::io::Error::from)
        .and_then(|bytes| crate::layout::write_atomically(&dir.join(format!("{id}.json")), &bytes));
    if let Err(e) = result {
        tracing::warn!(job = %id, error = %e, "could not save the job record");
    }
}

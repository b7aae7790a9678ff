//! The agent's Prometheus metrics (`GET /metrics`, Prometheus text format).
//!
//! Counters live in a registry of this agent's own (never a process-wide
//! one: the demo runs agent and panel in one process). Per-server figures
//! (last backup, repository size, snapshot count) are kept in memory and in
//! `<state_dir>/figures/<uuid>.json`, so a restart does not blank them and
//! "no backup for 26 h" alerts keep working; they are read at scrape time,
//! so a server whose repository was archived disappears from the next
//! scrape instead of alerting forever.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use api::ServerUuid;
use api::agent::JobKind;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeGaugeValue, EncodeLabelSet, EncodeMetric,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};

/// What is known of one server's backups.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Figures {
    /// Unix seconds the last successful backup ended.
    pub last_success: Option<i64>,
    /// Unix seconds the last failed backup ended.
    pub last_failure: Option<i64>,
    /// restic's own duration of the last successful backup.
    pub last_duration_seconds: Option<f64>,
    /// Bytes the last successful backup covered.
    pub last_size_bytes: Option<u64>,
    /// Bytes the last successful backup added to the repository.
    pub last_added_bytes: Option<u64>,
    /// Bytes the repository takes in its store (local: on disk; remote: as
    /// restic last measured it).
    pub repository_bytes: Option<u64>,
    /// Snapshots in the repository when last listed.
    pub snapshots: Option<u64>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    kind: &'static str,
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabels {
    kind: &'static str,
    code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

/// Jobs queued and running now, read at scrape time.
pub trait QueueDepth: Send + Sync + 'static {
    /// `(queued, running)`.
    fn depth(&self) -> (u64, u64);
}

pub struct Metrics {
    registry: Registry,
    jobs: Family<JobLabels, Counter>,
    failures: Family<FailureLabels, Counter>,
    servers: Arc<ServerFigures>,
}

impl Metrics {
    /// Loads the figures kept in `dir` and sets up the registry.
    pub fn new(
        dir: PathBuf,
        info: [(&'static str, String); 3],
        queue: Arc<dyn QueueDepth>,
    ) -> Self {
        let mut registry = Registry::with_prefix("restic_backups");
        registry.register(
            "agent",
            "This agent's version, restic's version and the repository store kind",
            Info::new(info.map(|(k, v)| (k, v)).to_vec()),
        );
        let jobs = Family::<JobLabels, Counter>::default();
        registry.register(
            "jobs",
            "Jobs that ended since the agent started, by kind and status",
            jobs.clone(),
        );
        let failures = Family::<FailureLabels, Counter>::default();
        registry.register(
            "failures",
            "Jobs that failed since the agent started, by kind and error code (the class of restic failure)",
            failures.clone(),
        );
        // Counters with a fixed set of labels start at 0, so rates and
        // alerts see them before the first event.
        for kind in JobKind::ALL {
            for status in ["succeeded", "failed"] {
                let _ = jobs.get_or_create(&JobLabels {
                    kind: kind.as_str(),
                    status,
                });
            }
        }
        let servers = Arc::new(ServerFigures::load(dir, queue));
        registry.register_collector(Box::new(servers.clone()));
        Self {
            registry,
            jobs,
            failures,
            servers,
        }
    }

    /// What `/metrics` answers.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    #[cfg(test)]
    fn render(&self) -> String {
        httpd::prometheus_text(&self.registry)
    }

    /// A job ended; `code` is the error code of a failed one.
    pub fn job_ended(&self, kind: JobKind, code: Option<&'static str>) {
        let status = if code.is_some() {
            "failed"
        } else {
            "succeeded"
        };
        self.jobs
            .get_or_create(&JobLabels {
                kind: kind.as_str(),
                status,
            })
            .inc();
        if let Some(code) = code {
            self.failures
                .get_or_create(&FailureLabels {
                    kind: kind.as_str(),
                    code,
                })
                .inc();
        }
    }

    /// Changes one server's figures (and keeps them on disk when they changed).
    pub fn update(&self, server: &ServerUuid, f: impl FnOnce(&mut Figures)) {
        self.servers.update(server, f);
    }

    /// The server's repository is gone (archived): its series end.
    pub fn forget(&self, server: &ServerUuid) {
        self.servers.forget(server);
    }

    #[cfg(test)]
    fn figures(&self, server: &ServerUuid) -> Option<Figures> {
        self.servers.lock().get(server).cloned()
    }
}

struct ServerFigures {
    dir: PathBuf,
    map: Mutex<BTreeMap<ServerUuid, Figures>>,
    queue: Arc<dyn QueueDepth>,
}

impl std::fmt::Debug for ServerFigures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerFigures")
            .field("dir", &self.dir)
            .finish()
    }
}

impl ServerFigures {
    fn load(dir: PathBuf, queue: Arc<dyn QueueDepth>) -> Self {
        let mut map = BTreeMap::new();
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                let path = entry.path();
                let Some(server) = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.strip_suffix(".json"))
                    .and_then(|n| ServerUuid::parse(n).ok())
                else {
                    continue;
                };
                match std::fs::read(&path)
                    .ok()
                    .and_then(|b| serde_json::from_slice::<Figures>(&b).ok())
                {
                    Some(figures) => {
                        map.insert(server, figures);
                    }
                    None => {
                        tracing::warn!(path = %path.display(), "ignoring unreadable figures");
                    }
                }
            }
        }
        Self {
            dir,
            map: Mutex::new(map),
            queue,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<ServerUuid, Figures>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn file(&self, server: &ServerUuid) -> PathBuf {
        self.dir.join(format!("{}.json", server.as_str()))
    }

    fn update(&self, server: &ServerUuid, f: impl FnOnce(&mut Figures)) {
        let mut map = self.lock();
        let figures = map.entry(server.clone()).or_default();
        let before = figures.clone();
        f(figures);
        if *figures == before {
            return;
        }
        let result = serde_json::to_vec(figures)
            .map_err(std::io::Error::from)
            .and_then(|bytes| crate::layout::write_atomically(&self.file(server), &bytes));
        if let Err(e) = result {
            tracing::warn!(server = %server, error = %e, "could not save the server's figures");
        }
    }

    fn forget(&self, server: &ServerUuid) {
        self.lock().remove(server);
        let _ = std::fs::remove_file(self.file(server));
    }
}

/// One gauge per server that has the figure.
fn per_server<N: EncodeGaugeValue>(
    encoder: &mut DescriptorEncoder,
    map: &BTreeMap<ServerUuid, Figures>,
    name: &str,
    help: &str,
    value: impl Fn(&Figures) -> Option<N>,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (server, figures) in map {
        if let Some(v) = value(figures) {
            let labels = [("server", server.as_str())];
            ConstGauge::new(v).encode(family.encode_family(&labels)?)?;
        }
    }
    Ok(())
}

impl Collector for ServerFigures {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let (queued, running) = self.queue.depth();
        let mut jobs = encoder.encode_descriptor(
            "jobs_active",
            "Jobs queued (waiting for a slot or the repository) and running now",
            None,
            MetricType::Gauge,
        )?;
        for (state, n) in [("queued", queued), ("running", running)] {
            ConstGauge::new(n).encode(jobs.encode_family(&StateLabel { state })?)?;
        }
        let map = self.lock();
        let e = &mut encoder;
        per_server(
            e,
            &map,
            "last_success_timestamp_seconds",
            "When the server's last successful backup ended (Unix time)",
            |f| f.last_success,
        )?;
        per_server(
            e,
            &map,
            "last_failure_timestamp_seconds",
            "When the server's last failed backup ended (Unix time)",
            |f| f.last_failure,
        )?;
        per_server(
            e,
            &map,
            "last_backup_duration_seconds",
            "How long the server's last successful backup took",
            |f| f.last_duration_seconds,
        )?;
        per_server(
            e,
            &map,
            "last_backup_size_bytes",
            "Bytes of server files the last successful backup covered",
            |f| f.last_size_bytes,
        )?;
        per_server(
            e,
            &map,
            "last_backup_added_bytes",
            "Bytes the last successful backup added to the repository",
            |f| f.last_added_bytes,
        )?;
        per_server(
            e,
            &map,
            "repository_size_bytes",
            "Bytes the server's repository takes in its store",
            |f| f.repository_bytes,
        )?;
        per_server(
            e,
            &map,
            "snapshots",
            "Snapshots in the server's repository",
            |f| f.snapshots,
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Idle;
    impl QueueDepth for Idle {
        fn depth(&self) -> (u64, u64) {
            (1, 2)
        }
    }

    fn server(n: u8) -> ServerUuid {
        ServerUuid::parse(&format!("{n:08x}-0000-4000-8000-000000000000")).unwrap()
    }

    fn metrics(dir: &std::path::Path) -> Metrics {
        Metrics::new(
            dir.to_owned(),
            [
                ("version", "0.1.0".into()),
                ("restic_version", "0.14.0".into()),
                ("store", "local".into()),
            ],
            Arc::new(Idle),
        )
    }

    #[test]
    fn figures_survive_a_restart_and_end_with_the_server() {
        let dir = tempfile::tempdir().unwrap();
        let m = metrics(dir.path());
        m.update(&server(1), |f| {
            f.last_success = Some(1_700_000_000);
            f.last_added_bytes = Some(42);
        });
        m.update(&server(2), |f| f.snapshots = Some(3));
        let again = metrics(dir.path());
        assert_eq!(
            again.figures(&server(1)).unwrap().last_added_bytes,
            Some(42)
        );
        let text = again.render();
        assert!(
            text.contains(
                "restic_backups_last_success_timestamp_seconds{server=\"00000001-0000-4000-8000-000000000000\"} 1700000000\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("restic_backups_jobs_active{state=\"queued\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("restic_backups_jobs_active{state=\"running\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("restic_backups_agent_info{"), "{text}");
        again.forget(&server(1));
        assert!(!again.render().contains("00000001-"));
        assert!(metrics(dir.path()).figures(&server(1)).is_none());
        assert!(metrics(dir.path()).figures(&server(2)).is_some());
    }

    #[test]
    fn counters_by_kind_status_and_code() {
        let dir = tempfile::tempdir().unwrap();
        let m = metrics(dir.path());
        m.job_ended(JobKind::Backup, None);
        m.job_ended(JobKind::Backup, None);
        m.job_ended(JobKind::Backup, Some("store_unavailable"));
        let text = m.render();
        assert!(
            text.contains("restic_backups_jobs_total{kind=\"backup\",status=\"succeeded\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "restic_backups_failures_total{kind=\"backup\",code=\"store_unavailable\"} 1\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn unreadable_figures_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(format!("{}.json", server(1).as_str())),
            b"{nope",
        )
        .unwrap();
        std::fs::write(dir.path().join("not-a-uuid.json"), b"{}").unwrap();
        let m = metrics(dir.path());
        assert!(m.figures(&server(1)).is_none());
        assert!(!m.render().contains("not-a-uuid"));
    }
}

//! The panel's Prometheus metrics (`GET /metrics`, Prometheus text format):
//! HTTP requests by route and status with latency histograms, logins by
//! result, the scheduler's lag and outcomes, Pterodactyl syncs. A registry
//! of this panel's own (the demo runs an agent in the same process).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

/// Latency buckets (seconds): the API answers in milliseconds; downloads
/// and restores through the panel are redirects and 202s.
const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: &'static str,
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

/// How a login attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoginResult {
    Ok,
    /// Wrong email or password.
    Failed,
    /// Refused unchecked: too many failures (429).
    Limited,
}

impl LoginResult {
    pub fn as_str(self) -> &'static str {
        match self {
            LoginResult::Ok => "ok",
            LoginResult::Failed => "failed",
            LoginResult::Limited => "limited",
        }
    }
}

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    logins: Family<ResultLabel, Counter>,
    scheduled: Family<ResultLabel, Counter>,
    scheduler_lag: Gauge,
    scheduler_tick: Gauge,
    syncs: Family<ResultLabel, Counter>,
    last_sync: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("restic_backups_panel");
        registry.register(
            "build",
            "This panel's version",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, route template and status",
            requests.clone(),
        );
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(LATENCY_BUCKETS)
        });
        registry.register(
            "http_request_duration_seconds",
            "Time to answer, by method and route template",
            latency.clone(),
        );
        let logins = Family::<ResultLabel, Counter>::default();
        registry.register(
            "logins",
            "Password logins by result: ok, failed (wrong email or password), limited (refused after too many failures)",
            logins.clone(),
        );
        let scheduled = Family::<ResultLabel, Counter>::default();
        registry.register(
            "scheduled_backups",
            "Scheduled backups this panel ran, by result",
            scheduled.clone(),
        );
        let scheduler_lag = Gauge::default();
        registry.register(
            "scheduler_lag_seconds",
            "How late the last scheduler tick started its latest-due run (0 when nothing was late)",
            scheduler_lag.clone(),
        );
        let scheduler_tick = Gauge::default();
        registry.register(
            "scheduler_last_tick_timestamp_seconds",
            "When this panel's scheduler last looked for due runs (Unix time; 0 when it does not run here)",
            scheduler_tick.clone(),
        );
        let syncs = Family::<ResultLabel, Counter>::default();
        registry.register(
            "pterodactyl_syncs",
            "Pterodactyl syncs by result (Pterodactyl mode)",
            syncs.clone(),
        );
        let last_sync = Gauge::default();
        registry.register(
            "pterodactyl_last_sync_timestamp_seconds",
            "When the last successful Pterodactyl sync ended (Unix time)",
            last_sync.clone(),
        );
        // Counters with a fixed set of labels start at 0, so rates and
        // alerts see them before the first event.
        for result in ["ok", "failed", "limited"] {
            let _ = logins.get_or_create(&ResultLabel { result });
        }
        for result in ["succeeded", "failed"] {
            let _ = scheduled.get_or_create(&ResultLabel { result });
        }
        for result in ["ok", "failed"] {
            let _ = syncs.get_or_create(&ResultLabel { result });
        }
        Self {
            registry,
            requests,
            latency,
            logins,
            scheduled,
            scheduler_lag,
            scheduler_tick,
            syncs,
            last_sync,
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

    /// One answered request. `route` is the matched template (never the
    /// path itself: IDs would make a series per server).
    pub fn request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let method = known_method(method);
        self.requests
            .get_or_create(&RequestLabels {
                method,
                route: route.to_owned(),
                status,
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels {
                method,
                route: route.to_owned(),
            })
            .observe(seconds);
    }

    pub fn login(&self, result: LoginResult) {
        self.logins
            .get_or_create(&ResultLabel {
                result: result.as_str(),
            })
            .inc();
    }

    pub fn scheduled_backup(&self, succeeded: bool) {
        let result = if succeeded { "succeeded" } else { "failed" };
        self.scheduled.get_or_create(&ResultLabel { result }).inc();
    }

    /// A scheduler tick at `at` started runs up to `seconds` late.
    pub fn scheduler_tick(&self, at: i64, seconds: i64) {
        self.scheduler_lag.set(seconds.max(0));
        self.scheduler_tick.set(at);
    }

    pub fn sync(&self, ok: bool, at: i64) {
        let result = if ok { "ok" } else { "failed" };
        self.syncs.get_or_create(&ResultLabel { result }).inc();
        if ok {
            self.last_sync.set(at);
        }
    }
}

/// The method as a fixed word (anything unusual is `other`, so a client
/// can not mint series).
fn known_method(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_count_by_template_and_histogram_buckets() {
        let m = Metrics::new();
        m.request("GET", "/servers/{server}", 200, 0.004);
        m.request("GET", "/servers/{server}", 200, 0.2);
        m.request("BREW", "/servers/{server}", 405, 0.001);
        m.login(LoginResult::Limited);
        m.scheduler_tick(1_800_000_000, -5);
        let text = m.render();
        assert!(text.contains("restic_backups_panel_http_requests_total{method=\"GET\",route=\"/servers/{server}\",status=\"200\"} 2\n"), "{text}");
        assert!(text.contains("method=\"other\""), "{text}");
        assert!(text.contains("restic_backups_panel_http_request_duration_seconds_bucket{le=\"0.005\",method=\"GET\",route=\"/servers/{server}\"} 1\n")
            || text.contains("restic_backups_panel_http_request_duration_seconds_bucket{method=\"GET\",route=\"/servers/{server}\",le=\"0.005\"} 1\n"), "{text}");
        assert!(
            text.contains("restic_backups_panel_logins_total{result=\"limited\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("restic_backups_panel_scheduler_lag_seconds 0\n"),
            "{text}"
        );
    }
}

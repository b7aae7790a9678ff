//! The panel's client for one node's agent: the node token as bearer, the
//! server's key in `X-Restic-Password`, certificate verification always on
//! (with the node's own CA if it has one), and timeouts, so a dead agent is a
//! quick `Unavailable`, never a hang.

use std::time::Duration;

use api::agent::{
    ArchiveList, BackupList, CreateBackupRequest, ErrorBody, JobAccepted, JobView, KeyRotated,
    LockState, PASSWORD_HEADER, RepoStats, RestoreRequest, RetentionPolicy, RetentionResult,
    RotateKeyRequest,
};
use api::download::DownloadFormat;
use api::files::{FileList, FilesQuery, SnapshotPath};
use api::routes::agent as route;
use api::{JobId, Secret, ServerUuid, SnapshotRef};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use thiserror::Error;

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an ordinary call may take (listing may refresh the index once).
const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// Reads (lists, statistics, job status, archives): a hung agent must not
/// hold a page for long.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the first view of a snapshot's files may take (restic lists
/// the whole snapshot once).
const LISTING_TIMEOUT: Duration = Duration::from_secs(10 * 60);

#[derive(Debug, Error)]
pub enum ClientError {
    /// The agent could not be reached or did not answer properly in time.
    #[error("the node's agent is unavailable")]
    Unavailable,
    /// The agent answered with an error; status and body are passed on.
    #[error("the agent refused: {code}")]
    Agent {
        status: u16,
        code: String,
        message: String,
    },
    #[error("the node is misconfigured: {0}")]
    Config(String),
}

/// Where a node's agent is and how to trust it.
#[derive(Debug, Clone)]
pub struct NodeConn {
    pub url: String,
    pub token: Secret,
    pub ca_pem: Option<String>,
}

#[derive(Clone)]
pub struct AgentClient {
    http: reqwest::Client,
    base: String,
    token: Secret,
}

impl AgentClient {
    pub fn new(node: &NodeConn) -> Result<Self, ClientError> {
        let base = node.url.trim_end_matches('/').to_owned();
        if !(base.starts_with("https://") || base.starts_with("http://")) {
            return Err(ClientError::Config(
                "the node URL must start with https:// or http://".into(),
            ));
        }
        let mut builder = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(CALL_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .https_only(base.starts_with("https://"));
        if let Some(pem) = &node.ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
                .ok()
                .filter(|c| !c.is_empty())
                .ok_or_else(|| {
                    ClientError::Config("the node's CA certificate is not valid PEM".into())
                })?;
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder
            .build()
            .map_err(|e| ClientError::Config(format!("HTTP client: {e}")))?;
        Ok(Self {
            http,
            base,
            token: node.token.clone(),
        })
    }

    /// The agent's URL of `path` (built by [`route`]).
    fn url(&self, path: String) -> String {
        format!("{}{path}", self.base)
    }

    fn request(&self, method: Method, url: &str, key: Option<&Secret>) -> reqwest::RequestBuilder {
        let mut r = self
            .http
            .request(method, url)
            .bearer_auth(self.token.expose());
        if let Some(key) = key {
            r = r.header(PASSWORD_HEADER, key.expose());
        }
        r
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response, ClientError> {
        let res = req.send().await.map_err(|e| {
            // The error text names the URL, never a header.
            tracing::warn!(error = %e, "agent unreachable");
            ClientError::Unavailable
        })?;
        let status = res.status();
        if status.is_success() {
            return Ok(res);
        }
        if status.is_server_error() && status != StatusCode::SERVICE_UNAVAILABLE {
            tracing::warn!(status = status.as_u16(), "agent failed");
            return Err(ClientError::Unavailable);
        }
        let body: Option<ErrorBody> = res.json().await.ok();
        Err(match body {
            Some(b) => ClientError::Agent {
                status: status.as_u16(),
                code: b.error.code,
                message: b.error.message,
            },
            None => ClientError::Unavailable,
        })
    }

    async fn json<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        self.send(req).await?.json().await.map_err(|e| {
            tracing::warn!(error = %e, "agent answered something unexpected");
            ClientError::Unavailable
        })
    }

    pub async fn list(
        &self,
        server: &ServerUuid,
        key: &Secret,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<BackupList, ClientError> {
        self.list_in(server, key, limit, cursor, &api::TimeRange::default())
            .await
    }

    /// A page of the backups taken within `range`.
    pub async fn list_in(
        &self,
        server: &ServerUuid,
        key: &Secret,
        limit: usize,
        cursor: Option<&str>,
        range: &api::TimeRange,
    ) -> Result<BackupList, ClientError> {
        let mut req = self
            .request(Method::GET, &self.url(route::backups(server)), Some(key))
            .timeout(READ_TIMEOUT)
            .query(&[("limit", limit.to_string())]);
        if let Some(c) = cursor {
            req = req.query(&[("cursor", c)]);
        }
        if !range.is_all() {
            req = req.query(&range.query());
        }
        self.json(req).await
    }

    pub async fn storage_history(
        &self,
        server: &ServerUuid,
        key: &Secret,
    ) -> Result<api::agent::StorageHistory, ClientError> {
        let url = self.url(route::stats_history(server));
        let req = self.request(Method::GET, &url, Some(key));
        self.json(req.timeout(READ_TIMEOUT)).await
    }

    pub async fn stats(&self, server: &ServerUuid, key: &Secret) -> Result<RepoStats, ClientError> {
        let url = self.url(route::stats(server));
        let req = self.request(Method::GET, &url, Some(key));
        self.json(req.timeout(READ_TIMEOUT)).await
    }

    pub async fn create_backup(
        &self,
        server: &ServerUuid,
        key: &Secret,
        body: &CreateBackupRequest,
    ) -> Result<JobAccepted, ClientError> {
        let req = self
            .request(Method::POST, &self.url(route::backups(server)), Some(key))
            .json(body);
        self.json(req).await
    }

    /// The server's jobs (`active`: only queued and running ones).
    pub async fn jobs(
        &self,
        server: &ServerUuid,
        active: bool,
    ) -> Result<api::agent::JobList, ClientError> {
        let url = self.url(route::jobs(server));
        let req = self
            .request(Method::GET, &url, None)
            .query(&[("active", if active { "true" } else { "false" })]);
        self.json(req.timeout(READ_TIMEOUT)).await
    }

    pub async fn job(&self, server: &ServerUuid, job: &JobId) -> Result<JobView, ClientError> {
        let url = self.url(route::job(server, job));
        let req = self.request(Method::GET, &url, None);
        self.json(req.timeout(READ_TIMEOUT)).await
    }

    pub async fn set_locked(
        &self,
        server: &ServerUuid,
        key: &Secret,
        id: &SnapshotRef,
        locked: bool,
    ) -> Result<LockState, ClientError> {
        let path = if locked {
            route::lock(server, id)
        } else {
            route::unlock(server, id)
        };
        let url = self.url(path);
        self.json(self.request(Method::POST, &url, Some(key))).await
    }

    pub async fn delete(
        &self,
        server: &ServerUuid,
        key: &Secret,
        id: &SnapshotRef,
    ) -> Result<(), ClientError> {
        let url = self.url(route::snapshot(server, id));
        self.send(self.request(Method::DELETE, &url, Some(key)))
            .await
            .map(|_| ())
    }

    pub async fn restore(
        &self,
        server: &ServerUuid,
        key: &Secret,
        id: &SnapshotRef,
        request: &RestoreRequest,
    ) -> Result<JobAccepted, ClientError> {
        let url = self.url(route::restore(server, id));
        let req = self.request(Method::POST, &url, Some(key)).json(request);
        self.json(req).await
    }

    /// What `policy` would forget now (nothing is forgotten).
    pub async fn preview_retention(
        &self,
        server: &ServerUuid,
        key: &Secret,
        policy: &RetentionPolicy,
    ) -> Result<api::agent::RetentionPreview, ClientError> {
        let url = self.url(route::retention_preview(server));
        let req = self.request(Method::POST, &url, Some(key)).json(policy);
        self.json(req.timeout(READ_TIMEOUT)).await
    }

    /// Starts a prune of the repository now.
    pub async fn prune(
        &self,
        server: &ServerUuid,
        key: &Secret,
    ) -> Result<JobAccepted, ClientError> {
        let url = self.url(route::prune(server));
        self.json(self.request(Method::POST, &url, Some(key))).await
    }

    /// Forgets what `policy` does not keep (never locked snapshots).
    pub async fn apply_retention(
        &self,
        server: &ServerUuid,
        key: &Secret,
        policy: &RetentionPolicy,
    ) -> Result<RetentionResult, ClientError> {
        let url = self.url(route::retention(server));
        let req = self.request(Method::POST, &url, Some(key)).json(policy);
        self.json(req).await
    }

    pub async fn archive(
        &self,
        server: &ServerUuid,
        key: &Secret,
    ) -> Result<JobAccepted, ClientError> {
        let url = self.url(route::archive(server));
        self.json(self.request(Method::POST, &url, Some(key))).await
    }

    pub async fn rotate_key(
        &self,
        server: &ServerUuid,
        current: &Secret,
        new: &Secret,
    ) -> Result<KeyRotated, ClientError> {
        let url = self.url(route::key(server));
        let req = self
            .request(Method::POST, &url, Some(current))
            .json(&RotateKeyRequest {
                new_password: new.clone(),
            });
        self.json(req).await
    }

    /// Proves `key` opens the server's repository, moving a repository the
    /// PHP extension left under its own name into place (see the agent's
    /// `adopt`).
    pub async fn adopt(
        &self,
        server: &ServerUuid,
        key: &Secret,
        dry_run: bool,
    ) -> Result<api::agent::AdoptAnswer, ClientError> {
        let url = self.url(route::adopt(server));
        let req = self
            .request(Method::POST, &url, Some(key))
            .json(&api::agent::AdoptRequest { dry_run });
        self.json(req).await
    }

    /// Where the node keeps repositories.
    pub async fn node_info(&self) -> Result<api::agent::NodeInfo, ClientError> {
        let url = self.url(route::node());
        let req = self.request(Method::GET, &url, None);
        self.json(req.timeout(READ_TIMEOUT)).await
    }

    pub async fn archives(&self) -> Result<ArchiveList, ClientError> {
        let url = self.url(route::archives());
        let req = self.request(Method::GET, &url, None);
        self.json(req.timeout(READ_TIMEOUT)).await
    }

    /// Checks that the agent answers, over TLS that verifies, and takes the
    /// token: `Err` says which of these failed, in words for an operator.
    pub async fn probe(&self) -> Result<(), String> {
        let url = self.url(route::archives());
        let res = self
            .request(Method::GET, &url, None)
            .timeout(READ_TIMEOUT)
            .send()
            .await
            .map_err(|e| {
                let mut why = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    why.push_str(": ");
                    why.push_str(&s.to_string());
                    source = s.source();
                }
                if why.contains("certificate") || why.contains("Certificate") {
                    format!("TLS: the agent's certificate is not trusted ({why})")
                } else if e.is_timeout() {
                    format!("no answer within {} s ({why})", READ_TIMEOUT.as_secs())
                } else {
                    format!("unreachable ({why})")
                }
            })?;
        match res.status() {
            s if s.is_success() => Ok(()),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                Err("the agent refused the node token".into())
            }
            s => Err(format!("the agent answered {s}")),
        }
    }

    pub async fn delete_archive(
        &self,
        name: &str,
        key: Option<&Secret>,
    ) -> Result<(), ClientError> {
        // Names are validated by the caller against the agent's own listing;
        // the route encodes any odd byte inside the one path segment.
        let url = self.url(route::archived(name));
        self.send(self.request(Method::DELETE, &url, key))
            .await
            .map(|_| ())
    }

    /// A one-time link a browser can download the snapshot from directly.
    pub fn download_link(
        &self,
        server: &ServerUuid,
        snapshot: &SnapshotRef,
        what: &Wanted,
        key: &Secret,
        now_unix: i64,
    ) -> String {
        let token = api::download::issue(
            &self.token,
            server,
            snapshot,
            what.format,
            what.path.as_ref(),
            key,
            now_unix,
        );
        format!("{}?token={token}", self.url(route::download_link()))
    }

    /// The archive streamed through the panel (for nodes browsers can not reach).
    pub async fn download(
        &self,
        server: &ServerUuid,
        key: &Secret,
        id: &SnapshotRef,
        what: &Wanted,
    ) -> Result<reqwest::Response, ClientError> {
        let url = self.url(route::download(server, id));
        // No overall timeout: a large download takes as long as it takes;
        // the connection timeout still applies.
        let mut req = self
            .request(Method::GET, &url, Some(key))
            .query(&[("format", what.format.extension())])
            .timeout(Duration::from_secs(24 * 60 * 60));
        if let Some(path) = &what.path {
            req = req.query(&[("path", path.as_absolute())]);
        }
        self.send(req).await
    }

    /// One page of a folder of a snapshot. The first view of a snapshot
    /// lists it with restic, which takes a while for a big one.
    pub async fn files(
        &self,
        server: &ServerUuid,
        key: &Secret,
        id: &SnapshotRef,
        q: &FilesQuery,
    ) -> Result<FileList, ClientError> {
        let url = self.url(route::files(server, id));
        let req = self
            .request(Method::GET, &url, Some(key))
            .query(&[
                ("path", q.path.as_absolute()),
                ("limit", q.limit.to_string()),
                ("cursor", q.offset.to_string()),
            ])
            .timeout(LISTING_TIMEOUT);
        self.json(req).await
    }
}

/// What a download holds: the format, and a file or folder of the
/// snapshot (`None`: all of it).
#[derive(Debug, Clone)]
pub struct Wanted {
    pub format: DownloadFormat,
    pub path: Option<SnapshotPath>,
}

//! The client of Wings' local API, with which a restore stops the game
//! server first and starts it again afterwards.
//!
//! What Wings does, from its source (pterodactyl/wings, 1.11):
//! - `router/middleware/middleware.go` `RequireAuthorization`: the header
//!   must be exactly `Authorization: Bearer <token>` (config.yml's `token`,
//!   not `token_id`), else 401; a wrong token is 403 (constant-time
//!   compare). It runs before `ServerExists`, whose unknown server is 404.
//!   Errors are `{"error": "..."}` (plus `request_id` from `CaptureErrors`).
//! - `router/router_server.go` `getServer`: `GET /api/servers/{uuid}` answers
//!   `server.APIResponse` (`server/server.go`): `{"state", "is_suspended",
//!   "utilization", "configuration"}`.
//! - `postServerPower`: `POST /api/servers/{uuid}/power` with `{"action",
//!   "wait_seconds"}`; an unknown action is 422, `start`/`restart` of a
//!   suspended server 400, anything else **202 at once** while the action
//!   runs in the background. So the answer says nothing about the outcome:
//!   the state must be polled. `wait_seconds` (0..=300, else 30) is how long
//!   the action waits for the server's power lock; with 0 an action arriving
//!   while another runs is dropped (only logged by Wings), so we send one.
//! - `server/power.go` `HandlePowerAction`: one power action at a time per
//!   server (`powerLock`), `kill` passes the lock; `start` of a server not
//!   `offline` does nothing (`ErrIsRunning`); `stop` waits up to 10 minutes
//!   and then kills (`WaitForStop(.., time.Minute*10, true)`).
//! - `environment/environment.go`: the states `offline`, `starting`,
//!   `running`, `stopping`.

use std::sync::Arc;
use std::time::Duration;

use api::{Secret, ServerUuid};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde::Deserialize;

use crate::AgentError;
use crate::config::{WingsLink, WingsTrust};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const CALL_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a power action waits for Wings' per-server power lock.
const POWER_LOCK_WAIT_SECS: u32 = 30;

/// A game server's state as Wings reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerState {
    Offline,
    Starting,
    Running,
    Stopping,
}

impl PowerState {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "offline" => PowerState::Offline,
            "starting" => PowerState::Starting,
            "running" => PowerState::Running,
            "stopping" => PowerState::Stopping,
            _ => return None,
        })
    }

    /// Wings' own `IsRunning` (`server/server.go`): running or starting.
    pub fn is_running(self) -> bool {
        matches!(self, PowerState::Running | PowerState::Starting)
    }
}

/// The power actions the agent sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerAction {
    Start,
    Stop,
    Kill,
}

impl PowerAction {
    fn as_str(self) -> &'static str {
        match self {
            PowerAction::Start => "start",
            PowerAction::Stop => "stop",
            PowerAction::Kill => "kill",
        }
    }
}

/// A connection to Wings' local API.
#[derive(Clone)]
pub struct Wings {
    http: reqwest::Client,
    base: String,
    token: Secret,
}

#[derive(Deserialize)]
struct ServerView {
    state: String,
}

#[derive(Deserialize)]
struct WingsErrorBody {
    error: String,
}

impl Wings {
    /// A client for `link`. Certificates are read now, so a renewed one
    /// is used by the next restore.
    pub fn connect(link: &WingsLink) -> Result<Self, AgentError> {
        // Never through a proxy from the environment: the token is full
        // control of Wings and Wings is on this machine.
        let mut builder = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(CALL_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none());
        let unusable = |detail: String| {
            tracing::error!(%detail, "the Wings connection is misconfigured");
            AgentError::WingsUnavailable
        };
        match &link.trust {
            WingsTrust::Roots { ca_file: None } => {}
            WingsTrust::Roots {
                ca_file: Some(path),
            } => {
                let pem = std::fs::read(path)
                    .map_err(|e| unusable(format!("{}: {e}", path.display())))?;
                let certs = reqwest::Certificate::from_pem_bundle(&pem)
                    .ok()
                    .filter(|c| !c.is_empty())
                    .ok_or_else(|| unusable(format!("{}: no PEM certificate", path.display())))?;
                for cert in certs {
                    builder = builder.add_root_certificate(cert);
                }
            }
            WingsTrust::Pinned { cert_file } => {
                let cert = CertificateDer::pem_file_iter(cert_file)
                    .ok()
                    .and_then(|mut certs| certs.next())
                    .and_then(Result::ok)
                    .ok_or_else(|| {
                        unusable(format!("{}: no PEM certificate", cert_file.display()))
                    })?;
                builder = builder.use_preconfigured_tls(pinned_tls(cert).map_err(unusable)?);
            }
        }
        let http = builder
            .build()
            .map_err(|e| unusable(format!("HTTP client: {e}")))?;
        Ok(Self {
            http,
            base: link.url.clone(),
            token: link.token.clone(),
        })
    }

    fn server_url(&self, server: &ServerUuid) -> String {
        format!("{}/api/servers/{server}", self.base)
    }

    async fn send(
        &self,
        req: reqwest::RequestBuilder,
        what: &str,
    ) -> Result<reqwest::Response, AgentError> {
        let res = req
            .bearer_auth(self.token.expose())
            .send()
            .await
            .map_err(|e| {
                // reqwest's text names the URL (no secret in it), never a header.
                tracing::warn!(error = %e, what, "Wings unreachable");
                AgentError::WingsUnavailable
            })?;
        let status = res.status();
        if status.is_success() {
            return Ok(res);
        }
        let said = res
            .json::<WingsErrorBody>()
            .await
            .map(|b| b.error)
            .unwrap_or_default();
        tracing::warn!(status = status.as_u16(), wings_said = %said, what, "Wings refused");
        Err(match status.as_u16() {
            401 | 403 => AgentError::WingsRefused,
            404 => AgentError::WingsFailed {
                status: 404,
                detail: "Wings does not know this server".into(),
            },
            code => AgentError::WingsFailed {
                status: code,
                detail: printable(&said),
            },
        })
    }

    /// `GET /api/servers/{uuid}`: the server's power state.
    pub async fn state(&self, server: &ServerUuid) -> Result<PowerState, AgentError> {
        let res = self
            .send(self.http.get(self.server_url(server)), "server state")
            .await?;
        let view: ServerView = res.json().await.map_err(|e| {
            tracing::warn!(error = %e, "Wings answered something unexpected");
            AgentError::WingsFailed {
                status: 200,
                detail: "its answer had no readable state".into(),
            }
        })?;
        PowerState::parse(&view.state).ok_or_else(|| {
            tracing::warn!(state = %printable(&view.state), "Wings reported an unknown state");
            AgentError::WingsFailed {
                status: 200,
                detail: "it reported a state this agent does not know".into(),
            }
        })
    }

    /// `POST /api/servers/{uuid}/power`. Wings answers before it acts.
    pub async fn power(&self, server: &ServerUuid, action: PowerAction) -> Result<(), AgentError> {
        let body = serde_json::json!({
            "action": action.as_str(),
            "wait_seconds": POWER_LOCK_WAIT_SECS,
        });
        let url = format!("{}/power", self.server_url(server));
        self.send(self.http.post(url).json(&body), action.as_str())
            .await
            .map(|_| ())
    }
}

/// Wings' error text, shortened and without control characters, fit for
/// a client (it is Wings' own message to its panel, never a secret).
fn printable(text: &str) -> String {
    let mut out: String = text.chars().filter(|c| !c.is_control()).take(200).collect();
    if out.is_empty() {
        out.push_str("no reason given");
    }
    out
}

/// TLS that accepts exactly `cert` as Wings' certificate, whatever names it
/// holds; the handshake's signature is still checked against it.
fn pinned_tls(cert: CertificateDer<'static>) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedCert { cert, provider }))
        .with_no_client_auth();
    Ok(config)
}

#[derive(Debug)]
struct PinnedCert {
    cert: CertificateDer<'static>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedCert {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.cert.as_ref() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_are_wings_words() {
        assert_eq!(PowerState::parse("offline"), Some(PowerState::Offline));
        assert_eq!(PowerState::parse("stopping"), Some(PowerState::Stopping));
        assert!(PowerState::parse("starting").unwrap().is_running());
        assert!(!PowerState::parse("stopping").unwrap().is_running());
        assert_eq!(PowerState::parse("Running"), None);
    }

    #[test]
    fn wings_text_is_shortened_and_cleaned() {
        assert_eq!(printable("a\nb"), "ab");
        assert_eq!(printable(""), "no reason given");
        assert_eq!(printable(&"x".repeat(500)).len(), 200);
    }
}

//! A Wings double: an in-process HTTP server answering the two endpoints of
//! Wings' local API the agent uses around a restore, with Wings' rules, and
//! a per-server power state that power actions move like Wings does.
//!
//! Where each part comes from (pterodactyl/wings 1.11, `develop` at
//! f1c5bbd, same as `release/v1.11.11` for these files):
//! - Auth: `router/middleware/middleware.go` `RequireAuthorization` — the
//!   `Authorization` header split once at a space must be `Bearer <token>`
//!   (case-sensitive `Bearer`), else 401 with `WWW-Authenticate: Bearer` and
//!   `{"error":"The required authorization heads were not present in the request."}`;
//!   a token other than config.yml's `token` is 403 `{"error":"You are not
//!   authorized to access this endpoint."}`. `router/router.go` runs it
//!   before `ServerExists`, so a wrong token is 403 even for unknown servers.
//! - Unknown server: `ServerExists` → 404 `{"error":"The requested resource
//!   does not exist on this instance."}`.
//! - `GET /api/servers/{uuid}`: `router/router_server.go` `getServer` →
//!   `server/server.go` `APIResponse` `{"state","is_suspended","utilization","configuration"}`.
//! - `POST /api/servers/{uuid}/power` `{"action","wait_seconds"}`:
//!   `postServerPower` — unreadable JSON 400 (gin's `BindJSON`, body from
//!   `middleware.go` `CaptureErrors`), an action other than
//!   start/stop/restart/kill 422, start/restart of a suspended server 400,
//!   else 202 at once with the action run in the background (its failures
//!   are only logged by Wings, never answered).
//! - States and moves: `environment/environment.go` (`offline`, `starting`,
//!   `running`, `stopping`); `server/power.go` `HandlePowerAction` (`start`
//!   of a server not offline does nothing, `ErrIsRunning`; `stop` →
//!   `environment/docker/power.go` `Stop` sets `stopping`, then `offline` when
//!   the container ended; `kill` → `Terminate`: `stopping` then `offline` at once).
//!
//! Not modelled: the power lock's waiting (`wait_seconds`) and its dropped
//! actions, `restart`'s pre-boot sync, websockets, every other endpoint (404).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State as AxumState};
use axum::http::{Method, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};

/// How the double answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Up,
    /// A stop never completes: the server stays `stopping` (a game that
    /// ignores its stop command). `kill` still works.
    Slow,
    /// Every request is answered with this status and a Wings error body.
    Refusing(u16),
}

type Hook = Arc<dyn Fn(&str, &str) + Send + Sync>;

struct State {
    token: String,
    servers: HashMap<String, Server>,
    mode: Mode,
    stop_delay: Duration,
    start_delay: Duration,
    log: Vec<String>,
    hook: Option<Hook>,
}

#[derive(Debug, Clone)]
struct Server {
    state: &'static str,
    suspended: bool,
}

/// The running double. Clones share the state.
#[derive(Clone)]
pub struct Wings {
    state: Arc<Mutex<State>>,
    port: u16,
    tls: Option<(PathBuf, PathBuf)>,
    task: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

impl Wings {
    /// Starts the double on 127.0.0.1, accepting `token`.
    pub async fn start(token: &str) -> Self {
        Self::start_with(token, None).await
    }

    /// Starts the double, over HTTPS with `tls` (PEM certificate and key),
    /// as Wings with `api.ssl.enabled`.
    pub async fn start_with(token: &str, tls: Option<(PathBuf, PathBuf)>) -> Self {
        let listener = httpd::bind("127.0.0.1:0".parse().unwrap()).expect("bind the Wings double");
        let port = listener.local_addr().unwrap().port();
        let me = Self {
            state: Arc::new(Mutex::new(State {
                token: token.to_owned(),
                servers: HashMap::new(),
                mode: Mode::Up,
                stop_delay: Duration::from_millis(1500),
                start_delay: Duration::from_millis(300),
                log: Vec::new(),
                hook: None,
            })),
            port,
            tls: tls.clone(),
            task: Arc::new(Mutex::new(None)),
        };
        let app = axum::Router::new().fallback(handle).with_state(me.clone());
        let task = tokio::spawn(async move {
            let never = std::future::pending::<()>();
            httpd::serve(
                "wings double",
                listener,
                tls,
                httpd::Limits::default(),
                app,
                never,
            )
            .await
            .ok();
        });
        *me.task.lock().unwrap() = Some(task);
        me
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes a Wings `config.yml` pointing at the double (host `0.0.0.0`,
    /// as Wings ships, which the agent reads as this machine) with `token`;
    /// with the double's certificate under `api.ssl` when it serves HTTPS.
    pub fn write_config(&self, dir: &Path, token: &str) -> PathBuf {
        let ssl = match &self.tls {
            Some((cert, key)) => format!(
                "  ssl:\n    enabled: true\n    cert: {}\n    key: {}\n",
                cert.display(),
                key.display()
            ),
            None => "  ssl:\n    enabled: false\n    cert: /etc/letsencrypt/live/node.example.com/fullchain.pem\n    key: /etc/letsencrypt/live/node.example.com/privkey.pem\n".into(),
        };
        let path = dir.join("wings-config.yml");
        std::fs::write(
            &path,
            format!(
                "debug: false\nuuid: 6a3c1f5e-0000-4000-8000-000000000001\ntoken_id: tokid0000000001\ntoken: {token}\napi:\n  host: 0.0.0.0\n  port: {}\n{ssl}",
                self.port
            ),
        )
        .unwrap();
        path
    }

    pub fn add_server(&self, uuid: &str, state: &'static str) {
        self.lock().servers.insert(
            uuid.to_owned(),
            Server {
                state,
                suspended: false,
            },
        );
    }

    pub fn state_of(&self, uuid: &str) -> Option<&'static str> {
        self.lock().servers.get(uuid).map(|s| s.state)
    }

    /// Sets a state as if something else (the panel, a crash) moved the
    /// server, with the change logged and the hook run.
    pub fn force_state(&self, uuid: &str, state: &'static str) {
        self.set_state(uuid, state);
    }

    pub fn set_mode(&self, mode: Mode) {
        self.lock().mode = mode;
    }

    pub fn set_stop_delay(&self, delay: Duration) {
        self.lock().stop_delay = delay;
    }

    /// Closes the port: connections are refused from now on.
    pub fn go_down(&self) {
        if let Some(task) = self.task.lock().unwrap().take() {
            task.abort();
        }
    }

    /// Runs `f(server, new_state)` at every state change, as it happens.
    pub fn on_state(&self, f: impl Fn(&str, &str) + Send + Sync + 'static) {
        self.lock().hook = Some(Arc::new(f));
    }

    /// Everything that happened, in order: `"GET state 200"`,
    /// `"POST stop 202"`, `"state stopping"`, … (requests with their answer,
    /// state changes).
    pub fn log(&self) -> Vec<String> {
        self.lock().log.clone()
    }

    /// The log without the state reads (the polling), for order checks.
    pub fn actions(&self) -> Vec<String> {
        self.log()
            .into_iter()
            .filter(|l| !l.starts_with("GET "))
            .collect()
    }

    fn set_state(&self, uuid: &str, to: &'static str) {
        let hook = {
            let mut s = self.lock();
            let Some(server) = s.servers.get_mut(uuid) else {
                return;
            };
            server.state = to;
            s.log.push(format!("state {to}"));
            s.hook.clone()
        };
        if let Some(hook) = hook {
            hook(uuid, to);
        }
    }

    /// Moves the server like Wings' `HandlePowerAction`, in the background.
    fn act(&self, uuid: String, action: String) {
        let me = self.clone();
        tokio::spawn(async move {
            let (now, mode, stop_delay, start_delay) = {
                let s = me.lock();
                let Some(server) = s.servers.get(&uuid) else {
                    return;
                };
                (server.state, s.mode, s.stop_delay, s.start_delay)
            };
            match action.as_str() {
                "kill" if now != "offline" => {
                    me.set_state(&uuid, "stopping");
                    me.set_state(&uuid, "offline");
                }
                "stop" => {
                    if now == "offline" {
                        return;
                    }
                    me.set_state(&uuid, "stopping");
                    if mode == Mode::Slow {
                        return;
                    }
                    tokio::time::sleep(stop_delay).await;
                    if me.state_of(&uuid) == Some("stopping") {
                        me.set_state(&uuid, "offline");
                    }
                }
                "start" => {
                    if now != "offline" {
                        return; // ErrIsRunning
                    }
                    me.set_state(&uuid, "starting");
                    tokio::time::sleep(start_delay).await;
                    if me.state_of(&uuid) == Some("starting") {
                        me.set_state(&uuid, "running");
                    }
                }
                _ => {}
            }
        });
    }
}

fn answer(status: StatusCode, body: Value) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
        .header("X-Request-Id", "00000000-0000-4000-8000-000000000000")
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn error(status: u16, message: &str) -> Response {
    answer(
        StatusCode::from_u16(status).unwrap(),
        json!({"error": message}),
    )
}

async fn handle(AxumState(w): AxumState<Wings>, req: Request) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let auth = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = axum::body::to_bytes(req.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (what, res) = route(&w, &method, &parts, &auth, &body);
    w.lock()
        .log
        .push(format!("{method} {what} {}", res.status().as_u16()));
    res
}

fn route(
    w: &Wings,
    method: &Method,
    parts: &[&str],
    auth: &str,
    body: &[u8],
) -> (String, Response) {
    let (mode, token) = {
        let s = w.lock();
        (s.mode, s.token.clone())
    };
    let what = match (method, parts) {
        (&Method::GET, ["api", "servers", _]) => "state".to_owned(),
        (&Method::POST, ["api", "servers", _, "power"]) => serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v["action"].as_str().map(str::to_owned))
            .unwrap_or_else(|| "power?".into()),
        _ => parts.join("/"),
    };
    if let Mode::Refusing(status) = mode {
        return (
            what,
            error(
                status,
                "An unexpected error was encountered while processing this request",
            ),
        );
    }
    let uuid = match parts {
        ["api", "servers", uuid] | ["api", "servers", uuid, "power"] => (*uuid).to_owned(),
        _ => return (what, error(404, "404 page not found")),
    };
    // RequireAuthorization: `strings.SplitN(header, " ", 2)`.
    let mut split = auth.splitn(2, ' ');
    let (scheme, presented) = (split.next().unwrap_or(""), split.next());
    let Some(presented) = presented.filter(|_| scheme == "Bearer") else {
        let mut res = error(
            401,
            "The required authorization heads were not present in the request.",
        );
        res.headers_mut()
            .insert(header::WWW_AUTHENTICATE, "Bearer".parse().unwrap());
        return (what, res);
    };
    if presented != token {
        return (
            what,
            error(403, "You are not authorized to access this endpoint."),
        );
    }
    let Some(server) = w.lock().servers.get(&uuid).cloned() else {
        return (
            what,
            error(
                404,
                "The requested resource does not exist on this instance.",
            ),
        );
    };
    match (method, parts.len()) {
        (&Method::GET, 3) => (
            what,
            answer(
                StatusCode::OK,
                json!({
                    "state": server.state,
                    "is_suspended": server.suspended,
                    "utilization": {
                        "memory_bytes": 0, "memory_limit_bytes": 0, "cpu_absolute": 0.0,
                        "network": {"rx_bytes": 0, "tx_bytes": 0}, "uptime": 0,
                        "state": server.state, "disk_bytes": 0
                    },
                    "configuration": {"uuid": uuid, "suspended": server.suspended}
                }),
            ),
        ),
        (&Method::POST, 4) => {
            let Ok(data) = serde_json::from_slice::<Value>(body) else {
                return (
                    what,
                    error(
                        400,
                        "The data passed in the request was not in a parsable format. Please try again.",
                    ),
                );
            };
            let action = data["action"].as_str().unwrap_or("").to_owned();
            if !matches!(action.as_str(), "start" | "stop" | "restart" | "kill") {
                return (
                    what,
                    error(
                        422,
                        "The power action provided was not valid, should be one of \"stop\", \"start\", \"restart\", \"kill\"",
                    ),
                );
            }
            if matches!(action.as_str(), "start" | "restart") && server.suspended {
                return (
                    what,
                    error(400, "Cannot start or restart a server that is suspended."),
                );
            }
            w.act(uuid, action);
            (
                what,
                Response::builder().status(202).body(Body::empty()).unwrap(),
            )
        }
        _ => (what, error(404, "404 page not found")),
    }
}

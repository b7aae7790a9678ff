//! Runs the restic process: no shell, a scrubbed environment, the key only in
//! the environment, stdout read line by line, and SIGINT (never a silent
//! SIGKILL first) on timeout, cancellation or when the caller goes away, so
//! restic removes its repository lock on the way out.

use std::ffi::OsString;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use api::Secret;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

use crate::error::classify;
use crate::{Cancel, EngineError, Restic};

/// How much of stderr is kept for classification and logs.
const STDERR_KEEP: usize = 16 * 1024;

/// One restic invocation.
pub(crate) struct Invocation<'a> {
    pub args: Vec<OsString>,
    pub cwd: Option<&'a Path>,
    /// Bytes written to restic's stdin (e.g. an exclude list read from `/dev/stdin`).
    pub stdin: Option<Vec<u8>>,
    pub timeout: Duration,
    pub cancel: Option<&'a Cancel>,
    /// Exit codes besides 0 that mean success (backup's 3: some files unreadable).
    pub ok_codes: &'static [i32],
    /// Extra environment, e.g. `RESTIC_PROGRESS_FPS`.
    pub env: Vec<(&'static str, String)>,
}

impl<'a> Invocation<'a> {
    pub fn new(args: Vec<OsString>, timeout: Duration) -> Self {
        Self {
            args,
            cwd: None,
            stdin: None,
            timeout,
            cancel: None,
            ok_codes: &[],
            env: Vec::new(),
        }
    }
}

/// How a successful run ended.
#[derive(Debug)]
pub(crate) struct Finished {
    pub code: i32,
}

/// Sends SIGINT to the child if the run is abandoned half-way (the future was
/// dropped because the HTTP client went away, a timeout fired, ...).
struct InterruptOnDrop {
    pid: Option<u32>,
}

impl InterruptOnDrop {
    fn disarm(&mut self) {
        self.pid = None;
    }
}

impl Drop for InterruptOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = self.pid {
            tracing::debug!(pid, "interrupting abandoned restic run");
            interrupt(pid);
        }
    }
}

fn interrupt(pid: u32) {
    // SAFETY: kill(2) with a PID we spawned and have not reaped yet (the
    // `Child` is still alive), so the PID can not have been reused.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGINT);
    }
}

enum Ending {
    Exited(std::io::Result<std::process::ExitStatus>),
    TimedOut,
    Cancelled,
}

impl Restic {
    fn command(&self, repo: &Path, key: &Secret, inv: &Invocation<'_>) -> Command {
        let mut cmd = Command::new(&self.inner.bin);
        cmd.env_clear();
        for var in ["PATH", "HOME", "TMPDIR", "TZ"] {
            if let Some(v) = std::env::var_os(var) {
                cmd.env(var, v);
            }
        }
        cmd.env("RESTIC_REPOSITORY", repo);
        cmd.env("RESTIC_PASSWORD", key.expose());
        for (k, v) in &inv.env {
            cmd.env(k, v);
        }
        match &self.inner.cache_dir {
            Some(dir) => cmd.arg("--cache-dir").arg(dir),
            None => cmd.arg("--no-cache"),
        };
        cmd.args(&inv.args);
        if let Some(cwd) = inv.cwd {
            cmd.current_dir(cwd);
        }
        cmd.stdin(if inv.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd
    }

    /// Runs restic against `repo` and feeds every stdout line to `on_line`.
    /// Errors are classified; the key is only ever in the child's environment.
    pub(crate) async fn run(
        &self,
        repo: &Path,
        key: &Secret,
        inv: Invocation<'_>,
        on_line: &mut (dyn FnMut(&str) + Send),
    ) -> Result<Finished, EngineError> {
        tracing::debug!(args = ?inv.args, repo = %repo.display(), "running restic");
        let mut child = self.command(repo, key, &inv).spawn().map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                EngineError::ResticMissing {
                    bin: self.inner.bin.display().to_string(),
                }
            } else {
                EngineError::Io(e)
            }
        })?;
        let mut guard = InterruptOnDrop { pid: child.id() };

        if let (Some(bytes), Some(mut stdin)) = (inv.stdin.clone(), child.stdin.take()) {
            tokio::spawn(async move {
                // restic may exit before reading everything; that is its answer.
                let _ = stdin.write_all(&bytes).await;
            });
        }
        let stderr_task = child.stderr.take().map(|mut err| {
            tokio::spawn(async move {
                let mut kept = Vec::new();
                let mut buf = [0u8; 4096];
                while let Ok(n) = err.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    kept.extend_from_slice(&buf[..n]);
                    if kept.len() > STDERR_KEEP {
                        kept.drain(..kept.len() - STDERR_KEEP);
                    }
                }
                String::from_utf8_lossy(&kept).into_owned()
            })
        });

        let never = Cancel::new();
        let cancel = inv.cancel.unwrap_or(&never);
        let ending = tokio::select! {
            status = drive(&mut child, on_line) => Ending::Exited(status),
            _ = tokio::time::sleep(inv.timeout) => Ending::TimedOut,
            _ = cancel.cancelled() => Ending::Cancelled,
        };
        let status = match ending {
            Ending::Exited(status) => status?,
            other => {
                self.stop(&mut child).await;
                guard.disarm();
                return Err(match other {
                    Ending::TimedOut => EngineError::Timeout {
                        seconds: inv.timeout.as_secs(),
                    },
                    _ => EngineError::Cancelled,
                });
            }
        };
        guard.disarm();
        let stderr = match stderr_task {
            Some(task) => task.await.unwrap_or_default(),
            None => String::new(),
        };
        let code = status.code();
        if let Some(code) = code.filter(|c| *c == 0 || inv.ok_codes.contains(c)) {
            if !stderr.trim().is_empty() {
                tracing::debug!(code, stderr = %stderr.trim(), "restic finished with messages");
            }
            return Ok(Finished { code });
        }
        let err = classify(code, &stderr);
        tracing::debug!(?code, stderr = %stderr.trim(), error = %err, "restic failed");
        Err(err)
    }

    /// SIGINT, then a grace period for restic to remove its lock, then SIGKILL
    /// as the last resort.
    async fn stop(&self, child: &mut Child) {
        if let Some(pid) = child.id() {
            interrupt(pid);
        }
        match tokio::time::timeout(self.inner.grace, child.wait()).await {
            Ok(_) => {}
            Err(_) => {
                tracing::warn!("restic ignored SIGINT for the grace period; killing it");
                let _ = child.kill().await;
            }
        }
    }
}

/// Reads stdout to the end, then waits for the exit status.
async fn drive(
    child: &mut Child,
    on_line: &mut (dyn FnMut(&str) + Send),
) -> std::io::Result<std::process::ExitStatus> {
    if let Some(out) = child.stdout.take() {
        // Bytes, not `lines()`: a file name in a plain-text line may not be UTF-8.
        let mut reader = BufReader::new(out);
        let mut line = Vec::new();
        loop {
            line.clear();
            if reader.read_until(b'\n', &mut line).await? == 0 {
                break;
            }
            let text = String::from_utf8_lossy(&line);
            on_line(text.trim_end_matches(['\n', '\r']));
        }
    }
    child.wait().await
}

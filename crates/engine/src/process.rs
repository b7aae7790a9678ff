//! Runs the restic process: no shell, a scrubbed environment, the key only in
//! the environment, stdout read line by line, and SIGINT (never a silent
//! SIGKILL first) on timeout, cancellation or when the caller goes away, so
//! restic removes its repository lock on the way out.
#![allow(unsafe_code)] // pre_exec, prctl and fd set-up for restic's children

use std::ffi::OsString;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use api::Secret;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader, ReadBuf};

use tokio::net::unix::pipe;
use tokio::process::{Child, Command};

/// The stdout and stderr pipes of one restic run, all ends close-on-exec.
struct OutputPipes {
    out_r: OwnedFd,
    out_w: OwnedFd,
    err_r: OwnedFd,
    err_w: OwnedFd,
}

fn cloexec_pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 fills two new descriptors we then own.
    unsafe {
        if libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok((OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])))
    }
}

impl OutputPipes {
    fn new() -> std::io::Result<Self> {
        let (out_r, out_w) = cloexec_pipe()?;
        let (err_r, err_w) = cloexec_pipe()?;
        Ok(Self {
            out_r,
            out_w,
            err_r,
            err_w,
        })
    }
}

use crate::error::classify;
use crate::{Cancel, EngineError, Location, Restic};

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
    /// The source repository of `copy` and `init --copy-chunker-params`
    /// and its key: `RESTIC_FROM_REPOSITORY` / `RESTIC_FROM_PASSWORD`.
    pub from: Option<(&'a Location, &'a Secret)>,
    /// Nice 19: background work.
    pub low_priority: bool,
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
            from: None,
            low_priority: false,
        }
    }
}

/// How a successful run ended.
#[derive(Debug)]
pub(crate) struct Finished {
    pub code: i32,
}

/// Owns the running child. If the run is abandoned half-way (the future was
/// dropped because the HTTP client went away, the job was aborted, ...) it
/// sends SIGINT and hands the child to a reaper task that waits out the grace
/// period. The child's stdout and stderr are drained by their own tasks until
/// restic exits, so restic never dies of a closed pipe while cleaning up.
struct ChildGuard {
    child: Option<Child>,
    grace: Duration,
}

impl ChildGuard {
    fn child(&mut self) -> &mut Child {
        self.child
            .as_mut()
            .expect("child taken only on disarm or drop")
    }

    fn disarm(&mut self) {
        self.child = None;
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Some(pid) = child.id() {
            tracing::debug!(pid, "interrupting abandoned restic run");
            interrupt(pid);
        }
        let grace = self.grace;
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move { stop_within(&mut child, grace, false).await });
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

/// SIGINT (unless already sent), then a grace period for restic to remove its
/// lock, then SIGKILL as the last resort.
async fn stop_within(child: &mut Child, grace: Duration, send_interrupt: bool) {
    if send_interrupt && let Some(pid) = child.id() {
        interrupt(pid);
    }
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        tracing::warn!("restic ignored SIGINT for the grace period; killing it");
        let _ = child.kill().await;
    }
}

struct Spawned {
    child: Child,
    stdout: Option<pipe::Receiver>,
    stderr_task: Option<tokio::task::JoinHandle<String>>,
}

/// restic's stdout as an [`AsyncRead`]. At the end of the output it checks
/// restic's exit status and turns a failure into a read error, so a consumer
/// (an HTTP download) never mistakes a cut-off archive for a complete one.
/// Dropped early (the client went away), it interrupts restic with SIGINT and
/// keeps reading stdout until restic exits, so restic can remove its lock.
pub struct OutputStream {
    stdout: Option<pipe::Receiver>,
    exit: tokio::sync::oneshot::Receiver<(Option<std::process::ExitStatus>, String)>,
    abandon: Cancel,
    finished: bool,
}

impl AsyncRead for OutputStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if let Some(out) = this.stdout.as_mut() {
            let before = buf.filled().len();
            match Pin::new(out).poll_read(cx, buf) {
                Poll::Ready(Ok(())) if buf.filled().len() == before => {
                    this.stdout = None;
                }
                other => return other,
            }
        }
        if this.finished {
            return Poll::Ready(Ok(()));
        }
        match Pin::new(&mut this.exit).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(result) => {
                this.finished = true;
                match result {
                    Ok((Some(status), _)) if status.success() => Poll::Ready(Ok(())),
                    Ok((status, stderr)) => {
                        let code = status.and_then(|s| s.code());
                        let err = classify(code, &stderr);
                        tracing::warn!(?code, error = %err, "restic output stream failed");
                        Poll::Ready(Err(std::io::Error::other(err)))
                    }
                    Err(_) => Poll::Ready(Err(std::io::Error::other("restic ended unexpectedly"))),
                }
            }
        }
    }
}

impl Drop for OutputStream {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        self.abandon.cancel();
        if let (Some(mut out), Ok(rt)) = (self.stdout.take(), tokio::runtime::Handle::try_current())
        {
            rt.spawn(async move {
                let mut sink = [0u8; 16 * 1024];
                while matches!(out.read(&mut sink).await, Ok(n) if n > 0) {}
            });
        }
    }
}

enum Ending {
    Exited(std::io::Result<std::process::ExitStatus>),
    TimedOut,
    Cancelled,
}

impl Restic {
    fn command(
        &self,
        repo: &Location,
        key: &Secret,
        inv: &Invocation<'_>,
        pipes: &OutputPipes,
    ) -> std::io::Result<Command> {
        let mut cmd = Command::new(&self.inner.bin);
        cmd.env_clear();
        for var in ["PATH", "HOME", "TMPDIR", "TZ"] {
            if let Some(v) = std::env::var_os(var) {
                cmd.env(var, v);
            }
        }
        cmd.env("RESTIC_REPOSITORY", repo.repository());
        cmd.env("RESTIC_PASSWORD", key.expose());
        for (k, v) in repo.env() {
            cmd.env(k, v.expose());
        }
        let mut options: Vec<&String> = repo.options().iter().collect();
        if let Some((from, from_key)) = inv.from {
            cmd.env("RESTIC_FROM_REPOSITORY", from.repository());
            cmd.env("RESTIC_FROM_PASSWORD", from_key.expose());
            // Both stores' access; the agent's settings refuse pairs that
            // would need two different values of one variable or option.
            for (k, v) in from.env() {
                cmd.env(k, v.expose());
            }
            for option in from.options() {
                if !options.contains(&option) {
                    options.push(option);
                }
            }
        }
        for (k, v) in &inv.env {
            cmd.env(k, v);
        }
        match &self.inner.cache_dir {
            Some(dir) => cmd.arg("--cache-dir").arg(dir),
            None => cmd.arg("--no-cache"),
        };
        for option in options {
            cmd.arg("-o").arg(option);
        }
        cmd.args(&inv.args);
        if let Some(cwd) = inv.cwd {
            cmd.current_dir(cwd);
        }
        cmd.stdin(if inv.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        cmd.stdout(Stdio::from(pipes.out_w.try_clone()?));
        cmd.stderr(Stdio::from(pipes.err_w.try_clone()?));
        // If the agent dies (even by SIGKILL), the kernel sends restic SIGINT,
        // so restic still stops cleanly and removes its lock. For that clean-up
        // not to die of SIGPIPE on its own output (a Go program writing to a
        // pipe without readers is killed), restic also holds the read ends of
        // its stdout and stderr (as fds 3 and 4, which it never touches): the
        // pipes always have a reader.
        let parent = std::process::id() as libc::pid_t;
        let (out_r, err_r) = (pipes.out_r.as_raw_fd(), pipes.err_r.as_raw_fd());
        let low_priority = inv.low_priority;
        // SAFETY: only async-signal-safe calls (prctl, getppid, raise, fcntl,
        // dup2, close, setpriority) run between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                let check = |rc: libc::c_int| {
                    if rc < 0 {
                        Err(std::io::Error::last_os_error())
                    } else {
                        Ok(rc)
                    }
                };
                check(libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGINT))?;
                if libc::getppid() != parent {
                    libc::raise(libc::SIGINT);
                }
                // Copies above 10 first, so 3 and 4 can be overwritten safely.
                let a = check(libc::fcntl(out_r, libc::F_DUPFD, 10))?;
                let b = check(libc::fcntl(err_r, libc::F_DUPFD, 10))?;
                check(libc::dup2(a, 3))?;
                check(libc::dup2(b, 4))?;
                libc::close(a);
                libc::close(b);
                if low_priority {
                    check(libc::setpriority(libc::PRIO_PROCESS, 0, 19))?;
                }
                Ok(())
            });
        }
        Ok(cmd)
    }

    fn spawn(
        &self,
        repo: &Location,
        key: &Secret,
        inv: &Invocation<'_>,
    ) -> Result<Spawned, EngineError> {
        tracing::debug!(args = ?inv.args, repo = %repo.display(), "running restic");
        let pipes = OutputPipes::new()?;
        let mut child = self.command(repo, key, inv, &pipes)?.spawn().map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                EngineError::ResticMissing {
                    bin: self.inner.bin.display().to_string(),
                }
            } else {
                EngineError::Io(e)
            }
        })?;
        if let (Some(bytes), Some(mut stdin)) = (inv.stdin.clone(), child.stdin.take()) {
            tokio::spawn(async move {
                // restic may exit before reading everything; that is its answer.
                let _ = stdin.write_all(&bytes).await;
            });
        }
        // The parent's copies of the write ends go, so EOF comes when restic exits.
        let OutputPipes { out_r, err_r, .. } = pipes;
        let stdout = pipe::Receiver::from_owned_fd(out_r)?;
        let stderr = Some(pipe::Receiver::from_owned_fd(err_r)?);
        let stderr_task = stderr.map(|mut err| {
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
        Ok(Spawned {
            stdout: Some(stdout),
            child,
            stderr_task,
        })
    }

    /// Starts restic and hands its stdout to the caller as a byte stream
    /// (`restic dump`). See [`OutputStream`].
    pub(crate) fn stream(
        &self,
        repo: &Location,
        key: &Secret,
        inv: Invocation<'_>,
    ) -> Result<OutputStream, EngineError> {
        let Spawned {
            mut child,
            stdout,
            stderr_task,
        } = self.spawn(repo, key, &inv)?;
        let pid = child.id();
        let abandon = Cancel::new();
        let (exit_tx, exit_rx) = tokio::sync::oneshot::channel();
        let grace = self.inner.grace;
        let abandoned = abandon.clone();
        let timeout = inv.timeout;
        let repo = repo.clone();
        tokio::spawn(async move {
            let status = tokio::select! {
                status = child.wait() => status.ok(),
                _ = abandoned.cancelled() => {
                    stop_within(&mut child, grace, true).await;
                    None
                }
                _ = tokio::time::sleep(timeout) => {
                    tracing::warn!(pid, "restic stream took too long; interrupting");
                    stop_within(&mut child, grace, true).await;
                    None
                }
            };
            let stderr = repo.scrub(match stderr_task {
                Some(task) => task.await.unwrap_or_default(),
                None => String::new(),
            });
            let _ = exit_tx.send((status, stderr));
        });
        Ok(OutputStream {
            stdout,
            exit: exit_rx,
            abandon,
            finished: false,
        })
    }

    /// Runs restic against `repo` and feeds every stdout line to `on_line`.
    /// Errors are classified; the key is only ever in the child's environment.
    pub(crate) async fn run(
        &self,
        repo: &Location,
        key: &Secret,
        inv: Invocation<'_>,
        on_line: &mut (dyn FnMut(&str) + Send),
    ) -> Result<Finished, EngineError> {
        let Spawned {
            child,
            stdout,
            stderr_task,
        } = self.spawn(repo, key, &inv)?;
        let mut guard = ChildGuard {
            child: Some(child),
            grace: self.inner.grace,
        };
        let (line_tx, mut lines) = tokio::sync::mpsc::channel::<String>(256);
        if let Some(out) = stdout {
            tokio::spawn(read_lines(out, line_tx));
        }

        let never = Cancel::new();
        let cancel = inv.cancel.unwrap_or(&never);
        let ending = tokio::select! {
            status = async {
                while let Some(line) = lines.recv().await {
                    on_line(&line);
                }
                guard.child().wait().await
            } => Ending::Exited(status),
            _ = tokio::time::sleep(inv.timeout) => Ending::TimedOut,
            _ = cancel.cancelled() => Ending::Cancelled,
        };
        let status = match ending {
            Ending::Exited(status) => status?,
            other => {
                stop_within(guard.child(), self.inner.grace, true).await;
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
        let stderr = repo.scrub(match stderr_task {
            Some(task) => task.await.unwrap_or_default(),
            None => String::new(),
        });
        let code = status.code();
        if let Some(code) = code.filter(|c| *c == 0 || inv.ok_codes.contains(c)) {
            if !stderr.trim().is_empty() {
                tracing::debug!(code, stderr = %stderr.trim(), "restic finished with messages");
            }
            return Ok(Finished { code });
        }
        let mut err = classify(code, &stderr);
        if matches!(err, EngineError::Failed { .. })
            && stderr.contains("unable to start the sftp session")
            && let Some(probe) = repo.probe()
        {
            err = EngineError::Store(probe_store(probe).await);
        }
        tracing::debug!(?code, stderr = %stderr.trim(), error = %err, "restic failed");
        Err(err)
    }
}

/// Runs a store's probe command (stdin closed, 20 s at most) and reads why
/// it fails; a store that says nothing more counts as unreachable.
async fn probe_store(argv: &[String]) -> crate::StoreFailure {
    let Some((bin, args)) = argv.split_first() else {
        return crate::StoreFailure::Unreachable;
    };
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for var in ["PATH", "HOME"] {
        if let Some(v) = std::env::var_os(var) {
            cmd.env(var, v);
        }
    }
    let out = tokio::time::timeout(Duration::from_secs(20), cmd.output()).await;
    match out {
        Ok(Ok(out)) => crate::error::StoreFailure::of(&String::from_utf8_lossy(&out.stderr))
            .unwrap_or(crate::StoreFailure::Unreachable),
        _ => crate::StoreFailure::Unreachable,
    }
}

/// Reads stdout line by line until restic closes it. Lines go to the run; if
/// the run was abandoned the lines are still read (and dropped) so restic can
/// finish writing.
async fn read_lines(out: pipe::Receiver, tx: tokio::sync::mpsc::Sender<String>) {
    // Bytes, not `lines()`: a file name in a plain-text line may not be UTF-8.
    let mut reader = BufReader::new(out);
    let mut line = Vec::new();
    let mut receiving = true;
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        if receiving {
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_end_matches(['\n', '\r']).to_owned();
            receiving = tx.send(text).await.is_ok();
        }
    }
}

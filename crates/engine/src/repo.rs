//! The restic commands the product uses, on one repository.

use std::ffi::OsString;
use std::path::Path;

use api::{Secret, SnapshotId};

use crate::output::{self, BackupEvent, BackupSummary, LsNode, Snapshot, StatsOutput};
use crate::process::Invocation;
use crate::{Cancel, EngineError, Location, MasterKey, Restic};

/// A repository and the key that opens it.
#[derive(Clone)]
pub struct Repo {
    restic: Restic,
    location: Location,
    key: Secret,
    on_change: Option<ChangeHook>,
    /// Runs restic at the lowest CPU priority (background work).
    low_priority: bool,
}

impl std::fmt::Debug for Repo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repo")
            .field("location", &self.location.display())
            .finish_non_exhaustive()
    }
}

/// Runs the change hook when dropped.
struct Changed<'a>(&'a Repo);

impl Drop for Changed<'_> {
    fn drop(&mut self) {
        self.0.changed();
    }
}

/// Called after every command that may have changed the repository
/// (whether it succeeded or not), e.g. to mark a cached listing stale.
pub type ChangeHook = std::sync::Arc<dyn Fn() + Send + Sync>;

/// `restic stats --mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatsMode {
    /// Bytes stored in the repository after compression and deduplication.
    RawData,
    /// Bytes a restore of the snapshots would write.
    RestoreSize,
}

impl StatsMode {
    fn flag(self) -> &'static str {
        match self {
            StatsMode::RawData => "--mode=raw-data",
            StatsMode::RestoreSize => "--mode=restore-size",
        }
    }
}

/// What to back up and how to label it.
#[derive(Debug, Clone)]
pub struct BackupRequest<'a> {
    /// Directory whose content is backed up; restic runs inside it on `.`, so
    /// paths in the snapshot are relative to it.
    pub source: &'a Path,
    /// `--host`, the server's UUID.
    pub host: &'a str,
    /// Tags to put on the new snapshot. Only tags chosen by the product, never
    /// user text.
    pub tags: &'a [&'a str],
    /// Exclude patterns in restic's syntax, one per entry.
    pub excludes: &'a [String],
}

fn args<I, S>(items: I) -> Vec<OsString>
where
    I: IntoIterator<Item = S>,
    S: Into<OsString>,
{
    items.into_iter().map(Into::into).collect()
}

fn ignore_line(_: &str) {}

impl Repo {
    pub(crate) fn new(restic: Restic, location: Location, key: Secret) -> Self {
        Self {
            restic,
            location,
            key,
            on_change: None,
            low_priority: false,
        }
    }

    /// Runs its restic commands at the lowest CPU priority (nice 19): for
    /// work nobody waits for, which must not take the cores from the game
    /// servers or from the answers people wait for.
    pub fn low_priority(mut self) -> Self {
        self.low_priority = true;
        self
    }

    /// Calls `hook` after each command that may change the repository.
    pub fn on_change(mut self, hook: ChangeHook) -> Self {
        self.on_change = Some(hook);
        self
    }

    fn changed(&self) {
        if let Some(hook) = &self.on_change {
            hook();
        }
    }

    /// Runs a command that changes the repository, output ignored. The
    /// hook runs however it ends, also when the future is dropped (restic,
    /// interrupted, may still have finished the change).
    async fn change(&self, inv: Invocation<'_>) -> Result<(), EngineError> {
        let _changed = Changed(self);
        self.quietly(inv).await
    }

    pub fn location(&self) -> &Location {
        &self.location
    }

    /// Runs a command that prints one JSON document and returns all stdout.
    async fn capture(&self, inv: Invocation<'_>) -> Result<String, EngineError> {
        let mut out = String::new();
        self.restic
            .run(&self.location, &self.key, inv, &mut |line: &str| {
                out.push_str(line);
                out.push('\n');
            })
            .await?;
        Ok(out)
    }

    async fn quietly(&self, inv: Invocation<'_>) -> Result<(), EngineError> {
        self.restic
            .run(&self.location, &self.key, inv, &mut ignore_line)
            .await
            .map(|_| ())
    }

    fn quick(&self, a: Vec<OsString>) -> Invocation<'static> {
        let mut inv = Invocation::new(a, self.restic.timeouts().quick);
        inv.low_priority = self.low_priority;
        inv
    }

    /// Creates the repository (format v2, so compression is on). A local
    /// one for a 256-bit key is written directly, with the light key
    /// derivation (see [`crate::init_local`]), and its master key returned;
    /// any other through `restic init`, as is a folder that is there
    /// already (made by an operator, maybe a mount point: restic fills it
    /// in place) or one the new repository can not be renamed into.
    pub async fn init(&self) -> Result<Option<MasterKey>, EngineError> {
        if let Some(path) = self.location.local_path()
            && crate::is_machine_key(&self.key)
            && std::fs::symlink_metadata(path).is_err()
        {
            let _changed = Changed(self);
            let (path, key) = (path.to_owned(), self.key.clone());
            let written = tokio::task::spawn_blocking(move || crate::init_local(&path, &key))
                .await
                .map_err(|e| EngineError::Io(std::io::Error::other(e)))?;
            match written {
                Err(EngineError::Io(e))
                    if matches!(e.raw_os_error(), Some(libc::EXDEV | libc::EBUSY)) => {}
                other => return other.map(Some),
            }
        }
        self.change(self.quick(args(["init", "--repository-version=2"])))
            .await
            .map(|()| None)
    }

    /// Creates this repository as the copy of `source`, with its chunker
    /// parameters, so copied data deduplicates as it does there.
    pub async fn init_copy_of(&self, source: &Repo) -> Result<(), EngineError> {
        let mut inv = self.quick(args([
            "init",
            "--repository-version=2",
            "--copy-chunker-params",
        ]));
        inv.from = Some((&source.location, &source.key));
        self.change(inv).await
    }

    /// Copies every snapshot of `source` this repository does not hold yet
    /// (`restic copy`; restic skips those copied before).
    pub async fn copy_from(
        &self,
        source: &Repo,
        cancel: Option<&Cancel>,
    ) -> Result<(), EngineError> {
        let mut inv = Invocation::new(args(["copy"]), self.restic.timeouts().long);
        inv.from = Some((&source.location, &source.key));
        inv.cancel = cancel;
        self.change(inv).await
    }

    /// Proves the key opens the repository, without taking a lock.
    pub async fn check_key(&self) -> Result<(), EngineError> {
        self.quietly(self.quick(args(["cat", "config", "--no-lock"])))
            .await
    }

    /// The IDs of the files in the repository's `snapshots/` (one listing of
    /// the store, no snapshot read): how a remote repository's change is
    /// noticed cheaply. Proves the key too.
    pub async fn snapshot_files(&self) -> Result<Vec<String>, EngineError> {
        let out = self
            .capture(self.quick(args(["list", "snapshots", "--no-lock"])))
            .await?;
        Ok(out
            .lines()
            .map(str::trim)
            .filter(|l| l.len() == 64 && l.bytes().all(|b| b.is_ascii_hexdigit()))
            .map(str::to_owned)
            .collect())
    }

    /// All snapshots, as restic lists them (oldest first).
    pub async fn snapshots(&self) -> Result<Vec<Snapshot>, EngineError> {
        let out = self
            .capture(self.quick(args(["snapshots", "--json", "--no-lock"])))
            .await?;
        output::parse_snapshots(&out)
    }

    /// `restic stats`, over the whole repository or the given snapshots.
    pub async fn stats(
        &self,
        mode: StatsMode,
        snapshots: &[&SnapshotId],
    ) -> Result<StatsOutput, EngineError> {
        let mut a = args(["stats", "--json", "--no-lock", mode.flag()]);
        if !snapshots.is_empty() {
            a.push("--".into());
            a.extend(snapshots.iter().map(|s| OsString::from(s.as_str())));
        }
        let out = self.capture(self.quick(a)).await?;
        output::parse_stats(&out)
    }

    /// Adds (`add = true`) or removes a tag. restic rewrites the snapshot under
    /// a new ID and keeps the first ID in `original`.
    pub async fn tag(&self, id: &SnapshotId, tag: &str, add: bool) -> Result<(), EngineError> {
        let flag = if add { "--add=" } else { "--remove=" };
        self.change(self.quick(args([
            "tag".to_owned(),
            format!("{flag}{tag}"),
            "--".to_owned(),
            id.to_string(),
        ])))
        .await
    }

    /// Forgets snapshots (space comes back with a later prune).
    pub async fn forget(&self, ids: &[&SnapshotId]) -> Result<(), EngineError> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut a = args(["forget", "--"]);
        a.extend(ids.iter().map(|s| OsString::from(s.as_str())));
        self.change(self.quick(a)).await
    }

    /// Removes locks left by restic processes that died (restic only removes
    /// stale ones without `--remove-all`).
    pub async fn unlock_stale(&self) -> Result<(), EngineError> {
        self.change(self.quick(args(["unlock"]))).await
    }

    /// Backs up `req.source`. Progress lines go to `on_event`; the summary is
    /// returned. restic's exit code 3 (some files could not be read) still
    /// produced a snapshot and counts as success; the unreadable files were
    /// reported as [`BackupEvent::Error`].
    pub async fn backup(
        &self,
        req: &BackupRequest<'_>,
        cancel: Option<&Cancel>,
        on_event: &mut (dyn FnMut(BackupEvent) + Send),
    ) -> Result<BackupSummary, EngineError> {
        let mut a = args([
            "backup".to_owned(),
            "--json".to_owned(),
            format!("--host={}", req.host),
        ]);
        for tag in req.tags {
            a.push(format!("--tag={tag}").into());
        }
        let stdin = if req.excludes.is_empty() {
            None
        } else {
            // Patterns travel through a pipe: no temp file, no argv entry.
            a.push("--exclude-file=/dev/stdin".into());
            Some(req.excludes.join("\n").into_bytes())
        };
        a.push("--".into());
        a.push(".".into());
        let mut inv = Invocation::new(a, self.restic.timeouts().long);
        inv.cwd = Some(req.source);
        inv.stdin = stdin;
        inv.cancel = cancel;
        inv.ok_codes = &[3];
        inv.env.push(("RESTIC_PROGRESS_FPS", "2".to_owned()));
        let mut summary = None;
        let changed = Changed(self);
        let finished =
            self.restic
                .run(&self.location, &self.key, inv, &mut |line: &str| {
                    match output::parse_backup_line(line) {
                        Some(BackupEvent::Summary(s)) => summary = Some(s),
                        Some(event) => on_event(event),
                        None => {}
                    }
                })
                .await;
        drop(changed);
        let finished = finished?;
        if finished.code == 3 {
            tracing::warn!(repo = %self.location.display(), "backup finished, but some files could not be read");
        }
        summary.ok_or_else(|| EngineError::Parse("restic backup printed no summary".into()))
    }
}

/// The error a restic output stream ended with: restic's own, classified,
/// when it failed, else the I/O error.
fn stream_error(e: std::io::Error) -> EngineError {
    if e.get_ref().is_some_and(|inner| inner.is::<EngineError>()) {
        if let Some(inner) = e.into_inner()
            && let Ok(engine) = inner.downcast::<EngineError>()
        {
            return *engine;
        }
        return EngineError::Parse("restic's output stream failed".into());
    }
    EngineError::Io(e)
}

/// Archive formats `restic dump` writes itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DumpFormat {
    Tar,
    Zip,
}

/// One key of a repository (`restic key list --json`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct KeyInfo {
    /// Short or full key ID.
    pub id: String,
    /// Whether this is the key the listing was opened with.
    #[serde(default)]
    pub current: bool,
}

fn key_id_ok(id: &str) -> bool {
    (8..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_hexdigit())
}

impl Repo {
    /// Restores a snapshot's content into `target` (which restic creates):
    /// all of it, or only what the `includes` patterns select (restic's
    /// `--include` syntax; callers escape names, see
    /// `api::files::SnapshotPath::include_pattern`).
    pub async fn restore(
        &self,
        id: &SnapshotId,
        target: &Path,
        includes: &[String],
        cancel: Option<&Cancel>,
    ) -> Result<(), EngineError> {
        let mut target_arg = OsString::from("--target=");
        target_arg.push(target);
        let mut a = vec!["restore".into(), target_arg];
        a.extend(
            includes
                .iter()
                .map(|p| OsString::from(format!("--include={p}"))),
        );
        a.push("--".into());
        a.push(id.as_str().into());
        let mut inv = Invocation::new(a, self.restic.timeouts().long);
        inv.cancel = cancel;
        self.quietly(inv).await
    }

    /// Streams `path` of the snapshot (`restic dump <id> <path>`): a
    /// folder (`/` for everything) as an archive, a file as its content.
    /// `path` must be absolute.
    pub fn dump(
        &self,
        id: &SnapshotId,
        path: &str,
        format: DumpFormat,
    ) -> Result<crate::OutputStream, EngineError> {
        if !path.starts_with('/') {
            return Err(EngineError::Parse(format!(
                "not an absolute path: {path:?}"
            )));
        }
        let archive = match format {
            DumpFormat::Tar => "--archive=tar",
            DumpFormat::Zip => "--archive=zip",
        };
        let inv = Invocation::new(
            args(["dump", archive, "--", id.as_str(), path]),
            self.restic.timeouts().long,
        );
        self.restic.stream(&self.location, &self.key, inv)
    }

    /// Lists every node of a snapshot (`restic ls --json`), in restic's
    /// order (a folder, then its content, names sorted), to `on_node`.
    /// restic's output is read and parsed in this task, line by line into
    /// one buffer (a snapshot has hundreds of thousands of lines).
    pub async fn ls(
        &self,
        id: &SnapshotId,
        cancel: Option<&Cancel>,
        on_node: &mut (dyn FnMut(LsNode) + Send),
    ) -> Result<(), EngineError> {
        use tokio::io::AsyncBufReadExt;
        let inv = Invocation::new(
            args(["ls", "--json", "--no-lock", "--", id.as_str()]),
            self.restic.timeouts().long,
        );
        let stream = self.restic.stream(&self.location, &self.key, inv)?;
        let mut reader = tokio::io::BufReader::with_capacity(256 << 10, stream);
        let mut line = Vec::with_capacity(4096);
        let never = Cancel::new();
        let cancel = cancel.unwrap_or(&never);
        loop {
            line.clear();
            // Dropping the stream (cancelled, or an error) interrupts restic.
            let read = tokio::select! {
                read = reader.read_until(b'\n', &mut line) => read,
                () = cancel.cancelled() => return Err(EngineError::Cancelled),
            };
            match read {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(stream_error(e)),
            }
            let node = match std::str::from_utf8(&line) {
                Ok(text) => output::parse_ls_line(text),
                Err(_) => output::parse_ls_line(&String::from_utf8_lossy(&line)),
            };
            if let Some(node) = node {
                on_node(node);
            }
        }
    }

    /// The repository's keys; `current` marks the one this handle opens.
    pub async fn keys(&self) -> Result<Vec<KeyInfo>, EngineError> {
        let out = self
            .capture(self.quick(args(["key", "list", "--json", "--no-lock"])))
            .await?;
        let keys: Vec<KeyInfo> = out
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with('['))
            .find_map(|l| serde_json::from_str(l).ok())
            .ok_or_else(|| EngineError::Parse("no key list in restic output".into()))?;
        if keys.iter().any(|k| !key_id_ok(&k.id)) {
            return Err(EngineError::Parse(
                "unexpected key ID in restic output".into(),
            ));
        }
        Ok(keys)
    }

    /// Adds `new` as a further key. The new password travels through a pipe
    /// (`--new-password-file=/dev/stdin`), never argv. restic trims
    /// whitespace around a password read from a file, so callers must refuse
    /// such passwords first.
    pub async fn add_key(&self, new: &Secret) -> Result<(), EngineError> {
        let mut inv = self.quick(args(["key", "add", "--new-password-file=/dev/stdin"]));
        inv.stdin = Some(new.expose().as_bytes().to_vec());
        self.change(inv).await
    }

    /// Removes the key with this ID (not the one this handle opens with).
    pub async fn remove_key(&self, id: &str) -> Result<(), EngineError> {
        if !key_id_ok(id) {
            return Err(EngineError::Parse(format!("not a key ID: {id:?}")));
        }
        self.change(self.quick(args(["key", "remove", "--", id])))
            .await
    }

    /// Removes data no snapshot references any more.
    pub async fn prune(&self, cancel: Option<&Cancel>) -> Result<(), EngineError> {
        let mut inv = Invocation::new(args(["prune"]), self.restic.timeouts().long);
        inv.cancel = cancel;
        self.change(inv).await
    }
}

//! Downloads: `restic dump` streamed through a compressor, never written to
//! disk or held whole in memory. Either with the node token and the key
//! header, or with a one-time link token (see [`api::download`]).

use std::collections::HashMap;
use std::pin::Pin;

use api::download::{DownloadFormat, TokenError};
use api::files::{FileKind, SnapshotPath};
use api::{Secret, ServerUuid, SnapshotRef};
use async_compression::Level;
use async_compression::tokio::bufread::ZstdEncoder;
use async_compression::zstd::CParameter;
use engine::DumpFormat;
use time::OffsetDateTime;
use tokio::io::{AsyncRead, AsyncReadExt, BufReader};

use super::Agent;
use crate::AgentError;

/// A download ready to stream.
pub struct Download {
    pub filename: String,
    pub content_type: &'static str,
    /// Known for a single file (its size), not for an archive.
    pub length: Option<u64>,
    pub body: Pin<Box<dyn AsyncRead + Send>>,
}

/// What of the snapshot a download holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Everything,
    Folder,
    /// One file, as itself, of this size.
    File(u64),
}

fn is_snapshot_gone(e: &std::io::Error) -> bool {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<engine::EngineError>())
        .is_some_and(|inner| matches!(inner, engine::EngineError::SnapshotNotFound))
}

/// Compression workers per download: the machine's cores, at most 4 (a
/// download never takes every core of a big node from its game servers;
/// four downloads at the node's limit stay within ~40 MiB of blocks).
fn cores() -> usize {
    std::thread::available_parallelism()
        .map_or(2, usize::from)
        .min(4)
}

/// Buffer between restic and the compressor.
const PIPE_BUF: usize = 64 * 1024;

impl Agent {
    pub async fn download(
        &self,
        server: &ServerUuid,
        key: &Secret,
        snapshot: &SnapshotRef,
        format: DownloadFormat,
        path: Option<&SnapshotPath>,
    ) -> Result<Download, AgentError> {
        let permit = self.download_permit()?;
        self.download_with(permit, server, key, snapshot, format, path)
            .await
    }

    /// A place among the node's running downloads, or `TooManyDownloads`.
    fn download_permit(&self) -> Result<tokio::sync::OwnedSemaphorePermit, AgentError> {
        self.inner
            .downloads
            .clone()
            .try_acquire_owned()
            .map_err(|_| AgentError::TooManyDownloads)
    }

    async fn download_with(
        &self,
        permit: tokio::sync::OwnedSemaphorePermit,
        server: &ServerUuid,
        key: &Secret,
        snapshot: &SnapshotRef,
        format: DownloadFormat,
        path: Option<&SnapshotPath>,
    ) -> Result<Download, AgentError> {
        let root = SnapshotPath::root();
        let path = path.unwrap_or(&root);
        // What the path is comes from the snapshot's listing: restic is
        // only ever asked for a file or folder the snapshot has.
        let part = if path.is_root() {
            Part::Everything
        } else if !path.is_exact() {
            return Err(super::restore::unreadable_name());
        } else {
            let (_, listing) = self.listing_of(server, key, snapshot).await?;
            let item = listing.find(path)?;
            match item.kind {
                FileKind::Dir => Part::Folder,
                FileKind::File => Part::File(item.size),
                FileKind::Symlink | FileKind::Other => {
                    return Err(AgentError::bad_request(
                        "not_downloadable",
                        "only files and folders can be downloaded",
                    ));
                }
            }
        };
        let slot = self.slot(server);
        let dump = match format {
            DownloadFormat::Zip => DumpFormat::Zip,
            DownloadFormat::TarGz | DownloadFormat::TarZst => DumpFormat::Tar,
        };
        // Lock and unlock give a snapshot a new restic ID. If that happens
        // between resolving the ID and restic opening the snapshot, restic
        // fails before writing anything: resolve again and retry, so the
        // download never fails for it (or turns into a broken file).
        let mut attempt = 0;
        let (entry, stream) = loop {
            attempt += 1;
            let (entry, repo, _) = self
                .readable(server, &slot, key, |idx| idx.resolve(snapshot).cloned())
                .await?;
            // All of it is `/`, as restic keeps it (a snapshot of another
            // tool's absolute folder comes with that folder, as before);
            // a chosen path is under that folder.
            let at = match part {
                Part::Everything => "/".to_owned(),
                Part::Folder | Part::File(_) => path.under(entry.nested.as_deref()),
            };
            let mut stream = repo.dump(&entry.current, &at, dump)?;
            let mut first = vec![0u8; PIPE_BUF];
            match stream.read(&mut first).await {
                Ok(n) => {
                    first.truncate(n);
                    break (entry, std::io::Cursor::new(first).chain(stream));
                }
                Err(e) if attempt < 3 && is_snapshot_gone(&e) => {
                    tracing::info!(server = %server, snapshot = %entry.id.short(), "snapshot changed under the download; resolving again");
                }
                Err(e) => return Err(AgentError::Internal(format!("restic dump: {e}"))),
            }
        };
        let body: Pin<Box<dyn AsyncRead + Send>> = match (part, format) {
            (Part::File(_), _) => Box::pin(stream),
            // gzip's default level, on every core (restic's decryption
            // shares them); zstd with its own worker threads.
            (_, DownloadFormat::TarGz) => Box::pin(crate::pgzip::gzip(stream, 6, cores())),
            (_, DownloadFormat::TarZst) => Box::pin(ZstdEncoder::with_quality_and_params(
                BufReader::with_capacity(PIPE_BUF, stream),
                Level::Default,
                &[CParameter::nb_workers(cores() as u32)],
            )),
            (_, DownloadFormat::Zip) => Box::pin(stream),
        };
        // The permit goes when the body does (finished or client gone).
        let body: Pin<Box<dyn AsyncRead + Send>> = Box::pin(Holding {
            inner: body,
            _permit: permit,
        });
        let stamp = entry
            .time
            .to_offset(time::UtcOffset::UTC)
            .format(time::macros::format_description!(
                "[year][month][day]-[hour][minute][second]"
            ))
            .unwrap_or_default();
        let name = path.name().unwrap_or_default();
        let (filename, content_type, length) = match part {
            Part::Everything => (
                format!(
                    "{server}-{}-{stamp}.{}",
                    entry.id.short(),
                    format.extension()
                ),
                format.content_type(),
                None,
            ),
            Part::Folder => (
                format!("{name}-{}-{stamp}.{}", entry.id.short(), format.extension()),
                format.content_type(),
                None,
            ),
            Part::File(size) => (name.to_owned(), "application/octet-stream", Some(size)),
        };
        tracing::info!(server = %server, snapshot = %entry.id.short(), format = format.extension(), partial = !path.is_root(), "download started");
        Ok(Download {
            filename,
            content_type,
            length,
            body,
        })
    }

    /// `GET /download/restic?token=…`: checks the link (signature, expiry,
    /// first use) and starts the download it grants.
    pub async fn download_with_token(&self, token: &str) -> Result<Download, AgentError> {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let (grant, key) =
            api::download::verify(&self.node_token(), token, now).map_err(|e| match e {
                TokenError::Expired => AgentError::LinkExpired,
                TokenError::Malformed | TokenError::BadSignature => AgentError::InvalidLink,
            })?;
        // A busy node answers before the link counts as used, so the
        // browser can retry the same link.
        let permit = self.download_permit()?;
        self.inner.used_links.use_once(&grant.jti, grant.exp, now)?;
        let snapshot = grant.snapshot.clone();
        self.download_with(
            permit,
            &grant.server,
            &key,
            &snapshot,
            grant.format,
            grant.path.as_ref(),
        )
        .await
    }
}

/// A reader that holds something (a download permit) as long as it lives.
struct Holding<T> {
    inner: Pin<Box<dyn AsyncRead + Send>>,
    _permit: T,
}

impl<T: Unpin> AsyncRead for Holding<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        self.inner.as_mut().poll_read(cx, buf)
    }
}

/// IDs of links already used, with their expiry (unix seconds), kept in
/// `state_dir/used-links.json` so a restart does not allow a replay.
pub(super) struct UsedLinks {
    file: std::path::PathBuf,
    used: std::sync::Mutex<HashMap<String, i64>>,
}

impl UsedLinks {
    pub(super) fn load(file: std::path::PathBuf) -> Self {
        let used = std::fs::read(&file)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Self {
            file,
            used: std::sync::Mutex::new(used),
        }
    }

    /// Records a link's use; `LinkUsed` if it was used before. The record is
    /// on disk before the download starts.
    fn use_once(&self, jti: &str, exp: i64, now: i64) -> Result<(), AgentError> {
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        used.retain(|_, e| *e > now);
        if used.contains_key(jti) {
            return Err(AgentError::LinkUsed);
        }
        used.insert(jti.to_owned(), exp);
        let bytes = serde_json::to_vec(&*used).map_err(|e| AgentError::Internal(e.to_string()))?;
        crate::layout::write_atomically(&self.file, &bytes)?;
        Ok(())
    }
}

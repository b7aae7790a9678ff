//! Downloads: `restic dump` streamed through a compressor, never written to
//! disk or held whole in memory. Either with the node token and the key
//! header, or with a one-time link token (see [`api::download`]).

use std::collections::HashMap;
use std::pin::Pin;

use api::download::{DownloadFormat, TokenError};
use api::{Secret, ServerUuid, SnapshotRef};
use async_compression::tokio::bufread::{GzipEncoder, ZstdEncoder};
use engine::DumpFormat;
use time::OffsetDateTime;
use tokio::io::{AsyncRead, AsyncReadExt, BufReader};

use super::Agent;
use crate::AgentError;

/// A download ready to stream.
pub struct Download {
    pub filename: String,
    pub format: DownloadFormat,
    pub body: Pin<Box<dyn AsyncRead + Send>>,
}

fn is_snapshot_gone(e: &std::io::Error) -> bool {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<engine::EngineError>())
        .is_some_and(|inner| matches!(inner, engine::EngineError::SnapshotNotFound))
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
    ) -> Result<Download, AgentError> {
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
            let entry = self
                .fresh(server, &slot, key)
                .await?
                .resolve(snapshot)?
                .clone();
            let mut stream = self.repo(server, key).dump(&entry.current, dump)?;
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
        let body: Pin<Box<dyn AsyncRead + Send>> = match format {
            DownloadFormat::TarGz => {
                Box::pin(GzipEncoder::new(BufReader::with_capacity(PIPE_BUF, stream)))
            }
            DownloadFormat::TarZst => {
                Box::pin(ZstdEncoder::new(BufReader::with_capacity(PIPE_BUF, stream)))
            }
            DownloadFormat::Zip => Box::pin(stream),
        };
        let stamp = entry
            .time
            .to_offset(time::UtcOffset::UTC)
            .format(time::macros::format_description!(
                "[year][month][day]-[hour][minute][second]"
            ))
            .unwrap_or_default();
        tracing::info!(server = %server, snapshot = %entry.id.short(), format = format.extension(), "download started");
        Ok(Download {
            filename: format!(
                "{server}-{}-{stamp}.{}",
                entry.id.short(),
                format.extension()
            ),
            format,
            body,
        })
    }

    /// `GET /download/restic?token=…`: checks the link (signature, expiry,
    /// first use) and starts the download it grants.
    pub async fn download_with_token(&self, token: &str) -> Result<Download, AgentError> {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let (grant, key) =
            api::download::verify(&self.inner.node_token, token, now).map_err(|e| match e {
                TokenError::Expired => AgentError::LinkExpired,
                TokenError::Malformed | TokenError::BadSignature => AgentError::InvalidLink,
            })?;
        {
            let mut used = self
                .inner
                .used_links
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            used.retain(|_, exp| *exp > now);
            if used.contains_key(&grant.jti) {
                return Err(AgentError::LinkUsed);
            }
            used.insert(grant.jti.clone(), grant.exp);
        }
        let snapshot = grant.snapshot.clone();
        self.download(&grant.server, &key, &snapshot, grant.format)
            .await
    }
}

/// IDs of links already used, with their expiry (unix seconds).
pub(super) type UsedLinks = std::sync::Mutex<HashMap<String, i64>>;

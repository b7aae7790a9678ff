//! What can go wrong when running restic, classified so callers can answer
//! precisely (404 for a missing repository, 403 for a wrong key, ...).

use thiserror::Error;

/// One error type for the whole engine. Messages never contain the repository
/// key; `Failed` carries restic's own last stderr line for logs, which callers
/// must not forward to clients verbatim.
#[derive(Debug, Error)]
pub enum EngineError {
    #[error("restic was not found at {bin}")]
    ResticMissing { bin: String },
    #[error("restic {found} is too old; version {required} or newer is required")]
    ResticTooOld { found: String, required: String },
    #[error("could not read the restic version from {output:?}")]
    UnknownVersion { output: String },
    #[error("no restic repository exists at this location")]
    RepoNotFound,
    #[error("the repository key is wrong")]
    WrongKey,
    #[error("the repository is locked by another restic process")]
    RepoLocked,
    #[error("the snapshot was not found in the repository")]
    SnapshotNotFound,
    #[error("{0}")]
    Store(StoreFailure),
    #[error("restic did not finish within {seconds} s and was interrupted")]
    Timeout { seconds: u64 },
    #[error("the restic run was cancelled")]
    Cancelled,
    #[error("restic printed output that could not be read: {0}")]
    Parse(String),
    #[error("restic failed (exit code {code:?}): {message}")]
    Failed { code: Option<i32>, message: String },
    #[error("could not run restic: {0}")]
    Io(#[from] std::io::Error),
}

/// Why a repository's store (a remote one, or the disk) failed restic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum StoreFailure {
    /// Connection refused, name not found, timed out, connection lost.
    #[error("the repository's store could not be reached")]
    Unreachable,
    /// Wrong S3 keys or REST password, an SSH key the server refuses.
    #[error("the repository's store refused the credentials")]
    AccessDenied,
    /// The SSH server's host key is not the one in known_hosts.
    #[error("the SFTP server's host key does not match the known_hosts file")]
    HostKeyMismatch,
    /// The S3 bucket does not exist.
    #[error("the S3 bucket does not exist")]
    BucketMissing,
    /// Quota exceeded, disk full.
    #[error("the repository's store is full (quota exceeded or no space left)")]
    Full,
}

impl StoreFailure {
    /// Recognises a store's failure in restic's error output (restic 0.14
    /// to 0.18 word them the same: they are the backends' own messages).
    pub(crate) fn of(stderr: &str) -> Option<Self> {
        let lower = stderr.to_ascii_lowercase();
        let has = |needle: &str| lower.contains(needle);
        if has("host key verification failed")
            || has("remote host identification has changed")
            || has("no ed25519 host key is known")
            || has("host key is known for")
        {
            Some(Self::HostKeyMismatch)
        } else if has("nosuchbucket")
            || has("the specified bucket does not exist")
            // restic creates a missing bucket at `init`; keys that may
            // not create one are refused.
            || has("client.makebucket")
        {
            Some(Self::BucketMissing)
        } else if has("quotaexceeded")
            || has("quota exceeded")
            || has("quota is reached")
            || has("no space left on device")
            || has("disk quota")
            || has("insufficient storage")
            || has("(507)")
        {
            Some(Self::Full)
        } else if has("permission denied (publickey")
            || has("(401)")
            || has("(403)")
            || has("401 unauthorized")
            || has("403 forbidden")
            || has("access denied")
            || has("accessdenied")
            || has("invalidaccesskeyid")
            || has("signaturedoesnotmatch")
            || has("access key id you provided does not exist")
            || has("signature we calculated does not match")
            || has("too many authentication failures")
        {
            Some(Self::AccessDenied)
        } else if has("connection refused")
            || has("no such host")
            || has("could not resolve hostname")
            || has("i/o timeout")
            || has("network is unreachable")
            || has("no route to host")
            || has("connection reset by peer")
            || has("connection timed out")
            || has("tls handshake timeout")
            || has("server closed idle connection")
            || has("connection closed by")
            || has("connection lost")
        {
            Some(Self::Unreachable)
        } else {
            None
        }
    }
}

/// The lines of restic's stderr that are restic's own words: per-file
/// messages (JSON lines of `backup --json`, `error: …`, `ignoring error
/// for …`) name files a tenant chose and must not decide anything.
fn own_lines(stderr: &str) -> String {
    stderr
        .lines()
        .filter(|l| {
            let l = l.trim_start();
            !l.starts_with('{') && !l.starts_with("error: ") && !l.starts_with("ignoring error")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Lines that report why a store failed: restic's fatal line, ssh's
/// relayed messages and the retry notes of its backends.
fn store_lines(own: &str) -> String {
    own.lines()
        .filter(|l| {
            let l = l.trim_start();
            l.starts_with("Fatal:")
                || l.starts_with("subprocess ssh:")
                || l.contains("returned error, retrying after")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Decides what a failed run means from its exit code and stderr. restic 0.17
/// added distinct exit codes (10 no repository, 11 lock failed, 12 wrong
/// password); 0.14 only says it in words, so both are checked.
///
/// "No repository" needs positive evidence: restic 0.14 adds "Is there a
/// repository at the following location?" to every failure to open the
/// config, so a store that answers 500 or a broken certificate would
/// otherwise read as a missing repository (and a backup would `init` over
/// it). Without such evidence a failure to open the config is the store's.
pub fn classify(code: Option<i32>, stderr: &str) -> EngineError {
    let own = own_lines(stderr);
    let has = |needle: &str| own.contains(needle);
    let opening = has("unable to open config file") || has("Is there a repository at");
    let missing = has("no such file or directory")
        || has("does not exist")
        || has("repository does not exist");
    if code == Some(12) || has("wrong password or no key found") {
        EngineError::WrongKey
    } else if let Some(failure) = StoreFailure::of(&store_lines(&own)) {
        EngineError::Store(failure)
    } else if code == Some(10) || (opening && missing) {
        EngineError::RepoNotFound
    } else if opening {
        EngineError::Store(StoreFailure::Unreachable)
    } else if code == Some(11)
        || has("repository is already locked")
        || has("unable to create lock")
    {
        EngineError::RepoLocked
    } else if has("no matching ID found") || has("no snapshot found") {
        EngineError::SnapshotNotFound
    } else {
        EngineError::Failed {
            code,
            message: last_meaningful_line(stderr),
        }
    }
}

fn last_meaningful_line(stderr: &str) -> String {
    stderr
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("no error output")
        .chars()
        .take(500)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Recorded from restic 0.14.0.
    const WRONG_KEY_014: &str = "Fatal: wrong password or no key found\n";
    const NO_REPO_014: &str = "Fatal: unable to open config file: stat /r/config: no such file or directory\nIs there a repository at the following location?\n/r\n";
    const LOCKED_014: &str = "unable to create lock in backend: repository is already locked exclusively by PID 11 on vm by root (UID 0, GID 0)\nlock was created at 2026-11-26 12:00:00 (1.2s ago)\nstorage ID 7b2a4c1e\nthe `unlock` command can be used to remove stale locks\n";

    #[test]
    fn classifies_restic_014_messages() {
        assert!(matches!(
            classify(Some(1), WRONG_KEY_014),
            EngineError::WrongKey
        ));
        assert!(matches!(
            classify(Some(1), NO_REPO_014),
            EngineError::RepoNotFound
        ));
        assert!(matches!(
            classify(Some(1), LOCKED_014),
            EngineError::RepoLocked
        ));
        assert!(matches!(
            classify(
                Some(1),
                "Fatal: no matching ID found for prefix \"deadbeef\"\n"
            ),
            EngineError::SnapshotNotFound
        ));
    }

    // Recorded from restic 0.14.0 against Garage, OpenSSH and rclone.
    #[test]
    fn classifies_store_failures() {
        for (stderr, failure) in [
            (
                "Fatal: unable to open config file: client.Head: Head \"http://u:***@127.0.0.1:48124/srv1/config\": dial tcp 127.0.0.1:48124: connect: connection refused\nIs there a repository at the following location?\n",
                StoreFailure::Unreachable,
            ),
            (
                "Fatal: unable to open config file: unexpected HTTP response (401): 401 Unauthorized\nIs there a repository at the following location?\n",
                StoreFailure::AccessDenied,
            ),
            (
                "subprocess ssh: root@127.0.0.1: Permission denied (publickey).\nFatal: unable to open repository at sftp:root@127.0.0.1:/r: unable to start the sftp session, error: read |0: file already closed\n",
                StoreFailure::AccessDenied,
            ),
            (
                "subprocess ssh: Host key verification failed.\nFatal: unable to open repository at sftp:x: unable to start the sftp session, error: EOF\n",
                StoreFailure::HostKeyMismatch,
            ),
            (
                "subprocess ssh: ssh: connect to host 127.0.0.1 port 48223: Connection refused\nFatal: unable to open repository at sftp:x: unable to start the sftp session, error: EOF\n",
                StoreFailure::Unreachable,
            ),
            (
                "Fatal: create repository at s3:http://127.0.0.1:47900/nobucket/x failed: client.MakeBucket: Forbidden: Access key GK1 is not allowed to create buckets\n",
                StoreFailure::BucketMissing,
            ),
            (
                "Fatal: unable to save snapshot: client.PutObject: Forbidden: Bucket size quota is reached, maximum total size of objects for this bucket: 1048576.\n",
                StoreFailure::Full,
            ),
        ] {
            match classify(Some(1), stderr) {
                EngineError::Store(f) => assert_eq!(f, failure, "{stderr}"),
                other => panic!("{stderr}: {other:?}"),
            }
        }
        // A store that fails in a way restic does not explain is not a
        // missing repository (a backup would create one over it).
        assert!(matches!(
            classify(
                Some(1),
                "Fatal: unable to open config file: unexpected HTTP response (500): 500 Internal Server Error\nIs there a repository at the following location?\nrest:http://h/r/\n"
            ),
            EngineError::Store(StoreFailure::Unreachable)
        ));
        // File names a tenant chose decide nothing.
        assert!(matches!(
            classify(
                Some(1),
                "{\"message_type\":\"error\",\"error\":{},\"during\":\"archival\",\"item\":\"/srv/no space left on device wrong password or no key found\"}\nFatal: unable to save snapshot: disk on fire\n"
            ),
            EngineError::Failed { .. }
        ));
        // A missing repository on a store that answers is still that.
        assert!(matches!(
            classify(
                Some(1),
                "Fatal: unable to open config file: Stat: The specified key does not exist.\nIs there a repository at the following location?\n"
            ),
            EngineError::RepoNotFound
        ));
    }

    #[test]
    fn classifies_newer_exit_codes() {
        assert!(matches!(classify(Some(12), ""), EngineError::WrongKey));
        assert!(matches!(classify(Some(10), ""), EngineError::RepoNotFound));
        assert!(matches!(classify(Some(11), ""), EngineError::RepoLocked));
    }

    #[test]
    fn other_failures_keep_the_last_line() {
        match classify(Some(1), "something\nFatal: disk on fire\n\n") {
            EngineError::Failed { code, message } => {
                assert_eq!(code, Some(1));
                assert_eq!(message, "Fatal: disk on fire");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

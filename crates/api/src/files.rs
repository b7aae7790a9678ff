//! Browsing a snapshot: paths inside it and the bodies of the file listing
//! (`GET …/{id}/files`), shared by the agent and the panel.
//!
//! A path comes from a browser and ends up on restic's command line (as a
//! `dump` argument after `--`, or as an `--include=` pattern), so it is
//! parsed here into [`SnapshotPath`]: components without `.`, `..` or NUL,
//! bounded in length, always printed absolute (`/world/region`), so it can
//! never read as a flag or leave the snapshot.

use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;
use utoipa::ToSchema;

use crate::timestamp::Timestamp;

/// The longest path accepted (Linux's `PATH_MAX`).
pub const MAX_PATH_BYTES: usize = 4096;
/// The longest name of one entry (Linux's `NAME_MAX`).
pub const MAX_NAME_BYTES: usize = 255;
/// How many paths one restore may name.
pub const MAX_RESTORE_PATHS: usize = 100;
/// Entries per page of a folder when the request names no `limit`.
pub const DEFAULT_FILES_LIMIT: usize = 200;
/// The most entries one page holds.
pub const MAX_FILES_LIMIT: usize = 1000;

/// Why a path was refused. Never echoes the path back.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PathError {
    #[error("path is longer than 4096 bytes")]
    TooLong,
    #[error("a name in the path is longer than 255 bytes")]
    NameTooLong,
    #[error("path must not contain `.` or `..`")]
    Dots,
    #[error("path must not contain a NUL character")]
    Nul,
}

/// A path inside a snapshot, relative to the server's folder: `/` is the
/// snapshot's root (the server folder itself).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct SnapshotPath(Vec<String>);

impl SnapshotPath {
    /// Parses `world/region`, `/world/region/` or `/` (empty names from
    /// doubled or edge slashes are skipped).
    pub fn parse(raw: &str) -> Result<Self, PathError> {
        if raw.len() > MAX_PATH_BYTES {
            return Err(PathError::TooLong);
        }
        if raw.contains('\0') {
            return Err(PathError::Nul);
        }
        let mut parts = Vec::new();
        for part in raw.split('/').filter(|p| !p.is_empty()) {
            if part == "." || part == ".." {
                return Err(PathError::Dots);
            }
            if part.len() > MAX_NAME_BYTES {
                return Err(PathError::NameTooLong);
            }
            parts.push(part.to_owned());
        }
        Ok(Self(parts))
    }

    /// The snapshot's root.
    pub fn root() -> Self {
        Self(Vec::new())
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether the path can name exactly one entry: restic shows a name
    /// that is not UTF-8 on disk with U+FFFD in its place, which no
    /// pattern or `dump` argument would find.
    pub fn is_exact(&self) -> bool {
        !self.0.iter().any(|p| p.contains('\u{FFFD}'))
    }

    pub fn components(&self) -> &[String] {
        &self.0
    }

    /// The last name, `None` for the root.
    pub fn name(&self) -> Option<&str> {
        self.0.last().map(String::as_str)
    }

    /// This path with `name` appended (a name restic listed: no `/`).
    pub fn join(&self, name: &str) -> Self {
        let mut parts = self.0.clone();
        parts.push(name.to_owned());
        Self(parts)
    }

    /// Whether `self` is `other` or lies inside it.
    pub fn starts_with(&self, other: &SnapshotPath) -> bool {
        self.0.starts_with(&other.0)
    }

    /// The absolute text, `/world/region`; `/` for the root.
    pub fn as_absolute(&self) -> String {
        if self.0.is_empty() {
            return "/".to_owned();
        }
        let mut out = String::new();
        for part in &self.0 {
            out.push('/');
            out.push_str(part);
        }
        out
    }

    /// Under `prefix` (an absolute folder the snapshot keeps the files
    /// under, as the PHP extension's snapshots do), absolute.
    pub fn under(&self, prefix: Option<&str>) -> String {
        match prefix {
            Some(p) => format!("{}{}", p.trim_end_matches('/'), self.as_absolute())
                .trim_end_matches('/')
                .to_owned(),
            None => self.as_absolute(),
        }
    }

    /// restic's `--include` pattern that matches exactly this path (and,
    /// restic being restic, everything under it): absolute, with the
    /// pattern characters of its names (`\ * ? [`) escaped, so a file
    /// named `*` selects itself and nothing else.
    pub fn include_pattern(&self, prefix: Option<&str>) -> String {
        let mut out = String::new();
        for c in self.under(prefix).chars() {
            if matches!(c, '\\' | '*' | '?' | '[') {
                out.push('\\');
            }
            out.push(c);
        }
        out
    }
}

impl fmt::Display for SnapshotPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_absolute())
    }
}

impl fmt::Debug for SnapshotPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SnapshotPath({})", self.as_absolute())
    }
}

impl Serialize for SnapshotPath {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.as_absolute())
    }
}

impl<'de> Deserialize<'de> for SnapshotPath {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = std::borrow::Cow::<'de, str>::deserialize(d)?;
        SnapshotPath::parse(&raw).map_err(serde::de::Error::custom)
    }
}

impl utoipa::PartialSchema for SnapshotPath {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .max_length(Some(MAX_PATH_BYTES))
            .description(Some(
                "A path inside the snapshot, relative to the server's folder (`/world/region`); \
                 no `.`, `..` or NUL.",
            ))
            .into()
    }
}

impl utoipa::ToSchema for SnapshotPath {}

/// What an entry of a snapshot is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    Dir,
    File,
    Symlink,
    /// A device, FIFO or socket.
    Other,
}

/// One entry of a folder in a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FileEntry {
    pub name: String,
    pub path: SnapshotPath,
    #[serde(rename = "type")]
    pub kind: FileKind,
    /// Bytes of a file; of a folder, the bytes of every file inside it.
    pub size: u64,
    pub mtime: Timestamp,
}

/// `GET …/{id}/files?path=&limit=&cursor=`: one page of a folder, folders
/// first, then by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FileList {
    /// The folder listed.
    pub path: SnapshotPath,
    pub entries: Vec<FileEntry>,
    /// Entries in the folder in all.
    pub total: usize,
    pub next_cursor: Option<String>,
}

/// The query of `GET …/{id}/files`, read the same way by agent and panel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilesQuery {
    pub path: SnapshotPath,
    pub limit: usize,
    /// Entries of the folder to skip (the cursor a page handed out).
    pub offset: usize,
}

/// A query refused: a stable code and a message safe to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError {
    pub code: &'static str,
    pub message: String,
}

impl FilesQuery {
    /// `path` (default `/`), `limit` (1 to [`MAX_FILES_LIMIT`], default
    /// [`DEFAULT_FILES_LIMIT`]) and `cursor` (from `next_cursor`).
    pub fn parse(get: impl Fn(&str) -> Option<String>) -> Result<Self, QueryError> {
        let path = match get("path") {
            None => SnapshotPath::root(),
            Some(raw) => SnapshotPath::parse(&raw).map_err(|e| QueryError {
                code: "invalid_path",
                message: e.to_string(),
            })?,
        };
        let limit = match get("limit") {
            None => DEFAULT_FILES_LIMIT,
            Some(raw) => raw
                .parse::<usize>()
                .ok()
                .filter(|l| (1..=MAX_FILES_LIMIT).contains(l))
                .ok_or_else(|| QueryError {
                    code: "invalid_limit",
                    message: format!("limit must be a whole number from 1 to {MAX_FILES_LIMIT}"),
                })?,
        };
        let offset = match get("cursor").filter(|c| !c.is_empty()) {
            None => 0,
            Some(raw) => raw
                .parse::<u32>()
                .ok()
                .filter(|_| raw.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| QueryError {
                    code: "invalid_cursor",
                    message: "cursor must be a next_cursor this listing gave".to_owned(),
                })? as usize,
        };
        Ok(Self {
            path,
            limit,
            offset,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> Result<FilesQuery, QueryError> {
        FilesQuery::parse(|k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn file_queries_have_defaults_and_bounds() {
        let q = query(&[]).unwrap();
        assert_eq!((q.path.is_root(), q.limit, q.offset), (true, 200, 0));
        let q = query(&[("path", "/world"), ("limit", "1000"), ("cursor", "400")]).unwrap();
        assert_eq!(
            (q.path.as_absolute().as_str(), q.limit, q.offset),
            ("/world", 1000, 400)
        );
        for (k, v, code) in [
            ("limit", "0", "invalid_limit"),
            ("limit", "1001", "invalid_limit"),
            ("limit", "99999999999999999999999", "invalid_limit"),
            ("cursor", "-1", "invalid_cursor"),
            ("cursor", "+5", "invalid_cursor"),
            ("cursor", "99999999999", "invalid_cursor"),
            ("path", "../x", "invalid_path"),
        ] {
            assert_eq!(query(&[(k, v)]).unwrap_err().code, code, "{k}={v}");
        }
    }

    #[test]
    fn paths_are_normalised_and_hostile_ones_refused() {
        let p = SnapshotPath::parse("world//region/").unwrap();
        assert_eq!(p.as_absolute(), "/world/region");
        assert_eq!(SnapshotPath::parse("/").unwrap(), SnapshotPath::root());
        assert_eq!(SnapshotPath::parse("").unwrap(), SnapshotPath::root());
        assert_eq!(
            SnapshotPath::parse("--password-command=x")
                .unwrap()
                .as_absolute(),
            "/--password-command=x"
        );
        assert_eq!(SnapshotPath::parse("../etc"), Err(PathError::Dots));
        assert_eq!(SnapshotPath::parse("a/./b"), Err(PathError::Dots));
        assert_eq!(SnapshotPath::parse("a\0b"), Err(PathError::Nul));
        assert_eq!(
            SnapshotPath::parse(&"a/".repeat(2049)),
            Err(PathError::TooLong)
        );
        assert_eq!(
            SnapshotPath::parse(&"n".repeat(256)),
            Err(PathError::NameTooLong)
        );
        // An absolute host path is just a path inside the snapshot.
        assert_eq!(
            SnapshotPath::parse("/etc/shadow").unwrap().components(),
            ["etc", "shadow"]
        );
    }

    #[test]
    fn include_patterns_escape_restic_wildcards() {
        let p = SnapshotPath::parse("we*ird/[a]?/back\\slash").unwrap();
        assert_eq!(p.include_pattern(None), "/we\\*ird/\\[a]\\?/back\\\\slash");
        assert_eq!(
            SnapshotPath::parse("world")
                .unwrap()
                .include_pattern(Some("/var/lib/x/")),
            "/var/lib/x/world"
        );
        assert_eq!(SnapshotPath::root().under(Some("/var/lib/x")), "/var/lib/x");
        assert_eq!(SnapshotPath::root().under(None), "/");
    }

    #[test]
    fn paths_travel_as_absolute_text() {
        let p: SnapshotPath = serde_json::from_str("\"world/level.dat\"").unwrap();
        assert_eq!(serde_json::to_string(&p).unwrap(), "\"/world/level.dat\"");
        assert!(serde_json::from_str::<SnapshotPath>("\"a/../b\"").is_err());
    }
}

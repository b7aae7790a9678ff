//! The agent's URL paths, in one place: the agent's router mounts each
//! template (axum's `{name}` syntax) and the panel's client builds the same
//! path from typed values with the function beside it, so the two can not
//! drift apart. A test fills every template and checks nothing is left.

use crate::ids::{JobId, ServerUuid, SnapshotRef};

/// A value that fills one `{name}` of a path template, as one path segment.
pub trait Segment {
    fn segment(&self) -> String;
}

impl Segment for ServerUuid {
    fn segment(&self) -> String {
        self.as_str().to_owned()
    }
}

impl Segment for JobId {
    fn segment(&self) -> String {
        self.as_str().to_owned()
    }
}

impl Segment for SnapshotRef {
    fn segment(&self) -> String {
        self.as_str().to_owned()
    }
}

/// Free text (an archive's folder name): percent-encoded, so any odd byte
/// stays inside its one segment.
impl Segment for str {
    fn segment(&self) -> String {
        self.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                    (b as char).to_string()
                }
                other => format!("%{other:02X}"),
            })
            .collect()
    }
}

macro_rules! routes {
    ($($(#[$doc:meta])* $konst:ident, $func:ident($($arg:ident: $ty:ty),*) = $tmpl:literal;)*) => {
        $(
            $(#[$doc])*
            pub const $konst: &str = $tmpl;

            $(#[$doc])*
            pub fn $func($($arg: &$ty),*) -> String {
                #[allow(unused_mut)]
                let mut path = String::from($tmpl);
                $(path = path.replace(concat!("{", stringify!($arg), "}"), &Segment::segment($arg));)*
                path
            }
        )*

        /// Every template, for tests and documents that list the routes.
        pub const ALL: &[&str] = &[$($konst),*];
    };
}

/// The node agent's API.
pub mod agent {
    use super::*;

    routes! {
        /// `GET` the list, `POST` a new backup.
        BACKUPS, backups(server: ServerUuid) = "/api/servers/{server}/backups/restic";
        STATS, stats(server: ServerUuid) = "/api/servers/{server}/backups/restic/stats";
        ADOPT, adopt(server: ServerUuid) = "/api/servers/{server}/backups/restic/adopt";
        ARCHIVE, archive(server: ServerUuid) = "/api/servers/{server}/backups/restic/archive";
        KEY, key(server: ServerUuid) = "/api/servers/{server}/backups/restic/key";
        RETENTION, retention(server: ServerUuid) = "/api/servers/{server}/backups/restic/retention";
        JOB, job(server: ServerUuid, job: JobId) = "/api/servers/{server}/backups/restic/jobs/{job}";
        LOCK, lock(server: ServerUuid, id: SnapshotRef) = "/api/servers/{server}/backups/restic/{id}/lock";
        UNLOCK, unlock(server: ServerUuid, id: SnapshotRef) = "/api/servers/{server}/backups/restic/{id}/unlock";
        DOWNLOAD, download(server: ServerUuid, id: SnapshotRef) = "/api/servers/{server}/backups/restic/{id}/download";
        RESTORE, restore(server: ServerUuid, id: SnapshotRef) = "/api/servers/{server}/backups/restic/{id}/restore";
        /// `DELETE` a snapshot.
        SNAPSHOT, snapshot(server: ServerUuid, id: SnapshotRef) = "/api/servers/{server}/backups/restic/{id}";
        /// The node's archived repositories.
        ARCHIVES, archives() = "/api/restic/archive";
        ARCHIVED, archived(name: str) = "/api/restic/archive/{name}";
        NODE, node() = "/api/restic/node";
        /// A one-time download link (`?token=`), no bearer token.
        DOWNLOAD_LINK, download_link() = "/download/restic";
        HEALTHZ, healthz() = "/healthz";
        READYZ, readyz() = "/readyz";
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_is_filled_and_one_segment_per_value() {
        let server = ServerUuid::parse("1f0e2d3c-4b5a-6978-8796-a5b4c3d2e1f0").unwrap();
        let job = JobId::from_bytes([1; 16]);
        let snap = SnapshotRef::parse("0123abcd").unwrap();
        let built = [
            agent::backups(&server),
            agent::stats(&server),
            agent::adopt(&server),
            agent::archive(&server),
            agent::key(&server),
            agent::retention(&server),
            agent::job(&server, &job),
            agent::lock(&server, &snap),
            agent::unlock(&server, &snap),
            agent::download(&server, &snap),
            agent::restore(&server, &snap),
            agent::snapshot(&server, &snap),
            agent::archives(),
            agent::archived("a b/../c"),
            agent::node(),
            agent::download_link(),
            agent::healthz(),
            agent::readyz(),
        ];
        assert_eq!(built.len(), agent::ALL.len(), "a route without a check");
        for (path, template) in built.iter().zip(agent::ALL) {
            assert!(!path.contains('{'), "{template} left unfilled: {path}");
            assert_eq!(
                path.matches('/').count(),
                template.matches('/').count(),
                "{path} does not have the segments of {template}"
            );
        }
        assert_eq!(
            agent::job(&server, &job),
            format!("/api/servers/{server}/backups/restic/jobs/{job}")
        );
        assert_eq!(
            agent::archived("a b/../c"),
            "/api/restic/archive/a%20b%2F..%2Fc"
        );
    }
}

//! The agent's URL paths, in one place: the agent's router mounts each
//! template (axum's `{name}` syntax) and the panel's client builds the same
//! path from typed values with the function beside it, so the two can not
//! drift apart. A test fills every template and checks nothing is left.

use crate::ids::{JobId, ServerUuid, SnapshotRef};

/// A value that fills one `{name}` of a path template, as one path segment.
pub trait Segment {
    fn segment(&self) -> String;
}

/// Validated IDs are plain path characters already.
macro_rules! id_segments {
    ($($id:ty),*) => {$(
        impl Segment for $id {
            fn segment(&self) -> String {
                self.as_str().to_owned()
            }
        }
    )*};
}

id_segments!(ServerUuid, JobId, SnapshotRef);

/// Free text (an archive's folder name): percent-encoded, so any odd byte
/// stays inside its one segment (`.` and `..` too, which URL parsers would
/// otherwise resolve away).
impl Segment for str {
    fn segment(&self) -> String {
        if self == "." || self == ".." {
            return "%2E".repeat(self.len());
        }
        crate::hex::percent_encode(self, b"")
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
        STATS_HISTORY, stats_history(server: ServerUuid) = "/api/servers/{server}/backups/restic/stats/history";
        ADOPT, adopt(server: ServerUuid) = "/api/servers/{server}/backups/restic/adopt";
        ARCHIVE, archive(server: ServerUuid) = "/api/servers/{server}/backups/restic/archive";
        KEY, key(server: ServerUuid) = "/api/servers/{server}/backups/restic/key";
        RETENTION, retention(server: ServerUuid) = "/api/servers/{server}/backups/restic/retention";
        /// `POST` a policy: what it would forget now, nothing forgotten.
        RETENTION_PREVIEW, retention_preview(server: ServerUuid) = "/api/servers/{server}/backups/restic/retention/preview";
        /// `POST`: reclaim the space of forgotten snapshots now.
        PRUNE, prune(server: ServerUuid) = "/api/servers/{server}/backups/restic/prune";
        JOB, job(server: ServerUuid, job: JobId) = "/api/servers/{server}/backups/restic/jobs/{job}";
        /// `GET` the server's jobs (`?active=true`: queued and running).
        JOBS, jobs(server: ServerUuid) = "/api/servers/{server}/backups/restic/jobs";
        LOCK, lock(server: ServerUuid, id: SnapshotRef) = "/api/servers/{server}/backups/restic/{id}/lock";
        UNLOCK, unlock(server: ServerUuid, id: SnapshotRef) = "/api/servers/{server}/backups/restic/{id}/unlock";
        DOWNLOAD, download(server: ServerUuid, id: SnapshotRef) = "/api/servers/{server}/backups/restic/{id}/download";
        RESTORE, restore(server: ServerUuid, id: SnapshotRef) = "/api/servers/{server}/backups/restic/{id}/restore";
        /// `GET` a folder of the snapshot (`?path=&limit=&cursor=`).
        FILES, files(server: ServerUuid, id: SnapshotRef) = "/api/servers/{server}/backups/restic/{id}/files";
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
        /// This API's OpenAPI document (no token needed).
        OPENAPI, openapi() = "/openapi.json";
        /// Prometheus metrics (the node token or `metrics_token`).
        METRICS, metrics() = "/metrics";
    }
}

/// The panel's JSON API. Paths under [`panel::PREFIX`] are given relative
/// to it (the router nests them there); all of it lives under the panel's
/// `base_path`. The panel's HTML pages and assets are not listed here.
pub mod panel {
    /// Where the backups and admin API live (the extension's prefix).
    pub const PREFIX: &str = "/extensions/resticbackups";

    /// Paths at the panel's root (under `base_path`).
    pub const LOGIN: &str = "/auth/login";
    pub const SESSION: &str = "/auth/session";
    pub const LOGOUT: &str = "/auth/logout";
    pub const HEALTHZ: &str = "/healthz";
    pub const READYZ: &str = "/readyz";
    pub const OPENAPI: &str = "/openapi.json";
    /// Prometheus metrics (a root admin's session, or the `metrics_token`).
    pub const METRICS: &str = "/metrics";
    pub const ROOT: &[&str] = &[LOGIN, SESSION, LOGOUT, HEALTHZ, READYZ, OPENAPI, METRICS];

    /// Paths under [`PREFIX`].
    pub const SERVERS: &str = "/servers";
    pub const BACKUPS: &str = "/servers/{server}/backups/restic";
    pub const STATS: &str = "/servers/{server}/backups/restic/stats";
    pub const STATS_HISTORY: &str = "/servers/{server}/backups/restic/stats/history";
    pub const SCHEDULE: &str = "/servers/{server}/backups/restic/schedule";
    pub const SCHEDULE_HISTORY: &str = "/servers/{server}/backups/restic/schedule/history";
    pub const SCHEDULE_PREVIEW: &str = "/servers/{server}/backups/restic/schedule/preview";
    pub const SCHEDULE_RUN: &str = "/servers/{server}/backups/restic/schedule/run";
    pub const JOB: &str = "/servers/{server}/backups/restic/jobs/{job}";
    pub const JOBS: &str = "/servers/{server}/backups/restic/jobs";
    pub const SNAPSHOT: &str = "/servers/{server}/backups/restic/{id}";
    pub const RESTORE: &str = "/servers/{server}/backups/restic/{id}/restore";
    pub const FILES: &str = "/servers/{server}/backups/restic/{id}/files";
    pub const NOTE: &str = "/servers/{server}/backups/restic/{id}/note";
    pub const DOWNLOAD: &str = "/servers/{server}/backups/restic/{id}/download";
    pub const LOCK: &str = "/servers/{server}/backups/restic/{id}/lock";
    pub const UNLOCK: &str = "/servers/{server}/backups/restic/{id}/unlock";
    pub const PTERO_BACKUPS: &str = "/servers/{server}/backups/pterodactyl";
    pub const PTERO_DOWNLOAD: &str = "/servers/{server}/backups/pterodactyl/{backup}/download";
    pub const SERVER_NOTIFICATIONS: &str = "/servers/{server}/backups/restic/notifications";
    pub const SERVER_NOTIFICATIONS_TEST: &str =
        "/servers/{server}/backups/restic/notifications/test";
    pub const PREFERENCES: &str = "/preferences";
    pub const ADMIN_KEYS: &str = "/admin/keys";
    pub const ADMIN_SYNC: &str = "/admin/pterodactyl/sync";
    pub const ADMIN_KEY_REGENERATE: &str = "/admin/servers/{server}/key/regenerate";
    pub const ADMIN_PRUNE: &str = "/admin/servers/{server}/prune";
    pub const ADMIN_ARCHIVES: &str = "/admin/archived-repos";
    pub const ADMIN_ARCHIVE: &str = "/admin/archived-repos/{name}";
    pub const ADMIN_USERS: &str = "/admin/users";
    pub const ADMIN_USER: &str = "/admin/users/{user}";
    pub const ADMIN_NODES: &str = "/admin/nodes";
    pub const ADMIN_NODE: &str = "/admin/nodes/{name}";
    pub const ADMIN_SERVERS: &str = "/admin/servers";
    pub const ADMIN_SERVER: &str = "/admin/servers/{server}";
    pub const ADMIN_SUBUSERS: &str = "/admin/servers/{server}/subusers";
    pub const ADMIN_SUBUSER: &str = "/admin/servers/{server}/subusers/{user}";
    pub const ADMIN_TASK: &str = "/admin/tasks/{task}";
    pub const ADMIN_AUDIT: &str = "/admin/audit";
    pub const ADMIN_NOTIFICATIONS: &str = "/admin/notifications";
    pub const ADMIN_NOTIFICATION: &str = "/admin/notifications/{id}";
    pub const ADMIN_NOTIFICATION_TEST: &str = "/admin/notifications/{id}/test";
    pub const API: &[&str] = &[
        SERVERS,
        BACKUPS,
        STATS,
        STATS_HISTORY,
        SCHEDULE,
        SCHEDULE_HISTORY,
        SCHEDULE_PREVIEW,
        SCHEDULE_RUN,
        JOB,
        JOBS,
        SNAPSHOT,
        RESTORE,
        FILES,
        NOTE,
        DOWNLOAD,
        LOCK,
        UNLOCK,
        PTERO_BACKUPS,
        PTERO_DOWNLOAD,
        SERVER_NOTIFICATIONS,
        SERVER_NOTIFICATIONS_TEST,
        PREFERENCES,
        ADMIN_KEYS,
        ADMIN_SYNC,
        ADMIN_KEY_REGENERATE,
        ADMIN_PRUNE,
        ADMIN_ARCHIVES,
        ADMIN_ARCHIVE,
        ADMIN_USERS,
        ADMIN_USER,
        ADMIN_NODES,
        ADMIN_NODE,
        ADMIN_SERVERS,
        ADMIN_SERVER,
        ADMIN_SUBUSERS,
        ADMIN_SUBUSER,
        ADMIN_TASK,
        ADMIN_AUDIT,
        ADMIN_NOTIFICATIONS,
        ADMIN_NOTIFICATION,
        ADMIN_NOTIFICATION_TEST,
    ];
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
            agent::stats_history(&server),
            agent::adopt(&server),
            agent::archive(&server),
            agent::key(&server),
            agent::retention(&server),
            agent::retention_preview(&server),
            agent::prune(&server),
            agent::job(&server, &job),
            agent::jobs(&server),
            agent::lock(&server, &snap),
            agent::unlock(&server, &snap),
            agent::download(&server, &snap),
            agent::restore(&server, &snap),
            agent::files(&server, &snap),
            agent::snapshot(&server, &snap),
            agent::archives(),
            agent::archived("a b/../c"),
            agent::node(),
            agent::download_link(),
            agent::healthz(),
            agent::readyz(),
            agent::openapi(),
            agent::metrics(),
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
        assert_eq!(agent::archived(".."), "/api/restic/archive/%2E%2E");
        assert_eq!(agent::archived("."), "/api/restic/archive/%2E");
    }
}

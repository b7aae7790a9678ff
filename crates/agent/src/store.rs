//! Where the node keeps its repositories: `repository = "local"` (folders
//! under `repo_root`) or a template for a remote store with `{server_uuid}`
//! in its path:
//!
//! - `s3:https://host[:port]/bucket[/prefix]/{server_uuid}` (also `s3:http://`)
//!   with `s3_access_key_id`, `s3_secret_access_key` and optionally `s3_region`;
//! - `sftp:user@host:/path/{server_uuid}` or
//!   `sftp://user@host[:port]//path/{server_uuid}` with `sftp_key_file` and
//!   `sftp_known_hosts_file` (the host key is always checked);
//! - `rest:https://host[:port]/[prefix/]{server_uuid}/` with optionally
//!   `rest_username` and `rest_password`.
//!
//! Credentials never sit in the template: they come from their own settings
//! (each secret also as `*_file`) and reach restic through its environment
//! (S3 keys), inside the repository string that is itself only in restic's
//! environment (REST user and password: restic 0.14 reads them nowhere
//! else), or as file names in the SSH command (SFTP). What operators see
//! ([`Store::shown`]) never holds one.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use api::{Secret, ServerUuid};
use engine::{Access, Location, Remote};
use settings::invalid;

use crate::config::ConfigError;

pub const PLACEHOLDER: &str = "{server_uuid}";
/// Stands for the placeholder while a template is parsed as a URL (braces
/// would be escaped).
const MARKER: &str = "server-uuid-placeholder-0c5e";

/// Kinds of remote store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    S3,
    Sftp,
    Rest,
}

impl StoreKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StoreKind::S3 => "s3",
            StoreKind::Sftp => "sftp",
            StoreKind::Rest => "rest",
        }
    }
}

/// The credentials settings, as read (all optional here; each kind checks
/// what it needs).
#[derive(Default)]
pub struct Credentials {
    pub s3_access_key_id: Option<String>,
    pub s3_secret_access_key: Option<Secret>,
    pub s3_region: Option<String>,
    pub sftp_key_file: Option<PathBuf>,
    pub sftp_known_hosts_file: Option<PathBuf>,
    pub rest_username: Option<String>,
    pub rest_password: Option<Secret>,
}

/// Where repositories live.
#[derive(Debug, Clone)]
pub enum Store {
    Local { root: PathBuf },
    Remote(RemoteStore),
}

/// A validated remote template.
#[derive(Debug, Clone)]
pub struct RemoteStore {
    kind: StoreKind,
    /// The template as operators see it (no credentials).
    shown: String,
    /// The template restic gets (REST credentials inside).
    repository: Secret,
    access: Arc<Access>,
}

impl Store {
    /// Reads `repository` (`None` or `"local"` means folders under `root`).
    /// `key` names the setting in errors (`repository` or `copy_to`).
    pub fn parse(
        key: &str,
        template: Option<&str>,
        root: &Path,
        creds: &Credentials,
    ) -> Result<Self, ConfigError> {
        match template.map(str::trim) {
            None | Some("local") => Ok(Store::Local {
                root: root.to_owned(),
            }),
            Some(t) => RemoteStore::parse(key, t, creds).map(Store::Remote),
        }
    }

    /// The repository of `server`.
    pub fn location(&self, server: &ServerUuid) -> Location {
        match self {
            Store::Local { root } => Location::Local(root.join(server.as_str())),
            Store::Remote(r) => r.location(server),
        }
    }

    /// What the admin pages show: `local` or the template without secrets.
    pub fn shown(&self) -> String {
        match self {
            Store::Local { .. } => "local".to_owned(),
            Store::Remote(r) => r.shown.clone(),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Store::Local { .. } => "local",
            Store::Remote(r) => r.kind.as_str(),
        }
    }

    pub fn is_remote(&self) -> bool {
        matches!(self, Store::Remote(_))
    }

    /// Checks that `copy` can be the second copy of this store: restic
    /// copies in one process, which has one SSH command and one set of S3
    /// keys for both sides.
    pub fn check_copy(&self, copy: &Store) -> Result<(), ConfigError> {
        let Store::Remote(c) = copy else {
            return Err(invalid(
                "copy_to",
                "must be a remote store's template (s3:, sftp: or rest:)",
            ));
        };
        if self.shown() == copy.shown() {
            return Err(invalid(
                "copy_to",
                "must be another place than `repository`",
            ));
        }
        if let Store::Remote(p) = self {
            match (p.kind, c.kind) {
                (StoreKind::Sftp, StoreKind::Sftp) => {
                    return Err(invalid(
                        "copy_to",
                        "an SFTP copy of an SFTP repository is not possible (restic gives both one SSH command): use S3 or a REST server for one side",
                    ));
                }
                (StoreKind::S3, StoreKind::S3) => {
                    let same = p.access.env.len() == c.access.env.len()
                        && p.access
                            .env
                            .iter()
                            .zip(&c.access.env)
                            .all(|((k1, v1), (k2, v2))| k1 == k2 && v1.expose() == v2.expose());
                    if !same {
                        return Err(invalid(
                            "copy_s3_access_key_id",
                            "an S3 copy of an S3 repository must use the same keys and region (restic copies in one process with one set)",
                        ));
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// The path part of a template: plain characters only (no `%`, `?`, `#`,
/// which restic would decode or drop), no `.` or `..` segments, and the
/// placeholder as a whole segment, so each server's repository is its own
/// folder under the prefix and no two servers can share one.
fn check_path(key: &str, path: &str) -> Result<(), ConfigError> {
    let plain = path
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/'));
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    if !plain || segments.iter().any(|s| *s == "." || *s == "..") || !segments.contains(&MARKER) {
        return Err(invalid(
            key,
            "the path may hold letters, digits, `.`, `_`, `-` and `/` (no `.` or `..` segments), with {server_uuid} as a folder of its own",
        ));
    }
    Ok(())
}

/// Percent-encodes everything but unreserved characters (RFC 3986), for
/// a URL's user and password.
fn userinfo(raw: &str) -> String {
    raw.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn has_bad_chars(s: &str) -> bool {
    s.chars()
        .any(|c| c.is_control() || c.is_whitespace() || matches!(c, '"' | '\'' | '\\'))
}

impl RemoteStore {
    fn parse(key: &str, template: &str, creds: &Credentials) -> Result<Self, ConfigError> {
        let bad = |why: String| invalid(key, why);
        if has_bad_chars(template) {
            return Err(bad("holds spaces, quotes or control characters".to_owned()));
        }
        if template.matches(PLACEHOLDER).count() != 1 || template.contains(MARKER) {
            return Err(bad(format!(
                "must hold {PLACEHOLDER} exactly once (each server gets its own repository)"
            )));
        }
        let (kind, rest) = template
            .split_once(':')
            .ok_or_else(|| bad("must be \"local\" or start with s3:, sftp: or rest:".to_owned()))?;
        match kind {
            "s3" => Self::s3(key, rest, creds),
            "sftp" => Self::sftp(key, rest, creds),
            "rest" => Self::rest(key, rest, creds),
            _ => Err(bad(
                "must be \"local\" or start with s3:, sftp: or rest:".to_owned()
            )),
        }
    }

    /// An `http(s)://host[:port]/path` with the placeholder in its path,
    /// no credentials, query or fragment.
    fn http_url(key: &str, raw: &str) -> Result<reqwest::Url, ConfigError> {
        let bad = |why: &str| invalid(key, why.to_owned());
        let url = reqwest::Url::parse(&raw.replace(PLACEHOLDER, MARKER))
            .map_err(|_| bad("the address after the store's name is not a URL"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad(
                "the store's address must start with https:// or http://",
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad(
                "credentials do not belong in the template: use the store's own settings (each also as *_file)",
            ));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(bad("no host"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(bad("no query or fragment"));
        }
        if !url.path().contains(MARKER) {
            return Err(bad("{server_uuid} must be in the path"));
        }
        check_path(key, url.path())?;
        Ok(url)
    }

    fn s3(key: &str, rest: &str, creds: &Credentials) -> Result<Self, ConfigError> {
        let url = Self::http_url(key, rest)?;
        let segments: Vec<&str> = url.path().trim_matches('/').split('/').collect();
        if segments.len() < 2 || segments[0].is_empty() || segments[0].contains(MARKER) {
            return Err(invalid(
                key,
                "an S3 template names the bucket, then the path: s3:https://host/bucket/prefix/{server_uuid}",
            ));
        }
        let (Some(id), Some(secret)) = (&creds.s3_access_key_id, &creds.s3_secret_access_key)
        else {
            return Err(invalid(
                "s3_access_key_id",
                "an S3 repository needs s3_access_key_id and s3_secret_access_key (or s3_secret_access_key_file)",
            ));
        };
        let id = Secret::new(id.clone()).map_err(|e| invalid("s3_access_key_id", e.to_string()))?;
        let mut env = vec![
            ("AWS_ACCESS_KEY_ID", id),
            ("AWS_SECRET_ACCESS_KEY", secret.clone()),
        ];
        if let Some(region) = &creds.s3_region {
            if region.is_empty() || has_bad_chars(region) {
                return Err(invalid(
                    "s3_region",
                    "must be a region name such as us-east-1",
                ));
            }
            let region =
                Secret::new(region.clone()).map_err(|e| invalid("s3_region", e.to_string()))?;
            env.push(("AWS_DEFAULT_REGION", region));
        }
        let shown =
            format!("s3:{}", url.as_str().trim_end_matches('/')).replace(MARKER, PLACEHOLDER);
        Ok(Self {
            kind: StoreKind::S3,
            repository: secret_of(&shown)?,
            shown,
            access: Arc::new(Access {
                scrub: vec![secret.clone()],
                env,
                ..Access::default()
            }),
        })
    }

    fn sftp(key: &str, rest: &str, creds: &Credentials) -> Result<Self, ConfigError> {
        let form = || {
            invalid(
                key,
                "an SFTP template looks like sftp:user@host:/path/{server_uuid} or sftp://user@host:port//path/{server_uuid}",
            )
        };
        // Either `//user@host[:port]/path` or `user@host:path`.
        let (user, host, port, path) = if let Some(url) = rest.strip_prefix("//") {
            let (authority, path) = url.split_once('/').ok_or_else(form)?;
            let (user, hostport) = authority.split_once('@').ok_or_else(form)?;
            let (host, port) = match hostport.rsplit_once(':') {
                Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
                    let port: u16 = p.parse().map_err(|_| form())?;
                    (h, Some(port))
                }
                _ => (hostport, None),
            };
            (user, host, port, path)
        } else {
            let (user, hostpath) = rest.split_once('@').ok_or_else(form)?;
            let (host, path) = hostpath.split_once(':').ok_or_else(form)?;
            (user, host, None, path)
        };
        let name_ok = |s: &str| {
            !s.is_empty()
                && !s.starts_with('-')
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-[]:".contains(&b))
        };
        if !name_ok(user) || user.contains(':') || !name_ok(host) || !path.contains(PLACEHOLDER) {
            return Err(form());
        }
        check_path(key, &path.replace(PLACEHOLDER, MARKER))?;
        let (Some(key_file), Some(known_hosts)) =
            (&creds.sftp_key_file, &creds.sftp_known_hosts_file)
        else {
            return Err(invalid(
                "sftp_key_file",
                "an SFTP repository needs sftp_key_file and sftp_known_hosts_file (the server's host key is always checked)",
            ));
        };
        for (name, file) in [
            ("sftp_key_file", key_file),
            ("sftp_known_hosts_file", known_hosts),
        ] {
            let text = file.to_str().unwrap_or(" ");
            if !file.is_absolute() || has_bad_chars(text) {
                return Err(invalid(
                    name,
                    "must be an absolute path without spaces or quotes",
                ));
            }
            if !file.is_file() {
                return Err(invalid(name, format!("{} is not a file", file.display())));
            }
        }
        let mut command = vec![
            "ssh".to_owned(),
            "-F".into(),
            "/dev/null".into(),
            "-i".into(),
            key_file.display().to_string(),
            "-o".into(),
            "IdentitiesOnly=yes".into(),
            "-o".into(),
            "BatchMode=yes".into(),
            "-o".into(),
            "StrictHostKeyChecking=yes".into(),
            "-o".into(),
            format!("UserKnownHostsFile={}", known_hosts.display()),
            "-o".into(),
            "ServerAliveInterval=15".into(),
            "-o".into(),
            "ServerAliveCountMax=4".into(),
        ];
        if let Some(port) = port {
            command.extend(["-p".into(), port.to_string()]);
        }
        command.extend([
            "-l".into(),
            user.to_owned(),
            "-s".into(),
            "--".into(),
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            "sftp".into(),
        ]);
        let shown = format!("sftp:{rest}");
        Ok(Self {
            kind: StoreKind::Sftp,
            repository: secret_of(&shown)?,
            shown,
            access: Arc::new(Access {
                env: Vec::new(),
                options: vec![format!("sftp.command={}", command.join(" "))],
                probe: Some(command),
                scrub: Vec::new(),
            }),
        })
    }

    fn rest(key: &str, rest: &str, creds: &Credentials) -> Result<Self, ConfigError> {
        let mut url = Self::http_url(key, rest)?;
        if !url.path().ends_with('/') {
            let path = format!("{}/", url.path());
            url.set_path(&path);
        }
        let shown = format!("rest:{url}").replace(MARKER, PLACEHOLDER);
        match (&creds.rest_username, &creds.rest_password) {
            (Some(user), Some(password)) => {
                // Encoded here: the URL type leaves `%` as it is.
                url.set_username(&userinfo(user))
                    .map_err(|_| invalid("rest_username", "can not be used in a URL"))?;
                url.set_password(Some(&userinfo(password.expose())))
                    .map_err(|_| invalid("rest_password", "can not be used in a URL"))?;
            }
            (None, None) => {}
            _ => {
                return Err(invalid(
                    "rest_username",
                    "rest_username and rest_password (or rest_password_file) go together",
                ));
            }
        }
        let repository = format!("rest:{url}").replace(MARKER, PLACEHOLDER);
        let scrub = match (url.password(), &creds.rest_password) {
            (Some(encoded), Some(raw)) => vec![secret_of(encoded)?, raw.clone()],
            _ => Vec::new(),
        };
        Ok(Self {
            kind: StoreKind::Rest,
            repository: secret_of(&repository)?,
            shown,
            access: Arc::new(Access {
                scrub,
                ..Access::default()
            }),
        })
    }

    fn location(&self, server: &ServerUuid) -> Location {
        let fill = |t: &str| t.replace(PLACEHOLDER, server.as_str());
        let repository = Secret::new(fill(self.repository.expose()))
            .expect("a validated template stays a valid secret");
        Location::Remote(Remote::new(
            fill(&self.shown),
            repository,
            self.access.clone(),
        ))
    }
}

fn secret_of(s: &str) -> Result<Secret, ConfigError> {
    Secret::new(s.to_owned()).map_err(|e| invalid("repository", e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uuid() -> ServerUuid {
        ServerUuid::parse("1f0e2d3c-4b5a-6978-8796-a5b4c3d2e1f0").unwrap()
    }

    fn s3_creds() -> Credentials {
        Credentials {
            s3_access_key_id: Some("GK123".into()),
            s3_secret_access_key: Some(Secret::new("s3-secret-value").unwrap()),
            s3_region: Some("garage".into()),
            ..Credentials::default()
        }
    }

    fn parse(t: &str, c: &Credentials) -> Result<Store, ConfigError> {
        Store::parse("repository", Some(t), Path::new("/srv/restic"), c)
    }

    #[test]
    fn local_is_the_default() {
        let s = Store::parse("repository", None, Path::new("/r"), &Credentials::default()).unwrap();
        assert_eq!(s.shown(), "local");
        assert_eq!(
            s.location(&uuid()).local_path().unwrap(),
            Path::new("/r/1f0e2d3c-4b5a-6978-8796-a5b4c3d2e1f0")
        );
    }

    #[test]
    fn s3_template_fills_the_uuid_and_keeps_keys_out_of_sight() {
        let s = parse(
            "s3:https://s3.example.com/backups/node1/{server_uuid}",
            &s3_creds(),
        )
        .unwrap();
        assert_eq!(
            s.shown(),
            "s3:https://s3.example.com/backups/node1/{server_uuid}"
        );
        let loc = s.location(&uuid());
        assert_eq!(
            loc.display(),
            "s3:https://s3.example.com/backups/node1/1f0e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
        );
        assert!(!format!("{loc:?}").contains("s3-secret-value"));
        assert!(!format!("{s:?}").contains("s3-secret-value"));
    }

    #[test]
    fn bad_templates_are_refused_with_the_reason() {
        let c = s3_creds();
        for (t, why) in [
            ("s3:https://h/bucket/fixed", "exactly once"),
            ("s3:https://h/b/{server_uuid}/{server_uuid}", "exactly once"),
            ("s3:https://h/{server_uuid}", "bucket"),
            ("s3:https://k:s@h/b/{server_uuid}", "credentials"),
            ("s3:ftp://h/b/{server_uuid}", "https://"),
            ("s3:https://{server_uuid}.h/b/x", "path"),
            ("s3:https://h/b/{server_uuid}?x=1", "query"),
            ("ftp:h/{server_uuid}", "start with"),
            ("s3:https://h/b/{server_uuid} -o x", "spaces"),
            ("sftp:host:/p/{server_uuid}", "SFTP template"),
            ("sftp:-oProxyCommand=x@h:/p/{server_uuid}", "SFTP template"),
            ("sftp:u@h:/srv/{server_uuid}/../shared", "no `.` or `..`"),
            ("sftp:u@h:/srv/x#{server_uuid}", "folder of its own"),
            ("sftp://u@h//srv/y?{server_uuid}", "folder of its own"),
            ("sftp:u@h:/srv/{server_uuid}%2F..%2Fz", "folder of its own"),
            ("s3:https://h/b/{server_uuid}%2F..", "folder of its own"),
            ("s3:https://h/b/x{server_uuid}", "folder of its own"),
        ] {
            let e = parse(t, &c).unwrap_err().to_string();
            assert!(e.contains(why), "{t}: {e}");
        }
        let e = parse("s3:https://h/b/{server_uuid}", &Credentials::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("s3_secret_access_key"), "{e}");
    }

    #[test]
    fn rest_credentials_go_into_the_secret_repository_string_only() {
        let c = Credentials {
            rest_username: Some("node 1".into()),
            rest_password: Some(Secret::new("p@ss:word/x%41").unwrap()),
            ..Credentials::default()
        };
        let s = parse("rest:https://backup.example.com:8000/{server_uuid}", &c).unwrap();
        assert_eq!(
            s.shown(),
            "rest:https://backup.example.com:8000/{server_uuid}/"
        );
        let Location::Remote(r) = s.location(&uuid()) else {
            panic!("remote expected")
        };
        assert_eq!(
            r.shown(),
            "rest:https://backup.example.com:8000/1f0e2d3c-4b5a-6978-8796-a5b4c3d2e1f0/"
        );
        assert!(!format!("{r:?}").contains("p@ss"));
        // Every reserved character encoded, `%` too.
        let Store::Remote(rs) = &s else { panic!() };
        assert_eq!(
            rs.repository.expose(),
            "rest:https://node%201:p%40ss%3Aword%2Fx%2541@backup.example.com:8000/{server_uuid}/"
        );
        let e = parse(
            "rest:https://h/{server_uuid}",
            &Credentials {
                rest_username: Some("u".into()),
                ..Credentials::default()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("go together"), "{e}");
    }

    #[test]
    fn a_second_copy_must_be_usable_by_one_restic_process() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "x").unwrap();
        let c = Credentials {
            sftp_key_file: Some(file.clone()),
            sftp_known_hosts_file: Some(file),
            ..s3_creds()
        };
        let s3 = parse("s3:https://h/b/{server_uuid}", &c).unwrap();
        let sftp = parse("sftp:u@h:/p/{server_uuid}", &c).unwrap();
        let rest = parse("rest:https://h/{server_uuid}/", &c).unwrap();
        let local = Store::parse("repository", None, Path::new("/r"), &c).unwrap();
        s3.check_copy(&sftp).unwrap();
        sftp.check_copy(&rest).unwrap();
        local.check_copy(&s3).unwrap();
        for (primary, copy, why) in [
            (&s3, &local, "remote store"),
            (&s3, &s3, "another place"),
            (
                &sftp,
                &parse("sftp:u@other:/p/{server_uuid}", &c).unwrap(),
                "SSH command",
            ),
            (
                &s3,
                &parse(
                    "s3:https://other/b/{server_uuid}",
                    &Credentials {
                        s3_access_key_id: Some("GK999".into()),
                        ..s3_creds()
                    },
                )
                .unwrap(),
                "same keys",
            ),
        ] {
            let e = primary.check_copy(copy).unwrap_err().to_string();
            assert!(e.contains(why), "{e}");
        }
    }

    #[test]
    fn sftp_builds_a_pinned_ssh_command() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("id");
        let known = dir.path().join("known_hosts");
        std::fs::write(&key, "k").unwrap();
        std::fs::write(&known, "h").unwrap();
        let c = Credentials {
            sftp_key_file: Some(key.clone()),
            sftp_known_hosts_file: Some(known.clone()),
            ..Credentials::default()
        };
        for t in [
            "sftp:backup@host.example:/srv/restic/{server_uuid}",
            "sftp://backup@host.example:2222//srv/restic/{server_uuid}",
        ] {
            let s = parse(t, &c).unwrap();
            let Store::Remote(r) = &s else { panic!() };
            let option = &r.access.options[0];
            assert!(option.contains("StrictHostKeyChecking=yes"), "{option}");
            assert!(option.contains(&format!("UserKnownHostsFile={}", known.display())));
            assert!(
                option.ends_with("-l backup -s -- host.example sftp"),
                "{option}"
            );
            assert_eq!(t.contains(":2222"), option.contains("-p 2222"), "{option}");
        }
        let e = parse("sftp:u@h:/p/{server_uuid}", &Credentials::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("sftp_known_hosts_file"), "{e}");
    }
}

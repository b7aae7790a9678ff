//! `.pteroignore`-style patterns to restic exclude patterns, and the
//! server's own `.pteroignore`.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::{FileType, Mode, OFlags};

use crate::AgentError;

/// Largest accepted pattern list.
pub const MAX_IGNORE_BYTES: usize = 32 * 1024;

/// One pattern a line; empty lines and `#` comments are skipped. A pattern
/// with a leading `/` is anchored at the server directory (restic matches
/// against absolute paths, so it gets the directory prefixed); others match at
/// any depth, as in `.gitignore`.
pub fn to_excludes(patterns: Option<&str>, server_dir: &Path) -> Result<Vec<String>, AgentError> {
    let Some(text) = patterns else {
        return Ok(Vec::new());
    };
    if text.len() > MAX_IGNORE_BYTES {
        return Err(AgentError::bad_request(
            "invalid_ignore",
            format!("ignore patterns may be at most {MAX_IGNORE_BYTES} bytes"),
        ));
    }
    let root = server_dir.to_string_lossy();
    let root = root.trim_end_matches('/');
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.chars().any(char::is_control) {
            return Err(AgentError::bad_request(
                "invalid_ignore",
                "ignore patterns may not contain control characters",
            ));
        }
        let (negate, pattern) = match line.strip_prefix('!') {
            Some(rest) => ("!", rest),
            None => ("", line),
        };
        let pattern = pattern.trim_end_matches('/');
        if pattern.is_empty() {
            continue;
        }
        if let Some(anchored) = pattern.strip_prefix('/') {
            out.push(format!("{negate}{root}/{anchored}"));
        } else {
            out.push(format!("{negate}{pattern}"));
        }
    }
    Ok(out)
}

/// Whether `excludes` (as [`to_excludes`] made them for `server_dir`) leave
/// nothing of a non-empty server directory: every top-level entry is
/// excluded by a pattern that names it. Only sure cases count: with any `!`
/// pattern, or patterns of several path parts, the answer is no.
/// Whether the server directory has no entries at all (restic refuses to
/// save a snapshot of nothing). An unreadable directory is not "empty".
pub fn is_empty_dir(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_none())
}

pub fn excludes_everything(excludes: &[String], server_dir: &Path) -> bool {
    if excludes.is_empty() || excludes.iter().any(|p| p.starts_with('!')) {
        return false;
    }
    let root = server_dir.to_string_lossy();
    let root = root.trim_end_matches('/');
    // The last part each pattern must match; `None`: it may not exclude a
    // top-level entry as a whole.
    let parts: Vec<&str> = excludes
        .iter()
        .filter_map(
            |p| match p.strip_prefix(root).and_then(|r| r.strip_prefix('/')) {
                Some(anchored) => Some(anchored),
                None if !p.starts_with('/') => Some(p.as_str()),
                None => None,
            },
        )
        .filter(|p| !p.contains('/'))
        .collect();
    let Ok(entries) = std::fs::read_dir(server_dir) else {
        return false;
    };
    let mut any = false;
    // The check may cost at most this much; past it the answer is "not sure".
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(200);
    for (i, entry) in entries.flatten().enumerate() {
        if i >= 10_000 {
            return false;
        }
        any = true;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let mut hit = false;
        for p in &parts {
            if std::time::Instant::now() > deadline {
                return false;
            }
            if *p == "**" || glob(p, &name) {
                hit = true;
                break;
            }
        }
        if !hit {
            return false;
        }
    }
    any
}

/// Go's `filepath.Match` for one path part: `*`, `?`, `[abc]`, `[a-z]`,
/// `[^a]`, and `\` escapes. Both sides may come from a tenant, so this is
/// the linear-backtracking wildcard match (only the last `*` is retried),
/// O(pattern × name) at worst, never exponential.
fn glob(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if p.get(pi) == Some(&'*') {
            star = Some((pi, ni));
            pi += 1;
            continue;
        }
        if let Some(len) = token_matches(&p[pi..], n[ni]) {
            pi += len;
            ni += 1;
            continue;
        }
        match star {
            Some((sp, sn)) => {
                pi = sp + 1;
                ni = sn + 1;
                star = Some((sp, sn + 1));
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Whether the first token of `p` (a literal, `?`, `\x` or `[class]`)
/// matches `c`; its length in the pattern if so.
fn token_matches(p: &[char], c: char) -> Option<usize> {
    match p.first()? {
        '*' => None,
        '?' => Some(1),
        '\\' => (p.get(1) == Some(&c)).then_some(2),
        '[' => {
            let mut i = 1;
            let negate = p.get(1) == Some(&'^');
            if negate {
                i += 1;
            }
            // Classes Go calls bad patterns (`[]`, `[]a]`, `[-a]`, `[a-]`)
            // match nothing here: "not sure", never a refusal.
            if matches!(p.get(i), Some(']' | '-')) {
                return None;
            }
            let mut hit = false;
            loop {
                let ch = *p.get(i)?;
                if ch == ']' {
                    break;
                }
                let lo = if ch == '\\' {
                    i += 1;
                    *p.get(i)?
                } else {
                    ch
                };
                i += 1;
                if p.get(i) == Some(&'-') && p.get(i + 1) == Some(&']') {
                    return None;
                }
                let hi = if p.get(i) == Some(&'-') && p.get(i + 1).is_some_and(|x| *x != ']') {
                    i += 1;
                    let h = if p[i] == '\\' {
                        i += 1;
                        *p.get(i)?
                    } else {
                        p[i]
                    };
                    i += 1;
                    h
                } else {
                    lo
                };
                hit |= lo <= c && c <= hi;
            }
            (hit != negate).then_some(i + 1)
        }
        lit => (*lit == c).then_some(1),
    }
}

/// The file in a server's root whose patterns apply when a backup request
/// brings none (as Wings does).
pub const SERVER_IGNORE_FILE: &str = ".pteroignore";

/// Reads the server's own `.pteroignore`. The tenant controls it, so it is
/// opened relative to the server directory without following a symlink
/// (neither the directory nor the file may be one), only a regular file is
/// read (a FIFO or device never blocks the backup), and one larger than
/// [`MAX_IGNORE_BYTES`] is skipped like Wings skips it. `None` when there is
/// nothing usable.
pub fn read_server_ignore(server_dir: &Path) -> std::io::Result<Option<String>> {
    let nofollow = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let dir: OwnedFd = rustix::fs::openat(
        rustix::fs::CWD,
        server_dir,
        nofollow | OFlags::DIRECTORY,
        Mode::empty(),
    )?;
    let file = match rustix::fs::openat(
        &dir,
        SERVER_IGNORE_FILE,
        nofollow | OFlags::NONBLOCK | OFlags::NOCTTY,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT | rustix::io::Errno::LOOP) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let stat = rustix::fs::fstat(&file)?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
        return Ok(None);
    }
    if stat.st_size as u64 > MAX_IGNORE_BYTES as u64 {
        tracing::warn!(server_dir = %server_dir.display(), size = stat.st_size, "the server's .pteroignore is too large; ignoring it");
        return Ok(None);
    }
    let mut text = Vec::new();
    std::fs::File::from(file)
        .take(MAX_IGNORE_BYTES as u64)
        .read_to_end(&mut text)?;
    Ok(Some(String::from_utf8_lossy(&text).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_like_go() {
        for (p, n) in [
            ("*", "world"),
            ("w*d", "world"),
            ("?orld", "world"),
            ("[a-z]*", "x"),
            ("[^0-9]", "a"),
            ("a\\*", "a*"),
        ] {
            assert!(glob(p, n), "{p} {n}");
        }
        for (p, n) in [
            ("w*x", "world"),
            ("?", "ab"),
            ("[0-9]", "a"),
            ("[^a]", "a"),
            ("a\\*", "ab"),
        ] {
            assert!(!glob(p, n), "{p} {n}");
        }
        for (p, n) in [
            ("*a*", "banana"),
            ("b*n*a", "banana"),
            ("*", ""),
            ("a*b*c", "aXbYbZc"),
        ] {
            assert!(glob(p, n), "{p} {n}");
        }
        // Classes Go refuses as bad patterns match nothing.
        for p in ["[]a]", "[-a]", "[a-]", "[", "[a", "x\\"] {
            for n in ["a", "]", "-", "x", "[", "x\\"] {
                assert!(!glob(p, n), "{p} {n}");
            }
        }
        // A tenant's worst case stays fast.
        let (p, n) = (format!("{}b", "*a".repeat(40)), "a".repeat(255));
        let started = std::time::Instant::now();
        assert!(!glob(&p, &n));
        assert!(started.elapsed() < std::time::Duration::from_millis(100));
    }

    #[test]
    fn only_sure_cases_exclude_everything() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("srv");
        std::fs::create_dir_all(dir.join("world")).unwrap();
        std::fs::write(dir.join("server.jar"), "x").unwrap();
        let ex = |text: &str| to_excludes(Some(text), &dir).unwrap();
        assert!(excludes_everything(&ex("*"), &dir));
        assert!(excludes_everything(&ex("/*"), &dir));
        assert!(excludes_everything(&ex("world\n*.jar"), &dir));
        assert!(!excludes_everything(&ex("world"), &dir));
        assert!(!excludes_everything(&ex("*\n!server.jar"), &dir));
        assert!(!excludes_everything(&ex("world/*\n*.jar"), &dir));
        assert!(!excludes_everything(&[], &dir));
        let empty = t.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        assert!(!excludes_everything(&ex("*"), &empty));
    }

    #[test]
    fn server_ignore_is_read_only_from_a_regular_file() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("srv");
        std::fs::create_dir(&dir).unwrap();
        assert_eq!(read_server_ignore(&dir).unwrap(), None);
        std::fs::write(dir.join(".pteroignore"), "logs/\n").unwrap();
        assert_eq!(
            read_server_ignore(&dir).unwrap().as_deref(),
            Some("logs/\n")
        );

        // A link to a host file is not read.
        std::fs::write(t.path().join("host-secret"), "secret").unwrap();
        std::fs::remove_file(dir.join(".pteroignore")).unwrap();
        std::os::unix::fs::symlink(t.path().join("host-secret"), dir.join(".pteroignore")).unwrap();
        assert_eq!(read_server_ignore(&dir).unwrap(), None);

        // A FIFO does not block, a huge file is skipped.
        std::fs::remove_file(dir.join(".pteroignore")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            dir.join(".pteroignore"),
            FileType::Fifo,
            Mode::RUSR | Mode::WUSR,
            0,
        )
        .unwrap();
        assert_eq!(read_server_ignore(&dir).unwrap(), None);
        std::fs::remove_file(dir.join(".pteroignore")).unwrap();
        std::fs::write(dir.join(".pteroignore"), "x\n".repeat(MAX_IGNORE_BYTES)).unwrap();
        assert_eq!(read_server_ignore(&dir).unwrap(), None);

        // A server directory that is a link is not entered.
        let link = t.path().join("link");
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        assert!(read_server_ignore(&link).is_err());
    }

    #[test]
    fn anchors_leading_slash_and_skips_comments() {
        let got = to_excludes(
            Some("# logs\n/logs/\n\n*.tmp\n!keep.tmp\n  cache/  \n"),
            Path::new("/srv/v/abc/"),
        )
        .unwrap();
        assert_eq!(got, ["/srv/v/abc/logs", "*.tmp", "!keep.tmp", "cache"]);
    }

    #[test]
    fn refuses_control_characters_and_huge_lists() {
        assert!(to_excludes(Some("a\u{7}b"), Path::new("/s")).is_err());
        assert!(to_excludes(Some(&"a\n".repeat(20_000)), Path::new("/s")).is_err());
        assert!(to_excludes(None, Path::new("/s")).unwrap().is_empty());
    }
}

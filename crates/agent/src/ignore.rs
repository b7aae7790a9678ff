//! `.pteroignore`-style patterns to restic exclude patterns.

use std::path::Path;

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

#[cfg(test)]
mod tests {
    use super::*;

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

//! Nothing secret-looking is part of the source tree: no private keys, no
//! restic repositories, no databases, no state or secret files of a demo or
//! a test run. (A demo folder with a node token and a repository key was
//! once committed; this keeps it from happening again.)

use std::path::{Path, PathBuf};

/// Folders that are build output or local runs, ignored by git.
const SKIPPED: [&str; 5] = ["target", ".git", "restic-backups-demo", "demo-data", "work"];

fn files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                if !SKIPPED.contains(&name.as_str()) {
                    stack.push(path);
                }
            } else if meta.is_file() {
                out.push(path);
            }
        }
    }
    out
}

/// Why `path` looks secret, if it does.
fn secret_looking(path: &Path) -> Option<&'static str> {
    let name = path.file_name()?.to_string_lossy().into_owned();
    let parent = path.parent()?;
    if name.ends_with(".db") || name.ends_with(".db-wal") || name.ends_with(".sqlite") {
        return Some("a database");
    }
    if matches!(
        name.as_str(),
        "demo-secrets.toml" | "panel.secret" | "secret" | "token" | "key" | "headers"
    ) {
        return Some("a secret file");
    }
    if name == "config" && parent.join("keys").is_dir() && parent.join("data").is_dir() {
        return Some("a restic repository");
    }
    if name.ends_with(".json") && parent.ends_with("jobs") {
        return Some("agent state");
    }
    let bytes = std::fs::read(path).ok()?;
    let text = String::from_utf8_lossy(&bytes);
    // Spelled in two parts so this file does not match itself.
    let marker = ["PRIVATE", "KEY-----"].join(" ");
    if text.contains("-----BEGIN") && text.contains(&marker) {
        return Some("a private key");
    }
    None
}

#[test]
fn the_source_tree_holds_nothing_secret_looking() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let root = root.canonicalize().unwrap();
    let all = files(&root);
    assert!(
        all.len() > 50,
        "the tree walk found too little: {}",
        all.len()
    );
    let found: Vec<String> = all
        .iter()
        .filter_map(|p| {
            secret_looking(p)
                .map(|why| format!("{}: {why}", p.strip_prefix(&root).unwrap().display()))
        })
        .collect();
    assert!(
        found.is_empty(),
        "secret-looking files in the tree:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_check_recognises_what_it_looks_for() {
    let t = tempfile::tempdir().unwrap();
    let repo = t.path().join("repo");
    for d in ["keys", "data"] {
        std::fs::create_dir_all(repo.join(d)).unwrap();
    }
    std::fs::write(repo.join("config"), "x").unwrap();
    std::fs::write(t.path().join("panel.db"), "x").unwrap();
    let label = ["EC", "PRIVATE", "KEY"].join(" ");
    std::fs::write(
        t.path().join("k.pem"),
        format!("-----BEGIN {label}-----\nAAAA\n-----END {label}-----\n"),
    )
    .unwrap();
    std::fs::write(t.path().join("fine.rs"), "fn main() {}").unwrap();
    let mut hits: Vec<&str> = files(t.path())
        .iter()
        .filter_map(|p| secret_looking(p))
        .collect();
    hits.sort();
    assert_eq!(hits, ["a database", "a private key", "a restic repository"]);
}

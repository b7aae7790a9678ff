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

/// The Rust sources under `dir` (relative to the workspace), with their text.
fn sources(dir: &str) -> Vec<(PathBuf, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(dir);
    files(&root)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (p, text)
        })
        .collect()
}

/// Which of `needles` the sources under `dir` name, with the file.
fn naming(dir: &str, needles: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for (path, text) in sources(dir) {
        for needle in needles {
            if text.contains(needle) {
                found.push(format!("{} names {needle}", path.display()));
            }
        }
    }
    found
}

#[test]
fn the_layers_keep_to_their_part() {
    // Only the panel's storage modules know SQL.
    let mut wrong = Vec::new();
    for (path, text) in sources("crates/panel/src") {
        let in_storage = path.components().any(|c| c.as_os_str() == "storage");
        if !in_storage && (text.contains("sqlx::") || text.contains("use sqlx")) {
            wrong.push(format!("{} uses sqlx outside storage", path.display()));
        }
    }
    // Every write tells the panel's read cache (storage/cache.rs): a
    // statement through `run_on`/`insert_returning`, a transaction through
    // `Storage::commit`; `&self.pool` straight is for reads.
    wrong.extend(unannounced_writes("crates/panel/src/storage"));
    // The web layer reaches data only through services that take the
    // capability its extractors produced, and never claims the operator's.
    wrong.extend(naming(
        "crates/panel/src/web",
        &["Operator", ".storage()", ".admin()", "Storage::"],
    ));
    // The binary holds no raw database handle: the operator's commands go
    // through `Admin`, which an `Operator` opens.
    wrong.extend(naming(
        "crates/restic-backups/src",
        &["panel::storage::Storage", "Storage::connect", "use sqlx"],
    ));
    // Only the engine runs restic (the agent's test that compares its
    // retention plan with restic's own is a test, not a path to restic).
    for dir in [
        "crates/agent/src",
        "crates/panel/src",
        "crates/restic-backups/src",
    ] {
        wrong.extend(
            naming(
                dir,
                &["Command::new(", "tokio::process", "std::process::Command"],
            )
            .into_iter()
            .filter(|w| !w.contains("retention_vs_restic.rs")),
        );
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// Writes in the panel's storage modules that would not tell its read
/// cache (all but mod.rs, which defines the ways that do).
fn unannounced_writes(dir: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (path, text) in sources(dir) {
        if path
            .file_name()
            .is_some_and(|n| n == "mod.rs" || n == "migrate.rs")
        {
            continue;
        }
        for needle in [".execute(&self.pool)", ".commit()"] {
            if text.contains(needle) {
                found.push(format!("{} writes with {needle}", path.display()));
            }
        }
        for (at, _) in text.match_indices("RETURNING") {
            let rest = &text[at..];
            let statement = &rest[..rest.find(".await").unwrap_or(rest.len())];
            if statement.contains("&self.pool") {
                found.push(format!(
                    "{} has an INSERT … RETURNING on the pool",
                    path.display()
                ));
            }
        }
    }
    found
}

#[test]
fn the_write_check_sees_an_unannounced_write() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("storage");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(
        dir.join("x.rs"),
        "fn a() { q.execute(&self.pool).await; }\n\
         fn b() { sqlx::query(\"INSERT INTO t VALUES (1) RETURNING id\").fetch_one(&self.pool).await; }\n\
         fn c() { tx.commit().await; }\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("y.rs"),
        "fn a() { q.run_on(self).await; self.commit(tx).await; }\n\
         fn b() { sqlx::query(\"INSERT INTO t VALUES (1) RETURNING id\").insert_returning(self).await; }\n",
    )
    .unwrap();
    let found = unannounced_writes(dir.to_str().unwrap());
    assert_eq!(found.len(), 3, "{found:#?}");
    assert!(found.iter().all(|f| f.contains("x.rs")), "{found:#?}");
}

#[test]
fn the_layer_check_sees_a_violation() {
    let found = naming("crates/panel/src/storage", &["sqlx::"]);
    assert!(!found.is_empty(), "the scan found no sqlx in storage");
}

/// The names under `table` (`[dependencies]`, `[dev-dependencies]`) of a
/// crate's manifest, but those after a `# feature-only:` comment (declared
/// to choose a feature of another crate's dependency, named by no code).
fn dependencies(manifest: &str, table: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut inside = false;
    let mut exempt = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            inside = line == table;
            continue;
        }
        if line.starts_with("# feature-only:") {
            exempt = true;
            continue;
        }
        if std::mem::take(&mut exempt) {
            continue;
        }
        if inside && !line.is_empty() && !line.starts_with('#') {
            let name = line
                .split(['.', '=', ' '])
                .next()
                .unwrap_or_default()
                .to_owned();
            out.push(name);
        }
    }
    out
}

/// The dependencies `manifest` declares under `table` that `text` never
/// names.
fn unused_in(manifest: &str, table: &str, text: &str) -> Vec<String> {
    dependencies(manifest, table)
        .into_iter()
        .filter(|name| {
            let ident = name.replace('-', "_");
            ![
                format!("{ident}::"),
                format!("use {ident}"),
                format!("{ident} as "),
            ]
            .iter()
            .any(|needle| text.contains(needle.as_str()))
        })
        .collect()
}

/// Dependencies a crate declares and its sources never name: normal ones
/// in `src/`, dev-only ones in `src/` (unit tests), `tests/` or `benches/`.
fn unused_dependencies(dir: &str) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let manifest = std::fs::read_to_string(root.join(dir).join("Cargo.toml")).unwrap();
    let text_of = |subdirs: &[&str]| -> String {
        subdirs
            .iter()
            .filter(|sub| root.join(dir).join(sub).is_dir())
            .flat_map(|sub| sources(&format!("{dir}/{sub}")))
            .map(|(_, t)| t)
            .collect()
    };
    let src = text_of(&["src"]);
    let dev = text_of(&["src", "tests", "benches"]);
    let mut out = Vec::new();
    for (table, text) in [("[dependencies]", &src), ("[dev-dependencies]", &dev)] {
        out.extend(
            unused_in(&manifest, table, text)
                .into_iter()
                .map(|name| format!("{dir} declares {name} in {table} and never uses it")),
        );
    }
    out
}

#[test]
fn every_declared_dependency_is_used() {
    let mut unused = Vec::new();
    for dir in [
        "crates/api",
        "crates/settings",
        "crates/httpd",
        "crates/engine",
        "crates/agent",
        "crates/panel",
        "crates/restic-backups",
        "crates/testkit",
    ] {
        unused.extend(unused_dependencies(dir));
    }
    assert!(unused.is_empty(), "{unused:#?}");
}

#[test]
fn the_dependency_check_sees_an_unused_one() {
    let manifest = "[package]\nname = \"x\"\n\n[dependencies]\napi.workspace = true\n# feature-only: picks a backend\nflate2.workspace = true\nrustix = { workspace = true, features = [\"process\"] }\n\n[dev-dependencies]\ntempfile.workspace = true\n";
    assert_eq!(dependencies(manifest, "[dependencies]"), ["api", "rustix"]);
    assert_eq!(dependencies(manifest, "[dev-dependencies]"), ["tempfile"]);
    // A declared dependency no source names is found; one named is not.
    let text = "use api::Secret;\nfn f() { rustix::process::getpid(); }";
    assert_eq!(
        unused_in(manifest, "[dependencies]", text),
        Vec::<String>::new()
    );
    assert_eq!(
        unused_in(manifest, "[dependencies]", "use api::Secret;"),
        ["rustix"]
    );
    assert_eq!(
        unused_in(manifest, "[dev-dependencies]", text),
        ["tempfile"]
    );
}

/// The first argument of each `.route(` call in a router's source that is a
/// string literal.
fn literal_routes(text: &str) -> Vec<String> {
    text.split(".route(")
        .skip(1)
        .filter_map(|rest| {
            let rest = rest.trim_start();
            let rest = rest.strip_prefix('"')?;
            Some(rest[..rest.find('"')?].to_owned())
        })
        .collect()
}

#[test]
fn routers_mount_only_documented_paths() {
    // Every API path comes from api::routes (and so is in the OpenAPI
    // documents); literals are only the panel's HTML pages and assets.
    let pages = [
        "/",
        "/login",
        "/servers/{server}",
        "/admin",
        "/admin/{section}",
        "/static/app.css",
        "/static/app.js",
    ];
    for dir in ["crates/panel/src/web", "crates/agent/src/web"] {
        for (path, text) in sources(dir) {
            for route in literal_routes(&text) {
                assert!(
                    dir.contains("panel") && pages.contains(&route.as_str()),
                    "{} mounts {route:?}: take it from api::routes so the OpenAPI document lists it",
                    path.display()
                );
            }
        }
    }
    assert_eq!(
        literal_routes(".route(\"/x\", get(a)).route(route::Y, get(b)).route(\n \"/z\", f)"),
        ["/x", "/z"]
    );
}

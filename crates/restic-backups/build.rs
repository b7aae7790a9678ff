//! Puts the git commit this binary is built from into `--version`
//! (`RESTIC_BACKUPS_COMMIT`: from git, or from that environment variable
//! when packaging outside a checkout; else `unknown`).

use std::process::Command;

fn main() {
    let given = std::env::var("RESTIC_BACKUPS_COMMIT").ok();
    let commit = given
        .filter(|s| !s.is_empty() && s.len() <= 40 && s.bytes().all(|b| b.is_ascii_hexdigit()))
        .or_else(|| {
            Command::new("git")
                .args(["rev-parse", "--short=12", "HEAD"])
                .output()
                .ok()
                .filter(|o| o.status.success())
                .and_then(|o| String::from_utf8(o.stdout).ok())
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit()))
        })
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=RESTIC_BACKUPS_COMMIT={commit}");
    // A new commit (HEAD or the branch it names moved) rebuilds the string.
    for path in [
        "../../.git/HEAD",
        "../../.git/refs/heads",
        "../../.git/packed-refs",
    ] {
        if std::path::Path::new(path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    println!("cargo:rerun-if-env-changed=RESTIC_BACKUPS_COMMIT");
}

//! Crash injection for the tests that prove crash safety. Set
//! `RESTIC_BACKUPS_AGENT_FAILPOINT=<name>` and the agent aborts (as a power
//! cut would stop it) when it reaches the point of that name, or, for a
//! point asked with [`fails`], that step fails. Unset in production: a
//! single environment lookup at start, then nothing.

use std::sync::OnceLock;

fn armed() -> Option<&'static str> {
    static POINT: OnceLock<Option<String>> = OnceLock::new();
    POINT
        .get_or_init(|| std::env::var("RESTIC_BACKUPS_AGENT_FAILPOINT").ok())
        .as_deref()
}

/// Aborts the process if the failpoint `name` is armed.
pub fn hit(name: &str) {
    if armed() == Some(name) {
        tracing::error!(failpoint = name, "failpoint reached; aborting");
        std::process::abort();
    }
}

/// Whether the step `name` should fail (its caller returns an error).
pub fn fails(name: &str) -> bool {
    let fail = armed() == Some(name);
    if fail {
        tracing::error!(failpoint = name, "failpoint reached; failing this step");
    }
    fail
}

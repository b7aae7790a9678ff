//! The panel's HTTP API against a real agent and real restic, on SQLite and
//! on PostgreSQL: the authorization matrix, CSRF and sessions, bad input,
//! the whole backup story end to end, and a scan of every response and log
//! line for node tokens and server keys.

mod authorization;
mod bad_input;
mod changes;
mod end_to_end;
mod sessions;

use authorization::authorization_matrix;
use bad_input::bad_input;
use changes::changes_show_on_the_next_request;
use end_to_end::end_to_end;
use sessions::sessions_and_csrf;

use testkit::panel::{Db, TestPanel};
use testkit::{TOKEN, TestAgent};

pub(crate) const API: &str = "/extensions/resticbackups";

pub(crate) fn backups(server: &str) -> String {
    format!("{API}/servers/{server}/backups/restic")
}

/// Asserts that no response body (except the admin keys page) and no log
/// line holds the node token or any server key.
pub(crate) fn assert_no_secrets(panel: &TestPanel, agent: &TestAgent, keys: &[String]) {
    let mut secrets: Vec<&str> = keys.iter().map(String::as_str).collect();
    secrets.push(TOKEN);
    let seen = panel.seen.lock().unwrap();
    assert!(seen.len() > 10, "too few responses recorded");
    for (path, body) in seen.iter() {
        if path == &format!("{API}/admin/keys") {
            continue;
        }
        for s in &secrets {
            assert!(!body.contains(s), "a secret leaked in the answer to {path}");
        }
    }
    for (name, log) in [("panel", panel.log()), ("agent", agent.log())] {
        assert!(log.contains("DEBUG"), "{name} log is not at debug level");
        for s in &secrets {
            assert!(!log.contains(s), "a secret leaked into the {name} log");
        }
    }
}

testkit::on_both_databases!(
    authorization_matrix,
    changes_show_on_the_next_request,
    sessions_and_csrf,
    bad_input,
    end_to_end
);

//! `import extension`: carries an install of the PHP/Go extension over from
//! Pterodactyl's MySQL/MariaDB database, and prints what it did (or, with
//! `--dry-run`, would do) and a summary table.

use anyhow::Context;
use std::io::Read;
use std::path::PathBuf;

use api::Secret;
use clap::Subcommand;
use panel::Panel;
use panel::permissions::Operator;
use panel::service::import::{ImportReport, KeyOutcome, PolicyOutcome};

#[derive(Subcommand)]
pub enum ImportCommand {
    /// Read the extension's tables (keys, key history, schedules and
    /// retention, legacy schedules, notes, job history) from Pterodactyl's
    /// database and carry them over. Never writes to that database. The
    /// servers must be known here already (Pterodactyl sync or `server add`).
    Extension {
        /// Pterodactyl's database, without a password:
        /// mysql://user@host:3306/panel
        #[arg(long, value_name = "URL")]
        mysql_url: String,
        /// A file holding the database password (first line).
        #[arg(long, value_name = "FILE", conflicts_with = "mysql_password_stdin")]
        mysql_password_file: Option<PathBuf>,
        /// Read the database password from standard input (first line).
        #[arg(long)]
        mysql_password_stdin: bool,
        /// Check everything (keys included) and print what would change;
        /// write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Allow a database on another host: the connection has no TLS, so
        /// the password and keys cross the network readable (prefer an SSH
        /// tunnel to 127.0.0.1).
        #[arg(long)]
        mysql_insecure_transport: bool,
    },
}

fn first_line(raw: &str, what: &str) -> anyhow::Result<Secret> {
    let line = raw.lines().next().unwrap_or("");
    Secret::new(line).with_context(|| format!("the {what}"))
}

fn password(file: Option<PathBuf>, stdin: bool) -> anyhow::Result<Option<Secret>> {
    if let Some(path) = file {
        let raw = std::fs::read_to_string(&path)
            .with_context(|| format!("could not read {}", path.display()))?;
        return first_line(&raw, "password file").map(Some);
    }
    if stdin {
        let mut raw = String::new();
        std::io::stdin()
            .take(4096)
            .read_to_string(&mut raw)
            .context("could not read the password from standard input")?;
        return first_line(&raw, "password on standard input").map(Some);
    }
    Ok(None)
}

pub async fn run(panel: &Panel, cmd: ImportCommand) -> anyhow::Result<()> {
    let ImportCommand::Extension {
        mysql_url,
        mysql_password_file,
        mysql_password_stdin,
        dry_run,
        mysql_insecure_transport,
    } = cmd;
    let password = password(mysql_password_file, mysql_password_stdin)?;
    let source = panel::storage::extension::read_extension(
        &mysql_url,
        password.as_ref(),
        mysql_insecure_transport,
    )
    .await?;
    let report = panel
        .import_extension(&Operator::at_the_host_shell(), &source, dry_run)
        .await?;
    print!("{}", render(&report));
    let problems = report.problem_count();
    if problems > 0 {
        return Err(anyhow::anyhow!("{problems} problems (listed above)"));
    }
    Ok(())
}

fn key_text(k: &KeyOutcome, dry_run: bool) -> String {
    match k {
        KeyOutcome::Imported { moved: Some(from) } if dry_run => {
            format!(
                "key would be imported (it opens the repository {from}, which would be moved into place)"
            )
        }
        KeyOutcome::None => "no key".into(),
        KeyOutcome::Unchanged => "key unchanged".into(),
        KeyOutcome::Imported { moved: None } => "key imported (it opens the repository)".into(),
        KeyOutcome::Imported { moved: Some(from) } => {
            format!("key imported (it opens the repository {from}, moved into place)")
        }
        KeyOutcome::ImportedNoRepository => "key imported (no repository yet)".into(),
        KeyOutcome::WrongKey => "KEY DOES NOT OPEN THE REPOSITORY: not imported".into(),
        KeyOutcome::Unchecked(why) => format!("key not checked ({}): not imported", shown(why)),
    }
}

/// Text from the databases, for a terminal: control characters (which
/// could rewrite what the operator sees) become `?`.
fn shown(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// The report as printed: one block per server, then the summary table.
pub fn render(r: &ImportReport) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let will = if r.dry_run {
        "would import"
    } else {
        "imported"
    };
    let _ = writeln!(o, "tables found:");
    for (t, n) in &r.tables {
        let _ = writeln!(o, "  {t}: {n} rows");
    }
    for s in &r.servers {
        let _ = writeln!(o, "server {} ({})", s.uuid, shown(&s.name));
        let _ = writeln!(o, "  {}", key_text(&s.key, r.dry_run));
        if s.history_added > 0 {
            let _ = writeln!(o, "  earlier keys: {will} {}", s.history_added);
        }
        match (&s.policy, &s.policy_text) {
            (PolicyOutcome::None, _) => {}
            (PolicyOutcome::Imported(from), Some(t)) => {
                let _ = writeln!(o, "  schedule: {will} from {}: {t}", from.table());
            }
            (PolicyOutcome::Unchanged, _) => {
                let _ = writeln!(o, "  schedule: unchanged");
            }
            (PolicyOutcome::KeptOurs, Some(t)) => {
                let _ = writeln!(
                    o,
                    "  schedule: the one saved in this panel is kept (the extension's: {t})"
                );
            }
            _ => {}
        }
        if s.notes_written > 0 {
            let _ = writeln!(o, "  notes: {will} {}", s.notes_written);
        }
        if s.jobs_written > 0 {
            let _ = writeln!(o, "  job history: {will} {} runs", s.jobs_written);
        }
        for p in &s.problems {
            let _ = writeln!(o, "  problem: {}", shown(p));
        }
    }
    for u in &r.unknown {
        let _ = writeln!(
            o,
            "unknown server {} ({}): not imported; sync Pterodactyl or `server add` it, then import again",
            shown(&u.uuid),
            u.rows.join(", ")
        );
    }
    for p in &r.problems {
        let _ = writeln!(o, "problem: {}", shown(p));
    }

    let count = |f: &dyn Fn(&panel::service::import::ServerReport) -> bool| {
        r.servers.iter().filter(|s| f(s)).count()
    };
    let keys_found = count(&|s| s.key != KeyOutcome::None);
    let keys_imported = count(&|s| {
        matches!(
            s.key,
            KeyOutcome::Imported { .. } | KeyOutcome::ImportedNoRepository
        )
    });
    let keys_same = count(&|s| s.key == KeyOutcome::Unchanged);
    let keys_bad = count(&|s| matches!(s.key, KeyOutcome::WrongKey | KeyOutcome::Unchecked(_)));
    let policies_found = count(&|s| s.policy != PolicyOutcome::None);
    let policies_imported = count(&|s| matches!(s.policy, PolicyOutcome::Imported(_)));
    let policies_same = count(&|s| s.policy == PolicyOutcome::Unchanged);
    let policies_kept = count(&|s| s.policy == PolicyOutcome::KeptOurs);
    let legacy_used = count(&|s| {
        matches!(
            s.policy,
            PolicyOutcome::Imported(panel::import::PolicyFrom::Legacy)
        )
    });
    let history: usize = r.servers.iter().map(|s| s.history_added).sum();
    let notes: usize = r.servers.iter().map(|s| s.notes_written).sum();
    let jobs: usize = r.servers.iter().map(|s| s.jobs_written).sum();

    let _ = writeln!(
        o,
        "\n{} in {} ms{}",
        if r.dry_run {
            "dry run: nothing was written"
        } else {
            "import finished"
        },
        r.duration_ms,
        if r.changes() == 0 {
            "; nothing to change"
        } else {
            ""
        }
    );
    let _ = writeln!(
        o,
        "{:<14}{:>8}{:>10}{:>11}{:>10}",
        "",
        "found",
        if r.dry_run { "to write" } else { "written" },
        "unchanged",
        "problems"
    );
    let mut line = |name: &str, found: usize, written: usize, same: String, bad: usize| {
        let _ = writeln!(o, "{name:<14}{found:>8}{written:>10}{same:>11}{bad:>10}");
    };
    line(
        "servers",
        r.servers.len() + r.unknown.len(),
        r.servers.len(),
        "-".into(),
        r.unknown.len(),
    );
    line(
        "keys",
        keys_found,
        keys_imported,
        keys_same.to_string(),
        keys_bad,
    );
    line("earlier keys", history, history, "-".into(), 0);
    line(
        "schedules",
        policies_found,
        policies_imported,
        format!("{}", policies_same + policies_kept),
        0,
    );
    line("legacy rows", r.legacy_rows, legacy_used, "-".into(), 0);
    line(
        "notes",
        r.notes_found,
        notes,
        (r.notes_found - notes).to_string(),
        0,
    );
    line(
        "job history",
        r.jobs_found,
        jobs,
        (r.jobs_found - jobs).to_string(),
        0,
    );
    let _ = writeln!(
        o,
        "problems: {} (listed above; unknown servers and unusable keys included)",
        r.problem_count()
    );
    o
}

//! The watcher that keeps the read cache ([`super::cache`]) in step with
//! changes other processes make to the database: the admin commands, a
//! second panel on the same PostgreSQL.
//!
//! Migration 10's triggers report every change to the tables the cache
//! reads. On SQLite they move a counter, read here every
//! [`cache::SQLITE_POLL`]; on PostgreSQL they `pg_notify` at commit, heard
//! here through LISTEN, with a heartbeat sent through the pool every
//! [`cache::BEAT`] that must come back (a connection that died silently
//! hears no changes either). Each confirmation vouches for the moment the
//! poll started or the heartbeat was sent; the cache answers for
//! [`cache::TRUST_FOR`] after it, so a watcher that falls behind sends
//! every read to the database. The triggers are checked at every start:
//! with one missing (a later migration rebuilt a table) nothing is
//! trusted, and the log says which.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{Backend, Storage, cache};

/// The tables whose changes the triggers report.
const REPORTED: [&str; 8] = [
    "users",
    "sessions",
    "servers",
    "subusers",
    "nodes",
    "restic",
    "job_history",
    "snapshot_notes",
];
/// PostgreSQL's channel.
const CHANNEL: &str = "restic_backups_changes";
/// A listener silent this long (no heartbeat either) is replaced.
const SILENCE: Duration = Duration::from_secs(5);
/// How long to wait before looking again at missing triggers or an
/// unreachable database.
const RETRY: Duration = Duration::from_secs(5);

/// The trigger names migration 10 made for `backend`.
fn expected_triggers(backend: Backend) -> Vec<String> {
    REPORTED
        .iter()
        .flat_map(|t| match backend {
            Backend::Sqlite => vec![
                format!("{t}_inserted"),
                format!("{t}_updated"),
                format!("{t}_deleted"),
            ],
            Backend::Postgres => vec![format!("{t}_changed"), format!("{t}_truncated")],
        })
        .collect()
}

/// Says once (until `warned` is reset) that the database can not be
/// watched, and why.
fn unwatchable(warned: &mut bool, e: &sqlx::Error) {
    if !*warned {
        tracing::warn!(error = %e, "database changes can not be watched; reading every request from the database");
        *warned = true;
    }
}

/// Distrusts the cache when the watcher ends (aborted with the panel, or
/// failed).
struct DistrustOnDrop(Arc<cache::ReadCache>);

impl Drop for DistrustOnDrop {
    fn drop(&mut self) {
        self.0.distrust();
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Storage {
    /// Keeps the read cache in step with changes other processes make to
    /// the database (see the module documentation); until this runs, and
    /// whenever it has lost the database, every read goes to the database.
    /// Runs until the task is aborted.
    pub fn watch_changes(&self) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let _distrust = DistrustOnDrop(me.cache.clone());
            match me.backend {
                Backend::Sqlite => me.poll_changes().await,
                Backend::Postgres => me.listen_for_changes().await,
            }
        })
    }

    /// The triggers of [`expected_triggers`] that are not there (or, on
    /// PostgreSQL, disabled).
    async fn missing_triggers(&self) -> Result<Vec<String>, sqlx::Error> {
        let sql = match self.backend {
            Backend::Sqlite => "SELECT name FROM sqlite_master WHERE type = 'trigger'",
            Backend::Postgres => {
                "SELECT tgname::text AS name FROM pg_trigger \
                 WHERE NOT tgisinternal AND tgenabled::text <> 'D'"
            }
        };
        let present: Vec<String> = sqlx::query_scalar(sql).fetch_all(&self.pool).await?;
        Ok(expected_triggers(self.backend)
            .into_iter()
            .filter(|t| !present.contains(t))
            .collect())
    }

    /// Waits until every trigger is in place (distrusting meanwhile).
    async fn until_triggers_in_place(&self) {
        let mut warned = false;
        loop {
            match self.missing_triggers().await {
                Ok(missing) if missing.is_empty() => return,
                Ok(missing) => {
                    if !warned {
                        tracing::warn!(
                            ?missing,
                            "change triggers are missing; reading every request from the database"
                        );
                        warned = true;
                    }
                }
                Err(e) => {
                    unwatchable(&mut warned, &e);
                }
            }
            self.cache.distrust();
            tokio::time::sleep(RETRY).await;
        }
    }

    /// SQLite: the counter the triggers move, read every
    /// [`cache::SQLITE_POLL`].
    async fn poll_changes(&self) {
        self.until_triggers_in_place().await;
        let mut last = None;
        let mut warned = false;
        let mut tick = tokio::time::interval(cache::SQLITE_POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let started = Instant::now();
            let read = sqlx::query_scalar::<_, i64>("SELECT n FROM change_epoch WHERE id = 1")
                .fetch_one(&self.pool)
                .await;
            match read {
                Ok(n) => {
                    if last != Some(n) {
                        self.cache.changed();
                        last = Some(n);
                    }
                    self.cache.confirmed(started);
                    warned = false;
                }
                Err(e) => {
                    unwatchable(&mut warned, &e);
                    last = None;
                    self.cache.distrust();
                }
            }
        }
    }

    /// PostgreSQL: LISTEN on the channel the triggers notify, with this
    /// panel's heartbeat.
    async fn listen_for_changes(&self) {
        use sqlx::postgres::PgListener;
        self.until_triggers_in_place().await;
        // Tells this panel's beats from other panels': `beat <tag> <n>`.
        let mut tag = [0u8; 8];
        getrandom::getrandom(&mut tag).expect("the system random number generator failed");
        let mine = format!("beat {} ", api::hex::encode(&tag));
        // When each recent beat was sent.
        let sent: Arc<Mutex<VecDeque<(u64, Instant)>>> = Arc::default();
        let beats = {
            let (pool, mine, sent) = (self.pool.clone(), mine.clone(), sent.clone());
            tokio::spawn(async move {
                for n in 0u64.. {
                    {
                        let mut sent = sent.lock().unwrap_or_else(|p| p.into_inner());
                        if sent.len() >= 64 {
                            sent.pop_front();
                        }
                        sent.push_back((n, Instant::now()));
                    }
                    let _ = sqlx::query("SELECT pg_notify($1, $2)")
                        .bind(CHANNEL)
                        .bind(format!("{mine}{n}"))
                        .execute(&pool)
                        .await;
                    tokio::time::sleep(cache::BEAT).await;
                }
            })
        };
        let _stop_beats = AbortOnDrop(beats);
        let sent_at = |payload: &str| {
            let n: u64 = payload.strip_prefix(&mine)?.parse().ok()?;
            let sent = sent.lock().unwrap_or_else(|p| p.into_inner());
            sent.iter().find(|(m, _)| *m == n).map(|(_, at)| *at)
        };
        let mut warned = false;
        loop {
            let listener = async {
                let mut l = PgListener::connect(&self.url).await?;
                l.listen(CHANNEL).await?;
                Ok::<_, sqlx::Error>(l)
            };
            let mut listener = match listener.await {
                Ok(l) => l,
                Err(e) => {
                    unwatchable(&mut warned, &e);
                    self.cache.distrust();
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
            };
            warned = false;
            // What was held before the LISTEN may have missed a change.
            self.cache.changed();
            loop {
                match tokio::time::timeout(SILENCE, listener.try_recv()).await {
                    Ok(Ok(Some(n))) if n.payload().starts_with("beat ") => {
                        // Ours vouches for its sending; other panels'
                        // beats say nothing.
                        if let Some(at) = sent_at(n.payload()) {
                            self.cache.confirmed(at);
                        }
                    }
                    Ok(Ok(Some(_))) => self.cache.changed(),
                    // The connection was lost and made again: changes in
                    // between went unheard.
                    Ok(Ok(None)) => self.cache.distrust(),
                    Ok(Err(_)) => {
                        self.cache.distrust();
                        break;
                    }
                    Err(_) => {
                        tracing::warn!(
                            "no word from the database for {} s (not even this panel's heartbeat); listening again",
                            SILENCE.as_secs()
                        );
                        self.cache.distrust();
                        break;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every trigger migration 10 makes is one the watcher looks for, and
    /// the other way round.
    #[test]
    fn the_watcher_looks_for_exactly_the_triggers_the_migration_makes() {
        for (backend, sql) in [
            (
                Backend::Sqlite,
                include_str!("../../migrations/sqlite/0010_change_reports.sql"),
            ),
            (
                Backend::Postgres,
                include_str!("../../migrations/postgres/0010_change_reports.sql"),
            ),
        ] {
            let mut made: Vec<String> = sql
                .split("CREATE TRIGGER ")
                .skip(1)
                .map(|rest| rest.split_whitespace().next().unwrap().to_owned())
                .collect();
            let mut expected = expected_triggers(backend);
            made.sort();
            expected.sort();
            assert_eq!(made, expected, "{backend:?}");
        }
    }
}

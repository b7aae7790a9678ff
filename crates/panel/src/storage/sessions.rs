//! `sessions`: signed-in browsers, stored by a hash of the session ID, never the ID.

use sqlx::Row;

use super::{Result, RunOn, Storage};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub user_id: i64,
    pub csrf_token: String,
    pub created_at: i64,
    pub last_seen_at: i64,
}

impl Storage {
    pub async fn create_session(
        &self,
        id_hash: &str,
        user_id: i64,
        csrf_token: &str,
        now: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO sessions (id_hash, user_id, csrf_token, created_at, last_seen_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id_hash)
        .bind(user_id)
        .bind(csrf_token)
        .bind(now)
        .bind(now)
        .run_on(self)
        .await?;
        Ok(())
    }

    pub async fn session(&self, id_hash: &str) -> Result<Option<Session>> {
        let row = sqlx::query(
            "SELECT user_id, csrf_token, created_at, last_seen_at FROM sessions WHERE id_hash = $1",
        )
        .bind(id_hash)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(Session {
                user_id: r.try_get("user_id")?,
                csrf_token: r.try_get("csrf_token")?,
                created_at: r.try_get("created_at")?,
                last_seen_at: r.try_get("last_seen_at")?,
            })
        })
        .transpose()
    }

    /// A session and its user, in one query (every signed-in request
    /// asks).
    pub async fn session_with_user(&self, id_hash: &str) -> Result<Option<(Session, super::User)>> {
        self.cached(
            |s| &mut s.sessions,
            id_hash,
            Option::is_some,
            self.session_with_user_fresh(id_hash),
        )
        .await
    }

    /// [`Self::session_with_user`] from the database, never from the
    /// cache (before ending a session that looks idle: another panel may
    /// have seen it since).
    pub async fn session_with_user_fresh(
        &self,
        id_hash: &str,
    ) -> Result<Option<(Session, super::User)>> {
        static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
            let user_cols: Vec<String> = super::users::USER_COLS
                .split(", ")
                .map(|c| format!("u.{c}"))
                .collect();
            format!(
                "SELECT s.user_id AS s_user_id, s.csrf_token AS s_csrf_token, \
                 s.created_at AS s_created_at, s.last_seen_at AS s_last_seen_at, {} \
                 FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id_hash = $1",
                user_cols.join(", ")
            )
        });
        let row = sqlx::query(SQL.as_str())
            .bind(id_hash)
            .fetch_optional(&self.pool)
            .await?;
        let found: Option<(Session, super::User)> = row
            .map(|r| -> Result<_> {
                Ok((
                    Session {
                        user_id: r.try_get("s_user_id")?,
                        csrf_token: r.try_get("s_csrf_token")?,
                        created_at: r.try_get("s_created_at")?,
                        last_seen_at: r.try_get("s_last_seen_at")?,
                    },
                    super::users::user_of(&r)?,
                ))
            })
            .transpose()?;
        // A held copy follows what the database says (another panel may
        // have seen the session since), so it does not look idle again.
        if let Some((session, _)) = &found {
            self.cache.touched(id_hash, session.last_seen_at);
        }
        Ok(found)
    }

    pub async fn touch_session(&self, id_hash: &str, now: i64) -> Result<()> {
        sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE id_hash = $2")
            .bind(now)
            .bind(id_hash)
            .execute(self.unannounced())
            .await?;
        self.cache.touched(id_hash, now);
        Ok(())
    }

    pub async fn delete_session(&self, id_hash: &str) -> Result<()> {
        sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
            .bind(id_hash)
            .run_on(self)
            .await?;
        Ok(())
    }

    /// Drops every session of a user but the one stored as `keep_hash`.
    pub async fn delete_sessions_of(&self, user_id: i64, keep_hash: Option<&str>) -> Result<u64> {
        let done = sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND id_hash <> $2")
            .bind(user_id)
            .bind(keep_hash.unwrap_or(""))
            .run_on(self)
            .await?;
        Ok(done.rows_affected())
    }

    /// Drops sessions idle since `idle_before` or created before `created_before`.
    pub async fn expire_sessions(&self, idle_before: i64, created_before: i64) -> Result<u64> {
        let done = sqlx::query("DELETE FROM sessions WHERE last_seen_at < $1 OR created_at < $2")
            .bind(idle_before)
            .bind(created_before)
            .run_on(self)
            .await?;
        Ok(done.rows_affected())
    }

    /// Keeps a user's `keep` newest sessions and deletes the others.
    pub async fn trim_sessions(&self, user_id: i64, keep: i64) -> Result<u64> {
        Ok(sqlx::query(
            "DELETE FROM sessions WHERE user_id = $1 AND id_hash NOT IN \
             (SELECT id_hash FROM sessions WHERE user_id = $1 \
              ORDER BY created_at DESC, id_hash LIMIT $2)",
        )
        .bind(user_id)
        .bind(keep)
        .run_on(self)
        .await?
        .rows_affected())
    }
}

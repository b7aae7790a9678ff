//! `users`: accounts (local password or, later, synced).

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Result, RunOn, Storage, StorageError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub email: String,
    pub password_hash: String,
    pub root_admin: bool,
    pub created_at: i64,
    /// The Pterodactyl user this account is synced from; such accounts have
    /// no password here and sign in through Pterodactyl.
    pub ptero_id: Option<i64>,
    /// Pterodactyl's username (synced accounts only).
    pub username: Option<String>,
    /// Show Pterodactyl's own backups on the backups page.
    pub show_ptero_backups: bool,
}

pub(super) const USER_COLS: &str =
    "id, email, password_hash, root_admin, created_at, ptero_id, username, show_ptero_backups";

pub(super) fn user_of(row: &AnyRow) -> Result<User> {
    Ok(User {
        id: row.try_get("id")?,
        email: row.try_get("email")?,
        password_hash: row.try_get("password_hash")?,
        root_admin: row.try_get::<i64, _>("root_admin")? != 0,
        created_at: row.try_get("created_at")?,
        ptero_id: row.try_get("ptero_id")?,
        username: row.try_get("username")?,
        show_ptero_backups: row.try_get::<i64, _>("show_ptero_backups")? != 0,
    })
}

impl Storage {
    pub async fn create_user(
        &self,
        email: &str,
        password_hash: &str,
        root_admin: bool,
        now: i64,
    ) -> Result<User> {
        let row = sqlx::query(&format!(
            "INSERT INTO users (email, password_hash, root_admin, created_at) VALUES ($1, $2, $3, $4) RETURNING {USER_COLS}"
        ))
        .bind(email)
        .bind(password_hash)
        .bind(root_admin as i64)
        .bind(now)
        .insert_returning(self)
        .await
        .map_err(|e| match e {
            StorageError::Conflict(_) => StorageError::Conflict("a user with this email"),
            other => other,
        })?;
        user_of(&row)
    }

    pub async fn user_by_email(&self, email: &str) -> Result<Option<User>> {
        sqlx::query(&format!("SELECT {USER_COLS} FROM users WHERE email = $1"))
            .bind(email)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(user_of)
            .transpose()
    }

    pub async fn user(&self, id: i64) -> Result<Option<User>> {
        sqlx::query(&format!("SELECT {USER_COLS} FROM users WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(user_of)
            .transpose()
    }

    pub async fn set_show_ptero_backups(&self, id: i64, show: bool) -> Result<()> {
        sqlx::query("UPDATE users SET show_ptero_backups = $1 WHERE id = $2")
            .bind(i64::from(show))
            .bind(id)
            .run_on(self)
            .await?;
        Ok(())
    }

    pub async fn user_by_ptero_id(&self, ptero_id: i64) -> Result<Option<User>> {
        sqlx::query(&format!(
            "SELECT {USER_COLS} FROM users WHERE ptero_id = $1"
        ))
        .bind(ptero_id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(user_of)
        .transpose()
    }

    pub async fn users(&self) -> Result<Vec<User>> {
        sqlx::query(&format!("SELECT {USER_COLS} FROM users ORDER BY id"))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(user_of)
            .collect()
    }

    /// Changes what is given; `false` when no such user.
    pub async fn update_user(
        &self,
        id: i64,
        email: Option<&str>,
        password_hash: Option<&str>,
        root_admin: Option<bool>,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE users SET email = COALESCE($1, email), password_hash = COALESCE($2, password_hash), \
             root_admin = COALESCE($3, root_admin) WHERE id = $4",
        )
        .bind(email)
        .bind(password_hash)
        .bind(root_admin.map(|b| b as i64))
        .bind(id)
        .run_on(self)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn delete_user(&self, id: i64) -> Result<bool> {
        let done = sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(id)
            .run_on(self)
            .await?;
        Ok(done.rows_affected() == 1)
    }
}

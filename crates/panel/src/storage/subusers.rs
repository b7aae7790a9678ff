//! `subusers`: who else may act on a server, with which `backup.*` permissions.

use api::Permission;
use api::vocab::{join_permissions, parse_permissions};
use sqlx::Row;

use super::RunOn;
use super::users::{USER_COLS, user_of};
use super::{Result, Storage, User};

impl Storage {
    pub async fn set_subuser(
        &self,
        server_id: i64,
        user_id: i64,
        permissions: &[Permission],
    ) -> Result<()> {
        let perms = join_permissions(permissions);
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM subusers WHERE server_id = $1 AND user_id = $2")
            .bind(server_id)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO subusers (server_id, user_id, permissions) VALUES ($1, $2, $3)")
            .bind(server_id)
            .bind(user_id)
            .bind(perms)
            .execute(&mut *tx)
            .await?;
        self.commit(tx).await?;
        Ok(())
    }

    pub async fn remove_subuser(&self, server_id: i64, user_id: i64) -> Result<bool> {
        let done = sqlx::query("DELETE FROM subusers WHERE server_id = $1 AND user_id = $2")
            .bind(server_id)
            .bind(user_id)
            .run_on(self)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Every subuser of a server with their permissions.
    pub async fn subusers_of(&self, server_id: i64) -> Result<Vec<(User, Vec<Permission>)>> {
        let cols = USER_COLS
            .split(", ")
            .map(|c| format!("u.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        sqlx::query(&format!(
            "SELECT {cols}, s.permissions FROM subusers s JOIN users u ON u.id = s.user_id \
             WHERE s.server_id = $1 ORDER BY u.email"
        ))
        .bind(server_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            let perms: String = r.try_get("permissions")?;
            Ok((user_of(r)?, parse_permissions(&perms)))
        })
        .collect()
    }

    /// The subuser's permissions on a server, `None` if not a subuser.
    pub async fn subuser_permissions(
        &self,
        server_id: i64,
        user_id: i64,
    ) -> Result<Option<Vec<Permission>>> {
        self.cached(
            |s| &mut s.subusers,
            &(server_id, user_id),
            |_| true,
            self.subuser_permissions_db(server_id, user_id),
        )
        .await
    }

    async fn subuser_permissions_db(
        &self,
        server_id: i64,
        user_id: i64,
    ) -> Result<Option<Vec<Permission>>> {
        let row =
            sqlx::query("SELECT permissions FROM subusers WHERE server_id = $1 AND user_id = $2")
                .bind(server_id)
                .bind(user_id)
                .fetch_optional(&self.pool)
                .await?;
        row.map(|r| {
            let perms: String = r.try_get("permissions")?;
            Ok(parse_permissions(&perms))
        })
        .transpose()
    }
}

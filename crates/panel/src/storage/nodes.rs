//! `nodes`: agents, with their sealed tokens.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Result, RunOn, Storage, StorageError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub id: i64,
    pub name: String,
    pub url: String,
    /// Sealed node token.
    pub token_enc: String,
    /// PEM of a custom CA for the agent's certificate.
    pub ca_pem: Option<String>,
    /// Whether browsers can reach the agent for direct download links.
    pub browser_downloads: bool,
    /// The Pterodactyl node this one is synced from.
    pub ptero_id: Option<i64>,
    /// Pterodactyl's `updated_at` when the node's token was last read.
    pub ptero_updated_at: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NewNode {
    pub name: String,
    pub url: String,
    pub token_enc: String,
    pub ca_pem: Option<String>,
    pub browser_downloads: bool,
}

pub(super) const NODE_COLS: &str =
    "id, name, url, token_enc, ca_pem, browser_downloads, ptero_id, ptero_updated_at";

pub(super) fn node_of(row: &AnyRow) -> Result<Node> {
    Ok(Node {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        url: row.try_get("url")?,
        token_enc: row.try_get("token_enc")?,
        ca_pem: row.try_get("ca_pem")?,
        browser_downloads: row.try_get::<i64, _>("browser_downloads")? != 0,
        ptero_id: row.try_get("ptero_id")?,
        ptero_updated_at: row.try_get("ptero_updated_at")?,
    })
}

impl Storage {
    pub async fn create_node(&self, n: &NewNode, now: i64) -> Result<Node> {
        let row = sqlx::query(&format!(
            "INSERT INTO nodes (name, url, token_enc, ca_pem, browser_downloads, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING {NODE_COLS}"
        ))
        .bind(&n.name)
        .bind(&n.url)
        .bind(&n.token_enc)
        .bind(n.ca_pem.as_deref())
        .bind(n.browser_downloads as i64)
        .bind(now)
        .insert_returning(self)
        .await
        .map_err(|e| match e {
            StorageError::Conflict(_) => StorageError::Conflict("a node with this name"),
            other => other,
        })?;
        node_of(&row)
    }

    pub async fn node(&self, id: i64) -> Result<Option<Node>> {
        sqlx::query(&format!("SELECT {NODE_COLS} FROM nodes WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(node_of)
            .transpose()
    }

    /// A server's node and its sealed repository key, in one query (every
    /// call to the agent about a server needs both).
    pub async fn node_and_key(
        &self,
        node_id: i64,
        server_id: i64,
    ) -> Result<Option<(Node, Option<String>)>> {
        self.cached(
            |s| &mut s.targets,
            &(node_id, server_id),
            |_| true,
            self.node_and_key_db(node_id, server_id),
        )
        .await
    }

    async fn node_and_key_db(
        &self,
        node_id: i64,
        server_id: i64,
    ) -> Result<Option<(Node, Option<String>)>> {
        static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let sql = SQL.get_or_init(|| {
            let cols: Vec<String> = NODE_COLS.split(", ").map(|c| format!("n.{c}")).collect();
            format!(
                "SELECT {}, r.encryption_key_enc FROM nodes n \
                 LEFT JOIN restic r ON r.server_id = $1 WHERE n.id = $2",
                cols.join(", ")
            )
        });
        let Some(row) = sqlx::query(sql)
            .bind(server_id)
            .bind(node_id)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        Ok(Some((node_of(&row)?, row.try_get("encryption_key_enc")?)))
    }

    pub async fn node_by_name(&self, name: &str) -> Result<Option<Node>> {
        sqlx::query(&format!("SELECT {NODE_COLS} FROM nodes WHERE name = $1"))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(node_of)
            .transpose()
    }

    pub async fn nodes(&self) -> Result<Vec<Node>> {
        sqlx::query(&format!("SELECT {NODE_COLS} FROM nodes ORDER BY id"))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(node_of)
            .collect()
    }

    /// Changes what is given; `ca_pem: Some(None)` removes the CA.
    pub async fn update_node(
        &self,
        id: i64,
        url: Option<&str>,
        token_enc: Option<&str>,
        ca_pem: Option<Option<&str>>,
        browser_downloads: Option<bool>,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE nodes SET url = COALESCE($1, url), token_enc = COALESCE($2, token_enc), \
             ca_pem = CASE WHEN $3 = 1 THEN $4 ELSE ca_pem END, \
             browser_downloads = COALESCE($5, browser_downloads) WHERE id = $6",
        )
        .bind(url)
        .bind(token_enc)
        .bind(ca_pem.is_some() as i64)
        .bind(ca_pem.flatten())
        .bind(browser_downloads.map(|b| b as i64))
        .bind(id)
        .run_on(self)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn delete_node(&self, id: i64) -> Result<bool> {
        let done = sqlx::query("DELETE FROM nodes WHERE id = $1")
            .bind(id)
            .run_on(self)
            .await?;
        Ok(done.rows_affected() == 1)
    }
}

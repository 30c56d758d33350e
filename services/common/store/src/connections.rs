//! Connections of a workspace: the credentials sink pipes write with.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Store, StoreError};

/// A stored connection.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnectionRecord {
    pub id: String,
    pub workspace_id: String,
    pub name: String,
    /// `s3` or `local`.
    pub service: String,
    /// JSON object shown to callers (region, endpoint, root).
    pub settings: String,
    /// JSON object only the writing jobs read (keys).
    pub secrets: String,
    pub created_at: String,
    pub updated_at: String,
}

const CONNECTION_COLUMNS: &str = "SELECT id, workspace_id, name, service, settings, secrets, created_at, updated_at FROM connections";

fn connection_from_row(row: &AnyRow) -> ConnectionRecord {
    ConnectionRecord {
        id: row.get(0),
        workspace_id: row.get(1),
        name: row.get(2),
        service: row.get(3),
        settings: row.get(4),
        secrets: row.get(5),
        created_at: row.get(6),
        updated_at: row.get(7),
    }
}

impl Store {
    /// Adds a connection; Conflict when its id or its name in the workspace is taken.
    pub async fn insert_connection(&self, connection: &ConnectionRecord) -> Result<(), StoreError> {
        crate::refuse_nul(
            "connection",
            &[
                &connection.id,
                &connection.name,
                &connection.service,
                &connection.settings,
                &connection.secrets,
            ],
        )?;
        sqlx::query(
            "INSERT INTO connections (id, workspace_id, name, service, settings, secrets, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&connection.id)
        .bind(&connection.workspace_id)
        .bind(&connection.name)
        .bind(&connection.service)
        .bind(&connection.settings)
        .bind(&connection.secrets)
        .bind(&connection.created_at)
        .bind(&connection.updated_at)
        .execute(&self.pool)
        .await
        .map_err(|e| crate::conflict_or(e, &format!("Connection '{}'", connection.name)))?;
        Ok(())
    }

    /// One connection of a workspace by id or name (an id wins over a name equal to it).
    pub async fn get_connection(
        &self,
        workspace_id: &str,
        name_or_id: &str,
    ) -> Result<ConnectionRecord, StoreError> {
        if crate::has_nul(&[workspace_id, name_or_id]) {
            return Err(StoreError::NotFound(format!("Connection {name_or_id:?}")));
        }
        sqlx::query(&format!(
            "{CONNECTION_COLUMNS} WHERE workspace_id = $1 AND (id = $2 OR name = $2)"
        ))
        .bind(workspace_id)
        .bind(name_or_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(connection_from_row)
        .min_by_key(|connection| connection.id != name_or_id)
        .ok_or_else(|| StoreError::NotFound(format!("Connection '{name_or_id}'")))
    }

    /// The workspace's connections by name.
    pub async fn list_connections(
        &self,
        workspace_id: &str,
    ) -> Result<Vec<ConnectionRecord>, StoreError> {
        if crate::has_nul(&[workspace_id]) {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(&format!("{CONNECTION_COLUMNS} WHERE workspace_id = $1"))
            .bind(workspace_id)
            .fetch_all(&self.pool)
            .await?;
        let mut connections: Vec<ConnectionRecord> = rows.iter().map(connection_from_row).collect();
        connections.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(connections)
    }

    /// Removes a connection by id.
    pub async fn delete_connection(&self, workspace_id: &str, id: &str) -> Result<(), StoreError> {
        if crate::has_nul(&[workspace_id, id]) {
            return Err(StoreError::NotFound(format!("Connection {id:?}")));
        }
        let done = sqlx::query("DELETE FROM connections WHERE workspace_id = $1 AND id = $2")
            .bind(workspace_id)
            .bind(id)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("Connection '{id}'")));
        }
        Ok(())
    }
}

//! Environment variables of a workspace, read by templates through `tb_secret` and `tb_var`.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Store, StoreError};

/// A stored variable.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VariableRecord {
    pub workspace_id: String,
    pub name: String,
    pub kind: String,
    /// The secret value; only template rendering reads it.
    pub value: String,
    pub edited_by: String,
    pub created_at: String,
    pub updated_at: String,
}

const VARIABLE_COLUMNS: &str =
    "SELECT workspace_id, name, kind, value, edited_by, created_at, updated_at FROM variables";

fn variable_from_row(row: &AnyRow) -> VariableRecord {
    VariableRecord {
        workspace_id: row.get(0),
        name: row.get(1),
        kind: row.get(2),
        value: row.get(3),
        edited_by: row.get(4),
        created_at: row.get(5),
        updated_at: row.get(6),
    }
}

impl Store {
    /// Adds a variable; Conflict when the name is taken.
    pub async fn insert_variable(&self, variable: &VariableRecord) -> Result<(), StoreError> {
        crate::refuse_nul(
            "variable",
            &[&variable.name, &variable.value, &variable.edited_by],
        )?;
        sqlx::query(
            "INSERT INTO variables (workspace_id, name, kind, value, edited_by, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&variable.workspace_id)
        .bind(&variable.name)
        .bind(&variable.kind)
        .bind(&variable.value)
        .bind(&variable.edited_by)
        .bind(&variable.created_at)
        .bind(&variable.updated_at)
        .execute(&self.pool)
        .await
        .map_err(|e| crate::conflict_or(e, &format!("Variable '{}'", variable.name)))?;
        Ok(())
    }

    /// Changes a variable's value.
    pub async fn update_variable(&self, variable: &VariableRecord) -> Result<(), StoreError> {
        crate::refuse_nul(
            "variable",
            &[&variable.name, &variable.value, &variable.edited_by],
        )?;
        let done = sqlx::query(
            "UPDATE variables SET value = $3, edited_by = $4, updated_at = $5 WHERE workspace_id = $1 AND name = $2",
        )
        .bind(&variable.workspace_id)
        .bind(&variable.name)
        .bind(&variable.value)
        .bind(&variable.edited_by)
        .bind(&variable.updated_at)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!(
                "Variable '{}'",
                variable.name
            )));
        }
        Ok(())
    }

    /// One variable.
    pub async fn get_variable(
        &self,
        workspace_id: &str,
        name: &str,
    ) -> Result<VariableRecord, StoreError> {
        sqlx::query(&format!(
            "{VARIABLE_COLUMNS} WHERE workspace_id = $1 AND name = $2"
        ))
        .bind(workspace_id)
        .bind(name)
        .fetch_optional(&self.pool)
        .await?
        .map(|row| variable_from_row(&row))
        .ok_or_else(|| StoreError::NotFound(format!("Variable '{name}'")))
    }

    /// The workspace's variables by name.
    pub async fn list_variables(
        &self,
        workspace_id: &str,
    ) -> Result<Vec<VariableRecord>, StoreError> {
        let rows = sqlx::query(&format!("{VARIABLE_COLUMNS} WHERE workspace_id = $1"))
            .bind(workspace_id)
            .fetch_all(&self.pool)
            .await?;
        let mut variables: Vec<VariableRecord> = rows.iter().map(variable_from_row).collect();
        variables.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(variables)
    }

    /// Removes a variable.
    pub async fn delete_variable(&self, workspace_id: &str, name: &str) -> Result<(), StoreError> {
        let done = sqlx::query("DELETE FROM variables WHERE workspace_id = $1 AND name = $2")
            .bind(workspace_id)
            .bind(name)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("Variable '{name}'")));
        }
        Ok(())
    }
}

//! The catalog's repository: organizations, users, workspaces, tokens and data sources, stored with
//! sqlx's `Any` driver so the same code and the same portable migrations serve SQLite (`roost
//! local`) and PostgreSQL (distributed mode). Records are plain structs; JSON-shaped fields are
//! kept as JSON text and interpreted by the owning service. No service logic lives here.

mod jobs;
mod records;
mod schedules;
mod variables;

pub use jobs::{JobFilter, JobRecord, JobUpdate};
pub use records::{
    DataSourceRecord, NodeRecord, Organization, PipeRecord, TokenRecord, User, WorkspaceRecord,
};
pub use schedules::ScheduleRecord;
pub use variables::VariableRecord;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};
use thiserror::Error;

/// Errors from the store.
#[derive(Debug, Error)]
pub enum StoreError {
    /// No such record.
    #[error("{0} not found")]
    NotFound(String),
    /// A unique name or id is taken.
    #[error("{0} already exists")]
    Conflict(String),
    /// The database failed.
    #[error("catalog database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Migrations failed.
    #[error("catalog migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
}

/// The repository.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

fn conflict_or(error: sqlx::Error, what: &str) -> StoreError {
    match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict(what.to_string())
        }
        _ => StoreError::Database(error),
    }
}

impl Store {
    /// Connects (`sqlite://path?mode=rwc`, `postgres://...`) and applies pending migrations.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        // SQLite serializes writers; one connection per core is plenty and avoids busy errors.
        let max = if url.starts_with("sqlite:") { 4 } else { 16 };
        let pool = AnyPoolOptions::new()
            .max_connections(max)
            .connect(url)
            .await?;
        if url.starts_with("sqlite:") {
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&pool)
                .await?;
            sqlx::query("PRAGMA busy_timeout = 5000")
                .execute(&pool)
                .await?;
        }
        MIGRATOR.run(&pool).await?;
        Ok(Store { pool })
    }

    /// The SQLite URL of a catalog file, created when missing.
    pub fn sqlite_url(path: &std::path::Path) -> String {
        format!("sqlite://{}?mode=rwc", path.display())
    }

    /// A value of the `meta` table.
    pub async fn get_meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT value FROM meta WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|row| row.get::<String, _>(0)))
    }

    /// Sets a value of the `meta` table.
    pub async fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
            .bind(key)
            .bind(value)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Adds an organization.
    pub async fn insert_organization(&self, org: &Organization) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO organizations (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(&org.id)
            .bind(&org.name)
            .bind(&org.created_at)
            .execute(&self.pool)
            .await
            .map_err(|e| conflict_or(e, "organization"))?;
        Ok(())
    }

    /// Adds a user.
    pub async fn insert_user(&self, user: &User) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO users (id, email, organization_id, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&user.id)
        .bind(&user.email)
        .bind(&user.organization_id)
        .bind(&user.created_at)
        .execute(&self.pool)
        .await
        .map_err(|e| conflict_or(e, "user"))?;
        Ok(())
    }

    /// One user.
    pub async fn get_user(&self, id: &str) -> Result<User, StoreError> {
        sqlx::query("SELECT id, email, organization_id, created_at FROM users WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .map(|row| User {
                id: row.get(0),
                email: row.get(1),
                organization_id: row.get(2),
                created_at: row.get(3),
            })
            .ok_or_else(|| StoreError::NotFound(format!("user {id}")))
    }

    /// Adds a workspace.
    pub async fn insert_workspace(&self, workspace: &WorkspaceRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO workspaces (id, name, organization_id, owner_user_id, database_name, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&workspace.id)
        .bind(&workspace.name)
        .bind(&workspace.organization_id)
        .bind(&workspace.owner_user_id)
        .bind(&workspace.database)
        .bind(&workspace.created_at)
        .execute(&self.pool)
        .await
        .map_err(|e| conflict_or(e, &format!("Workspace '{}'", workspace.name)))?;
        Ok(())
    }

    /// One workspace by id.
    pub async fn get_workspace(&self, id: &str) -> Result<WorkspaceRecord, StoreError> {
        sqlx::query(&format!("{WORKSPACE_COLUMNS} WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .map(|row| workspace_from_row(&row))
            .ok_or_else(|| StoreError::NotFound(format!("workspace {id}")))
    }

    /// One organization.
    pub async fn get_organization(&self, id: &str) -> Result<Organization, StoreError> {
        sqlx::query("SELECT id, name, created_at FROM organizations WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .map(|row| Organization {
                id: row.get(0),
                name: row.get(1),
                created_at: row.get(2),
            })
            .ok_or_else(|| StoreError::NotFound(format!("Organization '{id}'")))
    }

    /// The users of an organization, oldest first.
    pub async fn list_organization_users(
        &self,
        organization_id: &str,
    ) -> Result<Vec<User>, StoreError> {
        let rows = sqlx::query("SELECT id, email, organization_id, created_at FROM users WHERE organization_id = $1 ORDER BY created_at, email")
            .bind(organization_id)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|row| User {
                id: row.get(0),
                email: row.get(1),
                organization_id: row.get(2),
                created_at: row.get(3),
            })
            .collect())
    }

    /// The workspaces of an organization, oldest first.
    pub async fn list_organization_workspaces(
        &self,
        organization_id: &str,
    ) -> Result<Vec<WorkspaceRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "{WORKSPACE_COLUMNS} WHERE organization_id = $1 ORDER BY created_at, name"
        ))
        .bind(organization_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(workspace_from_row).collect())
    }

    /// The workspaces a user owns, oldest first.
    pub async fn list_user_workspaces(
        &self,
        user_id: &str,
    ) -> Result<Vec<WorkspaceRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "{WORKSPACE_COLUMNS} WHERE owner_user_id = $1 ORDER BY created_at, name"
        ))
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(workspace_from_row).collect())
    }

    /// Removes a workspace with every record that belongs to it (tokens, data sources, pipes and
    /// their nodes) in one transaction; its tokens stop working at once. The engine's data is not
    /// touched here.
    pub async fn delete_workspace(&self, id: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "DELETE FROM nodes WHERE pipe_id IN (SELECT id FROM pipes WHERE workspace_id = $1)",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        for table in [
            "jobs",
            "schedules",
            "variables",
            "pipes",
            "data_sources",
            "tokens",
        ] {
            sqlx::query(&format!("DELETE FROM {table} WHERE workspace_id = $1"))
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        let done = sqlx::query("DELETE FROM workspaces WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("Workspace '{id}'")));
        }
        tx.commit().await?;
        Ok(())
    }

    /// Adds a token.
    pub async fn insert_token(&self, token: &TokenRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO tokens (id, workspace_id, user_id, name, token_value, scopes, description, created_at, origin, origin_resource) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&token.id)
        .bind(&token.workspace_id)
        .bind(&token.user_id)
        .bind(&token.name)
        .bind(&token.value)
        .bind(&token.scopes)
        .bind(&token.description)
        .bind(&token.created_at)
        .bind(&token.origin)
        .bind(&token.origin_resource)
        .execute(&self.pool)
        .await
        .map_err(|e| conflict_or(e, &format!("token '{}'", token.name)))?;
        Ok(())
    }

    /// One token by id.
    pub async fn get_token(&self, id: &str) -> Result<TokenRecord, StoreError> {
        sqlx::query(&format!("{TOKEN_COLUMNS} WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .map(|row| token_from_row(&row))
            .ok_or_else(|| StoreError::NotFound(format!("token {id}")))
    }

    /// One token of a workspace by id or name.
    pub async fn get_workspace_token(
        &self,
        workspace_id: &str,
        name_or_id: &str,
    ) -> Result<TokenRecord, StoreError> {
        sqlx::query(&format!(
            "{TOKEN_COLUMNS} WHERE workspace_id = $1 AND (id = $2 OR name = $2)"
        ))
        .bind(workspace_id)
        .bind(name_or_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(token_from_row)
        // An id wins over another token's name that happens to equal it.
        .min_by_key(|token| token.id != name_or_id)
        .ok_or_else(|| StoreError::NotFound(format!("Token '{name_or_id}'")))
    }

    /// The tokens of a workspace, oldest first.
    pub async fn list_workspace_tokens(
        &self,
        workspace_id: &str,
    ) -> Result<Vec<TokenRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "{TOKEN_COLUMNS} WHERE workspace_id = $1 ORDER BY created_at, name"
        ))
        .bind(workspace_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(token_from_row).collect())
    }

    /// Rewrites a token's name, value, scopes and description.
    pub async fn update_token(&self, token: &TokenRecord) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE tokens SET name = $1, token_value = $2, scopes = $3, description = $4 WHERE id = $5")
            .bind(&token.name)
            .bind(&token.value)
            .bind(&token.scopes)
            .bind(&token.description)
            .bind(&token.id)
            .execute(&self.pool)
            .await
            .map_err(|e| conflict_or(e, &format!("Token '{}'", token.name)))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("Token '{}'", token.name)));
        }
        Ok(())
    }

    /// Removes a token of a workspace; its value stops working at once.
    pub async fn delete_token(&self, workspace_id: &str, id: &str) -> Result<(), StoreError> {
        let done = sqlx::query("DELETE FROM tokens WHERE workspace_id = $1 AND id = $2")
            .bind(workspace_id)
            .bind(id)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("Token '{id}'")));
        }
        Ok(())
    }

    /// Adds a data source.
    pub async fn insert_data_source(&self, record: &DataSourceRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO data_sources (id, workspace_id, name, columns, engine, description, origin_format, table_name, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&record.id)
        .bind(&record.workspace_id)
        .bind(&record.name)
        .bind(&record.columns)
        .bind(&record.engine)
        .bind(&record.description)
        .bind(&record.origin_format)
        .bind(&record.table_name)
        .bind(&record.created_at)
        .bind(&record.updated_at)
        .execute(&self.pool)
        .await
        .map_err(|e| conflict_or(e, &format!("Data Source '{}'", record.name)))?;
        Ok(())
    }

    /// One data source of a workspace by name or id.
    pub async fn get_data_source(
        &self,
        workspace_id: &str,
        name_or_id: &str,
    ) -> Result<DataSourceRecord, StoreError> {
        sqlx::query(&format!(
            "{DATA_SOURCE_COLUMNS} WHERE workspace_id = $1 AND (name = $2 OR id = $2)"
        ))
        .bind(workspace_id)
        .bind(name_or_id)
        .fetch_optional(&self.pool)
        .await?
        .map(|row| data_source_from_row(&row))
        .ok_or_else(|| StoreError::NotFound(format!("Data Source '{name_or_id}'")))
    }

    /// The data sources of a workspace, by name.
    pub async fn list_data_sources(
        &self,
        workspace_id: &str,
    ) -> Result<Vec<DataSourceRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "{DATA_SOURCE_COLUMNS} WHERE workspace_id = $1 ORDER BY name"
        ))
        .bind(workspace_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(data_source_from_row).collect())
    }

    /// Replaces a data source's name, columns, engine and description.
    pub async fn update_data_source(&self, record: &DataSourceRecord) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE data_sources SET name = $1, columns = $2, engine = $3, description = $4, updated_at = $5 WHERE id = $6 AND workspace_id = $7",
        )
        .bind(&record.name)
        .bind(&record.columns)
        .bind(&record.engine)
        .bind(&record.description)
        .bind(&record.updated_at)
        .bind(&record.id)
        .bind(&record.workspace_id)
        .execute(&self.pool)
        .await
        .map_err(|e| conflict_or(e, &format!("Data Source '{}'", record.name)))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!(
                "Data Source '{}'",
                record.name
            )));
        }
        Ok(())
    }

    /// Removes a data source's record.
    pub async fn delete_data_source(&self, workspace_id: &str, id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM data_sources WHERE workspace_id = $1 AND id = $2")
            .bind(workspace_id)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

impl Store {
    /// Stores a new pipe with its nodes, in order.
    pub async fn insert_pipe(
        &self,
        pipe: &PipeRecord,
        nodes: &[NodeRecord],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO pipes (id, workspace_id, name, description, endpoint_node_id, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&pipe.id)
        .bind(&pipe.workspace_id)
        .bind(&pipe.name)
        .bind(&pipe.description)
        .bind(&pipe.endpoint_node_id)
        .bind(&pipe.created_at)
        .bind(&pipe.updated_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| conflict_or(e, &format!("Pipe '{}'", pipe.name)))?;
        insert_nodes(&mut tx, nodes).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Rewrites a pipe and its whole node list at once, so readers never see half a change.
    pub async fn replace_pipe(
        &self,
        pipe: &PipeRecord,
        nodes: &[NodeRecord],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE pipes SET name = $1, description = $2, endpoint_node_id = $3, updated_at = $4 WHERE id = $5 AND workspace_id = $6",
        )
        .bind(&pipe.name)
        .bind(&pipe.description)
        .bind(&pipe.endpoint_node_id)
        .bind(&pipe.updated_at)
        .bind(&pipe.id)
        .bind(&pipe.workspace_id)
        .execute(&mut *tx)
        .await
        .map_err(|e| conflict_or(e, &format!("Pipe '{}'", pipe.name)))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("Pipe '{}'", pipe.name)));
        }
        sqlx::query("DELETE FROM nodes WHERE pipe_id = $1")
            .bind(&pipe.id)
            .execute(&mut *tx)
            .await?;
        insert_nodes(&mut tx, nodes).await?;
        tx.commit().await?;
        Ok(())
    }

    /// One pipe of a workspace by name or id, with its nodes in order.
    pub async fn get_pipe(
        &self,
        workspace_id: &str,
        name_or_id: &str,
    ) -> Result<(PipeRecord, Vec<NodeRecord>), StoreError> {
        let pipe = sqlx::query(&format!(
            "{PIPE_COLUMNS} WHERE workspace_id = $1 AND (name = $2 OR id = $2)"
        ))
        .bind(workspace_id)
        .bind(name_or_id)
        .fetch_optional(&self.pool)
        .await?
        .map(|row| pipe_from_row(&row))
        .ok_or_else(|| StoreError::NotFound(format!("Pipe '{name_or_id}'")))?;
        let nodes = sqlx::query(&format!(
            "{NODE_COLUMNS} WHERE pipe_id = $1 ORDER BY position"
        ))
        .bind(&pipe.id)
        .fetch_all(&self.pool)
        .await?;
        Ok((pipe, nodes.iter().map(node_from_row).collect()))
    }

    /// The pipes of a workspace with their nodes, by name.
    pub async fn list_pipes(
        &self,
        workspace_id: &str,
    ) -> Result<Vec<(PipeRecord, Vec<NodeRecord>)>, StoreError> {
        let pipes: Vec<PipeRecord> = sqlx::query(&format!(
            "{PIPE_COLUMNS} WHERE workspace_id = $1 ORDER BY name"
        ))
        .bind(workspace_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(pipe_from_row)
        .collect();
        let nodes: Vec<NodeRecord> = sqlx::query(&format!(
            "{NODE_COLUMNS} WHERE pipe_id IN (SELECT id FROM pipes WHERE workspace_id = $1) ORDER BY pipe_id, position"
        ))
        .bind(workspace_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(node_from_row)
        .collect();
        Ok(pipes
            .into_iter()
            .map(|pipe| {
                let own = nodes
                    .iter()
                    .filter(|node| node.pipe_id == pipe.id)
                    .cloned()
                    .collect();
                (pipe, own)
            })
            .collect())
    }

    /// Removes a pipe and its nodes.
    pub async fn delete_pipe(&self, workspace_id: &str, id: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM nodes WHERE pipe_id IN (SELECT id FROM pipes WHERE id = $1 AND workspace_id = $2)")
            .bind(id)
            .bind(workspace_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM pipes WHERE id = $1 AND workspace_id = $2")
            .bind(id)
            .bind(workspace_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}

async fn insert_nodes(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    nodes: &[NodeRecord],
) -> Result<(), StoreError> {
    for (position, node) in nodes.iter().enumerate() {
        sqlx::query(
            "INSERT INTO nodes (id, pipe_id, position, name, sql_text, description, node_type, settings, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&node.id)
        .bind(&node.pipe_id)
        .bind(position as i64)
        .bind(&node.name)
        .bind(&node.sql)
        .bind(&node.description)
        .bind(&node.node_type)
        .bind(&node.settings)
        .bind(&node.created_at)
        .bind(&node.updated_at)
        .execute(&mut **tx)
        .await
        .map_err(|e| conflict_or(e, &format!("Node '{}'", node.name)))?;
    }
    Ok(())
}

const PIPE_COLUMNS: &str = "SELECT id, workspace_id, name, description, endpoint_node_id, created_at, updated_at FROM pipes";
const NODE_COLUMNS: &str = "SELECT id, pipe_id, name, sql_text, description, node_type, settings, created_at, updated_at FROM nodes";

fn pipe_from_row(row: &AnyRow) -> PipeRecord {
    PipeRecord {
        id: row.get(0),
        workspace_id: row.get(1),
        name: row.get(2),
        description: row.get(3),
        endpoint_node_id: row.get(4),
        created_at: row.get(5),
        updated_at: row.get(6),
    }
}

fn node_from_row(row: &AnyRow) -> NodeRecord {
    NodeRecord {
        id: row.get(0),
        pipe_id: row.get(1),
        name: row.get(2),
        sql: row.get(3),
        description: row.get(4),
        node_type: row.get(5),
        settings: row.get(6),
        created_at: row.get(7),
        updated_at: row.get(8),
    }
}

const WORKSPACE_COLUMNS: &str =
    "SELECT id, name, organization_id, owner_user_id, database_name, created_at FROM workspaces";
const TOKEN_COLUMNS: &str = "SELECT id, workspace_id, user_id, name, token_value, scopes, description, created_at, origin, origin_resource FROM tokens";
const DATA_SOURCE_COLUMNS: &str = "SELECT id, workspace_id, name, columns, engine, description, origin_format, table_name, created_at, updated_at FROM data_sources";

fn workspace_from_row(row: &AnyRow) -> WorkspaceRecord {
    WorkspaceRecord {
        id: row.get(0),
        name: row.get(1),
        organization_id: row.get(2),
        owner_user_id: row.get(3),
        database: row.get(4),
        created_at: row.get(5),
    }
}

fn token_from_row(row: &AnyRow) -> TokenRecord {
    TokenRecord {
        id: row.get(0),
        workspace_id: row.get(1),
        user_id: row.get(2),
        name: row.get(3),
        value: row.get(4),
        scopes: row.get(5),
        description: row.get(6),
        created_at: row.get(7),
        origin: row.get(8),
        origin_resource: row.get(9),
    }
}

fn data_source_from_row(row: &AnyRow) -> DataSourceRecord {
    DataSourceRecord {
        id: row.get(0),
        workspace_id: row.get(1),
        name: row.get(2),
        columns: row.get(3),
        engine: row.get(4),
        description: row.get(5),
        origin_format: row.get(6),
        table_name: row.get(7),
        created_at: row.get(8),
        updated_at: row.get(9),
    }
}

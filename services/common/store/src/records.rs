/// An organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Organization {
    pub id: String,
    pub name: String,
    pub created_at: String,
}

/// A user of an organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub email: String,
    pub organization_id: String,
    pub created_at: String,
}

/// A workspace: a tenant with its own ClickHouse database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspaceRecord {
    pub id: String,
    pub name: String,
    pub organization_id: String,
    pub owner_user_id: String,
    /// The ClickHouse database name (unquoted).
    pub database: String,
    pub created_at: String,
}

/// A token. `workspace_id` is None for a user token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub id: String,
    pub workspace_id: Option<String>,
    pub user_id: String,
    pub name: String,
    /// The secret value; compared in constant time by the auth service, never logged.
    pub value: String,
    /// JSON array of scope strings.
    pub scopes: String,
    pub description: String,
    pub created_at: String,
    /// Tinybird's origin code: `C` (custom), `DS` (data source), `P` (pipe).
    pub origin: String,
    /// The data source or pipe of a `DS` or `P` origin.
    pub origin_resource: String,
}

/// A data source's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataSourceRecord {
    pub id: String,
    pub workspace_id: String,
    pub name: String,
    /// JSON array of columns.
    pub columns: String,
    /// JSON object of engine settings.
    pub engine: String,
    pub description: String,
    pub origin_format: String,
    /// The ClickHouse table name in the workspace database (unquoted); stable across renames.
    pub table_name: String,
    pub created_at: String,
    pub updated_at: String,
}

/// A pipe's metadata; its nodes are [`NodeRecord`]s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipeRecord {
    pub id: String,
    pub workspace_id: String,
    pub name: String,
    pub description: String,
    /// Id of the published node; empty when nothing is published.
    pub endpoint_node_id: String,
    pub created_at: String,
    pub updated_at: String,
}

/// One SQL node of a pipe.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeRecord {
    pub id: String,
    pub pipe_id: String,
    pub name: String,
    pub sql: String,
    pub description: String,
    pub node_type: String,
    /// JSON object of type-specific settings.
    pub settings: String,
    pub created_at: String,
    pub updated_at: String,
}

// Every text field of each record, so a write can refuse a NUL character in any of them (see
// `refuse_nul` in lib.rs).

impl Organization {
    pub(crate) fn texts(&self) -> [&str; 3] {
        [&self.id, &self.name, &self.created_at]
    }
}

impl User {
    pub(crate) fn texts(&self) -> [&str; 4] {
        [
            &self.id,
            &self.email,
            &self.organization_id,
            &self.created_at,
        ]
    }
}

impl WorkspaceRecord {
    pub(crate) fn texts(&self) -> [&str; 6] {
        [
            &self.id,
            &self.name,
            &self.organization_id,
            &self.owner_user_id,
            &self.database,
            &self.created_at,
        ]
    }
}

impl TokenRecord {
    pub(crate) fn texts(&self) -> [&str; 10] {
        [
            &self.id,
            self.workspace_id.as_deref().unwrap_or_default(),
            &self.user_id,
            &self.name,
            &self.value,
            &self.scopes,
            &self.description,
            &self.created_at,
            &self.origin,
            &self.origin_resource,
        ]
    }
}

impl DataSourceRecord {
    pub(crate) fn texts(&self) -> [&str; 10] {
        [
            &self.id,
            &self.workspace_id,
            &self.name,
            &self.columns,
            &self.engine,
            &self.description,
            &self.origin_format,
            &self.table_name,
            &self.created_at,
            &self.updated_at,
        ]
    }
}

impl PipeRecord {
    pub(crate) fn texts(&self) -> [&str; 7] {
        [
            &self.id,
            &self.workspace_id,
            &self.name,
            &self.description,
            &self.endpoint_node_id,
            &self.created_at,
            &self.updated_at,
        ]
    }
}

impl NodeRecord {
    pub(crate) fn texts(&self) -> [&str; 9] {
        [
            &self.id,
            &self.pipe_id,
            &self.name,
            &self.sql,
            &self.description,
            &self.node_type,
            &self.settings,
            &self.created_at,
            &self.updated_at,
        ]
    }
}

//! The catalog's repository: organizations, users, workspaces, tokens and data sources, stored with
//! sqlx's `Any` driver so the same code and the same portable migrations serve SQLite (`roost
//! local`) and PostgreSQL (distributed mode). Records are plain structs; JSON-shaped fields are
//! kept as JSON text and interpreted by the owning service. No service logic lives here.
//!
//! Both backends must behave alike; `tests/store` runs every case against each. What keeps them
//! alike, for anyone adding a table or a query:
//! - Placeholders are `$1`, `$2`, ...; upserts are `INSERT ... ON CONFLICT (..) DO UPDATE`.
//! - Integers are `BIGINT` columns bound and read as `i64`. Flags are `BOOLEAN` columns bound as
//!   `bool` and read as `CAST(flag AS INTEGER)` into `i64`: through `Any`, SQLite hands a boolean
//!   back as an integer and PostgreSQL as a bool, and neither decodes as the other (PostgreSQL
//!   casts a boolean to `INTEGER` but not to `BIGINT`).
//! - Timestamps are `TEXT` in one fixed format, so comparing them as text orders them in time.
//! - Lists are ordered in Rust, not with `ORDER BY` on text: PostgreSQL orders text by the
//!   database's collation (with en-US, `a` before `B` and `_` ignored), SQLite by bytes.
//! - PostgreSQL refuses a NUL character in text; SQLite would store it. Writes refuse it on both
//!   ([`StoreError::InvalidText`]) and lookups of such a key find nothing.
//! - A lookup "by name or id" lets the id win when one record's name is another's id.

mod connections;
mod jobs;
mod records;
mod schedules;
mod variables;

pub use connections::ConnectionRecord;
pub use jobs::{JobFilter, JobRecord, JobUpdate};
pub use records::{
    DataSourceRecord, NodeRecord, Organization, PipeRecord, TokenRecord, User, WorkspaceRecord,
};
pub use schedules::ScheduleRecord;
pub use variables::VariableRecord;

use std::time::{Duration, Instant};

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyConnection, AnyPool, Connection, Row};
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
    /// The database server did not come up within the connect deadline.
    #[error(
        "catalog database {target} not reachable after {attempts} attempts in {waited:?}: {last}"
    )]
    Unreachable {
        /// Scheme, host, port and database, without credentials.
        target: String,
        /// Connection attempts made.
        attempts: u32,
        /// Time spent trying.
        waited: Duration,
        /// Why the last attempt failed.
        #[source]
        last: sqlx::Error,
    },
    /// A text field holds a NUL character, which PostgreSQL cannot store.
    #[error("{0} contains a NUL character")]
    InvalidText(String),
}

/// How long [`Store::connect`] keeps trying a database server that is not up yet: distributed
/// services start in any order, so the catalog may come up before PostgreSQL does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectRetry {
    /// Give up once this much time has passed since the first attempt.
    pub deadline: Duration,
    /// The pause after the first failed attempt; doubled after each further failure.
    pub initial_backoff: Duration,
    /// The longest pause between two attempts.
    pub max_backoff: Duration,
}

impl Default for ConnectRetry {
    fn default() -> Self {
        ConnectRetry {
            deadline: Duration::from_secs(60),
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
        }
    }
}

/// How long one connection attempt may take before it counts as failed; a server whose address
/// drops packets would otherwise hold an attempt for the operating system's TCP timeout.
const CONNECT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections per process to PostgreSQL: each service replica holds its own pool, and the
/// server's default limit is 100 in all, so a handful of replicas must fit.
const POSTGRES_MAX_CONNECTIONS: u32 = 10;

/// The repository.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Taken while migrating a SQLite catalog (see [`Store::connect_with_retry`]).
static SQLITE_MIGRATIONS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn is_sqlite(url: &str) -> bool {
    url.starts_with("sqlite:")
}

/// Opens single connections until one succeeds, backing off between attempts, while failures look
/// like a server that is still starting; any other failure (bad password, missing database) is
/// returned at once.
async fn wait_for_server(url: &str, retry: ConnectRetry) -> Result<(), StoreError> {
    let started = Instant::now();
    let mut backoff = retry.initial_backoff;
    let mut attempts = 0;
    loop {
        attempts += 1;
        let remaining = retry.deadline.saturating_sub(started.elapsed());
        let attempt = tokio::time::timeout(
            CONNECT_ATTEMPT_TIMEOUT.min(remaining),
            AnyConnection::connect(url),
        )
        .await;
        let failure = match attempt {
            Ok(Ok(connection)) => {
                // Only the server's readiness was in question; the pool opens its own connections.
                let _ = connection.close().await;
                return Ok(());
            }
            Ok(Err(error)) if is_server_starting(&error) => error,
            Ok(Err(error)) => return Err(StoreError::Database(error)),
            Err(_elapsed) => sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "connection attempt timed out",
            )),
        };
        if started.elapsed() + backoff >= retry.deadline {
            return Err(StoreError::Unreachable {
                target: redacted_target(url),
                attempts,
                waited: started.elapsed(),
                last: failure,
            });
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(retry.max_backoff);
    }
}

/// Whether a connect failure means "try again shortly": the address refuses or drops
/// connections, the name does not resolve yet (a Kubernetes service before its pods), or the
/// server answers that it is starting up, shutting down or full.
fn is_server_starting(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_) => true,
        sqlx::Error::Database(database) => matches!(
            database.code().as_deref(),
            // cannot_connect_now, too_many_connections, admin_shutdown, crash_shutdown
            Some("57P03" | "53300" | "57P01" | "57P02")
        ),
        _ => false,
    }
}

/// The scheme, host, port and database of a URL, for messages: credentials (in the user info or
/// in query parameters such as `password=`) never appear.
fn redacted_target(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "(unparseable URL)".to_string();
    };
    let without_query = rest.split(['?', '#']).next().unwrap_or_default();
    let (authority, path) = match without_query.find('/') {
        Some(slash) => without_query.split_at(slash),
        None => (without_query, ""),
    };
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    format!("{scheme}://{host}{path}")
}

/// Whether any of these values holds a NUL character, which PostgreSQL refuses in text.
fn has_nul(values: &[&str]) -> bool {
    values.iter().any(|value| value.contains('\0'))
}

/// Refuses a write whose text PostgreSQL could not store, on every backend alike.
fn refuse_nul(what: &str, values: &[&str]) -> Result<(), StoreError> {
    if has_nul(values) {
        return Err(StoreError::InvalidText(what.to_string()));
    }
    Ok(())
}

fn conflict_or(error: sqlx::Error, what: &str) -> StoreError {
    match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict(what.to_string())
        }
        _ => StoreError::Database(error),
    }
}

impl Store {
    /// Connects (`sqlite://path?mode=rwc`, `postgres://...`) and applies pending migrations,
    /// waiting for a PostgreSQL server that is not up yet as [`ConnectRetry::default`] allows.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        Store::connect_with_retry(url, ConnectRetry::default()).await
    }

    /// Like [`Store::connect`], with an explicit retry budget for a server that is not up yet.
    /// SQLite is a local file: it is opened once, without retries.
    pub async fn connect_with_retry(url: &str, retry: ConnectRetry) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let pool = if is_sqlite(url) {
            // SQLite serializes writers; one connection per core is plenty and avoids busy errors.
            let pool = AnyPoolOptions::new()
                .max_connections(4)
                .connect(url)
                .await?;
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&pool)
                .await?;
            sqlx::query("PRAGMA busy_timeout = 5000")
                .execute(&pool)
                .await?;
            pool
        } else {
            wait_for_server(url, retry).await?;
            AnyPoolOptions::new()
                .max_connections(POSTGRES_MAX_CONNECTIONS)
                // Waiting longer than this for a free connection means the catalog is overloaded;
                // failing lets the caller answer instead of hanging.
                .acquire_timeout(Duration::from_secs(10))
                // Give idle connections back to the server, and renew long-lived ones so a
                // failover or a server-side setting change is picked up.
                .idle_timeout(Duration::from_secs(300))
                .max_lifetime(Duration::from_secs(1800))
                .connect(url)
                .await?
        };
        if is_sqlite(url) {
            // The migrator locks nothing on SQLite, so two stores opening one new file at once
            // would both create the tables; a local catalog belongs to one process, so a lock
            // in the process is enough.
            let _only_migrator = SQLITE_MIGRATIONS.lock().await;
            MIGRATOR.run(&pool).await?;
        } else {
            // Concurrent starters are safe here: the migrator holds an advisory lock.
            MIGRATOR.run(&pool).await?;
        }
        Ok(Store { pool })
    }

    /// The SQLite URL of a catalog file, created when missing.
    pub fn sqlite_url(path: &std::path::Path) -> String {
        format!("sqlite://{}?mode=rwc", path.display())
    }

    /// A value of the `meta` table.
    pub async fn get_meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        if has_nul(&[key]) {
            return Ok(None);
        }
        let row = sqlx::query("SELECT value FROM meta WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|row| row.get::<String, _>(0)))
    }

    /// Sets a value of the `meta` table.
    pub async fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        refuse_nul("meta entry", &[key, value])?;
        sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
            .bind(key)
            .bind(value)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Adds an organization.
    pub async fn insert_organization(&self, org: &Organization) -> Result<(), StoreError> {
        refuse_nul("organization", &org.texts())?;
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
        refuse_nul("user", &user.texts())?;
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
        if has_nul(&[id]) {
            return Err(StoreError::NotFound(format!("user {id:?}")));
        }
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
        refuse_nul("workspace", &workspace.texts())?;
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
        if has_nul(&[id]) {
            return Err(StoreError::NotFound(format!("workspace {id:?}")));
        }
        sqlx::query(&format!("{WORKSPACE_COLUMNS} WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .map(|row| workspace_from_row(&row))
            .ok_or_else(|| StoreError::NotFound(format!("workspace {id}")))
    }

    /// One organization.
    pub async fn get_organization(&self, id: &str) -> Result<Organization, StoreError> {
        if has_nul(&[id]) {
            return Err(StoreError::NotFound(format!("Organization {id:?}")));
        }
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
        if has_nul(&[organization_id]) {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(
            "SELECT id, email, organization_id, created_at FROM users WHERE organization_id = $1",
        )
        .bind(organization_id)
        .fetch_all(&self.pool)
        .await?;
        let mut users: Vec<User> = rows
            .iter()
            .map(|row| User {
                id: row.get(0),
                email: row.get(1),
                organization_id: row.get(2),
                created_at: row.get(3),
            })
            .collect();
        // Byte order in Rust, the same on both backends (see the crate docs).
        users.sort_by(|a, b| (&a.created_at, &a.email).cmp(&(&b.created_at, &b.email)));
        Ok(users)
    }

    /// The workspaces of an organization, oldest first.
    pub async fn list_organization_workspaces(
        &self,
        organization_id: &str,
    ) -> Result<Vec<WorkspaceRecord>, StoreError> {
        if has_nul(&[organization_id]) {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(&format!("{WORKSPACE_COLUMNS} WHERE organization_id = $1"))
            .bind(organization_id)
            .fetch_all(&self.pool)
            .await?;
        Ok(oldest_workspaces_first(
            rows.iter().map(workspace_from_row).collect(),
        ))
    }

    /// The workspaces a user owns, oldest first.
    pub async fn list_user_workspaces(
        &self,
        user_id: &str,
    ) -> Result<Vec<WorkspaceRecord>, StoreError> {
        if has_nul(&[user_id]) {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(&format!("{WORKSPACE_COLUMNS} WHERE owner_user_id = $1"))
            .bind(user_id)
            .fetch_all(&self.pool)
            .await?;
        Ok(oldest_workspaces_first(
            rows.iter().map(workspace_from_row).collect(),
        ))
    }

    /// Removes a workspace with every record that belongs to it (tokens, data sources, pipes and
    /// their nodes, connections) in one transaction; its tokens stop working at once. The engine's data is not
    /// touched here.
    pub async fn delete_workspace(&self, id: &str) -> Result<(), StoreError> {
        if has_nul(&[id]) {
            return Err(StoreError::NotFound(format!("Workspace {id:?}")));
        }
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
            "connections",
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
        refuse_nul("token", &token.texts())?;
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
        if has_nul(&[id]) {
            return Err(StoreError::NotFound(format!("token {id:?}")));
        }
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
        if has_nul(&[workspace_id, name_or_id]) {
            return Err(StoreError::NotFound(format!("Token {name_or_id:?}")));
        }
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
        if has_nul(&[workspace_id]) {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(&format!("{TOKEN_COLUMNS} WHERE workspace_id = $1"))
            .bind(workspace_id)
            .fetch_all(&self.pool)
            .await?;
        let mut tokens: Vec<TokenRecord> = rows.iter().map(token_from_row).collect();
        // Byte order in Rust, the same on both backends (see the crate docs).
        tokens.sort_by(|a, b| (&a.created_at, &a.name).cmp(&(&b.created_at, &b.name)));
        Ok(tokens)
    }

    /// Rewrites a token's name, value, scopes and description.
    pub async fn update_token(&self, token: &TokenRecord) -> Result<(), StoreError> {
        refuse_nul("token", &token.texts())?;
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
        if has_nul(&[workspace_id, id]) {
            return Err(StoreError::NotFound(format!("Token {id:?}")));
        }
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
        refuse_nul("data source", &record.texts())?;
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
        if has_nul(&[workspace_id, name_or_id]) {
            return Err(StoreError::NotFound(format!("Data Source {name_or_id:?}")));
        }
        sqlx::query(&format!(
            "{DATA_SOURCE_COLUMNS} WHERE workspace_id = $1 AND (name = $2 OR id = $2)"
        ))
        .bind(workspace_id)
        .bind(name_or_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(data_source_from_row)
        // An id wins over another data source's name that happens to equal it.
        .min_by_key(|record| record.id != name_or_id)
        .ok_or_else(|| StoreError::NotFound(format!("Data Source '{name_or_id}'")))
    }

    /// The data sources of a workspace, by name.
    pub async fn list_data_sources(
        &self,
        workspace_id: &str,
    ) -> Result<Vec<DataSourceRecord>, StoreError> {
        if has_nul(&[workspace_id]) {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(&format!("{DATA_SOURCE_COLUMNS} WHERE workspace_id = $1"))
            .bind(workspace_id)
            .fetch_all(&self.pool)
            .await?;
        let mut records: Vec<DataSourceRecord> = rows.iter().map(data_source_from_row).collect();
        // Byte order in Rust, the same on both backends (see the crate docs).
        records.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(records)
    }

    /// Replaces a data source's name, columns, engine and description.
    pub async fn update_data_source(&self, record: &DataSourceRecord) -> Result<(), StoreError> {
        refuse_nul("data source", &record.texts())?;
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
        if has_nul(&[workspace_id, id]) {
            return Ok(());
        }
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
        refuse_nul_in_pipe(pipe, nodes)?;
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
        refuse_nul_in_pipe(pipe, nodes)?;
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
        if has_nul(&[workspace_id, name_or_id]) {
            return Err(StoreError::NotFound(format!("Pipe {name_or_id:?}")));
        }
        let pipe = sqlx::query(&format!(
            "{PIPE_COLUMNS} WHERE workspace_id = $1 AND (name = $2 OR id = $2)"
        ))
        .bind(workspace_id)
        .bind(name_or_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(pipe_from_row)
        // An id wins over another pipe's name that happens to equal it.
        .min_by_key(|pipe| pipe.id != name_or_id)
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
        if has_nul(&[workspace_id]) {
            return Ok(Vec::new());
        }
        let mut pipes: Vec<PipeRecord> =
            sqlx::query(&format!("{PIPE_COLUMNS} WHERE workspace_id = $1"))
                .bind(workspace_id)
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(pipe_from_row)
                .collect();
        // Byte order in Rust, the same on both backends (see the crate docs).
        pipes.sort_by(|a, b| a.name.cmp(&b.name));
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
        if has_nul(&[workspace_id, id]) {
            return Ok(());
        }
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

fn refuse_nul_in_pipe(pipe: &PipeRecord, nodes: &[NodeRecord]) -> Result<(), StoreError> {
    refuse_nul("pipe", &pipe.texts())?;
    for node in nodes {
        refuse_nul("node", &node.texts())?;
    }
    Ok(())
}

/// Oldest first, then by name, in byte order: the same on both backends (see the crate docs).
fn oldest_workspaces_first(mut workspaces: Vec<WorkspaceRecord>) -> Vec<WorkspaceRecord> {
    workspaces.sort_by(|a, b| (&a.created_at, &a.name).cmp(&(&b.created_at, &b.name)));
    workspaces
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacted_targets_keep_host_and_database_but_no_credentials() {
        assert_eq!(
            redacted_target("postgres://roost:s3cret@db.internal:5432/catalog?sslmode=require"),
            "postgres://db.internal:5432/catalog"
        );
        assert_eq!(
            redacted_target("postgres://db:5432/catalog?user=roost&password=s3cret"),
            "postgres://db:5432/catalog"
        );
        assert_eq!(
            redacted_target("postgres://user:p@ss@host"),
            "postgres://host"
        );
        assert_eq!(redacted_target("not a url"), "(unparseable URL)");
    }

    #[test]
    fn refused_and_unresolved_addresses_are_worth_retrying_but_protocol_errors_are_not() {
        let refused = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(is_server_starting(&refused));
        assert!(!is_server_starting(&sqlx::Error::RowNotFound));
        assert!(!is_server_starting(&sqlx::Error::Protocol(
            "unexpected message".into()
        )));
    }

    #[test]
    fn nul_characters_are_refused_in_any_field() {
        assert!(refuse_nul("meta entry", &["key", "value"]).is_ok());
        assert!(matches!(
            refuse_nul("meta entry", &["key", "va\0lue"]),
            Err(StoreError::InvalidText(what)) if what == "meta entry"
        ));
    }
}

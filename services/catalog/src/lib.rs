//! Data sources (pipes, nodes and endpoints come with their issue): metadata in the store, tables
//! in the engine. Every workspace is a ClickHouse database; every data source a table in it, named
//! by its id so a rename never touches the engine, plus `<table>_quarantine`.
//! Depends on the store, the engine and the contracts; never on another service.

mod connections;
pub mod ddl;
mod error;
mod materialized;
mod pipes;
mod placement;
mod record;

pub use error::CatalogError;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use roost_bus::{CatalogChanges, ChangeGuard};
use roost_engine::Engine;
use roost_proto::catalog::v1 as proto;
use roost_proto::{CatalogService, ServiceError, columns_from_proto};
use roost_store::{DataSourceRecord, Store, StoreError};
use roost_types::{Column, quote_ident, validate_name};

/// The catalog service.
pub struct Catalog {
    store: Store,
    engine: Arc<dyn Engine>,
    /// Databases known to exist, so DDL does not re-create them on every call.
    /// Workspace id → its database, for workspaces whose database is known to exist: a
    /// workspace's database never changes, so hot paths (every query and endpoint call lists
    /// data sources) skip both the store read and the `CREATE DATABASE`.
    databases: Mutex<HashMap<String, String>>,
    /// Told of every change before the change is answered, for caches of what the catalog
    /// lists (counted in this process; in distributed mode announced to the others too).
    changes: Arc<CatalogChanges>,
}

impl Catalog {
    /// A catalog over `store` whose tables live in `engine`.
    pub fn new(store: Store, engine: Arc<dyn Engine>) -> Self {
        Catalog {
            store,
            engine,
            databases: Mutex::new(HashMap::new()),
            changes: CatalogChanges::local(),
        }
    }

    /// Counts (and in distributed mode announces) this catalog's changes on `changes`.
    pub fn with_changes(mut self, changes: Arc<CatalogChanges>) -> Self {
        self.changes = changes;
        self
    }

    /// Held while a method changes the caller's workspace; see [`finishing`].
    fn changing(
        &self,
        header: &Option<roost_proto::common::v1::RequestHeader>,
    ) -> Option<ChangeGuard> {
        workspace_id(header).ok().map(|id| self.changes.guard(id))
    }

    pub(crate) fn placement(&self) -> placement::Placement<'_> {
        placement::Placement::of(self.engine.as_ref())
    }

    async fn database_of(
        &self,
        header: &Option<roost_proto::common::v1::RequestHeader>,
    ) -> Result<String, CatalogError> {
        let workspace_id = workspace_id(header)?;
        if let Some(database) = self
            .databases
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(workspace_id)
        {
            return Ok(database.clone());
        }
        let database = self.store.get_workspace(workspace_id).await?.database;
        self.engine
            .execute(&self.placement().create_database(&database))
            .await?;
        self.databases
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(workspace_id.to_string(), database.clone());
        Ok(database)
    }

    async fn statistics(
        &self,
        database: &str,
    ) -> Result<HashMap<String, proto::DataSourceStatistics>, CatalogError> {
        let placement = self.placement();
        let sql = format!(
            "SELECT table, sum(rows), sum(bytes_on_disk) FROM {} WHERE database = {} AND active GROUP BY table",
            placement.parts_source(),
            roost_types::quote_string(database)
        );
        let answer = self.engine.query(&sql, "TSV").await?;
        let text = String::from_utf8_lossy(&answer.data);
        Ok(text
            .lines()
            .filter_map(|line| {
                let mut fields = line.split('\t');
                let table = placement.table_of_part(fields.next()?).to_string();
                let row_count = fields.next()?.parse().ok()?;
                let bytes = fields.next()?.parse().ok()?;
                Some((table, proto::DataSourceStatistics { row_count, bytes }))
            })
            .collect())
    }

    async fn message(
        &self,
        record: &DataSourceRecord,
        database: &str,
        stats: Option<&HashMap<String, proto::DataSourceStatistics>>,
    ) -> proto::DataSource {
        let mut message = record::to_message(record, database);
        message.statistics = Some(
            stats
                .and_then(|s| s.get(&record.table_name).copied())
                .unwrap_or_default(),
        );
        message
    }

    /// Drops tables while undoing a failed create; what is missing is no error.
    async fn drop_tables(&self, tables: &[&str]) {
        let sync = match self.engine.drop_sync_clause().await {
            Ok(sync) => sync,
            Err(error) => {
                tracing::warn!(%error, "cannot drop the tables of a failed create");
                return;
            }
        };
        for table in tables {
            for statement in self.placement().drop(table, sync) {
                if let Err(error) = self.engine.execute(&statement).await {
                    tracing::warn!(%table, %error, "cannot drop a table of a failed create");
                }
            }
        }
    }

    async fn get_record(
        &self,
        header: &Option<roost_proto::common::v1::RequestHeader>,
        name_or_id: &str,
    ) -> Result<DataSourceRecord, CatalogError> {
        Ok(self
            .store
            .get_data_source(workspace_id(header)?, name_or_id)
            .await?)
    }
}

/// Runs `change`, a mutating method's work, then finishes its `guard` before the outcome goes
/// back to the caller, succeeded or failed: once the caller has the answer, every process caching
/// catalog reads knows of the change (`roost_bus::CatalogChanges`), so whatever the caller asks
/// next never sees the catalog as it was.
pub(crate) async fn finishing<Outcome>(
    guard: Option<ChangeGuard>,
    change: impl Future<Output = Outcome>,
) -> Outcome {
    let outcome = change.await;
    if let Some(guard) = guard {
        guard.finish().await;
    }
    outcome
}

fn workspace_id(
    header: &Option<roost_proto::common::v1::RequestHeader>,
) -> Result<&str, CatalogError> {
    header
        .as_ref()
        .map(|h| h.workspace_id.as_str())
        .filter(|id| !id.is_empty())
        .ok_or(CatalogError::NoWorkspace)
}

fn now() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%d %H:%M:%S%.6f")
        .to_string()
}

#[async_trait]
impl CatalogService for Catalog {
    async fn create_data_source(
        &self,
        request: proto::CreateDataSourceRequest,
    ) -> Result<proto::CreateDataSourceResponse, ServiceError> {
        let change = self.changing(&request.header);
        finishing(change, async move {
            validate_name("Data Source", &request.name)
                .map_err(|e| ServiceError::bad_request(e.to_string()))?;
            if request.name.ends_with("_quarantine") {
                return Err(ServiceError::bad_request(format!(
                    "Invalid Data Source name '{}': the suffix '_quarantine' is reserved",
                    request.name
                )));
            }
            let columns = columns_from_proto(&request.columns)?;
            if columns.is_empty() {
                return Err(ServiceError::bad_request(
                    "A Data Source needs at least one column: pass a schema",
                ));
            }
            let engine = request.engine.unwrap_or_default();
            let database = self.database_of(&request.header).await?;
            let workspace = workspace_id(&request.header)?.to_string();
            match self.store.get_data_source(&workspace, &request.name).await {
                Ok(_) => return Err(CatalogError::Exists(request.name).into()),
                Err(StoreError::NotFound(_)) => {}
                Err(other) => return Err(CatalogError::from(other).into()),
            }
            self.no_pipe_named(&workspace, &request.name).await?;
            let id = format!("t_{}", uuid::Uuid::new_v4().simple());
            let table = format!("{}.{}", quote_ident(&database), quote_ident(&id));
            let quarantine_id = format!("{id}_quarantine");
            let quarantine = format!("{}.{}", quote_ident(&database), quote_ident(&quarantine_id));
            let placement = self.placement();
            let mut statements = placement.create(&database, &id, |table, on, path| {
                ddl::create_table(table, on, &columns, &engine, path)
            })?;
            statements.extend(
                placement.create(&database, &quarantine_id, |table, on, path| {
                    Ok::<_, CatalogError>(ddl::create_quarantine_table(table, on, &columns, path))
                })?,
            );
            for statement in &statements {
                if let Err(error) = self.engine.execute(statement).await {
                    self.drop_tables(&[&table, &quarantine]).await;
                    return Err(CatalogError::from(error).into());
                }
            }
            let created_at = now();
            let record = DataSourceRecord {
                id: id.clone(),
                workspace_id: workspace,
                name: request.name.clone(),
                columns: record::columns_json(&columns),
                engine: record::engine_json(&engine),
                description: request.description,
                origin_format: request.origin_format,
                table_name: id,
                created_at: created_at.clone(),
                updated_at: created_at,
            };
            if let Err(error) = self.store.insert_data_source(&record).await {
                // Lost a race with a concurrent create of the same name: undo our tables.
                self.drop_tables(&[&table, &quarantine]).await;
                return Err(CatalogError::from(error).into());
            }
            tracing::info!(data_source = %record.name, table = %table, "data source created");
            let data_source = self.message(&record, &database, None).await;
            Ok(proto::CreateDataSourceResponse {
                data_source: Some(data_source),
            })
        })
        .await
    }

    async fn get_data_source(
        &self,
        request: proto::GetDataSourceRequest,
    ) -> Result<proto::GetDataSourceResponse, ServiceError> {
        let record = self
            .get_record(&request.header, &request.name_or_id)
            .await?;
        let database = self.database_of(&request.header).await?;
        let stats = if request.with_statistics {
            Some(self.statistics(&database).await?)
        } else {
            None
        };
        let mut data_source = self.message(&record, &database, stats.as_ref()).await;
        data_source.used_by = self
            .dependents_of(&record.workspace_id, &record.id, &record.name)
            .await?;
        Ok(proto::GetDataSourceResponse {
            data_source: Some(data_source),
        })
    }

    async fn list_data_sources(
        &self,
        request: proto::ListDataSourcesRequest,
    ) -> Result<proto::ListDataSourcesResponse, ServiceError> {
        let records = self
            .store
            .list_data_sources(workspace_id(&request.header)?)
            .await
            .map_err(CatalogError::from)?;
        let database = self.database_of(&request.header).await?;
        let stats = if request.with_statistics {
            Some(self.statistics(&database).await?)
        } else {
            None
        };
        let mut data_sources = Vec::with_capacity(records.len());
        for record in &records {
            data_sources.push(self.message(record, &database, stats.as_ref()).await);
        }
        Ok(proto::ListDataSourcesResponse { data_sources })
    }

    async fn rename_data_source(
        &self,
        request: proto::RenameDataSourceRequest,
    ) -> Result<proto::RenameDataSourceResponse, ServiceError> {
        let change = self.changing(&request.header);
        finishing(change, async move {
            validate_name("Data Source", &request.new_name)
                .map_err(|e| ServiceError::bad_request(e.to_string()))?;
            if request.new_name.ends_with("_quarantine") {
                return Err(ServiceError::bad_request(
                    "the suffix '_quarantine' is reserved",
                ));
            }
            let mut record = self
                .get_record(&request.header, &request.name_or_id)
                .await?;
            if record.name != request.new_name {
                self.no_pipe_named(&record.workspace_id, &request.new_name)
                    .await?;
            }
            record.name = request.new_name;
            record.updated_at = now();
            self.store
                .update_data_source(&record)
                .await
                .map_err(CatalogError::from)?;
            let database = self.database_of(&request.header).await?;
            let data_source = self.message(&record, &database, None).await;
            Ok(proto::RenameDataSourceResponse {
                data_source: Some(data_source),
            })
        })
        .await
    }

    async fn delete_data_source(
        &self,
        request: proto::DeleteDataSourceRequest,
    ) -> Result<proto::DeleteDataSourceResponse, ServiceError> {
        // A dry run changes nothing: followers keep their caches.
        let change = (!request.dry_run)
            .then(|| self.changing(&request.header))
            .flatten();
        finishing(change, async move {
            let record = self
                .get_record(&request.header, &request.name_or_id)
                .await?;
            let database = self.database_of(&request.header).await?;
            let data_source = self.message(&record, &database, None).await;
            let dependent_pipes = self
                .dependents_of(&record.workspace_id, &record.id, &record.name)
                .await?;
            if request.dry_run {
                return Ok(proto::DeleteDataSourceResponse {
                    data_source: Some(data_source),
                    dependent_pipes,
                });
            }
            if !dependent_pipes.is_empty() && !request.force {
                return Err(ServiceError::conflict(format!(
                    "Data Source '{}' is used by the pipes {}: remove them first, or delete with force=true",
                    record.name,
                    dependent_pipes.join(", ")
                )));
            }
            // Views writing into or reading from it would break every insert into their source.
            self.unlink_views_of(&record.workspace_id, &database, &record.id, &record.name)
                .await?;
            let sync = self
                .engine
                .drop_sync_clause()
                .await
                .map_err(CatalogError::from)?;
            for table in [&data_source.table, &data_source.quarantine_table] {
                for statement in self.placement().drop(table, sync) {
                    self.engine
                        .execute(&statement)
                        .await
                        .map_err(CatalogError::from)?;
                }
            }
            self.store
                .delete_data_source(&record.workspace_id, &record.id)
                .await
                .map_err(CatalogError::from)?;
            tracing::info!(data_source = %record.name, "data source deleted");
            Ok(proto::DeleteDataSourceResponse {
                data_source: Some(data_source),
                dependent_pipes,
            })
        })
        .await
    }

    async fn truncate_data_source(
        &self,
        request: proto::TruncateDataSourceRequest,
    ) -> Result<proto::TruncateDataSourceResponse, ServiceError> {
        let change = self.changing(&request.header);
        finishing(change, async move {
            let record = self
                .get_record(&request.header, &request.name_or_id)
                .await?;
            let database = self.database_of(&request.header).await?;
            let data_source = record::to_message(&record, &database);
            for table in [&data_source.table, &data_source.quarantine_table] {
                self.engine
                    .execute(&self.placement().truncate(table))
                    .await
                    .map_err(CatalogError::from)?;
            }
            Ok(proto::TruncateDataSourceResponse {})
        })
        .await
    }

    async fn alter_data_source(
        &self,
        request: proto::AlterDataSourceRequest,
    ) -> Result<proto::AlterDataSourceResponse, ServiceError> {
        if let Some(cluster) = self.placement().cluster() {
            return Err(ServiceError::bad_request(format!(
                "Altering a Data Source is not supported yet on a ClickHouse cluster ({cluster})"
            )));
        }
        let change = self.changing(&request.header);
        finishing(change, async move {
            let mut record = self
                .get_record(&request.header, &request.name_or_id)
                .await?;
            let database = self.database_of(&request.header).await?;
            let current = record::to_message(&record, &database);
            let mut columns: Vec<Column> = columns_from_proto(&current.columns)?;
            let new_columns = columns_from_proto(&request.add_columns)?;
            let mut engine = current.engine.clone().unwrap_or_default();
            let mut operations = Vec::new();
            for column in &new_columns {
                if columns.iter().any(|c| c.name == column.name) {
                    return Err(ServiceError::bad_request(format!(
                        "Column '{}' already exists",
                        column.name
                    )));
                }
                // The same checks as CREATE: these expressions go into DDL.
                if let Some(default) = &column.default {
                    ddl::check_expression("default", default)?;
                }
                if let Some(codec) = &column.codec {
                    ddl::check_expression("codec", codec)?;
                }
                operations.push(format!(
                    "ALTER TABLE {} ADD COLUMN {}",
                    current.table,
                    column.ddl()
                ));
                operations.push(format!(
                    "ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} Nullable(String)",
                    current.quarantine_table,
                    quote_ident(&column.name)
                ));
                columns.push(column.clone());
            }
            if let Some(ttl) = &request.ttl {
                let ttl = ttl.trim();
                if ttl.is_empty() || ttl.eq_ignore_ascii_case("false") {
                    operations.push(format!("ALTER TABLE {} REMOVE TTL", current.table));
                    engine.ttl = String::new();
                } else {
                    ddl::check_expression("ttl", ttl)?;
                    operations.push(format!("ALTER TABLE {} MODIFY TTL {ttl}", current.table));
                    engine.ttl = ttl.to_string();
                }
            }
            if !request.dry_run {
                for operation in &operations {
                    if let Err(error) = self.engine.execute(operation).await {
                        // Undo the columns already added, so the table matches the catalog again
                        // and the same alter can be retried once fixed.
                        for column in &new_columns {
                            let undo = format!(
                                "ALTER TABLE {} DROP COLUMN IF EXISTS {}",
                                current.table,
                                quote_ident(&column.name)
                            );
                            if let Err(undo_error) = self.engine.execute(&undo).await {
                                tracing::error!(error = %undo_error, "could not undo a failed alter");
                            }
                        }
                        return Err(CatalogError::from(error).into());
                    }
                }
                record.columns = record::columns_json(&columns);
                record.engine = record::engine_json(&engine);
                if let Some(description) = request.description {
                    record.description = description;
                }
                record.updated_at = now();
                self.store
                    .update_data_source(&record)
                    .await
                    .map_err(CatalogError::from)?;
            }
            let data_source = self.message(&record, &database, None).await;
            // Tinybird reports only the user-visible operation, not the quarantine mirror, and names
            // the data source, never the engine's table.
            let shown_name = quote_ident(&record.name);
            let operations = operations
                .into_iter()
                .filter(|op| !op.contains("_quarantine`"))
                .map(|op| op.replace(&current.table, &shown_name))
                .collect();
            Ok(proto::AlterDataSourceResponse {
                data_source: Some(data_source),
                operations,
            })
        })
        .await
    }

    async fn drop_workspace_data(
        &self,
        request: proto::DropWorkspaceDataRequest,
    ) -> Result<proto::DropWorkspaceDataResponse, ServiceError> {
        let change = self.changing(&request.header);
        finishing(change, async move {
            let database = request.database;
            // Only a workspace database (`roost_auth::database_for`) may go: never a system one.
            let is_workspace_database = database.strip_prefix("w_").is_some_and(|rest| {
                !rest.is_empty() && rest.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            });
            if !is_workspace_database {
                return Err(ServiceError::bad_request(format!(
                    "'{database}' is not a workspace database"
                )));
            }
            self.engine
                .execute(&self.placement().drop_database(&database))
                .await
                .map_err(CatalogError::from)?;
            self.databases
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .retain(|_, known| *known != database);
            Ok(proto::DropWorkspaceDataResponse {})
        })
        .await
    }

    async fn create_connection(
        &self,
        request: proto::CreateConnectionRequest,
    ) -> Result<proto::CreateConnectionResponse, ServiceError> {
        let change = self.changing(&request.header);
        finishing(change, self.create_connection_of(request)).await
    }

    async fn get_connection(
        &self,
        request: proto::GetConnectionRequest,
    ) -> Result<proto::GetConnectionResponse, ServiceError> {
        self.get_connection_of(request).await
    }

    async fn list_connections(
        &self,
        request: proto::ListConnectionsRequest,
    ) -> Result<proto::ListConnectionsResponse, ServiceError> {
        self.list_connections_of(request).await
    }

    async fn delete_connection(
        &self,
        request: proto::DeleteConnectionRequest,
    ) -> Result<proto::DeleteConnectionResponse, ServiceError> {
        let change = self.changing(&request.header);
        finishing(change, self.delete_connection_of(request)).await
    }
}

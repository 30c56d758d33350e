//! SQL over a workspace's data: validation and table resolution ([`sql`]), execution on the engine,
//! output formats ([`format`]). Users never name databases: each table name resolves to a data
//! source of the caller's workspace (or its quarantine) that the caller may read, and everything
//! else is refused before the engine sees it.

mod endpoint;
pub mod format;
pub mod sql;
pub mod template;

pub use endpoint::Endpoints;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use futures::stream;
use roost_engine::{Engine, ErrorClass};
use roost_proto::catalog::v1::ListDataSourcesRequest;
use roost_proto::query::v1 as proto;
use roost_proto::{CatalogClient, QueryService, ServiceError, SqlAnswer};

use crate::format::output_format;
use crate::sql::{TableResolver, validate_and_rewrite};

/// The query service.
pub struct Query {
    engine: Arc<dyn Engine>,
    catalog: CatalogClient,
}

impl Query {
    /// A query service reading `engine` and resolving names through `catalog`.
    pub fn new(engine: Arc<dyn Engine>, catalog: CatalogClient) -> Self {
        Query { engine, catalog }
    }
}

/// Table names a caller may read, mapped to their qualified engine tables.
pub(crate) struct WorkspaceTables(pub(crate) HashMap<String, String>);

impl WorkspaceTables {
    /// An engine message with the names the user wrote in place of the tables behind them, so
    /// errors speak of data sources and never show internal database or table names.
    pub(crate) fn unresolve(&self, message: &str) -> String {
        let mut tables: Vec<(&String, &String)> = self.0.iter().collect();
        // Longest first: a quarantine table's name extends its data source's table name.
        tables.sort_by_key(|(_, table)| std::cmp::Reverse(table.len()));
        let mut message = message.to_string();
        for (name, table) in tables {
            message = message
                .replace(table.as_str(), name)
                .replace(&table.replace('`', ""), name);
        }
        message
    }
}

impl TableResolver for WorkspaceTables {
    fn resolve(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }
}

#[async_trait]
impl QueryService for Query {
    async fn execute_sql(
        &self,
        request: proto::ExecuteSqlRequest,
    ) -> Result<SqlAnswer, ServiceError> {
        let listed = self
            .catalog
            .list_data_sources(ListDataSourcesRequest {
                header: request.header.clone(),
                with_statistics: false,
            })
            .await?;
        let mut tables = HashMap::new();
        for data_source in listed.data_sources {
            if !request.read_all && !request.readable.contains(&data_source.name) {
                continue;
            }
            tables.insert(
                format!("{}_quarantine", data_source.name),
                data_source.quarantine_table,
            );
            tables.insert(data_source.name, data_source.table);
        }
        let tables = WorkspaceTables(tables);
        let validated = validate_and_rewrite(&request.sql, &tables)
            .map_err(|e| ServiceError::bad_request(e.to_string()))?;
        let format_name = validated
            .format
            .as_deref()
            .or(Some(request.default_format.as_str()).filter(|f| !f.is_empty()))
            .unwrap_or("JSON");
        let format = output_format(format_name).ok_or_else(|| {
            ServiceError::bad_request(format!("Format '{format_name}' is not supported"))
        })?;
        let answer = self
            .engine
            .query(&validated.sql, format.clickhouse)
            .await
            .map_err(|error| match error.class() {
                ErrorClass::BadRequest | ErrorClass::NotFound | ErrorClass::Conflict => {
                    ServiceError::bad_request(format!(
                        "[Error] {}",
                        tables.unresolve(&error.user_message())
                    ))
                }
                ErrorClass::Transient | ErrorClass::Internal => {
                    tracing::error!(error = %error, "query failed in the engine");
                    ServiceError::internal("internal error running the query")
                }
            })?;
        Ok(SqlAnswer {
            content_type: format.content_type.to_string(),
            body: Box::pin(stream::once(async move { Ok(answer.data) })),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_messages_name_data_sources_not_tables() {
        let tables = WorkspaceTables(HashMap::from([
            ("events".to_string(), "`w_1`.`t_a`".to_string()),
            (
                "events_quarantine".to_string(),
                "`w_1`.`t_a_quarantine`".to_string(),
            ),
        ]));
        assert_eq!(
            tables.unresolve(
                "Unknown identifier `x` in scope SELECT x FROM w_1.t_a JOIN `w_1`.`t_a_quarantine`"
            ),
            "Unknown identifier `x` in scope SELECT x FROM events JOIN events_quarantine"
        );
    }
}

//! SQL over a workspace's data: validation and table resolution ([`sql`]), execution on the engine,
//! output formats ([`format`]). Users never name databases: each table name resolves to a data
//! source of the caller's workspace (or its quarantine) that the caller may read, and everything
//! else is refused before the engine sees it.

mod cache;
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
use roost_proto::catalog::v1::{DataSource, ListDataSourcesRequest};
use roost_proto::query::v1 as proto;
use roost_proto::{CatalogClient, QueryService, ServiceError, SqlAnswer};

use crate::cache::CatalogCache;
use crate::format::output_format;
use crate::sql::{SqlError, TableResolver, validate_and_rewrite};

/// The query service.
pub struct Query {
    engine: Arc<dyn Engine>,
    catalog: CatalogClient,
    /// The workspace's data sources, while the catalog's changes say they are current.
    data_sources: CatalogCache<Vec<DataSource>>,
}

impl Query {
    /// A query service reading `engine` and resolving names through `catalog`.
    pub fn new(engine: Arc<dyn Engine>, catalog: CatalogClient) -> Self {
        Query {
            engine,
            catalog,
            data_sources: CatalogCache::default(),
        }
    }

    /// Caches the catalog's listings while `changes` says they are current.
    pub fn with_changes(mut self, changes: Arc<roost_bus::CatalogChanges>) -> Self {
        self.data_sources = CatalogCache::following(changes);
        self
    }
}

/// What the caller of a query (`/v0/sql`, an endpoint) sees when the engine refuses or fails it.
/// The query's own faults are 4xx in the engine's words (names unresolved): bad SQL, past the
/// time limit (408), over its memory limit; only our faults are a bare 500.
pub(crate) fn query_failure(
    error: roost_engine::EngineError,
    tables: &WorkspaceTables,
) -> ServiceError {
    let message = || format!("[Error] {}", tables.unresolve(&error.user_message()));
    match (error.code(), error.class()) {
        // TIMEOUT_EXCEEDED: the query ran past max_execution_time.
        (Some(159), _) => ServiceError::new(roost_proto::ErrorCode::Timeout, message()),
        // TOO_MANY_SIMULTANEOUS_QUERIES.
        (Some(202), _) => ServiceError::new(roost_proto::ErrorCode::TooManyRequests, message()),
        // MEMORY_LIMIT_EXCEEDED by this query alone (not the server's total).
        (Some(241), _) if error.user_message().contains("(for query)") => {
            ServiceError::bad_request(message())
        }
        (_, ErrorClass::BadRequest | ErrorClass::NotFound | ErrorClass::Conflict) => {
            ServiceError::bad_request(message())
        }
        (_, ErrorClass::Transient | ErrorClass::Internal) => {
            tracing::error!(error = %error, "query failed in the engine");
            ServiceError::internal("internal error running the query")
        }
    }
}

/// Table names a caller may read, mapped to their qualified engine tables.
#[derive(Clone)]
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

/// Resolves one data source name to its table, for checking a row filter on its own.
struct FilteredSource<'a> {
    name: &'a str,
    table: &'a str,
}

impl TableResolver for FilteredSource<'_> {
    fn resolve(&self, name: &str) -> Option<String> {
        (name == self.name).then(|| self.table.to_string())
    }
}

/// `(SELECT * FROM <table> WHERE <filter>)`. The filter is SQL an admin wrote in a token scope;
/// it still goes through the same validation as any query, as the condition of a SELECT over the
/// data source alone, so it can reach no other table, function or setting.
pub(crate) fn filtered_table(
    data_source: &str,
    table: &str,
    filter: &str,
) -> Result<String, ServiceError> {
    let sql = format!(
        "SELECT * FROM {} WHERE {filter}",
        roost_types::quote_ident(data_source)
    );
    let invalid = |reason: String| {
        ServiceError::bad_request(format!(
            "Invalid row filter of the token for '{data_source}': {reason}"
        ))
    };
    let validated = validate_and_rewrite(
        &sql,
        &FilteredSource {
            name: data_source,
            table,
        },
    )
    .map_err(|e| invalid(e.to_string()))?;
    if validated.format.is_some() {
        return Err(invalid("FORMAT is not allowed".into()));
    }
    Ok(format!("({})", validated.sql))
}

/// Replaces each filtered data source by the subquery that reads only its allowed rows (several
/// filters of one data source widen each other), and hides its quarantine, whose rows the
/// filter cannot describe.
pub(crate) fn apply_filters(
    tables: &mut WorkspaceTables,
    filters: &[proto::RowFilter],
) -> Result<(), ServiceError> {
    let mut by_source: Vec<(&str, Vec<&str>)> = Vec::new();
    for filter in filters.iter().filter(|f| !f.filter.trim().is_empty()) {
        match by_source
            .iter_mut()
            .find(|(name, _)| *name == filter.data_source)
        {
            Some((_, conditions)) => conditions.push(filter.filter.trim()),
            None => by_source.push((&filter.data_source, vec![filter.filter.trim()])),
        }
    }
    for (name, conditions) in by_source {
        let Some(table) = tables.0.get(name).cloned() else {
            continue;
        };
        let condition = if conditions.len() == 1 {
            conditions[0].to_string()
        } else {
            conditions
                .iter()
                .map(|c| format!("({c})"))
                .collect::<Vec<_>>()
                .join(" OR ")
        };
        let replacement = filtered_table(name, &table, &condition)?;
        tables.0.insert(name.to_string(), replacement);
        tables.0.remove(&format!("{name}_quarantine"));
    }
    Ok(())
}

#[async_trait]
impl QueryService for Query {
    async fn execute_sql(
        &self,
        request: proto::ExecuteSqlRequest,
    ) -> Result<SqlAnswer, ServiceError> {
        let workspace_id = request.header.as_ref().map(|h| h.workspace_id.as_str());
        let data_sources = self
            .data_sources
            .get(workspace_id.unwrap_or_default(), || async {
                Ok(self
                    .catalog
                    .list_data_sources(ListDataSourcesRequest {
                        header: request.header.clone(),
                        with_statistics: false,
                    })
                    .await?
                    .data_sources)
            })
            .await?;
        let mut tables = HashMap::new();
        let mut unreadable = Vec::new();
        for data_source in data_sources.iter() {
            if !request.read_all && !request.readable.contains(&data_source.name) {
                unreadable.push(format!("{}_quarantine", data_source.name));
                unreadable.push(data_source.name.clone());
                continue;
            }
            tables.insert(
                format!("{}_quarantine", data_source.name),
                data_source.quarantine_table.clone(),
            );
            tables.insert(data_source.name.clone(), data_source.table.clone());
        }
        let mut tables = WorkspaceTables(tables);
        apply_filters(&mut tables, &request.filters)?;
        // A filtered data source's quarantine is hidden: its rows are not the filter's to show.
        unreadable.extend(
            request
                .filters
                .iter()
                .map(|f| format!("{}_quarantine", f.data_source)),
        );
        let validated = validate_and_rewrite(&request.sql, &tables).map_err(|e| match e {
            // A data source that exists but the token may not read: 403, as Tinybird answers.
            SqlError::UnknownTable(name) if unreadable.contains(&name) => {
                ServiceError::forbidden(format!("Not enough permissions to read '{name}'"))
            }
            other => ServiceError::bad_request(other.to_string()),
        })?;
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
            .map_err(|error| query_failure(error, &tables))?;
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
    fn row_filters_become_validated_subqueries() {
        let mut tables = WorkspaceTables(HashMap::from([
            ("events".to_string(), "`w_1`.`t_a`".to_string()),
            (
                "events_quarantine".to_string(),
                "`w_1`.`t_a_quarantine`".to_string(),
            ),
            ("other".to_string(), "`w_1`.`t_b`".to_string()),
        ]));
        let filter = |ds: &str, f: &str| proto::RowFilter {
            data_source: ds.into(),
            filter: f.into(),
        };
        apply_filters(
            &mut tables,
            &[
                filter("events", "country = 'ES'"),
                filter("events", "amount > 1"),
                filter("missing", "1"),
            ],
        )
        .unwrap();
        assert_eq!(
            tables.0["events"],
            "(SELECT * FROM `w_1`.`t_a` WHERE (country = 'ES') OR (amount > 1))"
        );
        assert!(!tables.0.contains_key("events_quarantine"));
        assert_eq!(tables.0["other"], "`w_1`.`t_b`");
        // A trailing comment cannot swallow the closing parenthesis: the validated SQL drops it.
        let commented = filtered_table("events", "`w_1`.`t_a`", "country = 'ES' -- note").unwrap();
        assert!(
            commented.starts_with("(SELECT * FROM `w_1`.`t_a` WHERE country = 'ES'")
                && !commented.contains("--"),
            "{commented}"
        );
        let validated = validate_and_rewrite("SELECT count() FROM events", &tables).unwrap();
        assert_eq!(
            validated.sql,
            "SELECT count() FROM (SELECT * FROM `w_1`.`t_a` WHERE (country = 'ES') OR (amount > 1))"
        );

        for bad in [
            "1 FORMAT JSON",
            "country IN (SELECT country FROM other)",
            "1) UNION ALL (SELECT * FROM other",
            "file('/etc/passwd') != ''",
            "1; DROP TABLE events",
        ] {
            let mut tables = WorkspaceTables(HashMap::from([
                ("events".to_string(), "`w_1`.`t_a`".to_string()),
                ("other".to_string(), "`w_1`.`t_b`".to_string()),
            ]));
            assert!(
                apply_filters(&mut tables, &[filter("events", bad)]).is_err(),
                "{bad}"
            );
        }
    }

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

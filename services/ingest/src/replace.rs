//! Replacing a data source's rows so that readers see the old rows or the new ones, never an
//! empty or half-written table: the new rows are ingested into a staging table shaped like the
//! data source's, then swapped in with `EXCHANGE TABLES`. A replace condition keeps the existing
//! rows that do not match it (and drops the new rows that do not), by building a merged table
//! from both before the swap.
//!
//! What the swap does not do: rows appended to the data source while a replace runs are lost
//! (they go to the table swapped out), as in Tinybird; materialized views reading the data source
//! do not see the replaced rows (only inserts into the data source's table reach them, and the
//! staged rows were inserted elsewhere), so their targets keep what they had computed, until
//! populated again; they keep working on later inserts, since the engine binds them to the
//! table's name, which the swap keeps.

use roost_engine::{Engine, EngineError};
use roost_proto::catalog::v1 as catalog;
use roost_proto::query::v1::ResolveConditionRequest;
use roost_proto::{EndpointClient, ServiceError};
use roost_types::Column;

use crate::decode::insert_column_list;

/// The staging table of replace `staging_id` for `table` (a quoted, qualified name such as
/// `` `w`.`t` ``): the same database, the table's name with a suffix.
pub(crate) fn staging_table(table: &str, staging_id: &str) -> Result<String, ServiceError> {
    let valid_id = !staging_id.is_empty()
        && staging_id.len() <= 48
        && staging_id.bytes().all(|b| b.is_ascii_alphanumeric());
    if !valid_id {
        return Err(ServiceError::bad_request(
            "A staging id is 1 to 48 letters and digits",
        ));
    }
    beside(table, &format!("replace_{staging_id}"))
}

/// The table where a conditional replace merges the staged rows with the kept ones.
fn merged_table(table: &str, staging_id: &str) -> Result<String, ServiceError> {
    staging_table(table, staging_id)
        .and_then(|_| beside(table, &format!("replace_{staging_id}_merged")))
}

/// `table` with `__suffix` added to its name; the suffix is made of letters, digits and `_`,
/// which need no escaping inside the quoted name.
fn beside(table: &str, suffix: &str) -> Result<String, ServiceError> {
    let open = table
        .strip_suffix('`')
        .ok_or_else(|| ServiceError::internal(format!("unexpected table name {table}")))?;
    Ok(format!("{open}__{suffix}`"))
}

/// Creates the staging table of a replace when it does not exist yet.
pub(crate) async fn ensure_staging(
    engine: &dyn Engine,
    table: &str,
    staging: &str,
) -> Result<(), EngineError> {
    engine
        .execute(&format!("CREATE TABLE IF NOT EXISTS {staging} AS {table}"))
        .await
}

/// Swaps the staged rows in (after merging them with the rows kept by `condition`), or with
/// `discard` only drops them. Returns the rows the data source holds after the swap.
pub(crate) async fn finish(
    engine: &dyn Engine,
    endpoints: Option<&EndpointClient>,
    request: &roost_proto::ingest::v1::FinishReplaceRequest,
    data_source: &catalog::DataSource,
    columns: &[Column],
) -> Result<u64, FinishError> {
    let target = &data_source.table;
    let staging = staging_table(target, &request.staging_id)?;
    let merged = merged_table(target, &request.staging_id)?;
    let sync = engine.drop_sync_clause().await?;
    let drop_aside = || async {
        for table in [&staging, &merged] {
            engine
                .execute(&format!("DROP TABLE IF EXISTS {table}{sync}"))
                .await?;
        }
        Ok::<_, EngineError>(())
    };
    if request.discard {
        drop_aside().await?;
        return Ok(0);
    }
    // A replace by an empty file still replaces: with nothing staged, the table is empty.
    ensure_staging(engine, target, &staging).await?;
    let swapped_in = match request.replace_condition.trim() {
        "" => &staging,
        condition => {
            let endpoints = endpoints.ok_or_else(|| {
                ServiceError::new(
                    roost_proto::ErrorCode::Unavailable,
                    "replace_condition is not available in this deployment",
                )
            })?;
            // Validated and resolved as the delete job does: a WHERE over the data source that
            // reads only what the workspace may read.
            let resolved = endpoints
                .resolve_condition(ResolveConditionRequest {
                    header: request.header.clone(),
                    datasource: data_source.id.clone(),
                    condition: condition.to_string(),
                })
                .await?;
            if &resolved.table != target {
                return Err(ServiceError::internal(format!(
                    "the condition resolved against {} rather than {target}",
                    resolved.table
                ))
                .into());
            }
            let condition = &resolved.condition;
            let list = insert_column_list(columns);
            engine
                .execute(&format!("DROP TABLE IF EXISTS {merged}{sync}"))
                .await?;
            engine
                .execute(&format!("CREATE TABLE {merged} AS {target}"))
                .await?;
            engine
                .execute(&format!(
                    "INSERT INTO {merged} ({list}) SELECT {list} FROM {staging} WHERE {condition}"
                ))
                .await?;
            // A row for which the condition is NULL does not match it: it is kept.
            engine
                .execute(&format!(
                    "INSERT INTO {merged} ({list}) SELECT {list} FROM {target} \
                     WHERE (NOT {condition}) OR isNull({condition})"
                ))
                .await?;
            &merged
        }
    };
    engine
        .execute(&format!("EXCHANGE TABLES {target} AND {swapped_in}"))
        .await?;
    drop_aside().await?;
    let answer = engine
        .query(&format!("SELECT count() FROM {target}"), "TSVRaw")
        .await?;
    Ok(String::from_utf8_lossy(&answer.data)
        .trim()
        .parse()
        .unwrap_or(0))
}

/// Why a replace could not finish.
#[derive(Debug)]
pub(crate) enum FinishError {
    Service(ServiceError),
    Engine(EngineError),
}

impl From<ServiceError> for FinishError {
    fn from(error: ServiceError) -> Self {
        FinishError::Service(error)
    }
}

impl From<EngineError> for FinishError {
    fn from(error: EngineError) -> Self {
        FinishError::Engine(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_tables_sit_beside_their_table() {
        assert_eq!(
            staging_table("`w_1`.`t_2`", "abc123").unwrap(),
            "`w_1`.`t_2__replace_abc123`"
        );
        assert!(staging_table("`w`.`t`", "").is_err());
        assert!(staging_table("`w`.`t`", "a-b").is_err());
        assert!(staging_table("`w`.`t`", "a`; DROP").is_err());
        assert!(staging_table("`w`.`t`", &"a".repeat(49)).is_err());
        assert_eq!(
            merged_table("`w`.`t`", "x1").unwrap(),
            "`w`.`t__replace_x1_merged`"
        );
    }
}

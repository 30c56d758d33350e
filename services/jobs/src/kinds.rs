//! What each job kind does. Every kind writes through the engine with SQL built from names the
//! catalog resolved and SQL the query service validated; nothing from the request is pasted raw.

use roost_engine::{Engine, EngineError};
use roost_proto::ServiceError;
use roost_proto::catalog::v1::GetDataSourceRequest;
use roost_proto::query::v1::{
    CompileNodeResponse, EndpointParam, ExecuteEndpointRequest, ResolveConditionRequest,
};
use roost_types::{quote_ident, quote_string};
use serde_json::{Value, json};

use crate::kind;
pub(crate) use crate::worker::JobContext;

/// How a job ended when it did not succeed.
#[derive(Debug)]
pub(crate) enum JobFailure {
    Cancelled,
    Failed(String),
}

impl From<ServiceError> for JobFailure {
    fn from(error: ServiceError) -> Self {
        JobFailure::Failed(error.message)
    }
}

impl From<EngineError> for JobFailure {
    fn from(error: EngineError) -> Self {
        JobFailure::Failed(error.user_message())
    }
}

pub(crate) fn is_known(kind: &str) -> bool {
    matches!(
        kind,
        kind::DELETE_DATA | kind::POPULATE | kind::COPY | kind::IMPORT | kind::SINK
    )
}

/// Kinds that look for a cancellation between their steps.
pub(crate) fn stops_between_steps(kind: &str) -> bool {
    matches!(
        kind,
        kind::DELETE_DATA | kind::COPY | kind::IMPORT | kind::SINK
    )
}

/// Whether a job interrupted half-way may simply run again: a delete finds nothing left to
/// delete, a replacing copy or import builds its result aside and swaps it in at the end (an
/// appending import would add its first chunks twice).
pub(crate) fn safe_to_rerun(kind: &str, spec: &str) -> bool {
    match kind {
        kind::DELETE_DATA => true,
        kind::COPY | kind::IMPORT => spec_field(spec, "mode").is_some_and(|mode| mode == "replace"),
        // A sink that replaces its files writes the same files again.
        kind::SINK => spec_field(spec, "write_strategy").is_some_and(|s| s == "truncate"),
        _ => false,
    }
}

fn spec_field(spec: &str, key: &str) -> Option<String> {
    serde_json::from_str::<Value>(spec)
        .ok()
        .and_then(|spec| spec.get(key).and_then(Value::as_str).map(str::to_owned))
}

pub(crate) async fn run(context: &JobContext) -> Result<Value, JobFailure> {
    match context.job.kind.as_str() {
        kind::DELETE_DATA => delete_data(context).await,
        kind::POPULATE => populate(context).await,
        kind::COPY => copy(context).await,
        kind::IMPORT => crate::import::run(context).await,
        kind::SINK => crate::sink::run(context).await,
        other => Err(JobFailure::Failed(format!("Unknown job kind '{other}'"))),
    }
}

/// Deletes the rows matching `delete_condition` with one mutation of the table, whose progress
/// is the share of its parts done. One mutation, not one per partition: every mutation visits
/// every part of the table (parts of other partitions only get a new version, but each is still a
/// background task), so a delete per partition costs partitions squared part visits.
async fn delete_data(context: &JobContext) -> Result<Value, JobFailure> {
    let engine = context.dependencies.engine.as_ref();
    let condition = context.spec_text("delete_condition");
    let resolved = context
        .dependencies
        .endpoints
        .resolve_condition(ResolveConditionRequest {
            header: context.header(),
            datasource: data_source_of(context),
            condition: condition.to_string(),
        })
        .await?;
    let (table, condition_sql) = (&resolved.table, &resolved.condition);
    let matching = count(
        engine,
        &format!("SELECT count() FROM {table} WHERE {condition_sql}"),
    )
    .await?;
    context.checkpoint(0.0).await?;
    if matching > 0 {
        // On a cluster the rows are in the local tables of every shard, behind the Distributed
        // table the data source names; a mutation runs there.
        let cluster = engine.cluster();
        let target = match cluster {
            Some(_) => roost_engine::local_table(table),
            None => table.clone(),
        };
        let mutations = Mutations::of(&target, cluster)?;
        let before = mutations.ids(engine).await?;
        let alter = format!(
            "ALTER TABLE {target}{} DELETE WHERE {condition_sql}",
            roost_engine::on_cluster(cluster)
        );
        if cluster.is_some() {
            engine.execute(&alter).await?;
        } else {
            let lightweight = format!(
                "DELETE FROM {table} WHERE {condition_sql} SETTINGS lightweight_deletes_sync = 0"
            );
            match engine.execute(&lightweight).await {
                Ok(()) => {}
                // Servers before lightweight deletes (18.16) run ALTER DELETE, which never waits.
                Err(error)
                    if error.code() == Some(SYNTAX_ERROR)
                        || error.code() == Some(NOT_IMPLEMENTED)
                        || error.code() == Some(UNKNOWN_SETTING) =>
                {
                    engine.execute(&alter).await?;
                }
                Err(error) => return Err(error.into()),
            }
        }
        let started = mutations.ids(engine).await?;
        let ours: Vec<String> = started
            .into_iter()
            .filter(|id| !before.contains(id))
            .collect();
        mutations.follow(context, &ours).await?;
    }
    Ok(json!({
        "delete_condition": condition,
        "rows_affected": matching,
    }))
}

const SYNTAX_ERROR: u32 = 62;
const NOT_IMPLEMENTED: u32 = 48;
const UNKNOWN_SETTING: u32 = 115;
const UNKNOWN_IDENTIFIER: u32 = 47;

/// The mutations of one table, as `system.mutations` shows them (of every server of the
/// cluster, when there is one).
struct Mutations {
    table: String,
    source: String,
    on_cluster: String,
    filter: String,
}

impl Mutations {
    fn of(table: &str, cluster: Option<&str>) -> Result<Mutations, JobFailure> {
        let (database, name) = split_table(table)
            .ok_or_else(|| JobFailure::Failed(format!("unexpected table name {table}")))?;
        Ok(Mutations {
            table: table.to_string(),
            on_cluster: roost_engine::on_cluster(cluster),
            source: match cluster {
                Some(cluster) => format!("cluster({}, system, mutations)", quote_string(cluster)),
                None => "system.mutations".to_string(),
            },
            filter: format!(
                "database = {} AND table = {}",
                quote_string(&database),
                quote_string(&name)
            ),
        })
    }

    async fn ids(&self, engine: &dyn Engine) -> Result<Vec<String>, JobFailure> {
        let answer = engine
            .query(
                &format!(
                    "SELECT mutation_id FROM {} WHERE {}",
                    self.source, self.filter
                ),
                "TSVRaw",
            )
            .await?;
        Ok(String::from_utf8_lossy(&answer.data)
            .lines()
            .map(str::to_owned)
            .collect())
    }

    /// Waits for the mutations `ids` to finish, reporting the share of their parts done; a
    /// cancelled job kills them (parts already rewritten stay so).
    async fn follow(&self, context: &JobContext, ids: &[String]) -> Result<(), JobFailure> {
        if ids.is_empty() {
            return Ok(());
        }
        let engine = context.dependencies.engine.as_ref();
        let id_list = ids
            .iter()
            .map(|id| quote_string(id))
            .collect::<Vec<_>>()
            .join(", ");
        let scope = format!("{} AND mutation_id IN ({id_list})", self.filter);
        let columns = "sum(parts_to_do), countIf(NOT is_done)";
        let source = &self.source;
        let mut status =
            format!("SELECT {columns}, any(latest_fail_reason) FROM {source} WHERE {scope}");
        let without_reason = format!("SELECT {columns}, '' FROM {source} WHERE {scope}");
        let mut most_parts = 0u64;
        loop {
            let answer = match engine.query(&status, "TSVRaw").await {
                Ok(answer) => answer,
                // 18.16's system.mutations has no latest_fail_reason; there a failing mutation
                // only shows as one that does not finish.
                Err(error)
                    if error.code() == Some(UNKNOWN_IDENTIFIER) && status != without_reason =>
                {
                    status = without_reason.clone();
                    continue;
                }
                Err(error) => return Err(error.into()),
            };
            let text = String::from_utf8_lossy(&answer.data);
            let mut fields = text.trim_end_matches('\n').splitn(3, '\t');
            let parts_to_do: u64 = fields.next().and_then(|n| n.parse().ok()).unwrap_or(0);
            let running: u64 = fields.next().and_then(|n| n.parse().ok()).unwrap_or(0);
            if running == 0 {
                return Ok(());
            }
            if let Some(reason) = fields.next().filter(|r| !r.is_empty()) {
                return Err(JobFailure::Failed(reason.to_string()));
            }
            most_parts = most_parts.max(parts_to_do);
            let done = 1.0 - parts_to_do as f64 / most_parts.max(1) as f64;
            if let Err(stop) = context.checkpoint(done).await {
                if matches!(stop, JobFailure::Cancelled) {
                    let kill = format!("KILL MUTATION{} WHERE {scope}", self.on_cluster);
                    if let Err(error) = engine.execute(&kill).await {
                        tracing::warn!(table = %self.table, %error, "cannot kill a cancelled delete");
                    }
                }
                return Err(stop);
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
    }
}

/// "`db`.`t`" into ("db", "t").
fn split_table(quoted: &str) -> Option<(String, String)> {
    let mut parts = Vec::new();
    let mut rest = quoted;
    while let Some(body) = rest.strip_prefix('`') {
        let mut name = String::new();
        let mut chars = body.char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '\\' => name.push(chars.next()?.1),
                '`' => break i,
                _ => name.push(c),
            }
        };
        parts.push(name);
        rest = &body[end + 1..];
        rest = rest.strip_prefix('.').unwrap_or(rest);
    }
    match (parts.len(), rest.is_empty()) {
        (2, true) => Some((parts.remove(0), parts.remove(0))),
        _ => None,
    }
}

pub(crate) fn data_source_of(context: &JobContext) -> String {
    if context.job.datasource_id.is_empty() {
        context.job.datasource_name.clone()
    } else {
        context.job.datasource_id.clone()
    }
}

async fn count(engine: &dyn Engine, sql: &str) -> Result<u64, JobFailure> {
    let answer = engine.query(sql, "TSVRaw").await?;
    String::from_utf8_lossy(&answer.data)
        .trim()
        .parse()
        .map_err(|_| JobFailure::Failed(format!("unexpected count from: {sql}")))
}

/// A node's result as an `INSERT ... SELECT` into a data source: the statement's parts.
struct NodeInsert {
    table: String,
    columns: String,
    select: String,
}

/// Compiles the job's node (`node` in the spec) with its parameters (`params`).
pub(crate) async fn compile_job_node(
    context: &JobContext,
) -> Result<CompileNodeResponse, JobFailure> {
    let params = match context.spec.get("params") {
        Some(Value::Object(params)) => params
            .iter()
            .flat_map(|(name, value)| {
                let values = match value {
                    Value::Array(items) => items.clone(),
                    other => vec![other.clone()],
                };
                values.into_iter().map(move |value| EndpointParam {
                    name: name.clone(),
                    value: match value {
                        Value::String(text) => text,
                        other => other.to_string(),
                    },
                })
            })
            .collect(),
        _ => Vec::new(),
    };
    Ok(context
        .dependencies
        .endpoints
        .compile_node(ExecuteEndpointRequest {
            header: context.header(),
            pipe: context.job.pipe_name.clone(),
            node: context.spec_text("node").to_string(),
            params,
            read_all: true,
            ..ExecuteEndpointRequest::default()
        })
        .await?)
}

/// Compiles the job's node with its parameters and matches its output to the target's columns.
async fn node_insert(context: &JobContext, target: &str) -> Result<NodeInsert, JobFailure> {
    let compiled = compile_job_node(context).await?;
    let data_source = context
        .dependencies
        .catalog
        .get_data_source(GetDataSourceRequest {
            header: context.header(),
            name_or_id: target.to_string(),
            with_statistics: false,
        })
        .await?
        .data_source
        .ok_or_else(|| JobFailure::Failed(format!("Data Source '{target}' not found")))?;
    let target_columns: Vec<&str> = data_source
        .columns
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    if let Some(extra) = compiled
        .columns
        .iter()
        .find(|c| !target_columns.contains(&c.name.as_str()))
    {
        return Err(JobFailure::Failed(format!(
            "The result has a column '{}' that the Data Source '{}' does not have",
            extra.name, data_source.name
        )));
    }
    let columns = compiled
        .columns
        .iter()
        .map(|c| quote_ident(&c.name))
        .collect::<Vec<_>>()
        .join(", ");
    Ok(NodeInsert {
        table: data_source.table,
        select: format!("SELECT {columns} FROM ({})", compiled.sql),
        columns,
    })
}

/// Appends a node's result to its target. Returns the rows it added, counted as the target's
/// growth: exact unless other writers add rows at the same time (a view's target usually has
/// them), so it is a report, never used to decide anything.
async fn append(engine: &dyn Engine, insert: &NodeInsert) -> Result<u64, JobFailure> {
    let count_sql = format!("SELECT count() FROM {}", insert.table);
    let before = count(engine, &count_sql).await?;
    engine
        .execute(&format!(
            "INSERT INTO {} ({}) {}",
            insert.table, insert.columns, insert.select
        ))
        .await?;
    let after = count(engine, &count_sql).await?;
    Ok(after.saturating_sub(before))
}

/// Backfills a materialized view's target with what the node gives over the existing data.
async fn populate(context: &JobContext) -> Result<Value, JobFailure> {
    let engine = &context.dependencies.engine;
    let insert = node_insert(context, &data_source_of(context)).await?;
    context.checkpoint(0.0).await?;
    if context.spec.get("truncate").and_then(Value::as_bool) == Some(true) {
        engine
            .execute(&format!("TRUNCATE TABLE {}", insert.table))
            .await?;
    }
    let rows = append(engine.as_ref(), &insert).await?;
    Ok(json!({ "rows": rows }))
}

/// Runs a copy pipe's node into its target: appended, or replacing the target atomically (built
/// aside, then swapped in, so readers see the old rows or the new ones, never a mix).
async fn copy(context: &JobContext) -> Result<Value, JobFailure> {
    let engine = &context.dependencies.engine;
    let insert = node_insert(context, &data_source_of(context)).await?;
    context.checkpoint(0.0).await?;
    let mode = context.spec_text("mode");
    if mode != "replace" {
        let rows = append(engine.as_ref(), &insert).await?;
        return Ok(json!({ "mode": "append", "rows": rows }));
    }
    let (database, name) = split_table(&insert.table)
        .ok_or_else(|| JobFailure::Failed(format!("unexpected table name {}", insert.table)))?;
    let staging = format!(
        "{}.{}",
        quote_ident(&database),
        quote_ident(&format!("{name}__copy_{}", context.job.id.replace('-', "")))
    );
    // After the exchange the staging table holds the old rows: dropped at once, not kept on disk.
    let sync = engine.drop_sync_clause().await?;
    engine
        .execute(&format!("DROP TABLE IF EXISTS {staging}{sync}"))
        .await?;
    engine
        .execute(&format!("CREATE TABLE {staging} AS {}", insert.table))
        .await?;
    let filled = async {
        engine
            .execute(&format!(
                "INSERT INTO {staging} ({}) {}",
                insert.columns, insert.select
            ))
            .await?;
        context.checkpoint(0.9).await?;
        let rows = count(engine.as_ref(), &format!("SELECT count() FROM {staging}")).await?;
        engine
            .execute(&format!("EXCHANGE TABLES {} AND {staging}", insert.table))
            .await?;
        Ok::<_, JobFailure>(rows)
    }
    .await;
    let dropped = engine
        .execute(&format!("DROP TABLE IF EXISTS {staging}{sync}"))
        .await;
    let rows = filled?;
    dropped?;
    Ok(json!({ "mode": "replace", "rows": rows }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qualified_names_split_back_into_database_and_table() {
        assert_eq!(
            split_table("`w_1`.`t_2`"),
            Some(("w_1".to_string(), "t_2".to_string()))
        );
        assert_eq!(
            split_table("`a\\`b`.`c`"),
            Some(("a`b".to_string(), "c".to_string()))
        );
        assert_eq!(split_table("`only`"), None);
        assert_eq!(split_table("db.t"), None);
        assert_eq!(split_table("`a`.`b`x"), None);
    }

    #[test]
    fn only_idempotent_jobs_run_again_after_a_crash() {
        assert!(safe_to_rerun(kind::DELETE_DATA, "{}"));
        assert!(safe_to_rerun(kind::COPY, r#"{"mode": "replace"}"#));
        assert!(!safe_to_rerun(kind::COPY, r#"{"mode": "append"}"#));
        assert!(!safe_to_rerun(kind::POPULATE, "{}"));
        assert!(safe_to_rerun(kind::IMPORT, r#"{"mode": "replace"}"#));
        assert!(!safe_to_rerun(kind::IMPORT, r#"{"mode": "append"}"#));
        assert!(!safe_to_rerun(kind::IMPORT, r#"{"mode": "create"}"#));
        assert!(safe_to_rerun(
            kind::SINK,
            r#"{"write_strategy": "truncate"}"#
        ));
        assert!(!safe_to_rerun(kind::SINK, r#"{"write_strategy": "new"}"#));
    }
}

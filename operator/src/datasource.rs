//! The DataSource reconciler: a replicated table on every shard and a Distributed table over
//! them, both `ON CLUSTER`; schema changes applied as `ALTER TABLE ... ADD/DROP COLUMN` on both,
//! unsafe ones refused with a `Degraded` condition; on deletion, by policy, both tables dropped.

use std::sync::Arc;
use std::time::Instant;

use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{Event, finalizer};
use kube::{Api, Resource, ResourceExt};
use roost_engine::{Engine, EngineError};
use roost_types::Column;

use crate::controller::{Context, FINALIZER, RESYNC, apply_status};
use crate::crd::{
    ConditionUpdate, DEGRADED, DataSource, DataSourceStatus, DeletionPolicy, READY, Workspace,
    is_true, merge_conditions,
};
use crate::workspace::WAIT_FOR_WORKSPACE;
use crate::{Error, ddl};

/// ClickHouse's UNKNOWN_DATABASE: the workspace's database went first, and the tables with it.
const UNKNOWN_DATABASE: u32 = 81;

/// The data source's table names: the Distributed table queries use, and the local one.
pub fn table_names(data_source: &DataSource) -> (String, String) {
    let name = data_source
        .spec
        .name
        .clone()
        .unwrap_or_else(|| data_source.name_any().replace('-', "_"));
    let local = format!("{name}_local");
    (name, local)
}

/// Reconciles one DataSource behind the finalizer.
pub async fn reconcile(data_source: Arc<DataSource>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let namespace = data_source
        .namespace()
        .ok_or(Error::MissingField("namespace"))?;
    let api: Api<DataSource> = Api::namespaced(ctx.client.clone(), &namespace);
    let action = finalizer(&api, FINALIZER, data_source, |event| async {
        match event {
            Event::Apply(data_source) => apply(&data_source, &api, &ctx).await,
            Event::Cleanup(data_source) => cleanup(&data_source, &ctx).await,
        }
    })
    .await?;
    ctx.metrics.reconciled("DataSource", started.elapsed());
    Ok(action)
}

/// The columns of `table`, empty when it does not exist.
async fn columns_of(
    engine: &dyn Engine,
    database: &str,
    table: &str,
) -> Result<Vec<(String, String)>, Error> {
    let answer = engine
        .query(&ddl::columns_query(database, table), "TabSeparated")
        .await?;
    Ok(ddl::parse_columns(&String::from_utf8_lossy(&answer.data)))
}

/// The status to write when the spec cannot be applied: `Degraded` with `reason`; `Ready` stays
/// true when tables from an earlier spec serve.
fn refused(
    previous: &DataSourceStatus,
    generation: Option<i64>,
    reason: &str,
    message: &str,
) -> DataSourceStatus {
    let serving = previous.table.is_some();
    DataSourceStatus {
        conditions: merge_conditions(
            &previous.conditions,
            &[
                ConditionUpdate::new(
                    READY,
                    serving,
                    if serving {
                        "ServingPreviousSpec"
                    } else {
                        reason
                    },
                    message,
                ),
                ConditionUpdate::new(DEGRADED, true, reason, message),
            ],
            generation,
        ),
        observed_generation: generation,
        ..previous.clone()
    }
}

async fn apply(
    data_source: &DataSource,
    api: &Api<DataSource>,
    ctx: &Context,
) -> Result<Action, Error> {
    let namespace = data_source
        .namespace()
        .ok_or(Error::MissingField("namespace"))?;
    let uid = data_source
        .meta()
        .uid
        .clone()
        .ok_or(Error::MissingField("uid"))?;
    let previous = data_source.status.clone().unwrap_or_default();
    let generation = data_source.metadata.generation;
    let cluster = ctx.cluster().to_string();

    let workspaces: Api<Workspace> = Api::namespaced(ctx.client.clone(), &namespace);
    let workspace = workspaces.get_opt(&data_source.spec.workspace).await?;
    let database = workspace.as_ref().and_then(|workspace| {
        let status = workspace.status.as_ref()?;
        is_true(&status.conditions, READY)
            .then(|| status.database.clone())
            .flatten()
    });
    let Some(database) = database else {
        let message = format!(
            "waiting for Workspace '{}' to be ready",
            data_source.spec.workspace
        );
        let status = DataSourceStatus {
            conditions: merge_conditions(
                &previous.conditions,
                &[ConditionUpdate::new(
                    READY,
                    false,
                    "WorkspaceNotReady",
                    &message,
                )],
                generation,
            ),
            observed_generation: generation,
            ..previous.clone()
        };
        if status != previous {
            apply_status(api, data_source, &status).await?;
        }
        return Ok(Action::requeue(WAIT_FOR_WORKSPACE));
    };
    if previous.database.as_ref().is_some_and(|d| *d != database) {
        let message = "a data source cannot move to another workspace; delete it and make it again";
        let status = refused(&previous, generation, "WorkspaceChangeRefused", message);
        apply_status(api, data_source, &status).await?;
        return Ok(Action::requeue(RESYNC));
    }

    let (table, local) = table_names(data_source);
    let prepared = prepare(data_source, &database, &uid);
    let (columns, engine_clause) = match prepared {
        Ok(prepared) => prepared,
        Err(message) => {
            let status = refused(&previous, generation, "InvalidSpec", &message);
            apply_status(api, data_source, &status).await?;
            ctx.publish(data_source, EventType::Warning, "InvalidSpec", message)
                .await;
            return Ok(Action::requeue(RESYNC));
        }
    };
    if previous
        .engine
        .as_ref()
        .is_some_and(|applied| *applied != engine_clause)
    {
        let message = format!(
            "the engine cannot change in place (tables keep {}); make a new data source and copy the data",
            previous.engine.as_deref().unwrap_or_default()
        );
        let status = refused(&previous, generation, "EngineChangeRefused", &message);
        apply_status(api, data_source, &status).await?;
        ctx.publish(
            data_source,
            EventType::Warning,
            "EngineChangeRefused",
            message,
        )
        .await;
        return Ok(Action::requeue(RESYNC));
    }

    let engine = ctx.engine.as_ref();
    let local_columns = columns_of(engine, &database, &local).await?;
    let distributed_columns = columns_of(engine, &database, &table).await?;
    let mut statements = Vec::new();
    let mut notes = Vec::new();
    if local_columns.is_empty() {
        statements.push(
            ddl::create_local_table(&database, &local, &cluster, &columns, &engine_clause)
                .map_err(|e| Error::Engine(EngineError::Invalid(e)))?,
        );
        notes.push(format!("table {database}.{local} created"));
    }
    if distributed_columns.is_empty() {
        statements.push(ddl::create_distributed_table(
            &database, &table, &local, &cluster,
        ));
        notes.push(format!("table {database}.{table} created"));
    }
    let allow_drops = data_source.spec.allow_column_drops;
    let local_plan = ddl::plan_columns(&local_columns, &columns, allow_drops);
    if !local_columns.is_empty() && !local_plan.refused.is_empty() {
        let message = local_plan.refused.join("; ");
        let status = refused(&previous, generation, "UnsafeSchemaChange", &message);
        apply_status(api, data_source, &status).await?;
        ctx.publish(
            data_source,
            EventType::Warning,
            "UnsafeSchemaChange",
            message,
        )
        .await;
        return Ok(Action::requeue(RESYNC));
    }
    if !local_columns.is_empty() {
        statements.extend(ddl::alter_statements(
            &database,
            &local,
            Some(&cluster),
            &local_plan,
        ));
        describe_plan(&local_plan, &mut notes);
    }
    for statement in &statements {
        ctx.engine.execute(statement).await?;
    }
    // Each server's Distributed table is brought to the schema on that server: a cluster with
    // internal replication refuses ALTER ... ON CLUSTER for it, and a server where an earlier
    // attempt stopped half-way needs only what it lacks.
    if !distributed_columns.is_empty() {
        for server in &ctx.servers {
            let actual = columns_of(server.as_ref(), &database, &table).await?;
            let plan = ddl::plan_columns(&actual, &columns, allow_drops);
            for statement in ddl::alter_statements(&database, &table, None, &plan) {
                server.execute(&statement).await?;
            }
        }
    }

    let status = DataSourceStatus {
        database: Some(database.clone()),
        table: Some(table.clone()),
        local_table: Some(local.clone()),
        engine: Some(engine_clause),
        applied_columns: ddl::applied_columns(&columns),
        conditions: merge_conditions(
            &previous.conditions,
            &[
                ConditionUpdate::new(
                    READY,
                    true,
                    "Reconciled",
                    format!(
                        "{database}.{table} is distributed over {database}.{local} on cluster {cluster}"
                    ),
                ),
                ConditionUpdate::new(DEGRADED, false, "Reconciled", ""),
            ],
            generation,
        ),
        observed_generation: generation,
    };
    if status != previous {
        apply_status(api, data_source, &status).await?;
    }
    if !notes.is_empty() {
        ctx.publish(data_source, EventType::Normal, "Applied", notes.join("; "))
            .await;
    }
    ctx.succeeded(&uid);
    Ok(Action::requeue(RESYNC))
}

fn describe_plan(plan: &ddl::ColumnPlan, notes: &mut Vec<String>) {
    if !plan.add.is_empty() {
        let names: Vec<&str> = plan.add.iter().map(|(c, _)| c.name.as_str()).collect();
        notes.push(format!("columns added: {}", names.join(", ")));
    }
    if !plan.drop.is_empty() {
        notes.push(format!("columns dropped: {}", plan.drop.join(", ")));
    }
}

/// The parsed schema and the local table's engine clause, or why the spec is invalid.
fn prepare(
    data_source: &DataSource,
    database: &str,
    uid: &str,
) -> Result<(Vec<Column>, String), String> {
    let columns = roost_types::parse_schema(&data_source.spec.schema)
        .map_err(|e| format!("invalid schema: {e}"))?;
    if columns.is_empty() {
        return Err("the schema has no columns".into());
    }
    let (table, _) = table_names(data_source);
    roost_types::validate_name("Data Source", &table).map_err(|e| e.to_string())?;
    let settings = ddl::engine_settings(&data_source.spec.engine, data_source.spec.ttl.as_deref());
    let engine = ddl::local_engine(&settings, &ddl::zookeeper_path(database, uid))?;
    // The column checks (DEFAULT and CODEC expressions) run here, before anything is created.
    ddl::create_local_table(database, "t", "c", &columns, &engine)?;
    Ok((columns, engine))
}

async fn cleanup(data_source: &DataSource, ctx: &Context) -> Result<Action, Error> {
    let status = data_source.status.clone().unwrap_or_default();
    let Some(database) = status.database.as_deref() else {
        return Ok(Action::await_change());
    };
    let (table, local) = table_names(data_source);
    if data_source.spec.deletion_policy == DeletionPolicy::Retain {
        ctx.publish(
            data_source,
            EventType::Normal,
            "Retained",
            format!("tables {database}.{table} and {database}.{local} retained"),
        )
        .await;
        return Ok(Action::await_change());
    }
    let cluster = ctx.cluster();
    for name in [&table, &local] {
        match ctx
            .engine
            .execute(&ddl::drop_table(database, name, cluster))
            .await
        {
            Ok(()) => {}
            Err(error) if error.code() == Some(UNKNOWN_DATABASE) => {}
            Err(error) => return Err(error.into()),
        }
    }
    ctx.publish(
        data_source,
        EventType::Normal,
        "Deleted",
        format!("tables {database}.{table} and {database}.{local} dropped"),
    )
    .await;
    Ok(Action::await_change())
}

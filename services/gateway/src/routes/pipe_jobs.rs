//! What pipes run besides endpoints: materialized nodes (views into a data source, populated by a
//! job), copy nodes (a node's result copied into a data source now or on a cron schedule); what
//! sink pipes (`sinks.rs`) share with them.
//!
//! Routes: `POST|DELETE /v0/pipes/{p}/nodes/{n}/materialization`, `GET .../analysis`,
//! `POST .../population`, `PUT|DELETE .../copy`, `POST /v0/pipes/{p}/copy`,
//! `POST /v0/pipes/{p}/copy/pause|resume`; and the node types of a pushed pipe.

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::HeaderMap;
use roost_proto::catalog::v1::{
    Column, CreateDataSourceRequest, DataSource, DropMaterializationRequest, EngineSettings,
    GetDataSourceRequest, Node, Pipe, SetMaterializationRequest, SetNodeSettingsRequest,
};
use roost_proto::jobs::v1::{Job, SubmitJobRequest};
use roost_proto::query::v1::{CompileNodeResponse, ExecuteEndpointRequest};
use roost_proto::scheduler::v1::{
    DeleteScheduleRequest, ListSchedulesRequest, Schedule, SetScheduleRequest,
};
use roost_proto::{ErrorCode, ServiceError};
use serde_json::{Map, Value, json};

use super::datasources::{data_source_json, engine_settings_from};
use super::jobs::started_job_json;
use super::pipes::{fetch, pipe_json};
use super::{Caller, Need, caller};
use crate::params::{Params, read_request};
use crate::{ApiError, AppState};

pub(super) const ON_DEMAND: &str = "@on-demand";

pub(super) fn settings(node: &Node) -> Map<String, Value> {
    match serde_json::from_str(&node.settings_json) {
        Ok(Value::Object(settings)) => settings,
        _ => Map::new(),
    }
}

pub(super) fn setting<'a>(settings: &'a Map<String, Value>, keys: &[&str]) -> Option<&'a str> {
    keys.iter()
        .find_map(|key| settings.get(*key).and_then(Value::as_str))
        .map(str::trim)
        .filter(|value| !value.is_empty())
}

pub(super) fn find_node<'a>(pipe: &'a Pipe, name_or_id: &str) -> Result<&'a Node, ApiError> {
    pipe.nodes
        .iter()
        .find(|n| n.name == name_or_id || n.id == name_or_id)
        .ok_or_else(|| ApiError::not_found(format!("Node '{name_or_id}' not found")))
}

async fn data_source(
    state: &AppState,
    caller: &Caller,
    name_or_id: &str,
) -> Result<Option<DataSource>, ApiError> {
    match state
        .services
        .catalog
        .get_data_source(GetDataSourceRequest {
            header: Some(caller.header.clone()),
            name_or_id: name_or_id.to_string(),
            with_statistics: false,
        })
        .await
    {
        Ok(found) => Ok(found.data_source),
        Err(error) if error.code == ErrorCode::NotFound => Ok(None),
        Err(error) => Err(error.into()),
    }
}

async fn compile(
    state: &AppState,
    caller: &Caller,
    pipe: &Pipe,
    node: &Node,
) -> Result<CompileNodeResponse, ApiError> {
    Ok(state
        .services
        .endpoints
        .compile_node(ExecuteEndpointRequest {
            header: Some(caller.header.clone()),
            pipe: pipe.name.clone(),
            node: node.id.clone(),
            read_all: true,
            ..ExecuteEndpointRequest::default()
        })
        .await?)
}

/// The data source a materialized node's output needs when none exists: its columns, and an
/// engine from the node's `engine_*` settings, else AggregatingMergeTree keyed by the plain
/// columns when the output carries aggregate states, else MergeTree.
fn target_definition(
    settings: &Map<String, Value>,
    compiled: &CompileNodeResponse,
) -> (Vec<Column>, EngineSettings) {
    let columns: Vec<Column> = compiled
        .columns
        .iter()
        .map(|c| Column {
            name: c.name.clone(),
            r#type: c.r#type.clone(),
            ..Column::default()
        })
        .collect();
    let mut engine = engine_settings_from(|key| setting(settings, &[key]));
    let is_state = |c: &&Column| {
        c.r#type
            .parse::<roost_types::ChType>()
            .is_ok_and(|ty| ty.is_aggregate_state())
    };
    if engine.engine.is_empty() && columns.iter().any(|c| is_state(&c)) {
        engine.engine = "AggregatingMergeTree".into();
    }
    if engine.sorting_key.is_empty() && engine.engine == "AggregatingMergeTree" {
        let keys: Vec<String> = columns
            .iter()
            .filter(|c| !is_state(c))
            .map(|c| match roost_types::is_plain_identifier(&c.name) {
                true => c.name.clone(),
                false => roost_types::quote_ident(&c.name),
            })
            .collect();
        engine.sorting_key = if keys.is_empty() {
            "tuple()".into()
        } else {
            keys.join(", ")
        };
    }
    (columns, engine)
}

/// Materializes `node` into `target` (created from the node's output when missing) and, with
/// `populate`, starts the job that backfills it. Returns the target, whether it was created, and
/// the job.
async fn materialize(
    state: &AppState,
    caller: &Caller,
    pipe: &Pipe,
    node: &Node,
    target: &str,
    populate: bool,
) -> Result<(DataSource, bool, Option<Job>), ApiError> {
    let compiled = compile(state, caller, pipe, node).await?;
    let (target, created) = match data_source(state, caller, target).await? {
        Some(existing) => {
            caller.require(Need::Append(&existing.name))?;
            // The view writes by column name: an output column the target lacks would be lost.
            if let Some(missing) = compiled
                .columns
                .iter()
                .find(|c| !existing.columns.iter().any(|t| t.name == c.name))
            {
                return Err(ApiError::bad_request(format!(
                    "The output of node '{}' has a column '{}' that the Data Source '{}' does not have",
                    node.name, missing.name, existing.name
                )));
            }
            (existing, false)
        }
        None => {
            caller.require(Need::CreateDataSource)?;
            let (columns, engine) = target_definition(&settings(node), &compiled);
            let created = state
                .services
                .catalog
                .create_data_source(CreateDataSourceRequest {
                    header: Some(caller.header.clone()),
                    name: target.to_string(),
                    columns,
                    engine: Some(engine),
                    description: format!("Materialized by pipe '{}'", pipe.name),
                    origin_format: "events".into(),
                })
                .await?
                .data_source
                .unwrap_or_default();
            (created, true)
        }
    };
    state
        .services
        .pipes
        .set_materialization(SetMaterializationRequest {
            header: Some(caller.header.clone()),
            pipe: pipe.id.clone(),
            node: node.id.clone(),
            datasource: target.id.clone(),
            compiled_sql: compiled.sql,
        })
        .await?;
    let job = match populate {
        true => Some(submit_populate(state, caller, pipe, node, &target, false).await?),
        false => None,
    };
    Ok((target, created, job))
}

async fn submit_populate(
    state: &AppState,
    caller: &Caller,
    pipe: &Pipe,
    node: &Node,
    target: &DataSource,
    truncate: bool,
) -> Result<Job, ApiError> {
    Ok(state
        .services
        .jobs
        .submit_job(SubmitJobRequest {
            header: Some(caller.header.clone()),
            kind: "populateview".into(),
            datasource_id: target.id.clone(),
            datasource_name: target.name.clone(),
            pipe_id: pipe.id.clone(),
            pipe_name: pipe.name.clone(),
            spec_json: json!({ "node": node.name, "truncate": truncate }).to_string(),
            ..SubmitJobRequest::default()
        })
        .await?
        .job
        .unwrap_or_default())
}

/// The copy settings of a node: target, mode and schedule, checked.
struct CopySettings {
    target: DataSource,
    mode: String,
    cron: Option<String>,
}

async fn copy_settings(
    state: &AppState,
    caller: &Caller,
    target: &str,
    mode: Option<&str>,
    cron: Option<&str>,
) -> Result<CopySettings, ApiError> {
    let target = data_source(state, caller, target).await?.ok_or_else(|| {
        ApiError::not_found(format!(
            "The copy target Data Source '{target}' does not exist: create it first"
        ))
    })?;
    caller.require(Need::Append(&target.name))?;
    let mode = match mode.unwrap_or("append") {
        mode @ ("append" | "replace") => mode.to_string(),
        other => {
            return Err(ApiError::bad_request(format!(
                "Invalid copy mode '{other}': use append or replace"
            )));
        }
    };
    Ok(CopySettings {
        target,
        mode,
        cron: scheduled_cron(cron),
    })
}

/// The cron of a schedule setting; none for `@on-demand`, `none` or nothing.
pub(super) fn scheduled_cron(cron: Option<&str>) -> Option<String> {
    cron.map(str::trim)
        .filter(|c| !c.is_empty() && *c != ON_DEMAND && !c.eq_ignore_ascii_case("none"))
        .map(str::to_owned)
}

/// Sets the pipe's schedule to run `kind` jobs with `spec` on `cron`, or removes it without one.
pub(super) async fn set_pipe_schedule(
    state: &AppState,
    caller: &Caller,
    pipe: &Pipe,
    kind: &str,
    cron: Option<&str>,
    spec: Value,
) -> Result<Option<Schedule>, ApiError> {
    let Some(cron) = cron else {
        state
            .services
            .scheduler
            .delete_schedule(DeleteScheduleRequest {
                header: Some(caller.header.clone()),
                pipe_id: pipe.id.clone(),
            })
            .await?;
        return Ok(None);
    };
    Ok(state
        .services
        .scheduler
        .set_schedule(SetScheduleRequest {
            header: Some(caller.header.clone()),
            schedule: Some(Schedule {
                pipe_id: pipe.id.clone(),
                cron: cron.to_string(),
                status: "running".into(),
                pipe_name: pipe.name.clone(),
                kind: kind.into(),
                job_spec_json: spec.to_string(),
                ..Schedule::default()
            }),
        })
        .await?
        .schedule)
}

/// Stores a copy node's settings and sets (or removes) its schedule.
async fn apply_copy(
    state: &AppState,
    caller: &Caller,
    pipe: &Pipe,
    node: &Node,
    copy: &CopySettings,
) -> Result<(), ApiError> {
    let changes = json!({
        "target_datasource": copy.target.name,
        "target_datasource_id": copy.target.id,
        "mode": copy.mode,
        "copy_schedule": copy.cron.clone().unwrap_or_else(|| ON_DEMAND.to_string()),
    });
    let spec = json!({
        "node": node.name,
        "mode": copy.mode,
        "datasource_id": copy.target.id,
        "datasource_name": copy.target.name,
    });
    set_scheduled_node(
        state,
        caller,
        pipe,
        node,
        "copy",
        changes,
        copy.cron.as_deref(),
        spec,
    )
    .await
}

/// Gives `node` its type (copy, sink) and settings, and sets the pipe's schedule to run jobs of
/// that kind with `spec` on `cron` (or removes it). The schedule goes first: the scheduler is
/// what checks the cron, and a refused one must leave the node as it was.
#[allow(clippy::too_many_arguments)]
pub(super) async fn set_scheduled_node(
    state: &AppState,
    caller: &Caller,
    pipe: &Pipe,
    node: &Node,
    node_type: &str,
    settings: Value,
    cron: Option<&str>,
    spec: Value,
) -> Result<(), ApiError> {
    set_pipe_schedule(state, caller, pipe, node_type, cron, spec).await?;
    let typed = state
        .services
        .pipes
        .set_node_settings(SetNodeSettingsRequest {
            header: Some(caller.header.clone()),
            pipe: pipe.id.clone(),
            node: node.id.clone(),
            node_type: node_type.into(),
            settings_json: settings.to_string(),
        })
        .await;
    if let Err(error) = typed {
        let _ = set_pipe_schedule(state, caller, pipe, node_type, None, Value::Null).await;
        return Err(error.into());
    }
    Ok(())
}

pub(super) fn schedule_json(schedule: Option<&Schedule>) -> Value {
    match schedule {
        Some(s) => json!({
            "cron": s.cron,
            "status": s.status,
            "next_run_at": (!s.next_run_at.is_empty()).then_some(&s.next_run_at),
            "timezone": "Etc/UTC",
        }),
        None => json!({ "cron": Value::Null, "status": "shutdown" }),
    }
}

pub(super) async fn schedule_of(
    state: &AppState,
    caller: &Caller,
    pipe: &Pipe,
) -> Result<Option<Schedule>, ApiError> {
    Ok(state
        .services
        .scheduler
        .list_schedules(ListSchedulesRequest {
            header: Some(caller.header.clone()),
        })
        .await?
        .schedules
        .into_iter()
        .find(|s| s.pipe_id == pipe.id))
}

/// Fields a copy or sink pipe's JSON adds: its node, target and schedule.
pub(crate) async fn type_fields(
    state: &AppState,
    caller: &Caller,
    pipe: &Pipe,
) -> Result<Map<String, Value>, ApiError> {
    if pipe.nodes.iter().any(|n| n.node_type == "sink") {
        return super::sinks::sink_fields(state, caller, pipe).await;
    }
    let mut fields = Map::new();
    let Some(node) = pipe.nodes.iter().find(|n| n.node_type == "copy") else {
        return Ok(fields);
    };
    let settings = settings(node);
    let schedule = schedule_of(state, caller, pipe).await?;
    fields.insert("copy_node".into(), json!(node.id));
    fields.insert(
        "copy_target_datasource".into(),
        json!(setting(&settings, &["target_datasource_id"])),
    );
    fields.insert(
        "copy_target_workspace".into(),
        json!(caller.header.workspace_id),
    );
    fields.insert(
        "copy_mode".into(),
        json!(setting(&settings, &["mode"]).unwrap_or("append")),
    );
    fields.insert("schedule".into(), schedule_json(schedule.as_ref()));
    Ok(fields)
}

/// After a push: materializes the pipe's materialized nodes and sets up its copy or sink node, as
/// the node types and settings say. Returns the fields the push answer adds.
pub(crate) async fn apply_node_types(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    pipe: &Pipe,
    params: &Params,
) -> Result<Map<String, Value>, ApiError> {
    let mut fields = Map::new();
    for node in pipe.nodes.iter().filter(|n| n.node_type == "materialized") {
        let settings = settings(node);
        let target = setting(&settings, &["datasource", "target_datasource"]).ok_or_else(|| {
            ApiError::bad_request(format!(
                "Materialized node '{}' needs a target: DATASOURCE <name>",
                node.name
            ))
        })?;
        let (target, created, job) =
            materialize(state, caller, pipe, node, target, params.flag("populate")).await?;
        fields.insert("datasource".into(), data_source_json(&target));
        fields.insert("created_datasource".into(), json!(created));
        if let Some(job) = job {
            fields.insert("job".into(), started_job_json(&job, headers)["job"].clone());
        }
    }
    if let Some(node) = pipe.nodes.iter().find(|n| n.node_type == "copy") {
        let settings = settings(node);
        let target = setting(&settings, &["target_datasource"])
            .or_else(|| params.text("target_datasource"))
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "Copy node '{}' needs a target: TARGET_DATASOURCE <name>",
                    node.name
                ))
            })?;
        let copy = copy_settings(
            state,
            caller,
            target,
            setting(&settings, &["mode", "copy_mode"]),
            setting(&settings, &["copy_schedule", "schedule_cron"]),
        )
        .await?;
        apply_copy(state, caller, pipe, node, &copy).await?;
        fields.insert("datasource".into(), data_source_json(&copy.target));
        fields.insert("created_datasource".into(), json!(false));
    }
    if let Some(node) = pipe.nodes.iter().find(|n| n.node_type == "sink") {
        fields.extend(super::sinks::apply_pushed_sink(state, caller, pipe, node, params).await?);
    }
    // A pipe pushed over a copy or sink pipe as something else keeps no schedule.
    if !pipe
        .nodes
        .iter()
        .any(|n| matches!(n.node_type.as_str(), "copy" | "sink"))
    {
        set_pipe_schedule(state, caller, pipe, "", None, Value::Null).await?;
    }
    Ok(fields)
}

pub(super) async fn pipe_and_caller(
    state: &AppState,
    request: Request,
    pipe: &str,
) -> Result<(Caller, HeaderMap, Params, Pipe), ApiError> {
    let (headers, params, _) = read_request(request, 1024 * 1024).await?;
    let caller = caller(state, &headers, &params).await?;
    let pipe = fetch(state, &caller, pipe).await?;
    caller.require(Need::DropPipe(&pipe.name))?;
    Ok((caller, headers, params, pipe))
}

pub(super) async fn pipe_answer(
    state: &AppState,
    caller: &Caller,
    name: &str,
) -> Result<Value, ApiError> {
    let pipe = fetch(state, caller, name).await?;
    let mut answer = pipe_json(&pipe, &[]);
    if let Value::Object(fields) = &mut answer {
        fields.extend(type_fields(state, caller, &pipe).await?);
    }
    Ok(answer)
}

/// The template parameters of a run request: every parameter but the reserved ones (`token`,
/// `cli_version`, and those starting with `_`).
pub(super) fn template_params(params: &Params) -> Map<String, Value> {
    params
        .pairs()
        .iter()
        .filter(|(key, _)| !key.starts_with('_') && key != "token" && key != "cli_version")
        .map(|(key, value)| (key.clone(), json!(value)))
        .collect()
}

/// `POST /v0/pipes/{p}/nodes/{n}/materialization?datasource=&populate=`.
pub async fn create_materialization(
    State(state): State<AppState>,
    Path((pipe, node)): Path<(String, String)>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let (caller, headers, params, pipe) = pipe_and_caller(&state, request, &pipe).await?;
    let node = find_node(&pipe, &node)?.clone();
    let node_settings = settings(&node);
    let target = params
        .text("datasource")
        .or_else(|| setting(&node_settings, &["datasource"]))
        .ok_or_else(|| ApiError::bad_request("The 'datasource' parameter is required"))?
        .to_string();
    let (target, created, job) = materialize(
        &state,
        &caller,
        &pipe,
        &node,
        &target,
        params.flag("populate"),
    )
    .await?;
    let mut answer = pipe_answer(&state, &caller, &pipe.id).await?;
    answer["datasource"] = data_source_json(&target);
    answer["created_datasource"] = json!(created);
    if let Some(job) = job {
        answer["job"] = started_job_json(&job, &headers)["job"].clone();
    }
    Ok(Json(answer))
}

/// `DELETE /v0/pipes/{p}/nodes/{n}/materialization`: the view stops; the data stays.
pub async fn delete_materialization(
    State(state): State<AppState>,
    Path((pipe, node)): Path<(String, String)>,
    request: Request,
) -> Result<axum::http::StatusCode, ApiError> {
    let (caller, _, _, pipe) = pipe_and_caller(&state, request, &pipe).await?;
    let node = find_node(&pipe, &node)?;
    state
        .services
        .pipes
        .drop_materialization(DropMaterializationRequest {
            header: Some(caller.header.clone()),
            pipe: pipe.id.clone(),
            node: node.id.clone(),
        })
        .await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// `POST /v0/pipes/{p}/nodes/{n}/population?truncate=`: backfills a materialized node's target.
pub async fn populate(
    State(state): State<AppState>,
    Path((pipe, node)): Path<(String, String)>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let (caller, headers, params, pipe) = pipe_and_caller(&state, request, &pipe).await?;
    let node = find_node(&pipe, &node)?;
    if node.node_type != "materialized" {
        return Err(ApiError::bad_request(format!(
            "Node '{}' is not materialized",
            node.name
        )));
    }
    let target = setting(&settings(node), &["datasource_id", "datasource"])
        .unwrap_or_default()
        .to_string();
    let target = data_source(&state, &caller, &target)
        .await?
        .ok_or_else(|| ApiError::not_found("The materialized node's Data Source is gone"))?;
    let job = submit_populate(
        &state,
        &caller,
        &pipe,
        node,
        &target,
        params.flag_or("truncate", false),
    )
    .await?;
    Ok(Json(started_job_json(&job, &headers)))
}

/// `GET /v0/pipes/{p}/nodes/{n}/analysis`: the data source a node would materialize into.
pub async fn analysis(
    State(state): State<AppState>,
    Path((pipe, node)): Path<(String, String)>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let (headers, params, _) = read_request(request, 1024 * 1024).await?;
    let caller = caller(&state, &headers, &params).await?;
    let pipe = fetch(&state, &caller, &pipe).await?;
    let node = find_node(&pipe, &node)?;
    let compiled = compile(&state, &caller, &pipe, node).await?;
    let mut node_settings = settings(node);
    for (key, value) in params.pairs() {
        if key.starts_with("engine") {
            node_settings.insert(key.clone(), json!(value));
        }
    }
    let (columns, engine) = target_definition(&node_settings, &compiled);
    let name = params
        .text("datasource")
        .or_else(|| setting(&node_settings, &["datasource"]))
        .unwrap_or_default();
    let schema = columns
        .iter()
        .map(|c| format!("`{}` {}", c.name, c.r#type))
        .collect::<Vec<_>>()
        .join(", ");
    Ok(Json(json!({
        "analysis": {
            "pipe": { "id": pipe.id, "name": pipe.name },
            "node": { "id": node.id, "name": node.name },
            "sql": compiled.sql,
            "datasource": {
                "name": name,
                "columns": columns.iter().map(|c| json!({"name": c.name, "type": c.r#type})).collect::<Vec<_>>(),
                "schema": schema,
                "engine": { "engine": if engine.engine.is_empty() { "MergeTree" } else { engine.engine.as_str() }, "sorting_key": engine.sorting_key },
            },
        },
        "warnings": [],
    })))
}

/// `PUT /v0/pipes/{p}/nodes/{n}/copy` with `target_datasource`, `schedule_cron`, `mode`.
pub async fn set_copy(
    State(state): State<AppState>,
    Path((pipe, node)): Path<(String, String)>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let (caller, _, params, pipe) = pipe_and_caller(&state, request, &pipe).await?;
    let node = find_node(&pipe, &node)?.clone();
    let current = settings(&node);
    let target = params
        .text("target_datasource")
        .or_else(|| setting(&current, &["target_datasource_id", "target_datasource"]))
        .ok_or_else(|| ApiError::bad_request("The 'target_datasource' parameter is required"))?
        .to_string();
    let cron = match params.get("schedule_cron") {
        Some(cron) => Some(cron.to_string()),
        None => setting(&current, &["copy_schedule"]).map(str::to_owned),
    };
    let copy = copy_settings(
        &state,
        &caller,
        &target,
        params.text("mode").or_else(|| setting(&current, &["mode"])),
        cron.as_deref(),
    )
    .await?;
    apply_copy(&state, &caller, &pipe, &node, &copy).await?;
    Ok(Json(pipe_answer(&state, &caller, &pipe.id).await?))
}

/// `DELETE /v0/pipes/{p}/nodes/{n}/copy`: the node is standard again, its schedule gone.
pub async fn remove_copy(
    State(state): State<AppState>,
    Path((pipe, node)): Path<(String, String)>,
    request: Request,
) -> Result<axum::http::StatusCode, ApiError> {
    let (caller, _, _, pipe) = pipe_and_caller(&state, request, &pipe).await?;
    let node = find_node(&pipe, &node)?;
    set_pipe_schedule(&state, &caller, &pipe, "copy", None, Value::Null).await?;
    let removed = json!({
        "target_datasource": null, "target_datasource_id": null, "mode": null, "copy_schedule": null,
    });
    state
        .services
        .pipes
        .set_node_settings(SetNodeSettingsRequest {
            header: Some(caller.header.clone()),
            pipe: pipe.id.clone(),
            node: node.id.clone(),
            node_type: "standard".into(),
            settings_json: removed.to_string(),
        })
        .await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// `POST /v0/pipes/{p}/copy?_mode=&<params>`: runs the copy now, as a job.
pub async fn run_copy(
    State(state): State<AppState>,
    Path(pipe): Path<String>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let (caller, headers, params, pipe) = pipe_and_caller(&state, request, &pipe).await?;
    let node = pipe
        .nodes
        .iter()
        .find(|n| n.node_type == "copy")
        .ok_or_else(|| ApiError::bad_request(format!("Pipe '{}' is not a copy pipe", pipe.name)))?;
    let current = settings(node);
    let target = setting(&current, &["target_datasource_id", "target_datasource"])
        .ok_or_else(|| ApiError::bad_request("The copy node has no target Data Source"))?;
    let copy = copy_settings(
        &state,
        &caller,
        target,
        params
            .text("_mode")
            .or_else(|| setting(&current, &["mode"])),
        None,
    )
    .await?;
    let job = state
        .services
        .jobs
        .submit_job(SubmitJobRequest {
            header: Some(caller.header.clone()),
            kind: "copy".into(),
            datasource_id: copy.target.id.clone(),
            datasource_name: copy.target.name.clone(),
            pipe_id: pipe.id.clone(),
            pipe_name: pipe.name.clone(),
            spec_json: json!({
                "node": node.name,
                "mode": copy.mode,
                "params": template_params(&params),
                "trigger": "api",
            })
            .to_string(),
            ..SubmitJobRequest::default()
        })
        .await?
        .job
        .unwrap_or_default();
    let mut answer = started_job_json(&job, &headers);
    answer["pipe_id"] = json!(pipe.id);
    answer["pipe_name"] = json!(pipe.name);
    answer["datasource"] = data_source_json(&copy.target);
    // Where the `tb` CLI looks for the target of the copy it started.
    answer["tags"] = json!({
        "copy_target_datasource": copy.target.id,
        "copy_target_workspace": caller.header.workspace_id,
    });
    Ok(Json(answer))
}

async fn set_schedule_status(
    state: AppState,
    pipe: String,
    request: Request,
    status: &str,
) -> Result<Json<Value>, ApiError> {
    let (caller, _, _, pipe) = pipe_and_caller(&state, request, &pipe).await?;
    let mut schedule = schedule_of(&state, &caller, &pipe).await?.ok_or_else(|| {
        ApiError::from(ServiceError::bad_request(format!(
            "Pipe '{}' has no copy schedule",
            pipe.name
        )))
    })?;
    schedule.status = status.to_string();
    state
        .services
        .scheduler
        .set_schedule(SetScheduleRequest {
            header: Some(caller.header.clone()),
            schedule: Some(schedule),
        })
        .await?;
    Ok(Json(pipe_answer(&state, &caller, &pipe.id).await?))
}

/// `POST /v0/pipes/{p}/copy/pause`: the schedule stops submitting runs.
pub async fn pause_copy(
    State(state): State<AppState>,
    Path(pipe): Path<String>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    set_schedule_status(state, pipe, request, "paused").await
}

/// `POST /v0/pipes/{p}/copy/resume`.
pub async fn resume_copy(
    State(state): State<AppState>,
    Path(pipe): Path<String>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    set_schedule_status(state, pipe, request, "running").await
}

//! `/v0/pipes`: pipes and nodes, publishing, and the published endpoints
//! (`/v0/pipes/<name>.json|.csv|.ndjson|.parquet`), their explain and OpenAPI description.

use axum::Json;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use roost_proto::catalog::v1::{
    CreateNodeRequest, CreatePipeRequest, DeleteNodeRequest, DeletePipeRequest, GetPipeRequest,
    ListPipesRequest, Node, Pipe, SetEndpointRequest, UpdateNodeRequest, UpdatePipeRequest,
};
use roost_proto::query::v1::{
    DescribeEndpointRequest, EndpointParam, ExecuteEndpointRequest, ParamSpec,
};
use roost_proto::scheduler::v1::DeleteScheduleRequest;
use serde_json::{Value, json};

use super::{Caller, Need, caller};
use crate::params::{Params, Payload, read_request};
use crate::{ApiError, AppState};

const MAX_PIPE_BODY: usize = 8 * 1024 * 1024;
/// Parameters of an endpoint call that are not template parameters.
const RESERVED: &[&str] = &[
    "token",
    "q",
    "cli_version",
    "__tb__semver",
    "__tb__deployment",
];

/// Form fields a pipe or node request may carry besides its SQL.
const NODE_FIELDS: &[&str] = &[
    "name",
    "description",
    "type",
    "node_type",
    "sql",
    "token",
    "force",
];

/// A node's SQL: the `sql` parameter, else the body. `curl -d 'SELECT ...'` (the docs' way)
/// labels raw SQL as a form, so a form body whose fields are not known parameters is the SQL.
fn body_sql(params: &Params, payload: &Payload) -> Option<String> {
    if let Some(sql) = params.text("sql") {
        return Some(sql.to_owned());
    }
    if !payload.data.is_empty() {
        return Some(String::from_utf8_lossy(&payload.data).into_owned());
    }
    let form = Params::from_urlencoded(&payload.form);
    let is_fields = form
        .pairs()
        .iter()
        .all(|(key, _)| NODE_FIELDS.contains(&key.as_str()));
    let text = String::from_utf8_lossy(&payload.form).trim().to_string();
    (!is_fields && !text.is_empty()).then_some(text)
}

/// A parameter's default as the template wrote it: the query service sends it as JSON, so
/// `Int32(limit, 10)` shows `10` and `String(c, '10')` shows `"10"`, as Tinybird does.
fn default_json(spec: &ParamSpec) -> Value {
    if spec.default_value.is_empty() {
        return Value::Null;
    }
    serde_json::from_str(&spec.default_value)
        .unwrap_or_else(|_| Value::from(spec.default_value.clone()))
}

fn param_json(spec: &ParamSpec) -> Value {
    json!({
        "name": spec.name,
        "type": spec.r#type,
        "default": default_json(spec),
        "description": spec.description,
        "required": spec.required,
    })
}

fn node_json(node: &Node, pipe: &Pipe, params: &[ParamSpec]) -> Value {
    let kind = if node.node_type.is_empty() {
        "standard"
    } else {
        node.node_type.as_str()
    };
    let published = !pipe.endpoint_node_id.is_empty() && pipe.endpoint_node_id == node.id;
    let settings: serde_json::Map<String, Value> =
        serde_json::from_str(&node.settings_json).unwrap_or_default();
    let mut answer = json!({
        "id": node.id,
        "name": node.name,
        "sql": node.sql,
        "description": node.description,
        "type": kind,
        "node_type": kind,
        "created_at": node.created_at,
        "updated_at": node.updated_at,
        "materialized": Value::Null,
        "cluster": Value::Null,
        "tags": {},
        "version": 0,
        "project": Value::Null,
        "result": Value::Null,
        "ignore_sql_errors": false,
        "dependencies": [],
        "params": if published { params.iter().map(param_json).collect::<Vec<_>>() } else { Vec::new() },
    });
    // A node's type settings show as Tinybird shows them (`datasource`, `target_datasource`,
    // `mode`, ...); the engine view's name is ours alone.
    if let Value::Object(fields) = &mut answer {
        for (key, value) in settings {
            if key != "view" && !fields.contains_key(&key) {
                fields.insert(key, value);
            }
        }
        if node.node_type == "materialized" {
            fields.insert(
                "materialized".into(),
                fields.get("datasource").cloned().unwrap_or(Value::Null),
            );
        }
    }
    answer
}

/// The JSON of a pipe as Tinybird shows it.
pub(crate) fn pipe_json(pipe: &Pipe, params: &[ParamSpec]) -> Value {
    let endpoint = (!pipe.endpoint_node_id.is_empty()).then(|| pipe.endpoint_node_id.clone());
    let kind = if endpoint.is_some() {
        "endpoint"
    } else {
        pipe.nodes
            .iter()
            .find_map(|n| {
                matches!(n.node_type.as_str(), "materialized" | "copy" | "sink")
                    .then_some(n.node_type.as_str())
            })
            .unwrap_or("default")
    };
    json!({
        "id": pipe.id,
        "name": pipe.name,
        "description": pipe.description,
        "type": kind,
        "endpoint": endpoint,
        "created_at": pipe.created_at,
        "updated_at": pipe.updated_at,
        "parent": Value::Null,
        "edited_by": Value::Null,
        "nodes": pipe.nodes.iter().map(|n| node_json(n, pipe, params)).collect::<Vec<_>>(),
        "params": params.iter().map(param_json).collect::<Vec<_>>(),
    })
}

async fn describe(
    state: &AppState,
    caller: &Caller,
    pipe: &Pipe,
) -> Result<Vec<ParamSpec>, ApiError> {
    Ok(state
        .services
        .endpoints
        .describe_endpoint(DescribeEndpointRequest {
            header: Some(caller.header.clone()),
            pipe: pipe.name.clone(),
        })
        .await?
        .params)
}

pub(crate) async fn fetch(state: &AppState, caller: &Caller, name: &str) -> Result<Pipe, ApiError> {
    Ok(state
        .services
        .pipes
        .get_pipe(GetPipeRequest {
            header: Some(caller.header.clone()),
            name_or_id: name.to_string(),
        })
        .await?
        .pipe
        .unwrap_or_default())
}

/// `GET /v0/pipes`.
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let params = Params::from_query(query);
    let caller = caller(&state, &headers, &params).await?;
    let pipes = state
        .services
        .pipes
        .list_pipes(ListPipesRequest {
            header: Some(caller.header.clone()),
        })
        .await?
        .pipes;
    let visible: Vec<Value> = pipes
        .iter()
        .filter(|pipe| {
            caller.may(Need::ReadPipe(&pipe.name)) || caller.may(Need::DropPipe(&pipe.name))
        })
        .map(|pipe| pipe_json(pipe, &[]))
        .collect();
    Ok(Json(json!({ "pipes": visible })))
}

fn node_from_json(value: &Value) -> Node {
    let text = |key: &str| {
        value
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let kind = match text("type") {
        kind if kind.is_empty() => text("node_type"),
        kind => kind,
    };
    // Everything else a node carries (a materialized node's DATASOURCE and ENGINE settings, a
    // copy node's TARGET_DATASOURCE, COPY_SCHEDULE and mode) is kept as its settings.
    let settings: serde_json::Map<String, Value> = value
        .as_object()
        .map(|fields| {
            fields
                .iter()
                .filter(|(key, value)| {
                    !matches!(
                        key.as_str(),
                        "name" | "sql" | "description" | "type" | "node_type"
                    ) && !value.is_null()
                })
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect()
        })
        .unwrap_or_default();
    Node {
        name: text("name"),
        sql: text("sql"),
        description: text("description"),
        node_type: kind,
        settings_json: Value::Object(settings).to_string(),
        ..Default::default()
    }
}

/// `POST /v0/pipes`: a JSON body `{name, description, nodes: [{name, sql, type, description}]}` as
/// `tb push` sends it, or `name` and `sql` parameters with the SQL as the body.
pub async fn create(
    State(state): State<AppState>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let (headers, mut params, payload) = read_request(request, MAX_PIPE_BODY).await?;
    let caller = caller(&state, &headers, &params).await?;
    caller.require(Need::CreatePipe)?;
    let body: Option<Value> = serde_json::from_slice(&payload.data)
        .ok()
        .filter(Value::is_object);
    if body.is_some() {
        // `tb push` sends a sink's settings (connection, path, ...) beside the nodes.
        params.extend_with_json_body(&payload.data);
    }
    let (name, description, nodes) = match &body {
        Some(body) => {
            let name = body
                .get("name")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .or_else(|| params.text("name").map(str::to_owned));
            let description = body
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let nodes = body
                .get("nodes")
                .and_then(Value::as_array)
                .map(|nodes| nodes.iter().map(node_from_json).collect())
                .unwrap_or_default();
            (name, description, nodes)
        }
        None => {
            let sql = body_sql(&params, &payload);
            let name = params.text("name").map(str::to_owned);
            let nodes = match (&name, sql) {
                (Some(name), Some(sql)) => vec![Node {
                    name: format!("{name}_0"),
                    sql,
                    ..Default::default()
                }],
                _ => Vec::new(),
            };
            (
                name,
                params.text("description").unwrap_or_default().to_string(),
                nodes,
            )
        }
    };
    let name = name.ok_or_else(|| ApiError::bad_request("The pipe needs a 'name'"))?;
    let force = params.flag("force");
    // The pipe a forced push replaces: replacing needs the right to change it, and a push that
    // fails must leave it as it was.
    let replaced = match force {
        true => fetch(&state, &caller, &name).await.ok(),
        false => None,
    };
    if let Some(replaced) = &replaced {
        caller.require(Need::DropPipe(&replaced.name))?;
    }
    let pipe = state
        .services
        .pipes
        .create_pipe(CreatePipeRequest {
            header: Some(caller.header.clone()),
            name,
            description,
            nodes,
            force,
        })
        .await?
        .pipe
        .unwrap_or_default();
    // Fail the push on SQL that can never run (bad template syntax), as Tinybird does, and on
    // materialized, copy or sink nodes that cannot be set up.
    let described = match describe(&state, &caller, &pipe).await {
        Ok(described) => {
            super::pipe_jobs::apply_node_types(&state, &caller, &headers, &pipe, &params)
                .await
                .map(|extra| (described, extra))
        }
        Err(error) => Err(error),
    };
    let (described, extra) = match described {
        Ok(described) => described,
        Err(error) => {
            let header = Some(caller.header.clone());
            let _ = match replaced {
                Some(old) => {
                    restore(&state, &caller, &headers, old).await;
                    Ok(())
                }
                None => state
                    .services
                    .pipes
                    .delete_pipe(DeletePipeRequest {
                        header,
                        name_or_id: pipe.id.clone(),
                    })
                    .await
                    .map(drop),
            };
            return Err(error);
        }
    };
    // Materializing and copy settings changed the nodes (only those add fields): answer with
    // the pipe as stored now.
    let pipe = match extra.is_empty() {
        true => pipe,
        false => fetch(&state, &caller, &pipe.id).await?,
    };
    let mut answer = pipe_json(&pipe, &described);
    if let Value::Object(fields) = &mut answer {
        fields.extend(super::pipe_jobs::type_fields(&state, &caller, &pipe).await?);
        fields.extend(extra);
    }
    Ok(Json(answer))
}

/// Puts back the pipe a failed forced push replaced: its nodes, and what its node types set up
/// (views, schedules), which the replacement took down. Nothing is backfilled again.
async fn restore(state: &AppState, caller: &Caller, headers: &HeaderMap, old: Pipe) {
    let restored = state
        .services
        .pipes
        .create_pipe(CreatePipeRequest {
            header: Some(caller.header.clone()),
            name: old.name.clone(),
            description: old.description,
            nodes: old.nodes,
            force: true,
        })
        .await;
    let outcome = match restored {
        Ok(restored) => {
            let pipe = restored.pipe.unwrap_or_default();
            super::pipe_jobs::apply_node_types(state, caller, headers, &pipe, &Params::default())
                .await
                .map(drop)
                .map_err(|e| e.message)
        }
        Err(error) => Err(error.message),
    };
    if let Err(error) = outcome {
        tracing::error!(pipe = %old.name, %error, "a pipe replaced by a failed push could not be restored");
    }
}

/// The endpoint call of `GET|POST /v0/pipes/<name>.<format>`.
async fn run_endpoint(
    state: &AppState,
    headers: &HeaderMap,
    params: &Params,
    name: &str,
    format: &str,
) -> Result<Response, ApiError> {
    let caller = caller(state, headers, params).await?;
    caller.require(Need::ReadPipe(name))?;
    let endpoint_params = with_fixed_params(
        &caller,
        name,
        params
            .pairs()
            .iter()
            .filter(|(key, _)| !RESERVED.contains(&key.as_str()))
            .map(|(key, value)| EndpointParam {
                name: key.clone(),
                value: value.clone(),
            }),
    );
    let answer = state
        .services
        .endpoints
        .execute_endpoint(ExecuteEndpointRequest {
            header: Some(caller.header.clone()),
            pipe: name.to_string(),
            format: format.to_string(),
            params: endpoint_params,
            q: params.get("q").unwrap_or_default().to_string(),
            readable: Vec::new(),
            read_all: true,
            node: String::new(),
            filters: caller.row_filters(),
        })
        .await?;
    super::answer_response(answer)
}

/// The request's endpoint parameters with a JWT's fixed parameters for `pipe` in place of any the
/// request sent under the same names: a fixed value always wins.
fn with_fixed_params(
    caller: &Caller,
    pipe: &str,
    requested: impl Iterator<Item = EndpointParam>,
) -> Vec<EndpointParam> {
    let fixed = caller.fixed_params(pipe);
    let mut params: Vec<EndpointParam> = requested
        .filter(|p| !fixed.iter().any(|f| f.name == p.name))
        .collect();
    for param in fixed {
        params.extend(param.values.iter().map(|value| EndpointParam {
            name: param.name.clone(),
            value: value.clone(),
        }));
    }
    params
}

/// Splits `name.ext` into the pipe and an endpoint format, when the extension is one.
fn endpoint_path(name: &str) -> Option<(&str, &str)> {
    let (pipe, extension) = name.rsplit_once('.')?;
    matches!(extension, "json" | "csv" | "ndjson" | "parquet").then_some((pipe, extension))
}

/// `GET /v0/pipes/{name}`: the pipe, or its endpoint when the name ends in a format.
pub async fn get_one(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::from_query(query);
    if let Some((pipe, format)) = endpoint_path(&name) {
        return run_endpoint(&state, &headers, &params, pipe, format).await;
    }
    let caller = caller(&state, &headers, &params).await?;
    let pipe = fetch(&state, &caller, &name).await?;
    if !(caller.may(Need::ReadPipe(&pipe.name)) || caller.may(Need::DropPipe(&pipe.name))) {
        return Err(ApiError::forbidden(format!(
            "Not enough permissions to read pipe '{}'",
            pipe.name
        )));
    }
    let params = describe(&state, &caller, &pipe).await?;
    let mut answer = pipe_json(&pipe, &params);
    if let Value::Object(fields) = &mut answer {
        fields.extend(super::pipe_jobs::type_fields(&state, &caller, &pipe).await?);
    }
    Ok(Json(answer).into_response())
}

/// `POST /v0/pipes/{name}.<format>`: an endpoint call with form parameters.
pub async fn post_endpoint(
    State(state): State<AppState>,
    Path(name): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    let Some((pipe, format)) = endpoint_path(&name).map(|(p, f)| (p.to_string(), f.to_string()))
    else {
        return Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "Method not allowed",
        ));
    };
    let (headers, params, _) = read_request(request, MAX_PIPE_BODY).await?;
    run_endpoint(&state, &headers, &params, &pipe, &format).await
}

/// `PUT /v0/pipes/{name}`: rename or describe.
pub async fn update(
    State(state): State<AppState>,
    Path(name): Path<String>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let (headers, params, payload) = read_request(request, MAX_PIPE_BODY).await?;
    let caller = caller(&state, &headers, &params).await?;
    let current = fetch(&state, &caller, &name).await?;
    caller.require(Need::DropPipe(&current.name))?;
    let body: Value = serde_json::from_slice(&payload.data).unwrap_or(Value::Null);
    let field = |key: &str| {
        params
            .get(key)
            .map(str::to_owned)
            .or_else(|| body.get(key).and_then(Value::as_str).map(str::to_owned))
    };
    let pipe = state
        .services
        .pipes
        .update_pipe(UpdatePipeRequest {
            header: Some(caller.header.clone()),
            name_or_id: current.id,
            new_name: field("name"),
            description: field("description"),
        })
        .await?
        .pipe
        .unwrap_or_default();
    Ok(Json(pipe_json(&pipe, &[])))
}

/// `DELETE /v0/pipes/{name}`.
pub async fn delete(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<StatusCode, ApiError> {
    let params = Params::from_query(query);
    let caller = caller(&state, &headers, &params).await?;
    let current = fetch(&state, &caller, &name).await?;
    caller.require(Need::DropPipe(&current.name))?;
    state
        .services
        .pipes
        .delete_pipe(DeletePipeRequest {
            header: Some(caller.header.clone()),
            name_or_id: current.id.clone(),
        })
        .await?;
    // A copy or sink schedule must not outlive its pipe.
    state
        .services
        .scheduler
        .delete_schedule(DeleteScheduleRequest {
            header: Some(caller.header.clone()),
            pipe_id: current.id,
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v0/pipes/{name}/nodes`: appends a node; the SQL is the body, `name`, `description` and
/// `type` parameters.
pub async fn create_node(
    State(state): State<AppState>,
    Path(name): Path<String>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let (headers, params, payload) = read_request(request, MAX_PIPE_BODY).await?;
    let caller = caller(&state, &headers, &params).await?;
    let current = fetch(&state, &caller, &name).await?;
    caller.require(Need::DropPipe(&current.name))?;
    let sql = body_sql(&params, &payload).unwrap_or_default();
    let node_name = params
        .text("name")
        .map(str::to_owned)
        .unwrap_or_else(|| format!("{}_{}", current.name, current.nodes.len()));
    let created = state
        .services
        .pipes
        .create_node(CreateNodeRequest {
            header: Some(caller.header.clone()),
            pipe: current.id,
            node: Some(Node {
                name: node_name,
                sql,
                description: params.text("description").unwrap_or_default().to_string(),
                node_type: params.text("type").unwrap_or_default().to_string(),
                ..Default::default()
            }),
        })
        .await?;
    let pipe = created.pipe.unwrap_or_default();
    let node = created.node.unwrap_or_default();
    Ok(Json(node_json(&node, &pipe, &[])))
}

/// `PUT /v0/pipes/{name}/nodes/{node}`: new SQL (body), name or description.
pub async fn update_node(
    State(state): State<AppState>,
    Path((name, node)): Path<(String, String)>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let (headers, params, payload) = read_request(request, MAX_PIPE_BODY).await?;
    let caller = caller(&state, &headers, &params).await?;
    let current = fetch(&state, &caller, &name).await?;
    caller.require(Need::DropPipe(&current.name))?;
    let sql = body_sql(&params, &payload);
    let updated = state
        .services
        .pipes
        .update_node(UpdateNodeRequest {
            header: Some(caller.header.clone()),
            pipe: current.id,
            node,
            new_name: params.text("name").map(str::to_owned),
            sql,
            description: params.get("description").map(str::to_owned),
            node_type: params.text("type").map(str::to_owned),
        })
        .await?;
    let pipe = updated.pipe.unwrap_or_default();
    Ok(Json(node_json(
        &updated.node.unwrap_or_default(),
        &pipe,
        &[],
    )))
}

/// `DELETE /v0/pipes/{name}/nodes/{node}`.
pub async fn delete_node(
    State(state): State<AppState>,
    Path((name, node)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<StatusCode, ApiError> {
    let params = Params::from_query(query);
    let caller = caller(&state, &headers, &params).await?;
    let current = fetch(&state, &caller, &name).await?;
    caller.require(Need::DropPipe(&current.name))?;
    state
        .services
        .pipes
        .delete_node(DeleteNodeRequest {
            header: Some(caller.header.clone()),
            pipe: current.id,
            node,
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Publishes `node` of pipe `name`, or unpublishes the pipe when `publish` is false.
async fn set_endpoint(
    state: &AppState,
    headers: &HeaderMap,
    params: &Params,
    name: &str,
    node: &str,
    publish: bool,
) -> Result<Json<Value>, ApiError> {
    let caller = caller(state, headers, params).await?;
    let current = fetch(state, &caller, name).await?;
    caller.require(Need::DropPipe(&current.name))?;
    // Tinybird answers a node the pipe does not have with 400 ("Wrong node id"), not 404.
    if !current.nodes.iter().any(|n| n.name == node || n.id == node) {
        return Err(ApiError::bad_request(format!(
            "Wrong node id: pipe '{}' has no node '{node}'",
            current.name
        )));
    }
    let node = if publish {
        node.to_string()
    } else {
        String::new()
    };
    let pipe = state
        .services
        .pipes
        .set_endpoint(SetEndpointRequest {
            header: Some(caller.header.clone()),
            pipe: current.id,
            node,
        })
        .await?
        .pipe
        .unwrap_or_default();
    let params = describe(state, &caller, &pipe).await?;
    Ok(Json(pipe_json(&pipe, &params)))
}

/// `POST /v0/pipes/{name}/nodes/{node}/endpoint`: publishes the node.
pub async fn publish(
    State(state): State<AppState>,
    Path((name, node)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    set_endpoint(
        &state,
        &headers,
        &Params::from_query(query),
        &name,
        &node,
        true,
    )
    .await
}

/// `DELETE /v0/pipes/{name}/nodes/{node}/endpoint`: unpublishes.
pub async fn unpublish(
    State(state): State<AppState>,
    Path((name, node)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    set_endpoint(
        &state,
        &headers,
        &Params::from_query(query),
        &name,
        &node,
        false,
    )
    .await
}

/// `GET /v0/pipes/{name}/explain`: the rendered SQL and ClickHouse's plan.
pub async fn explain(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let params = Params::from_query(query);
    let caller = caller(&state, &headers, &params).await?;
    caller.require(Need::ReadPipe(&name))?;
    let endpoint_params = with_fixed_params(
        &caller,
        &name,
        params
            .pairs()
            .iter()
            .filter(|(key, _)| !RESERVED.contains(&key.as_str()) && key != "node")
            .map(|(key, value)| EndpointParam {
                name: key.clone(),
                value: value.clone(),
            }),
    );
    let explained = state
        .services
        .endpoints
        .explain_endpoint(ExecuteEndpointRequest {
            header: Some(caller.header.clone()),
            pipe: name,
            format: "json".into(),
            params: endpoint_params,
            q: String::new(),
            readable: Vec::new(),
            read_all: true,
            node: params.text("node").unwrap_or_default().to_string(),
            filters: caller.row_filters(),
        })
        .await?;
    Ok(Json(
        json!({ "sql": explained.sql, "plan": explained.plan }),
    ))
}

fn openapi_type(ch_type: &str) -> Value {
    let lowered = ch_type.to_ascii_lowercase();
    if let Some(inner) = ch_type
        .strip_prefix("Array(")
        .and_then(|t| t.strip_suffix(')'))
    {
        return json!({ "type": "array", "items": openapi_type(inner) });
    }
    if lowered.starts_with("int") || lowered.starts_with("uint") {
        json!({ "type": "integer" })
    } else if lowered.starts_with("float") {
        json!({ "type": "number" })
    } else if lowered == "boolean" {
        json!({ "type": "boolean" })
    } else if lowered == "date" {
        json!({ "type": "string", "format": "date" })
    } else if lowered.starts_with("datetime") {
        json!({ "type": "string", "format": "date-time" })
    } else {
        json!({ "type": "string" })
    }
}

/// `GET /v0/pipes/openapi.json`: every published endpoint the token may read, as OpenAPI 3.
pub async fn openapi(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let params = Params::from_query(query);
    let caller = caller(&state, &headers, &params).await?;
    let pipes = state
        .services
        .pipes
        .list_pipes(ListPipesRequest {
            header: Some(caller.header.clone()),
        })
        .await?
        .pipes;
    let mut paths = serde_json::Map::new();
    for pipe in pipes
        .iter()
        .filter(|p| !p.endpoint_node_id.is_empty() && caller.may(Need::ReadPipe(&p.name)))
    {
        let parameters: Vec<Value> = describe(&state, &caller, pipe)
            .await?
            .iter()
            .map(|spec| {
                let mut schema = openapi_type(&spec.r#type);
                if !spec.default_value.is_empty() {
                    schema["default"] = default_json(spec);
                }
                json!({ "name": spec.name, "in": "query", "required": spec.required, "description": spec.description, "schema": schema })
            })
            .collect();
        for format in ["json", "csv", "ndjson", "parquet"] {
            let content = match format {
                "json" => "application/json",
                "csv" => "text/csv",
                "ndjson" => "application/x-ndjson",
                _ => "application/octet-stream",
            };
            paths.insert(
                format!("/pipes/{}.{format}", pipe.name),
                json!({ "get": {
                    "summary": pipe.description,
                    "operationId": format!("{}_{format}", pipe.name),
                    "parameters": parameters,
                    "responses": {
                        "200": { "description": "The endpoint's result", "content": { content: { "schema": { "type": if format == "json" { "object" } else { "string" } } } } },
                        "400": { "description": "Invalid parameters" },
                        "403": { "description": "The token may not read this endpoint" },
                    },
                } }),
            );
        }
    }
    Ok(Json(json!({
        "openapi": "3.0.3",
        "info": { "title": "Roost endpoints", "version": "1.0.0" },
        "servers": [{ "url": "/v0" }],
        "paths": paths,
        "components": { "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } } },
        "security": [{ "bearer": [] }],
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_paths_need_a_known_extension() {
        assert_eq!(endpoint_path("top.json"), Some(("top", "json")));
        assert_eq!(endpoint_path("top.parquet"), Some(("top", "parquet")));
        assert_eq!(endpoint_path("top"), None);
        assert_eq!(endpoint_path("top.pipe"), None);
    }

    #[test]
    fn openapi_types_follow_clickhouse_types() {
        assert_eq!(openapi_type("Int32")["type"], "integer");
        assert_eq!(openapi_type("Array(String)")["items"]["type"], "string");
        assert_eq!(openapi_type("DateTime")["format"], "date-time");
    }
}

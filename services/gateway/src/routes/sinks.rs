//! Sink pipes: a node's result written as files to a bucket or a local directory through a
//! connection, on demand or on a cron schedule, as `sink` jobs.
//!
//! Routes: `POST|DELETE /v0/pipes/{p}/nodes/{n}/sink`, `POST /v0/pipes/{p}/sink`; and the sink
//! node of a pushed pipe (`TYPE sink` with `EXPORT_*` settings).

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use roost_proto::catalog::v1::{
    Connection, GetConnectionRequest, Node, Pipe, SetNodeSettingsRequest,
};
use roost_proto::jobs::v1::SubmitJobRequest;
use roost_types::sink::{
    BucketUri, FileTemplate, SinkCompression, SinkFormat, WriteStrategy, local_path,
};
use serde_json::{Map, Value, json};

use super::Caller;
use super::jobs::started_job_json;
use super::pipe_jobs::{
    ON_DEMAND, find_node, pipe_and_caller, pipe_answer, schedule_json, schedule_of, scheduled_cron,
    set_pipe_schedule, set_scheduled_node, setting, settings, template_params,
};
use crate::params::Params;
use crate::{ApiError, AppState};

/// Where each sink setting is read from: the API's name first, then the datafile's `EXPORT_*`
/// name that `tb push` sends with the node.
const CONNECTION: &[&str] = &["connection", "export_connection_name"];
const PATH: &[&str] = &["path", "export_bucket_uri"];
const FILE_TEMPLATE: &[&str] = &["file_template", "export_file_template"];
const FORMAT: &[&str] = &["format", "export_format"];
const COMPRESSION: &[&str] = &["compression", "export_compression"];
const WRITE_STRATEGY: &[&str] = &["write_strategy", "export_write_strategy"];
const SCHEDULE: &[&str] = &["schedule_cron", "export_schedule"];

/// Every key a sink node's settings may hold, cleared when the sink is removed.
const SINK_KEYS: &[&str] = &[
    "connection",
    "connection_id",
    "path",
    "file_template",
    "format",
    "compression",
    "write_strategy",
    "schedule_cron",
    "export_service",
    "export_connection_name",
    "export_bucket_uri",
    "export_file_template",
    "export_format",
    "export_compression",
    "export_write_strategy",
    "export_schedule",
    "export_strategy",
];

/// A sink's settings, checked.
struct SinkSettings {
    connection: Connection,
    path: String,
    file_template: String,
    format: SinkFormat,
    compression: SinkCompression,
    write_strategy: WriteStrategy,
    cron: Option<String>,
}

impl SinkSettings {
    /// What the node stores, and what each run's job is given besides its node and parameters.
    fn stored(&self) -> Map<String, Value> {
        [
            ("connection", json!(self.connection.name)),
            ("connection_id", json!(self.connection.id)),
            ("path", json!(self.path)),
            ("file_template", json!(self.file_template)),
            ("format", json!(self.format.extension())),
            ("compression", json!(self.compression.as_str())),
            ("write_strategy", json!(self.write_strategy.as_str())),
            (
                "schedule_cron",
                json!(self.cron.as_deref().unwrap_or(ON_DEMAND)),
            ),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_string(), value))
        .collect()
    }
}

/// Reads and checks a sink's settings, each from `lookup` under its names.
async fn sink_settings<'a>(
    state: &AppState,
    caller: &Caller,
    lookup: impl Fn(&[&str]) -> Option<&'a str>,
) -> Result<SinkSettings, ApiError> {
    let required = |keys: &[&str]| {
        lookup(keys).ok_or_else(|| {
            ApiError::bad_request(format!("The '{}' parameter is required", keys[0]))
        })
    };
    let connection_name = required(CONNECTION)?;
    let path = required(PATH)?.to_string();
    let file_template = required(FILE_TEMPLATE)?.to_string();
    FileTemplate::parse(&file_template).map_err(ApiError::bad_request)?;
    let format =
        SinkFormat::parse(lookup(FORMAT).unwrap_or_default()).map_err(ApiError::bad_request)?;
    let compression = SinkCompression::parse(lookup(COMPRESSION).unwrap_or_default())
        .map_err(ApiError::bad_request)?;
    let write_strategy = WriteStrategy::parse(lookup(WRITE_STRATEGY).unwrap_or_default())
        .map_err(ApiError::bad_request)?;
    let connection = state
        .services
        .catalog
        .get_connection(GetConnectionRequest {
            header: Some(caller.header.clone()),
            name_or_id: connection_name.to_string(),
            with_secrets: false,
        })
        .await?
        .connection
        .unwrap_or_default();
    let path = match connection.service.as_str() {
        "s3" => {
            BucketUri::parse(&path).map_err(ApiError::bad_request)?;
            path
        }
        _ => local_path(&path).map_err(ApiError::bad_request)?,
    };
    Ok(SinkSettings {
        connection,
        path,
        file_template,
        format,
        compression,
        write_strategy,
        cron: scheduled_cron(lookup(SCHEDULE)),
    })
}

/// Tinybird's restrictions: a pipe publishing an endpoint, materializing or copying cannot also
/// sink, and a pipe sinks from one node.
fn check_can_sink(pipe: &Pipe, node: &Node) -> Result<(), ApiError> {
    if !pipe.endpoint_node_id.is_empty() {
        return Err(ApiError::bad_request(format!(
            "Pipe '{}' is an API Endpoint: unpublish it before setting a sink",
            pipe.name
        )));
    }
    let refused = |what: &str| {
        ApiError::bad_request(format!(
            "Pipe '{}' is {what}: unset it before setting a sink",
            pipe.name
        ))
    };
    for other in &pipe.nodes {
        match other.node_type.as_str() {
            "materialized" => return Err(refused("materializing")),
            "copy" => return Err(refused("a copy pipe")),
            "sink" if other.id != node.id => {
                return Err(ApiError::bad_request(format!(
                    "Pipe '{}' already sinks from node '{}'",
                    pipe.name, other.name
                )));
            }
            _ => {}
        }
    }
    Ok(())
}

/// A run's job spec: the node, the sink settings and the template parameters.
fn job_spec(node: &Node, stored: &Map<String, Value>, params: Map<String, Value>) -> Value {
    let text = |key: &str| stored.get(key).cloned().unwrap_or(Value::Null);
    json!({
        "node": node.name,
        "connection": text("connection"),
        "connection_id": text("connection_id"),
        "path": text("path"),
        "file_template": text("file_template"),
        "format": text("format"),
        "compression": text("compression"),
        "write_strategy": text("write_strategy"),
        "params": params,
    })
}

/// Makes `node` the pipe's sink with `sink`, and sets or removes its schedule.
async fn apply_sink(
    state: &AppState,
    caller: &Caller,
    pipe: &Pipe,
    node: &Node,
    sink: &SinkSettings,
) -> Result<(), ApiError> {
    check_can_sink(pipe, node)?;
    let stored = sink.stored();
    let spec = job_spec(node, &stored, Map::new());
    set_scheduled_node(
        state,
        caller,
        pipe,
        node,
        "sink",
        Value::Object(stored),
        sink.cron.as_deref(),
        spec,
    )
    .await
}

/// After a push: sets up the pipe's sink node from its settings (`EXPORT_*` on the node, or the
/// API's names beside the nodes, as `tb push` sends them). Returns the fields the push answer
/// adds.
pub(crate) async fn apply_pushed_sink(
    state: &AppState,
    caller: &Caller,
    pipe: &Pipe,
    node: &Node,
    params: &Params,
) -> Result<Map<String, Value>, ApiError> {
    let pushed = settings(node);
    let sink = sink_settings(state, caller, |keys| {
        setting(&pushed, keys).or_else(|| keys.iter().find_map(|key| params.text(key)))
    })
    .await?;
    apply_sink(state, caller, pipe, node, &sink).await?;
    let mut fields = Map::new();
    fields.insert("sink_node".into(), json!(node.id));
    Ok(fields)
}

/// Fields a sink pipe's JSON adds: its node and schedule.
pub(crate) async fn sink_fields(
    state: &AppState,
    caller: &Caller,
    pipe: &Pipe,
) -> Result<Map<String, Value>, ApiError> {
    let mut fields = Map::new();
    let Some(node) = pipe.nodes.iter().find(|n| n.node_type == "sink") else {
        return Ok(fields);
    };
    let schedule = schedule_of(state, caller, pipe).await?;
    fields.insert("sink_node".into(), json!(node.id));
    fields.insert("schedule".into(), schedule_json(schedule.as_ref()));
    Ok(fields)
}

/// `POST /v0/pipes/{p}/nodes/{n}/sink` with `connection`, `path`, `file_template`, `format`,
/// `compression`, `schedule_cron`, `write_strategy`.
pub async fn create_sink(
    State(state): State<AppState>,
    Path((pipe, node)): Path<(String, String)>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let (caller, _, params, pipe) = pipe_and_caller(&state, request, &pipe).await?;
    let node = find_node(&pipe, &node)?.clone();
    let sink = sink_settings(&state, &caller, |keys| {
        keys.iter().find_map(|key| params.text(key))
    })
    .await?;
    apply_sink(&state, &caller, &pipe, &node, &sink).await?;
    Ok(Json(pipe_answer(&state, &caller, &pipe.id).await?))
}

/// `DELETE /v0/pipes/{p}/nodes/{n}/sink`: the node is standard again, its schedule gone.
pub async fn remove_sink(
    State(state): State<AppState>,
    Path((pipe, node)): Path<(String, String)>,
    request: Request,
) -> Result<StatusCode, ApiError> {
    let (caller, _, _, pipe) = pipe_and_caller(&state, request, &pipe).await?;
    let node = find_node(&pipe, &node)?;
    if node.node_type != "sink" {
        return Err(ApiError::bad_request(format!(
            "Node '{}' is not a sink node",
            node.name
        )));
    }
    set_pipe_schedule(&state, &caller, &pipe, "sink", None, Value::Null).await?;
    let removed: Map<String, Value> = SINK_KEYS
        .iter()
        .map(|key| ((*key).to_string(), Value::Null))
        .collect();
    state
        .services
        .pipes
        .set_node_settings(SetNodeSettingsRequest {
            header: Some(caller.header.clone()),
            pipe: pipe.id.clone(),
            node: node.id.clone(),
            node_type: "standard".into(),
            settings_json: Value::Object(removed).to_string(),
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v0/pipes/{p}/sink?<params>`: runs the sink now, as a job.
pub async fn run_sink(
    State(state): State<AppState>,
    Path(pipe): Path<String>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let (caller, headers, params, pipe) = pipe_and_caller(&state, request, &pipe).await?;
    let node = pipe
        .nodes
        .iter()
        .find(|n| n.node_type == "sink")
        .ok_or_else(|| ApiError::bad_request(format!("Pipe '{}' is not a sink pipe", pipe.name)))?;
    let stored = settings(node);
    let mut spec = job_spec(node, &stored, template_params(&params));
    spec["trigger"] = json!("api");
    let job = state
        .services
        .jobs
        .submit_job(SubmitJobRequest {
            header: Some(caller.header.clone()),
            kind: "sink".into(),
            pipe_id: pipe.id.clone(),
            pipe_name: pipe.name.clone(),
            spec_json: spec.to_string(),
            ..SubmitJobRequest::default()
        })
        .await?
        .job
        .unwrap_or_default();
    let mut answer = started_job_json(&job, &headers);
    answer["pipe_id"] = json!(pipe.id);
    answer["pipe_name"] = json!(pipe.name);
    Ok(Json(answer))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, kind: &str) -> Node {
        Node {
            id: id.into(),
            name: format!("node_{id}"),
            node_type: kind.into(),
            ..Node::default()
        }
    }

    #[test]
    fn endpoints_materializations_copies_and_other_sinks_refuse_a_sink() {
        let sink = node("n1", "");
        let mut pipe = Pipe {
            name: "p".into(),
            nodes: vec![sink.clone(), node("n2", "standard")],
            ..Pipe::default()
        };
        check_can_sink(&pipe, &sink).unwrap();
        pipe.endpoint_node_id = "n2".into();
        assert!(
            check_can_sink(&pipe, &sink)
                .unwrap_err()
                .message
                .contains("API Endpoint")
        );
        pipe.endpoint_node_id.clear();
        for (kind, says) in [
            ("materialized", "materializing"),
            ("copy", "copy"),
            ("sink", "already sinks"),
        ] {
            pipe.nodes[1].node_type = kind.into();
            let error = check_can_sink(&pipe, &sink).unwrap_err();
            assert!(error.message.contains(says), "{kind}: {}", error.message);
        }
        // The sink node itself may be set again.
        pipe.nodes[1].node_type = "standard".into();
        pipe.nodes[0].node_type = "sink".into();
        check_can_sink(&pipe, &pipe.nodes[0].clone()).unwrap();
    }

    #[test]
    fn a_runs_spec_carries_the_connection_id_and_the_parameters() {
        let stored: Map<String, Value> = serde_json::from_value(json!({
            "connection": "warehouse", "connection_id": "c_1", "path": "s3://b/p",
            "file_template": "f", "format": "csv", "compression": "gz", "write_strategy": "new",
        }))
        .unwrap();
        let mut params = Map::new();
        params.insert("day".into(), json!("2026-01-01"));
        let spec = job_spec(&node("n1", "sink"), &stored, params);
        assert_eq!(spec["connection_id"], "c_1");
        assert_eq!(spec["connection"], "warehouse");
        assert_eq!(spec["node"], "node_n1");
        assert_eq!(spec["params"]["day"], "2026-01-01");
        assert_eq!(spec["compression"], "gz");
    }
}

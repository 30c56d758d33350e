//! Connectors: the credentials sink pipes write with. `POST|GET /v0/connectors`,
//! `GET|DELETE /v0/connectors/{id}`. An S3 connection (`service=s3`, Tinybird's form fields plus
//! `s3_endpoint` for S3-compatible servers) or a local directory (`service=local`, `root` inside
//! the server's export root). Secrets are written once and shown masked ever after.

use std::collections::HashMap;
use std::path::{Component, Path as FsPath};

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use roost_proto::catalog::v1::{
    Connection, CreateConnectionRequest, DeleteConnectionRequest, GetConnectionRequest,
    ListConnectionsRequest, ListPipesRequest,
};
use serde_json::{Map, Value, json};

use super::{Caller, Need, caller};
use crate::params::{Params, read_request};
use crate::{ApiError, AppState};

const MAX_CONNECTOR_BODY: usize = 64 * 1024;

/// What a secret shows as: never derived from the secret itself.
const MASK: &str = "********";

/// Settings of an S3 connection shown as they are; the secret key is kept apart.
const S3_SETTINGS: &[&str] = &["s3_access_key_id", "s3_region", "s3_endpoint"];
const S3_SECRETS: &[&str] = &["s3_secret_access_key"];

/// Connections hold credentials: admin tokens, or tokens that may create data sources (as
/// Tinybird's connectors need), manage them.
async fn connector_caller(
    state: &AppState,
    request: Request,
) -> Result<(Caller, Params), ApiError> {
    let (headers, mut params, payload) = read_request(request, MAX_CONNECTOR_BODY).await?;
    let caller = caller(state, &headers, &params).await?;
    caller.require(Need::CreateDataSource)?;
    params.extend_with_json_body(&payload.data);
    Ok((caller, params))
}

/// The sink pipes writing through each connection (by connection id), as a connector's `sinks`
/// shows them.
async fn sinks_by_connection(
    state: &AppState,
    caller: &Caller,
) -> Result<HashMap<String, Vec<Value>>, ApiError> {
    let pipes = state
        .services
        .pipes
        .list_pipes(ListPipesRequest {
            header: Some(caller.header.clone()),
        })
        .await?
        .pipes;
    let mut sinks: HashMap<String, Vec<Value>> = HashMap::new();
    for pipe in &pipes {
        for node in pipe.nodes.iter().filter(|n| n.node_type == "sink") {
            let settings: Map<String, Value> =
                serde_json::from_str(&node.settings_json).unwrap_or_default();
            let text = |key: &str| settings.get(key).cloned().unwrap_or(Value::Null);
            let Some(connection) = settings.get("connection_id").and_then(Value::as_str) else {
                continue;
            };
            sinks
                .entry(connection.to_string())
                .or_default()
                .push(json!({
                    "resource_id": pipe.id,
                    "resource_name": pipe.name,
                    "settings": {
                        "bucket_path": text("path"),
                        "file_template": text("file_template"),
                        "format": text("format"),
                        "compression": text("compression"),
                        "write_strategy": text("write_strategy"),
                    },
                }));
        }
    }
    Ok(sinks)
}

/// The connection as Tinybird shows a connector, its secrets masked, with the sink pipes that
/// write through it.
pub(crate) fn connector_json(
    connection: &Connection,
    sinks: &HashMap<String, Vec<Value>>,
) -> Value {
    let mut settings: Map<String, Value> =
        serde_json::from_str(&connection.settings_json).unwrap_or_default();
    if connection.service == "s3" {
        for key in S3_SECRETS {
            settings.insert((*key).into(), json!(MASK));
        }
    }
    json!({
        "id": connection.id,
        "name": connection.name,
        "service": connection.service,
        "settings": settings,
        "created_at": connection.created_at,
        "updated_at": connection.updated_at,
        "linkers": [],
        "sinks": sinks.get(&connection.id).cloned().unwrap_or_default(),
    })
}

/// `s3` (Tinybird's `s3_iamrole` is taken as s3 with keys) or `local`.
fn service_of(params: &Params) -> Result<&'static str, ApiError> {
    match params
        .text("service")
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("s3" | "s3_iamrole") => Ok("s3"),
        Some("local") => Ok("local"),
        Some(other) => Err(ApiError::bad_request(format!(
            "Invalid service '{other}': use s3 or local"
        ))),
        None => Err(ApiError::bad_request("The 'service' parameter is required")),
    }
}

/// A local connection's root relative to the export root: a relative root is taken as it is,
/// an absolute one must lie inside the export root.
fn local_root(root: &str, export_root: &FsPath) -> Result<String, ApiError> {
    let path = FsPath::new(root.trim());
    if !path.is_absolute() {
        return roost_types::sink::relative_path(root).map_err(ApiError::bad_request);
    }
    let outside = || {
        ApiError::bad_request(format!(
            "The root '{root}' is outside the directory local sinks may write to ({})",
            export_root.display()
        ))
    };
    if path.components().any(|c| c == Component::ParentDir) {
        return Err(outside());
    }
    let inside = path.strip_prefix(export_root).map_err(|_| outside())?;
    roost_types::sink::relative_path(&inside.to_string_lossy()).map_err(ApiError::bad_request)
}

/// `POST /v0/connectors`.
pub async fn create(
    State(state): State<AppState>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let (caller, params) = connector_caller(&state, request).await?;
    let name = params
        .text("name")
        .ok_or_else(|| ApiError::bad_request("The 'name' parameter is required"))?;
    let service = service_of(&params)?;
    let (mut settings, mut secrets) = (Map::new(), Map::new());
    match service {
        "s3" => {
            for key in S3_SETTINGS {
                if let Some(value) = params.text(key) {
                    settings.insert((*key).into(), json!(value));
                }
            }
            for key in S3_SECRETS {
                if let Some(value) = params.text(key) {
                    secrets.insert((*key).into(), json!(value));
                }
            }
        }
        _ => {
            let root = local_root(
                params.text("root").unwrap_or_default(),
                &state.config.sink_local_root,
            )?;
            settings.insert("root".into(), json!(root));
        }
    }
    let connection = state
        .services
        .catalog
        .create_connection(CreateConnectionRequest {
            header: Some(caller.header.clone()),
            name: name.to_string(),
            service: service.to_string(),
            settings_json: Value::Object(settings).to_string(),
            secrets_json: Value::Object(secrets).to_string(),
        })
        .await?
        .connection
        .unwrap_or_default();
    Ok(Json(connector_json(&connection, &HashMap::new())))
}

/// `GET /v0/connectors?service=`.
pub async fn list(
    State(state): State<AppState>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let (caller, params) = connector_caller(&state, request).await?;
    let service = match params.text("service") {
        Some(_) => service_of(&params)?.to_string(),
        None => String::new(),
    };
    let connections = state
        .services
        .catalog
        .list_connections(ListConnectionsRequest {
            header: Some(caller.header.clone()),
            service,
        })
        .await?
        .connections;
    let sinks = sinks_by_connection(&state, &caller).await?;
    Ok(Json(json!({
        "connectors": connections
            .iter()
            .map(|c| connector_json(c, &sinks))
            .collect::<Vec<_>>(),
    })))
}

/// `GET /v0/connectors/{id or name}`.
pub async fn get_one(
    State(state): State<AppState>,
    Path(name_or_id): Path<String>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let (caller, _) = connector_caller(&state, request).await?;
    let connection = state
        .services
        .catalog
        .get_connection(GetConnectionRequest {
            header: Some(caller.header.clone()),
            name_or_id,
            with_secrets: false,
        })
        .await?
        .connection
        .unwrap_or_default();
    let sinks = sinks_by_connection(&state, &caller).await?;
    Ok(Json(connector_json(&connection, &sinks)))
}

/// `DELETE /v0/connectors/{id}`: refused (409) while a sink pipe uses the connection.
pub async fn delete(
    State(state): State<AppState>,
    Path(name_or_id): Path<String>,
    request: Request,
) -> Result<StatusCode, ApiError> {
    let (caller, _) = connector_caller(&state, request).await?;
    state
        .services
        .catalog
        .delete_connection(DeleteConnectionRequest {
            header: Some(caller.header.clone()),
            name_or_id,
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_roots_are_kept_relative_to_the_export_root() {
        let export_root = FsPath::new("/data/exports");
        assert_eq!(local_root("team/a", export_root).unwrap(), "team/a");
        assert_eq!(
            local_root("/data/exports/team", export_root).unwrap(),
            "team"
        );
        assert_eq!(local_root("", export_root).unwrap(), "");
        assert!(local_root("/etc", export_root).is_err());
        assert!(local_root("/data/exports/../x", export_root).is_err());
        assert!(local_root("../x", export_root).is_err());
    }

    #[test]
    fn secrets_are_masked_whatever_they_are() {
        let connection = Connection {
            service: "s3".into(),
            settings_json: r#"{"s3_access_key_id": "AK", "s3_region": "eu-west-1"}"#.into(),
            secrets_json: r#"{"s3_secret_access_key": "very-secret"}"#.into(),
            ..Connection::default()
        };
        let shown = connector_json(&connection, &HashMap::new());
        assert_eq!(shown["settings"]["s3_secret_access_key"], MASK);
        assert_eq!(shown["settings"]["s3_access_key_id"], "AK");
        assert!(!shown.to_string().contains("very-secret"));
    }
}

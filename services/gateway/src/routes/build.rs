//! `POST /v1/build`: the Forward CLI's build. The CLI sends the project's datafiles (multipart
//! parts named `data_project://`, the file name being the path in the project); the build makes
//! the workspace hold exactly that project: new data sources and pipes created, changed ones
//! replaced, ones no longer in the project removed.
//!
//! Each step goes through this server's own API ([`InternalApi`]), so a build does precisely
//! what the equivalent `tb push`, `DELETE` and scope checks do.

use axum::Json;
use axum::body::Body;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{HeaderValue, Method};
use serde_json::{Value, json};

use super::internal::InternalApi;
use super::{Need, caller};
use crate::datafile::{self, DataSourceFile, PipeFile};
use crate::params::Params;
use crate::{ApiError, AppState};

/// The part name the CLI gives each project file.
const PROJECT_PART: &str = "data_project://";

/// The datafiles of a build request: (path in the project, text).
async fn project_files(request: Request) -> Result<Vec<(String, String)>, ApiError> {
    let mut multipart = Multipart::from_request(request, &())
        .await
        .map_err(|e| ApiError::bad_request(format!("Send the project as multipart files: {e}")))?;
    let mut files = Vec::new();
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| ApiError::bad_request(format!("Invalid multipart body: {e}")))?
    {
        if field.name() != Some(PROJECT_PART) {
            continue;
        }
        let path = field.file_name().unwrap_or_default().to_string();
        let text = field
            .text()
            .await
            .map_err(|e| ApiError::bad_request(format!("Invalid project file '{path}': {e}")))?;
        files.push((path, text));
    }
    Ok(files)
}

/// The project, parsed; or the errors of every file that did not parse.
struct Project {
    data_sources: Vec<DataSourceFile>,
    pipes: Vec<PipeFile>,
}

fn parse_project(files: &[(String, String)]) -> Result<Project, Vec<Value>> {
    let mut project = Project {
        data_sources: Vec::new(),
        pipes: Vec::new(),
    };
    let mut errors = Vec::new();
    for (path, text) in files {
        let stem = std::path::Path::new(path)
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        let parsed = if path.ends_with(".datasource") {
            datafile::parse_data_source(stem, text).map(|file| project.data_sources.push(file))
        } else if path.ends_with(".pipe") {
            datafile::parse_pipe(stem, text).map(|file| project.pipes.push(file))
        } else if path.ends_with(".connection") {
            errors.push(json!({
                "filename": path,
                "error": "Connections are not supported by this server's build",
            }));
            Ok(())
        } else {
            Ok(())
        };
        if let Err(error) = parsed {
            errors.push(json!({ "filename": path, "error": error.to_string() }));
        }
    }
    match errors.is_empty() {
        true => Ok(project),
        false => Err(errors),
    }
}

fn names(listing: &Value, key: &str) -> Vec<String> {
    listing[key]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|item| item["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn query_string(pairs: &[(&str, &str)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (key, value) in pairs {
        query.append_pair(key, value);
    }
    query.finish()
}

/// Whether the data source `existing` (its API JSON) is what `file` defines.
fn same_data_source(existing: &Value, file: &DataSourceFile) -> bool {
    let Ok(columns) = roost_proto::parse_schema_to_proto(&file.schema) else {
        return false;
    };
    if existing["schema"]["sql_schema"].as_str() != Some(&roost_proto::schema_string(&columns)) {
        return false;
    }
    let engine = &existing["engine"];
    let wanted = |key: &str| file.engine.get(key).map(String::as_str).unwrap_or_default();
    let engine_name = match wanted("engine") {
        "" => "MergeTree",
        name => name,
    };
    engine["engine"].as_str() == Some(engine_name)
        && [
            ("engine_sorting_key", "sorting_key"),
            ("engine_partition_key", "partition_key"),
            ("engine_primary_key", "primary_key"),
            ("engine_ttl", "ttl"),
            ("engine_ver", "ver"),
            ("engine_sign", "sign"),
            ("engine_settings", "settings"),
        ]
        .iter()
        .all(|(key, field)| engine[field].as_str().unwrap_or_default().trim() == wanted(key).trim())
}

/// The pipe as `POST /v0/pipes` takes it.
fn pipe_body(file: &PipeFile) -> Value {
    let nodes: Vec<Value> = file
        .nodes
        .iter()
        .map(|node| {
            let mut fields = json!({
                "name": node.name,
                "sql": node.sql,
                "description": node.description,
            });
            for (key, value) in &node.settings {
                fields[key] = json!(value);
            }
            fields
        })
        .collect();
    json!({ "name": file.name, "description": file.description, "nodes": nodes })
}

/// Whether the pipe `existing` (its API JSON) is what `file` defines.
fn same_pipe(existing: &Value, file: &PipeFile) -> bool {
    let Some(nodes) = existing["nodes"].as_array() else {
        return false;
    };
    existing["description"].as_str().unwrap_or_default() == file.description
        && nodes.len() == file.nodes.len()
        && nodes.iter().zip(&file.nodes).all(|(node, wanted)| {
            let wanted_type = wanted
                .settings
                .get("type")
                .map(String::as_str)
                .unwrap_or("standard");
            node["name"].as_str() == Some(&wanted.name)
                && node["sql"].as_str().map(str::trim) == Some(wanted.sql.trim())
                && node["type"].as_str() == Some(wanted_type)
                && wanted
                    .settings
                    .iter()
                    .all(|(key, value)| key == "type" || node[key].as_str() == Some(value.as_str()))
        })
}

#[derive(Default)]
struct Changes {
    new_data_sources: Vec<String>,
    changed_data_sources: Vec<String>,
    deleted_data_sources: Vec<String>,
    new_pipes: Vec<String>,
    changed_pipes: Vec<String>,
    deleted_pipes: Vec<String>,
}

/// Makes the workspace hold `project`; the first failure stops the build and names its file.
async fn apply(api: &InternalApi, project: &Project) -> Result<Changes, Value> {
    let fail = |kind: &str, name: &str, error: String| json!({ "filename": format!("{name}.{kind}"), "resource": name, "error": error });
    let listed_pipes = api
        .get("/v0/pipes")
        .await
        .map_err(|e| json!({ "error": e }))?;
    let listed_data_sources = api
        .get("/v0/datasources")
        .await
        .map_err(|e| json!({ "error": e }))?;
    let existing_pipes = names(&listed_pipes, "pipes");
    let existing_data_sources = names(&listed_data_sources, "datasources");
    let mut changes = Changes::default();

    // Pipes leaving the project go first: they may read data sources that leave too.
    for name in &existing_pipes {
        if !project.pipes.iter().any(|p| &p.name == name) {
            api.delete(&format!("/v0/pipes/{name}"))
                .await
                .map_err(|e| fail("pipe", name, e))?;
            changes.deleted_pipes.push(name.clone());
        }
    }
    for file in &project.data_sources {
        let existing = match existing_data_sources.contains(&file.name) {
            true => Some(
                api.get(&format!("/v0/datasources/{}", file.name))
                    .await
                    .map_err(|e| fail("datasource", &file.name, e))?,
            ),
            false => None,
        };
        if existing
            .as_ref()
            .is_some_and(|existing| same_data_source(existing, file))
        {
            continue;
        }
        if existing.is_some() {
            api.delete(&format!("/v0/datasources/{}?force=true", file.name))
                .await
                .map_err(|e| fail("datasource", &file.name, e))?;
        }
        let mut pairs = vec![
            ("name", file.name.as_str()),
            ("mode", "create"),
            ("schema", file.schema.as_str()),
            ("description", file.description.as_str()),
        ];
        pairs.extend(file.engine.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        api.json(
            Method::POST,
            &format!("/v0/datasources?{}", query_string(&pairs)),
            Body::empty(),
        )
        .await
        .map_err(|e| fail("datasource", &file.name, e))?;
        match existing {
            Some(_) => changes.changed_data_sources.push(file.name.clone()),
            None => changes.new_data_sources.push(file.name.clone()),
        }
    }

    // A pipe may read another: push in rounds, each retrying what failed for want of a
    // dependency, until a round makes no progress.
    let mut waiting: Vec<&PipeFile> = Vec::new();
    for file in &project.pipes {
        let existing = match existing_pipes.contains(&file.name) {
            true => api.get(&format!("/v0/pipes/{}", file.name)).await.ok(),
            false => None,
        };
        if existing
            .as_ref()
            .is_some_and(|existing| same_pipe(existing, file))
        {
            continue;
        }
        match existing {
            Some(_) => changes.changed_pipes.push(file.name.clone()),
            None => changes.new_pipes.push(file.name.clone()),
        }
        waiting.push(file);
    }
    loop {
        let mut failed = Vec::new();
        let mut last_error = None;
        for file in waiting.iter().copied() {
            let body = Body::from(pipe_body(file).to_string());
            match api.json(Method::POST, "/v0/pipes?force=true", body).await {
                Ok(_) => {}
                Err(error) => {
                    last_error = Some(fail("pipe", &file.name, error));
                    failed.push(file);
                }
            }
        }
        if failed.is_empty() {
            break;
        }
        if failed.len() == waiting.len() {
            return Err(last_error.unwrap_or(Value::Null));
        }
        waiting = failed;
    }

    for name in &existing_data_sources {
        if !project.data_sources.iter().any(|d| &d.name == name) {
            api.delete(&format!("/v0/datasources/{name}?force=true"))
                .await
                .map_err(|e| fail("datasource", name, e))?;
            changes.deleted_data_sources.push(name.clone());
        }
    }
    Ok(changes)
}

/// `POST /v1/build`.
pub async fn build(
    State(state): State<AppState>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let headers = request.headers().clone();
    let params = Params::from_urlencoded(request.uri().query().unwrap_or("").as_bytes());
    let caller = caller(&state, &headers, &params).await?;
    caller.require(Need::CreateDataSource)?;
    caller.require(Need::CreatePipe)?;
    let token = crate::params::token(&headers, &params)
        .ok_or_else(|| ApiError::forbidden("A token is required"))?;
    let files = project_files(request).await?;
    let project = match parse_project(&files) {
        Ok(project) => project,
        Err(errors) => return Ok(Json(json!({ "result": "failed", "errors": errors }))),
    };
    let api = InternalApi {
        state,
        authorization: HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| ApiError::bad_request("Invalid token"))?,
    };
    match apply(&api, &project).await {
        Ok(changes) => Ok(Json(json!({
            "result": "success",
            "build": {
                "new_datasource_names": changes.new_data_sources,
                "changed_datasource_names": changes.changed_data_sources,
                "deleted_datasource_names": changes.deleted_data_sources,
                "new_pipe_names": changes.new_pipes,
                "changed_pipe_names": changes.changed_pipes,
                "deleted_pipe_names": changes.deleted_pipes,
                "feedback": [],
            },
        }))),
        Err(error) => Ok(Json(json!({ "result": "failed", "errors": [error] }))),
    }
}

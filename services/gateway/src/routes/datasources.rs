//! `/v0/datasources`: create (from a schema or from data), append, replace, list, get, rename,
//! delete, truncate, alter. Imports from URLs, replaces and `/v0/analyze` are in `imports`.

use axum::Json;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use roost_fetch::FileFormat;
use roost_proto::catalog::v1::{
    self as catalog, AlterDataSourceRequest, CreateDataSourceRequest, DeleteDataSourceRequest,
    EngineSettings, GetDataSourceRequest, ListDataSourcesRequest, RenameDataSourceRequest,
    TruncateDataSourceRequest,
};
use roost_proto::ingest::v1::{
    AnalyzeDataRequest, AnalyzeDataResponse, DataFormat, IngestDataRequest, IngestDataResponse,
};
use serde_json::{Value, json};

use super::{Need, caller, imports};
use crate::params::{Params, Payload, read_request};
use crate::{ApiError, AppState};

/// The JSON of a data source as Tinybird shows it.
pub fn data_source_json(ds: &catalog::DataSource) -> Value {
    let engine = ds.engine.clone().unwrap_or_default();
    let columns: Vec<Value> = ds
        .columns
        .iter()
        .map(|c| {
            json!({
                "name": c.name,
                "normalized_name": c.name,
                "type": c.r#type,
                "nullable": c.r#type.starts_with("Nullable(") || c.r#type.starts_with("LowCardinality(Nullable("),
                "jsonpath": if c.jsonpath.is_empty() { Value::Null } else { Value::from(c.jsonpath.clone()) },
                "default_value": if c.default_value.is_empty() { Value::Null } else { Value::from(c.default_value.clone()) },
                "codec": if c.codec.is_empty() { Value::Null } else { Value::from(c.codec.clone()) },
            })
        })
        .collect();
    let stats = ds.statistics.unwrap_or_default();
    let engine_name = if engine.engine.is_empty() {
        "MergeTree".to_string()
    } else {
        engine.engine.clone()
    };
    json!({
        "id": ds.id,
        "name": ds.name,
        "description": ds.description,
        "created_at": ds.created_at,
        "updated_at": ds.updated_at,
        "type": if ds.origin_format.is_empty() { "csv" } else { ds.origin_format.as_str() },
        "version": 0,
        "tags": {},
        "headers": {},
        "shared_with": [],
        "used_by": ds.used_by.iter().map(|name| json!({ "name": name })).collect::<Vec<_>>(),
        "replicated": false,
        "cluster": Value::Null,
        "engine": {
            "engine": engine_name,
            "sorting_key": engine.sorting_key,
            "partition_key": engine.partition_key,
            "primary_key": engine.primary_key,
            "ttl": engine.ttl,
            "ver": engine.ver,
            "sign": engine.sign,
            "version": engine.version,
            "settings": engine.settings,
        },
        "columns": columns,
        "schema": {
            "columns": ds.columns.iter().map(|c| json!({"name": c.name, "type": c.r#type})).collect::<Vec<_>>(),
            "sql_schema": roost_proto::schema_string(&ds.columns),
        },
        "statistics": { "bytes": stats.bytes, "row_count": stats.row_count },
        "new_columns_detected": {},
        "quarantine_rows": 0,
        "indexes": [],
    })
}

/// The format of data in a request: `format=`, else the multipart field or file name, else
/// what the data looks like.
pub(crate) fn payload_format(params: &Params, payload: &Payload) -> Result<FileFormat, ApiError> {
    if let Some(name) = params.text("format") {
        return named_format(name);
    }
    Ok(payload
        .field
        .as_deref()
        .and_then(FileFormat::from_name)
        .or_else(|| payload.file_name.as_deref().and_then(FileFormat::from_url))
        .unwrap_or_else(|| FileFormat::sniff(&payload.data)))
}

/// A `format=` value.
pub(crate) fn named_format(name: &str) -> Result<FileFormat, ApiError> {
    FileFormat::from_name(name).ok_or_else(|| {
        ApiError::bad_request(format!(
            "Invalid format '{name}': use csv, ndjson or parquet"
        ))
    })
}

/// The ingest contract's name for a format.
pub(crate) fn data_format(format: FileFormat) -> DataFormat {
    match format {
        FileFormat::Csv => DataFormat::Csv,
        FileFormat::Ndjson => DataFormat::Ndjson,
        FileFormat::Parquet => DataFormat::Parquet,
    }
}

fn engine_settings(params: &Params) -> EngineSettings {
    engine_settings_from(|name| params.text(name))
}

/// Engine settings from Tinybird's `engine*` field names, wherever they are read from (request
/// parameters, a materialized node's settings).
pub(crate) fn engine_settings_from<'a>(field: impl Fn(&str) -> Option<&'a str>) -> EngineSettings {
    let text = |name: &str| field(name).unwrap_or_default().to_string();
    EngineSettings {
        engine: text("engine"),
        sorting_key: text("engine_sorting_key"),
        partition_key: text("engine_partition_key"),
        primary_key: text("engine_primary_key"),
        ttl: text("engine_ttl"),
        ver: text("engine_ver"),
        sign: text("engine_sign"),
        version: text("engine_version"),
        is_deleted: text("engine_is_deleted"),
        settings: text("engine_settings"),
        summing_columns: text("engine_columns"),
    }
}

pub(crate) fn parse_columns(schema: &str) -> Result<Vec<catalog::Column>, ApiError> {
    let columns = roost_proto::parse_schema_to_proto(schema).map_err(ApiError::from)?;
    Ok(columns)
}

pub(crate) fn import_reply(
    data_source: &catalog::DataSource,
    ingested: &IngestDataResponse,
    bytes: usize,
) -> Value {
    let import_id = uuid::Uuid::new_v4().to_string();
    let error = if ingested.quarantined_rows > 0 {
        Value::from(format!(
            "There was an error with file contents: {} rows in quarantine. {}",
            ingested.quarantined_rows,
            ingested.errors.join("; ")
        ))
    } else {
        Value::Bool(false)
    };
    json!({
        "id": import_id,
        "import_id": import_id,
        "job_id": Value::Null,
        "datasource": data_source_json(data_source),
        "quarantine_rows": ingested.quarantined_rows,
        "invalid_lines": 0,
        "error": error,
        "errors": ingested.errors,
        "blocks": [{
            "block_id": import_id,
            "process_return": [{
                "lines": ingested.successful_rows,
                "parser": "roost",
                "quarantine": ingested.quarantined_rows,
                "empty_lines": 0,
                "bytes": bytes,
                "db_stats": [{"summary": {"written_rows": ingested.successful_rows.to_string()}}],
                "invalid_lines": 0,
            }],
            "processing_error": Value::Null,
        }],
        "block_log": [],
    })
}

/// `POST /v0/datasources`: create (from a schema, from data, or from a URL), append or replace
/// (everything, or the rows matching `replace_condition`).
pub async fn create_or_append(
    State(state): State<AppState>,
    request: Request,
) -> Result<Response, ApiError> {
    let (headers, params, payload) = read_request(request, state.config.max_upload_body).await?;
    let caller = caller(&state, &headers, &params).await?;
    let name = params
        .text("name")
        .ok_or_else(|| ApiError::bad_request("The 'name' parameter is required"))?
        .to_string();
    let mode = params.text("mode").unwrap_or("create").to_ascii_lowercase();
    if let Some(url) = params.text("url") {
        let import = imports::UrlImport {
            state: &state,
            caller: &caller,
            params: &params,
            name: &name,
            url,
        };
        return import.start(&mode, &headers).await;
    }
    let has_data = !payload.data.is_empty();
    let format = payload_format(&params, &payload)?;
    match mode.as_str() {
        "create" => {
            caller.require(Need::CreateDataSource)?;
            let columns = match params.text("schema") {
                Some(schema) => parse_columns(schema)?,
                None if has_data => {
                    analyze_columns(&state, &caller, &params, format, payload.data.clone()).await?
                }
                None => {
                    return Err(ApiError::bad_request(
                        "Creating a Data Source needs a 'schema' or data to guess it from",
                    ));
                }
            };
            let created =
                create_data_source(&state, &caller, &name, columns, &params, format).await?;
            if !has_data {
                return Ok(Json(
                    json!({ "datasource": data_source_json(&created), "error": false }),
                )
                .into_response());
            }
            append(&state, &caller, &name, format, &params, payload, false).await
        }
        "append" => {
            caller.require(Need::Append(&name))?;
            if !has_data {
                return Err(ApiError::bad_request(
                    "Appending needs data: send a file (csv, ndjson or parquet) or a url",
                ));
            }
            // Tinybird's append mode creates the data source from the data when it does not exist.
            let create_if_missing = caller.may(Need::CreateDataSource);
            append(
                &state,
                &caller,
                &name,
                format,
                &params,
                payload,
                create_if_missing,
            )
            .await
        }
        "replace" => {
            caller.require(Need::Append(&name))?;
            caller.require(Need::Drop(&name))?;
            // An empty file replaces (empties the data source) only when the caller says so, as
            // Tinybird's `replace_truncate_when_empty` does.
            let empty_file_truncates =
                payload.field.is_some() && params.flag("replace_truncate_when_empty");
            if !has_data && !empty_file_truncates {
                return Err(ApiError::bad_request(
                    "Replacing needs data (or an empty file with replace_truncate_when_empty=true)",
                ));
            }
            imports::replace_with(&state, &caller, &name, format, &params, payload).await
        }
        other => Err(ApiError::bad_request(format!(
            "Invalid mode '{other}': use create, append or replace"
        ))),
    }
}

/// What the ingest service makes of a sample of data, with the request's guessing and dialect
/// options.
pub(crate) async fn analyze_sample(
    state: &AppState,
    caller: &super::Caller,
    params: &Params,
    format: FileFormat,
    data: bytes::Bytes,
) -> Result<AnalyzeDataResponse, ApiError> {
    Ok(state
        .services
        .ingest
        .analyze_data(AnalyzeDataRequest {
            header: Some(caller.header.clone()),
            format: data_format(format) as i32,
            data,
            type_guessing: params.flag_or("type_guessing", true),
            csv_delimiter: params
                .text("dialect_delimiter")
                .unwrap_or_default()
                .to_string(),
            csv_header: params.text("dialect_header").unwrap_or("auto").to_string(),
        })
        .await?)
}

/// The columns the ingest service guesses from a sample of data.
pub(crate) async fn analyze_columns(
    state: &AppState,
    caller: &super::Caller,
    params: &Params,
    format: FileFormat,
    data: bytes::Bytes,
) -> Result<Vec<catalog::Column>, ApiError> {
    Ok(analyze_sample(state, caller, params, format, data)
        .await?
        .columns)
}

/// Creates a data source with the request's engine settings and description.
pub(crate) async fn create_data_source(
    state: &AppState,
    caller: &super::Caller,
    name: &str,
    columns: Vec<catalog::Column>,
    params: &Params,
    format: FileFormat,
) -> Result<catalog::DataSource, ApiError> {
    Ok(state
        .services
        .catalog
        .create_data_source(CreateDataSourceRequest {
            header: Some(caller.header.clone()),
            name: name.to_string(),
            columns,
            engine: Some(engine_settings(params)),
            description: params.text("description").unwrap_or_default().to_string(),
            origin_format: format.name().to_string(),
        })
        .await?
        .data_source
        .unwrap_or_default())
}

/// The ingest request for data sent with a request; `staging_id` sets a replace's rows aside.
pub(crate) fn ingest_request(
    caller: &super::Caller,
    name: &str,
    format: FileFormat,
    params: &Params,
    data: bytes::Bytes,
    create_if_missing: bool,
    staging_id: &str,
) -> IngestDataRequest {
    IngestDataRequest {
        header: Some(caller.header.clone()),
        data_source: name.to_string(),
        format: data_format(format) as i32,
        data,
        create_if_missing,
        type_guessing: params.flag_or("type_guessing", true),
        csv_delimiter: params
            .text("dialect_delimiter")
            .unwrap_or_default()
            .to_string(),
        csv_header: params.text("dialect_header").unwrap_or("auto").to_string(),
        wait: true,
        staging_id: staging_id.to_string(),
    }
}

async fn append(
    state: &AppState,
    caller: &super::Caller,
    name: &str,
    format: FileFormat,
    params: &Params,
    payload: Payload,
    create_if_missing: bool,
) -> Result<Response, ApiError> {
    let bytes = payload.data.len();
    let request = ingest_request(
        caller,
        name,
        format,
        params,
        payload.data,
        create_if_missing,
        "",
    );
    let ingested = state.services.ingest.ingest_data(request).await?;
    let data_source = ingested.data_source.clone().unwrap_or_default();
    Ok(Json(import_reply(&data_source, &ingested, bytes)).into_response())
}

/// `GET /v0/datasources`.
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let params = Params::from_query(query);
    let caller = caller(&state, &headers, &params).await?;
    let listed = state
        .services
        .catalog
        .list_data_sources(ListDataSourcesRequest {
            header: Some(caller.header.clone()),
            with_statistics: true,
        })
        .await?;
    let visible: Vec<Value> = listed
        .data_sources
        .iter()
        .filter(|ds| {
            caller.may(Need::Read(&ds.name))
                || caller.may(Need::Append(&ds.name))
                || caller.may(Need::Drop(&ds.name))
        })
        .map(data_source_json)
        .collect();
    Ok(Json(json!({ "datasources": visible })))
}

pub(crate) async fn fetch(
    state: &AppState,
    caller: &super::Caller,
    name: &str,
) -> Result<catalog::DataSource, ApiError> {
    Ok(state
        .services
        .catalog
        .get_data_source(GetDataSourceRequest {
            header: Some(caller.header.clone()),
            name_or_id: name.to_string(),
            with_statistics: true,
        })
        .await?
        .data_source
        .unwrap_or_default())
}

/// `GET /v0/datasources/{name}`.
pub async fn get_one(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let params = Params::from_query(query);
    let caller = caller(&state, &headers, &params).await?;
    let data_source = fetch(&state, &caller, &name).await?;
    if !(caller.may(Need::Read(&data_source.name)) || caller.may(Need::Append(&data_source.name))) {
        return Err(ApiError::forbidden(format!(
            "Not enough permissions to read Data Source '{}'",
            data_source.name
        )));
    }
    Ok(Json(data_source_json(&data_source)))
}

/// `PUT /v0/datasources/{name}?name=new`: rename.
pub async fn update(
    State(state): State<AppState>,
    Path(name): Path<String>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let (headers, params, _) = read_request(request, 1024 * 1024).await?;
    let caller = caller(&state, &headers, &params).await?;
    let current = fetch(&state, &caller, &name).await?;
    caller.require(Need::Drop(&current.name))?;
    let mut data_source = current.clone();
    if let Some(new_name) = params
        .text("name")
        .filter(|new_name| *new_name != current.name)
    {
        data_source = state
            .services
            .catalog
            .rename_data_source(RenameDataSourceRequest {
                header: Some(caller.header.clone()),
                name_or_id: current.id.clone(),
                new_name: new_name.to_string(),
            })
            .await?
            .data_source
            .unwrap_or_default();
    }
    if let Some(description) = params.get("description") {
        data_source = state
            .services
            .catalog
            .alter_data_source(AlterDataSourceRequest {
                header: Some(caller.header.clone()),
                name_or_id: current.id.clone(),
                description: Some(description.to_string()),
                ..Default::default()
            })
            .await?
            .data_source
            .unwrap_or_default();
    }
    Ok(Json(data_source_json(&data_source)))
}

/// `DELETE /v0/datasources/{name}`.
pub async fn delete(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::from_query(query);
    let caller = caller(&state, &headers, &params).await?;
    let current = fetch(&state, &caller, &name).await?;
    caller.require(Need::Drop(&current.name))?;
    let dry_run = params.flag("dry_run");
    let deleted = state
        .services
        .catalog
        .delete_data_source(DeleteDataSourceRequest {
            header: Some(caller.header.clone()),
            name_or_id: current.id,
            dry_run,
            force: params.flag("force"),
        })
        .await?;
    if dry_run {
        return Ok(Json(json!({ "dependent_pipes": deleted.dependent_pipes, "dependencies": deleted.dependent_pipes })).into_response());
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /v0/datasources/{name}/truncate`.
pub async fn truncate(
    State(state): State<AppState>,
    Path(name): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    let (headers, params, _) = read_request(request, 1024 * 1024).await?;
    let caller = caller(&state, &headers, &params).await?;
    let current = fetch(&state, &caller, &name).await?;
    caller.require(Need::Drop(&current.name))?;
    state
        .services
        .catalog
        .truncate_data_source(TruncateDataSourceRequest {
            header: Some(caller.header.clone()),
            name_or_id: current.id,
        })
        .await?;
    Ok(StatusCode::RESET_CONTENT.into_response())
}

/// `POST /v0/datasources/{name}/alter`.
pub async fn alter(
    State(state): State<AppState>,
    Path(name): Path<String>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let (headers, params, _) = read_request(request, 1024 * 1024).await?;
    let caller = caller(&state, &headers, &params).await?;
    let current = fetch(&state, &caller, &name).await?;
    caller.require(Need::Drop(&current.name))?;
    let add_columns = match params.text("schema") {
        Some(schema) => {
            let wanted = parse_columns(schema)?;
            for existing in &current.columns {
                match wanted.iter().find(|c| c.name == existing.name) {
                    Some(column) if column.r#type != existing.r#type => {
                        return Err(ApiError::bad_request(format!(
                            "Changing the type of column '{}' is not supported; only adding columns at the end",
                            existing.name
                        )));
                    }
                    Some(_) => {}
                    None => {
                        return Err(ApiError::bad_request(format!(
                            "Dropping column '{}' is not supported",
                            existing.name
                        )));
                    }
                }
            }
            wanted
                .into_iter()
                .filter(|c| !current.columns.iter().any(|e| e.name == c.name))
                .collect()
        }
        None => Vec::new(),
    };
    let altered = state
        .services
        .catalog
        .alter_data_source(AlterDataSourceRequest {
            header: Some(caller.header.clone()),
            name_or_id: current.id,
            add_columns,
            description: params.get("description").map(str::to_owned),
            ttl: params.get("ttl").map(str::to_owned),
            dry_run: params.flag("dry"),
        })
        .await?;
    let data_source = altered.data_source.unwrap_or_default();
    Ok(Json(
        json!({ "operations": altered.operations, "datasource": data_source_json(&data_source) }),
    ))
}

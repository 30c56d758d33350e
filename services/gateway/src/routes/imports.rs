//! Data that comes from elsewhere or replaces what is there: imports from a URL (an `import`
//! job), replaces with data sent in the request (answered synchronously, as Tinybird does for
//! files: the rows are staged, then swapped in), and `POST /v0/analyze`.
//!
//! Every URL is checked before anything is fetched: only http(s), and no host that is or
//! resolves to a private, loopback, link-local or otherwise reserved address unless the
//! operator allowed it (`ROOST_IMPORT_ALLOW_PRIVATE`); the job checks again on every redirect.

use std::time::Instant;

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use roost_fetch::chunks::complete_rows;
use roost_fetch::{FetchError, FileFormat, RowFormat};
use roost_proto::catalog::v1 as catalog;
use roost_proto::ingest::v1::FinishReplaceRequest;
use roost_proto::jobs::v1::SubmitJobRequest;
use serde_json::{Value, json};

use super::datasources::{
    analyze_columns, analyze_sample, create_data_source, data_source_json, fetch, import_reply,
    ingest_request, named_format, parse_columns, payload_format,
};
use super::internal::InternalApi;
use super::jobs::{check_condition, started_job_json};
use super::{Caller, Need, caller};
use crate::params::{Params, Payload, read_request};
use crate::{ApiError, AppState};

/// How much of a remote CSV or NDJSON file an analysis reads: the rows it samples come from the
/// start of the file, and a few MB hold far more of them than it looks at.
const SAMPLE_BYTES: usize = 4 << 20;

/// A fetch failure as an API error: a file over the limit is 413; a refused, unreachable or
/// failing URL is the caller's to fix, so 400.
fn fetch_error(error: FetchError) -> ApiError {
    match error {
        FetchError::TooLarge { .. } => ApiError::too_large(error.to_string()),
        other => ApiError::bad_request(other.to_string()),
    }
}

/// The first rows of a remote file (a Parquet file whole, since its schema is at its end) and
/// its format: `format`, else the URL's extension, else what the data looks like.
async fn remote_sample(
    state: &AppState,
    url: &str,
    format: Option<FileFormat>,
) -> Result<(Bytes, FileFormat), ApiError> {
    let fetcher = &state.fetcher;
    let download = fetcher.open(url).await.map_err(fetch_error)?;
    let named = format.or_else(|| FileFormat::from_url(download.url.as_str()));
    let mut body = download.into_body(fetcher.config().max_bytes);
    let (mut data, mut ended) = body
        .read_at_least(SAMPLE_BYTES)
        .await
        .map_err(fetch_error)?;
    let format = named.unwrap_or_else(|| FileFormat::sniff(&data));
    match format {
        FileFormat::Parquet => {
            let limit = fetcher.config().max_parquet_bytes;
            if !ended {
                let wanted = (limit as usize)
                    .saturating_sub(data.len())
                    .saturating_add(1);
                let (rest, rest_ended) = body.read_at_least(wanted).await.map_err(fetch_error)?;
                data = [data, rest].concat().into();
                ended = rest_ended;
            }
            if !ended || data.len() as u64 > limit {
                return Err(ApiError::too_large(format!(
                    "The Parquet file is larger than the limit of {limit} bytes"
                )));
            }
        }
        FileFormat::Csv | FileFormat::Ndjson if !ended => {
            let rows = match format {
                FileFormat::Csv => RowFormat::Csv(None),
                _ => RowFormat::Ndjson,
            };
            data.truncate(complete_rows(rows, &data));
            if data.is_empty() {
                return Err(ApiError::bad_request(format!(
                    "The first {SAMPLE_BYTES} bytes of the file hold no complete row"
                )));
            }
        }
        _ => {}
    }
    Ok((data, format))
}

/// `POST /v0/datasources?mode=...&url=...`: starts an import job.
pub(crate) struct UrlImport<'a> {
    pub state: &'a AppState,
    pub caller: &'a Caller,
    pub params: &'a Params,
    pub name: &'a str,
    pub url: &'a str,
}

impl UrlImport<'_> {
    /// Checks the request and the URL, makes the data source when creating, and answers with
    /// the waiting job.
    pub async fn start(&self, mode: &str, headers: &HeaderMap) -> Result<Response, ApiError> {
        let (state, caller, name) = (self.state, self.caller, self.name);
        let url = state.fetcher.check(self.url).await.map_err(fetch_error)?;
        let format = self.params.text("format").map(named_format).transpose()?;
        let condition = self.params.text("replace_condition").unwrap_or_default();
        if !condition.is_empty() && mode != "replace" {
            return Err(ApiError::bad_request(
                "replace_condition applies to mode=replace only",
            ));
        }
        let data_source = match mode {
            "create" => {
                caller.require(Need::CreateDataSource)?;
                self.create(format).await?
            }
            "append" => {
                caller.require(Need::Append(name))?;
                match fetch(state, caller, name).await {
                    Ok(found) => found,
                    // As with files, appending to a missing data source creates it.
                    Err(error)
                        if error.status == StatusCode::NOT_FOUND
                            && caller.may(Need::CreateDataSource) =>
                    {
                        self.create(format).await?
                    }
                    Err(error) => return Err(error),
                }
            }
            "replace" => {
                caller.require(Need::Append(name))?;
                caller.require(Need::Drop(name))?;
                let found = fetch(state, caller, name).await?;
                if !condition.is_empty() {
                    check_condition(state, caller, &found, condition).await?;
                }
                found
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "Invalid mode '{other}': use create, append or replace"
                )));
            }
        };
        let mut spec = json!({ "url": url.as_str(), "mode": mode });
        let options = [
            ("format", format.map(FileFormat::name)),
            ("dialect_delimiter", self.params.text("dialect_delimiter")),
            ("dialect_header", self.params.text("dialect_header")),
            (
                "replace_condition",
                Some(condition).filter(|c| !c.is_empty()),
            ),
        ];
        for (key, value) in options {
            if let Some(value) = value {
                spec[key] = json!(value);
            }
        }
        let job = state
            .services
            .jobs
            .submit_job(SubmitJobRequest {
                header: Some(caller.header.clone()),
                kind: "import".into(),
                datasource_id: data_source.id.clone(),
                datasource_name: data_source.name.clone(),
                spec_json: spec.to_string(),
                ..SubmitJobRequest::default()
            })
            .await?
            .job
            .unwrap_or_default();
        let mut answer = started_job_json(&job, headers);
        answer["import_id"] = json!(job.id);
        answer["job"]["import_id"] = json!(job.id);
        answer["datasource"] = data_source_json(&data_source);
        Ok(Json(answer).into_response())
    }

    /// Creates the data source: from the schema given, else from an analysis of the file's
    /// first rows.
    async fn create(&self, format: Option<FileFormat>) -> Result<catalog::DataSource, ApiError> {
        let (columns, format) = match self.params.text("schema") {
            Some(schema) => (
                parse_columns(schema)?,
                format
                    .or_else(|| FileFormat::from_url(self.url))
                    .unwrap_or(FileFormat::Csv),
            ),
            None => {
                let (sample, format) = remote_sample(self.state, self.url, format).await?;
                let columns =
                    analyze_columns(self.state, self.caller, self.params, format, sample).await?;
                (columns, format)
            }
        };
        create_data_source(
            self.state,
            self.caller,
            self.name,
            columns,
            self.params,
            format,
        )
        .await
    }
}

/// `POST /v0/datasources?mode=replace` with data: the rows are ingested aside, then swapped in
/// (only those matching `replace_condition` when given, keeping the other existing rows), so
/// readers see the old rows until the new ones are all in. A failure leaves the data source
/// as it was.
pub(crate) async fn replace_with(
    state: &AppState,
    caller: &Caller,
    name: &str,
    format: FileFormat,
    params: &Params,
    payload: Payload,
) -> Result<Response, ApiError> {
    let data_source = fetch(state, caller, name).await?;
    let condition = params.text("replace_condition").unwrap_or_default();
    if !condition.is_empty() {
        check_condition(state, caller, &data_source, condition).await?;
    }
    let staging_id = uuid::Uuid::new_v4().simple().to_string();
    let finish = |discard: bool| {
        state.services.ingest.finish_replace(FinishReplaceRequest {
            header: Some(caller.header.clone()),
            data_source: data_source.id.clone(),
            staging_id: staging_id.clone(),
            replace_condition: condition.to_string(),
            discard,
        })
    };
    let bytes = payload.data.len();
    let staged = state
        .services
        .ingest
        .ingest_data(ingest_request(
            caller,
            &data_source.id,
            format,
            params,
            payload.data,
            false,
            &staging_id,
        ))
        .await;
    let replaced = match staged {
        Ok(ingested) => finish(false).await.map(|_| ingested),
        Err(error) => Err(error),
    };
    let ingested = match replaced {
        Ok(ingested) => ingested,
        Err(error) => {
            if let Err(cleanup) = finish(true).await {
                tracing::warn!(error = %cleanup.message, "cannot drop a failed replace's staged rows");
            }
            return Err(error.into());
        }
    };
    let data_source = fetch(state, caller, &data_source.id).await?;
    let mut answer = import_reply(&data_source, &ingested, bytes);
    if !condition.is_empty() {
        answer["replace_condition"] = json!(condition);
    }
    Ok(Json(answer).into_response())
}

/// `POST /v0/analyze`: the schema Tinybird would give a data source made from a file sent raw,
/// as a multipart file (`file`, `csv`, `ndjson`, `parquet`), or at `url=` (of which only the
/// first rows are read, or the whole of a Parquet file).
pub async fn analyze(
    State(state): State<AppState>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let started = Instant::now();
    let (headers, params, payload) = read_request(request, state.config.max_upload_body).await?;
    let caller = caller(&state, &headers, &params).await?;
    caller.require(Need::CreateDataSource)?;
    let format = params.text("format").map(named_format).transpose()?;
    let (data, format) = match params.text("url") {
        Some(url) => remote_sample(&state, url, format).await?,
        None if payload.data.is_empty() => {
            return Err(ApiError::bad_request(
                "Send a file to analyze (raw body or multipart 'file'), or a url",
            ));
        }
        None => {
            let format = payload_format(&params, &payload)?;
            (payload.data, format)
        }
    };
    let bytes_read = data.len();
    let analysis = analyze_sample(&state, &caller, &params, format, data).await?;
    let columns: Vec<Value> = analysis
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            json!({
                "path": (!c.jsonpath.is_empty()).then_some(&c.jsonpath),
                "recommended_type": c.r#type,
                "present_pct": analysis.present_pct.get(i).copied().unwrap_or(1.0),
                "name": c.name,
            })
        })
        .collect();
    let meta: Vec<Value> = analysis
        .columns
        .iter()
        .map(|c| json!({ "name": c.name, "type": c.r#type }))
        .collect();
    let preview: Vec<Value> = analysis
        .preview
        .iter()
        .filter_map(|row| serde_json::from_str(row).ok())
        .collect();
    let mut answer = json!({
        "analysis": { "columns": columns, "schema": analysis.schema },
        "preview": {
            "meta": meta,
            "rows": preview.len(),
            "data": preview,
            "statistics": {
                "elapsed": started.elapsed().as_secs_f64(),
                "rows_read": analysis.sampled_rows,
                "bytes_read": bytes_read,
            },
        },
    });
    if let Some(dialect) = analysis.dialect {
        answer["dialect"] = json!({
            "delimiter": dialect.delimiter,
            "has_header": dialect.has_header,
            "newline": dialect.newline,
            "escapechar": (!dialect.escapechar.is_empty()).then_some(dialect.escapechar),
        });
    }
    Ok(Json(answer))
}

/// `POST /v1/datasources/{name}/{append|replace}`: Forward's import. The file is the body (its
/// format from `format=` or the content type), or `url=` names it; either way the answer is a job,
/// as Forward's clients poll for one. A file sent with the request is imported before the answer
/// (through `POST /v0/datasources`, so it is checked and ingested exactly as that route does), so
/// its job is already done; a URL import is the `import` job it starts.
pub async fn import_v1(
    State(state): State<AppState>,
    Path((name, mode)): Path<(String, String)>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    if mode != "append" && mode != "replace" {
        return Err(ApiError::not_found(format!(
            "Not found: /v1/datasources/{name}/{mode}"
        )));
    }
    let mut headers = request.headers().clone();
    let query = request.uri().query().unwrap_or("").to_string();
    let params = Params::from_urlencoded(query.as_bytes());
    let caller = caller(&state, &headers, &params).await?;
    let authorization = headers
        .remove(header::AUTHORIZATION)
        .or_else(|| {
            params
                .text("token")
                .and_then(|t| HeaderValue::from_str(&format!("Bearer {t}")).ok())
        })
        .ok_or_else(|| ApiError::forbidden("A token is required"))?;
    // The serializer is not Send: build the query before any await.
    let uri = {
        let mut v0_query = form_urlencoded::Serializer::new(String::new());
        v0_query
            .append_pair("name", &name)
            .append_pair("mode", &mode);
        if params.text("format").is_none()
            && let Some(format) = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .and_then(format_of_content_type)
        {
            v0_query.append_pair("format", format);
        }
        format!("/v0/datasources?{}&{query}", v0_query.finish())
    };
    let api = InternalApi {
        state: state.clone(),
        authorization,
    };
    let answer = api
        .call(Method::POST, &uri, headers.clone(), request.into_body())
        .await
        .map_err(ApiError::bad_request)?;
    if params.text("url").is_some() {
        return Ok(Json(answer));
    }
    let rows = answer["blocks"][0]["process_return"][0]["lines"].clone();
    let bytes = answer["blocks"][0]["process_return"][0]["bytes"].clone();
    let data_source = answer["datasource"].clone();
    let job = state
        .services
        .jobs
        .submit_job(SubmitJobRequest {
            header: Some(caller.header.clone()),
            kind: "import".into(),
            datasource_id: data_source["id"].as_str().unwrap_or_default().into(),
            datasource_name: name.clone(),
            spec_json: json!({ "mode": mode, "source": "request body" }).to_string(),
            finished_result_json: json!({
                "statistics": { "row_count": rows, "bytes": bytes },
                "quarantine_rows": answer["quarantine_rows"],
                "errors": answer["errors"],
            })
            .to_string(),
            ..SubmitJobRequest::default()
        })
        .await?
        .job
        .unwrap_or_default();
    let mut reply = started_job_json(&job, &headers);
    reply["import_id"] = json!(job.id);
    reply["datasource"] = data_source;
    Ok(Json(reply))
}

/// The import format a content type names, as Forward's clients label their uploads.
fn format_of_content_type(content_type: &str) -> Option<&'static str> {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    match essence {
        "text/csv" => Some("csv"),
        "application/x-ndjson" | "application/ndjson" | "application/json" => Some("ndjson"),
        "application/vnd.apache.parquet" => Some("parquet"),
        _ => None,
    }
}

//! `/v0/jobs` (list, one, cancel) and the routes that start jobs on data sources:
//! `POST /v0/datasources/{name}/delete`.

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::HeaderMap;
use roost_proto::catalog::v1::{DataSource, GetDataSourceRequest};
use roost_proto::jobs::v1::{
    CancelJobRequest, GetJobRequest, Job, ListJobsRequest, SubmitJobRequest,
};
use roost_proto::query::v1::{ExecuteSqlRequest, ResolveConditionRequest};
use serde_json::{Map, Value, json};

use super::{Caller, Need, caller};
use crate::params::read_request;
use crate::{ApiError, AppState};

/// Where a job can be followed: `<scheme>://<host>/v0/jobs/<id>`, from the request's own host.
pub(crate) fn job_url(headers: &HeaderMap, id: &str) -> String {
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
        .filter(|s| *s == "https")
        .unwrap_or("http");
    format!("{scheme}://{host}/v0/jobs/{id}")
}

/// A job as Tinybird shows it: its common fields, then what its kind adds.
pub(crate) fn job_json(job: &Job, headers: &HeaderMap) -> Value {
    let mut fields = match serde_json::from_str::<Value>(&job.details_json) {
        Ok(Value::Object(details)) => details,
        _ => Map::new(),
    };
    // Internal bookkeeping of the spec that callers need not see.
    for internal in ["datasource_id", "datasource_name"] {
        fields.remove(internal);
    }
    let common = json!({
        "id": job.id,
        "job_id": job.id,
        "kind": job.kind,
        "status": job.status,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "started_at": (!job.started_at.is_empty()).then_some(&job.started_at),
        "is_cancellable": job.is_cancellable,
        "progress_percentage": job.progress_percentage,
        "job_url": job_url(headers, &job.id),
        "datasource": (!job.datasource_id.is_empty() || !job.datasource_name.is_empty())
            .then(|| json!({ "id": job.datasource_id, "name": job.datasource_name })),
        "pipe_id": (!job.pipe_id.is_empty()).then_some(&job.pipe_id),
        "pipe_name": (!job.pipe_name.is_empty()).then_some(&job.pipe_name),
        "error": (!job.error.is_empty()).then_some(&job.error),
        "block_log": [],
    });
    if let Value::Object(common) = common {
        for (key, value) in common {
            if !value.is_null() || !fields.contains_key(&key) {
                fields.insert(key, value);
            }
        }
    }
    Value::Object(fields)
}

/// Whether the caller may see and cancel a job: admins see every job; other tokens the jobs of
/// the data sources and pipes they may change.
fn may_see(caller: &Caller, job: &Job) -> bool {
    caller.reads_all()
        || (!job.datasource_name.is_empty()
            && (caller.may(Need::Drop(&job.datasource_name))
                || caller.may(Need::Append(&job.datasource_name))))
        || (!job.pipe_name.is_empty() && caller.may(Need::DropPipe(&job.pipe_name)))
}

/// `GET /v0/jobs?status=&kind=`: the last 48 hours, at most 100 jobs, newest first.
pub async fn list(
    State(state): State<AppState>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let (headers, params, _) = read_request(request, 64 * 1024).await?;
    let caller = caller(&state, &headers, &params).await?;
    let jobs = state
        .services
        .jobs
        .list_jobs(ListJobsRequest {
            header: Some(caller.header.clone()),
            status: params.text("status").unwrap_or_default().to_string(),
            kind: params.text("kind").unwrap_or_default().to_string(),
            pipe_id: String::new(),
        })
        .await?
        .jobs;
    let visible: Vec<Value> = jobs
        .iter()
        .filter(|job| may_see(&caller, job))
        .map(|job| job_json(job, &headers))
        .collect();
    Ok(Json(json!({ "jobs": visible })))
}

async fn visible_job(state: &AppState, caller: &Caller, id: &str) -> Result<Job, ApiError> {
    let job = state
        .services
        .jobs
        .get_job(GetJobRequest {
            header: Some(caller.header.clone()),
            job_id: id.to_string(),
        })
        .await?
        .job
        .unwrap_or_default();
    if !may_see(caller, &job) {
        return Err(ApiError::not_found(format!("Job '{id}' not found")));
    }
    Ok(job)
}

/// `GET /v0/jobs/{id}`.
pub async fn get_one(
    State(state): State<AppState>,
    Path(id): Path<String>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let (headers, params, _) = read_request(request, 64 * 1024).await?;
    let caller = caller(&state, &headers, &params).await?;
    let job = visible_job(&state, &caller, &id).await?;
    Ok(Json(job_json(&job, &headers)))
}

/// `POST /v0/jobs/{id}/cancel`: a waiting job is cancelled at once; a working one stops at its
/// next step and shows `cancelling` until then.
pub async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let (headers, params, _) = read_request(request, 64 * 1024).await?;
    let caller = caller(&state, &headers, &params).await?;
    visible_job(&state, &caller, &id).await?;
    let job = state
        .services
        .jobs
        .cancel_job(CancelJobRequest {
            header: Some(caller.header.clone()),
            job_id: id,
        })
        .await?
        .job
        .unwrap_or_default();
    Ok(Json(job_json(&job, &headers)))
}

/// The answer of a route that started a job, as Tinybird gives it.
pub(crate) fn started_job_json(job: &Job, headers: &HeaderMap) -> Value {
    json!({
        "id": job.id,
        "job_id": job.id,
        "job_url": job_url(headers, &job.id),
        "status": job.status,
        "job": job_json(job, headers),
    })
}

/// `POST /v0/datasources/{name}/delete` with `delete_condition` (SQL over the data source's
/// columns): a `delete_data` job; with `dry_run=true`, only how many rows match.
pub async fn delete_rows(
    State(state): State<AppState>,
    Path(name): Path<String>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let (headers, params, _) = read_request(request, 1024 * 1024).await?;
    let caller = caller(&state, &headers, &params).await?;
    let data_source = state
        .services
        .catalog
        .get_data_source(GetDataSourceRequest {
            header: Some(caller.header.clone()),
            name_or_id: name.clone(),
            with_statistics: false,
        })
        .await?
        .data_source
        .unwrap_or_default();
    caller.require(Need::Drop(&data_source.name))?;
    let condition = params
        .text("delete_condition")
        .filter(|c| !c.trim().is_empty())
        .ok_or_else(|| ApiError::bad_request("The 'delete_condition' parameter is required"))?;
    let rows = check_condition(&state, &caller, &data_source, condition).await?;
    if params.flag("dry_run") {
        return Ok(Json(json!({ "rows_to_be_deleted": rows })));
    }
    let job = state
        .services
        .jobs
        .submit_job(SubmitJobRequest {
            header: Some(caller.header.clone()),
            kind: "delete_data".into(),
            datasource_id: data_source.id.clone(),
            datasource_name: data_source.name.clone(),
            spec_json: json!({ "delete_condition": condition }).to_string(),
            ..SubmitJobRequest::default()
        })
        .await?
        .job
        .unwrap_or_default();
    let mut answer = started_job_json(&job, &headers);
    answer["delete_id"] = json!(job.id);
    Ok(Json(answer))
}

/// Checks a condition over `data_source` before any job or data depends on it, and counts the
/// rows it matches. It must be valid SQL over the workspace (the query service's checks); counting
/// runs it in the engine, so unknown columns and bad types are refused here rather than by a
/// failed job.
pub(crate) async fn check_condition(
    state: &AppState,
    caller: &Caller,
    data_source: &DataSource,
    condition: &str,
) -> Result<u64, ApiError> {
    state
        .services
        .endpoints
        .resolve_condition(ResolveConditionRequest {
            header: Some(caller.header.clone()),
            datasource: data_source.id.clone(),
            condition: condition.to_string(),
        })
        .await?;
    count_matching(state, caller, &data_source.name, condition).await
}

async fn count_matching(
    state: &AppState,
    caller: &Caller,
    data_source: &str,
    condition: &str,
) -> Result<u64, ApiError> {
    use futures::TryStreamExt;
    let answer = state
        .services
        .query
        .execute_sql(ExecuteSqlRequest {
            header: Some(caller.header.clone()),
            sql: format!(
                "SELECT count() AS rows FROM {} WHERE {condition} FORMAT JSON",
                roost_types::quote_ident(data_source)
            ),
            read_all: true,
            ..ExecuteSqlRequest::default()
        })
        .await?;
    let body: Vec<bytes::Bytes> = answer.body.try_collect().await.map_err(ApiError::from)?;
    let body = body.concat();
    let parsed: Value = serde_json::from_slice(&body)
        .map_err(|_| ApiError::bad_request("The condition could not be counted"))?;
    Ok(parsed["data"][0]["rows"].as_u64().unwrap_or(0))
}

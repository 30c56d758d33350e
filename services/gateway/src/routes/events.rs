//! `POST /v0/events?name=ds`: the Events API. NDJSON (optionally gzip), at most 10 MB per request
//! after decompression; the data source is created from the events when it does not exist.
//!
//! Each data source takes at most `events_requests_per_second` requests and
//! `events_bytes_per_second` bytes per second (Tinybird: 100 and 20 MB); past either the answer is
//! 429. Every answer once the token may append carries the request-rate headers.

use axum::Json;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use roost_proto::ingest::v1::{DataFormat, IngestDataRequest};
use serde_json::json;

use super::{Need, caller};
use crate::params::read_data_request;
use crate::{ApiError, AppState, rate_limit};

pub async fn append(State(state): State<AppState>, request: Request) -> Result<Response, ApiError> {
    let limit = state.config.max_events_body;
    let (headers, params, data) = read_data_request(request, limit).await.map_err(|error| {
        if error.status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::too_large(format!(
                "Request body too large: the Events API accepts at most {limit} bytes per request"
            ))
        } else {
            error
        }
    })?;
    let caller = caller(&state, &headers, &params).await?;
    let name = params
        .text("name")
        .ok_or_else(|| ApiError::bad_request("The 'name' parameter is required"))?
        .to_string();
    caller.require(Need::Append(&name))?;
    check_capacity(&state, &caller.header.workspace_id, &name, data.len())?;
    let format = match params
        .text("format")
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("ndjson" | "json") => DataFormat::Ndjson,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "The Events API takes NDJSON, not '{other}'"
            )));
        }
    };
    let wait = params.flag("wait");
    let ingested = state
        .services
        .ingest
        .ingest_data(IngestDataRequest {
            header: Some(caller.header.clone()),
            data_source: name,
            format: format as i32,
            data,
            create_if_missing: caller.may(Need::CreateDataSource),
            type_guessing: true,
            csv_delimiter: String::new(),
            csv_header: String::new(),
            wait,
            staging_id: String::new(),
        })
        .await?;
    // Rows are in the engine once ingest answers here, so `wait` changes only the status code,
    // as Tinybird answers 200 to a waited request and 202 to an accepted one.
    let status = if wait {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, Json(json!({ "successful_rows": ingested.successful_rows, "quarantined_rows": ingested.quarantined_rows }))).into_response())
}

/// Spends one request and `bytes` of the data source's capacity; 429 past either limit. The
/// headers describe the request-rate window, or the byte window when that is the one exceeded.
fn check_capacity(
    state: &AppState,
    workspace_id: &str,
    data_source: &str,
    bytes: usize,
) -> Result<(), ApiError> {
    let key = format!("{workspace_id}/{data_source}");
    let limiters = &state.limiters;
    let requests = limiters
        .events_requests
        .check(&key, state.config.events_requests_per_second, 1);
    rate_limit::record(requests);
    if !requests.allowed {
        return Err(ApiError::too_many_requests(format!(
            "Too many requests: the Events API takes at most {} requests per second for the Data Source '{data_source}'",
            requests.limit
        )));
    }
    let throughput =
        limiters
            .events_bytes
            .check(&key, state.config.events_bytes_per_second, bytes as u64);
    if !throughput.allowed {
        rate_limit::record(rate_limit::Decision {
            allowed: false,
            remaining: 0,
            reset_secs: throughput.reset_secs,
            ..requests
        });
        return Err(ApiError::too_many_requests(format!(
            "Too many bytes: the Events API takes at most {} bytes per second for the Data Source '{data_source}'",
            throughput.limit
        )));
    }
    Ok(())
}

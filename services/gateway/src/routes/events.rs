//! `POST /v0/events?name=ds`: the Events API. NDJSON (optionally gzip), at most 10 MB per request
//! after decompression; the data source is created from the events when it does not exist.
//!
//! Each data source takes at most `events_requests_per_second` requests and
//! `events_bytes_per_second` bytes per second (Tinybird: 100 and 20 MB); past either the answer is
//! 429. Every answer once the token may append carries the request-rate headers.
//!
//! In distributed mode with the queue on ([`EventsQueue`]), a batch for an existing data source
//! is stored in JetStream and answered 202 once JetStream acknowledged it (503 when it cannot
//! store it); ingest inserts it later and never loses it. `wait=true` then waits for ingest's
//! "done" fact and answers 200 with the counts. A data source created from the events takes
//! the direct path once, so its schema is guessed and created before the answer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use prost::Message;
use roost_bus::{Announcer, CatalogChanges, ChangeStamp, WorkQueue};
use roost_proto::catalog::v1::GetDataSourceRequest;
use roost_proto::common::v1::{RequestHeader, Status};
use roost_proto::events_queue::{QUEUE, STORED, done_pattern};
use roost_proto::ingest::v1::{DataFormat, IngestDataRequest, IngestDataResponse};
use roost_proto::{ErrorCode, ServiceError};
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
    let request = IngestDataRequest {
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
    };
    if let Some(queue) = &state.config.events_queue
        && request.data.len() <= queue.max_batch_bytes
        && data_source_exists(&state, &caller.header, &request.data_source).await?
    {
        return enqueue(queue, request).await;
    }
    let ingested = state.services.ingest.ingest_data(request).await?;
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

/// Where the gateway stores accepted batches in distributed mode, and how it hears they are in.
#[derive(Clone)]
pub struct EventsQueue {
    /// The durable queue (JetStream).
    pub queue: Arc<dyn WorkQueue>,
    /// Where ingest announces settled batches.
    pub facts: Arc<dyn Announcer>,
    /// The subject prefix of those facts (`roost_proto::events_queue::done_subject`).
    pub done_prefix: String,
    /// How long a `wait=true` request waits for its batch to be inserted.
    pub wait_timeout: Duration,
    /// The largest body a queue message holds; a larger one is inserted on the direct path
    /// before the answer, so it is never lost either.
    pub max_batch_bytes: usize,
}

impl std::fmt::Debug for EventsQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventsQueue")
            .field("done_prefix", &self.done_prefix)
            .field("wait_timeout", &self.wait_timeout)
            .field("max_batch_bytes", &self.max_batch_bytes)
            .finish_non_exhaustive()
    }
}

/// Data sources (`workspace/name`) the catalog said exist, with the catalog's change stamp taken
/// before it said so: believed while the stamp is current (see `roost_bus::CatalogChanges`).
/// One deleted and not yet known to be only costs its batches being refused by ingest.
pub struct KnownDataSources {
    /// `None`: nothing tells this process of catalog changes, so it asks every time.
    changes: Option<Arc<CatalogChanges>>,
    seen: Mutex<HashMap<String, ChangeStamp>>,
}

impl KnownDataSources {
    /// Data sources believed to exist while `changes` says nothing changed.
    pub fn following(changes: Option<Arc<CatalogChanges>>) -> Self {
        KnownDataSources {
            changes,
            seen: Mutex::default(),
        }
    }

    /// The stamp to remember a data source under; `None`: do not remember.
    async fn stamp(&self) -> Option<ChangeStamp> {
        match &self.changes {
            Some(changes) => changes.stamp().await,
            None => None,
        }
    }

    fn known(&self, key: &str, now: &ChangeStamp) -> bool {
        let seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        seen.get(key).is_some_and(|stamp| stamp.still_current(now))
    }

    fn remember(&self, key: String, stamp: ChangeStamp) {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        // Bounded by what callers name and what is current.
        seen.retain(|_, seen_at| seen_at.still_current(&stamp));
        seen.insert(key, stamp);
    }
}

/// Whether the data source exists: a new one is created from the events on the direct path.
async fn data_source_exists(
    state: &AppState,
    header: &RequestHeader,
    name: &str,
) -> Result<bool, ApiError> {
    let key = format!("{}/{name}", header.workspace_id);
    // Taken before asking: a change landing meanwhile invalidates the answer.
    let stamp = state.known_data_sources.stamp().await;
    if let Some(now) = &stamp
        && state.known_data_sources.known(&key, now)
    {
        return Ok(true);
    }
    let found = state
        .services
        .catalog
        .get_data_source(GetDataSourceRequest {
            header: Some(header.clone()),
            name_or_id: name.to_string(),
            with_statistics: false,
        })
        .await;
    match found {
        Ok(_) => {
            if let Some(stamp) = stamp {
                state.known_data_sources.remember(key, stamp);
            }
            Ok(true)
        }
        Err(error) if error.code == ErrorCode::NotFound => Ok(false),
        Err(error) => Err(error.into()),
    }
}

/// Stores the batch in the queue; answers 202 once it is stored, or with `wait`, 200 once ingest
/// inserted it (202 when that takes longer than the wait timeout: it is stored, not lost).
async fn enqueue(queue: &EventsQueue, request: IngestDataRequest) -> Result<Response, ApiError> {
    let batch_id = uuid::Uuid::new_v4().to_string();
    let rows = count_rows(&request.data);
    let wait = request.wait;
    // Subscribed before the batch is stored, so a fast ingest's fact cannot come first.
    let mut done = if wait {
        let pattern = done_pattern(&queue.done_prefix, &batch_id);
        Some(queue.facts.subscribe(&pattern).await.map_err(|error| {
            tracing::error!(%error, "cannot listen for settled events batches");
            cannot_store()
        })?)
    } else {
        None
    };
    let payload = Bytes::from(request.encode_to_vec());
    if let Err(error) = queue.queue.enqueue(QUEUE, &batch_id, payload).await {
        tracing::error!(batch_id, %error, "cannot store an events batch");
        return Err(cannot_store());
    }
    if let Some(done) = &mut done {
        match tokio::time::timeout(queue.wait_timeout, done.next()).await {
            Ok(Some(fact)) => return settled(&batch_id, &fact.subject, &fact.payload),
            Ok(None) | Err(_) => {
                tracing::warn!(
                    batch_id,
                    "events batch stored but not inserted within the wait"
                );
            }
        }
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "successful_rows": rows, "quarantined_rows": 0 })),
    )
        .into_response())
}

/// The answer to a waited batch, from ingest's fact about it.
fn settled(batch_id: &str, subject: &str, payload: &[u8]) -> Result<Response, ApiError> {
    if subject.ends_with(&format!(".{STORED}")) {
        let response = IngestDataResponse::decode(payload).map_err(|error| {
            tracing::error!(batch_id, %error, "unreadable fact about an events batch");
            ApiError::from(ServiceError::internal("internal error"))
        })?;
        return Ok((
            StatusCode::OK,
            Json(json!({
                "successful_rows": response.successful_rows,
                "quarantined_rows": response.quarantined_rows,
            })),
        )
            .into_response());
    }
    let status = Status::decode(payload).unwrap_or_default();
    Err(ServiceError::from(status).into())
}

/// 503: the queue could not store the batch; nothing of it was accepted.
fn cannot_store() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "The events could not be stored right now; nothing was accepted, retry",
    )
}

/// The rows of an NDJSON body: its non-blank lines. Rows that do not fit the schema are only
/// known once ingest decodes them, so a 202 counts every row as accepted, as Tinybird does.
fn count_rows(data: &[u8]) -> u64 {
    data.split(|byte| *byte == b'\n')
        .filter(|line| line.iter().any(|byte| !byte.is_ascii_whitespace()))
        .count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_the_non_blank_lines() {
        assert_eq!(count_rows(b""), 0);
        assert_eq!(count_rows(b"{\"a\":1}"), 1);
        assert_eq!(count_rows(b"{\"a\":1}\n{\"a\":2}\n"), 2);
        assert_eq!(count_rows(b"{\"a\":1}\r\n\n  \n{\"a\":2}"), 2);
    }

    #[tokio::test]
    async fn data_sources_are_known_until_the_catalog_changes() {
        let changes = CatalogChanges::local();
        let known = KnownDataSources::following(Some(changes.clone()));
        let now = known.stamp().await.expect("local changes have a version");
        assert!(!known.known("w/events", &now));
        known.remember("w/events".to_string(), now);
        assert!(known.known("w/events", &known.stamp().await.unwrap()));
        assert!(!known.known("w/other", &known.stamp().await.unwrap()));
        changes.guard("w").finish().await;
        assert!(!known.known("w/events", &known.stamp().await.unwrap()));
    }

    #[tokio::test]
    async fn without_catalog_changes_nothing_is_remembered() {
        assert_eq!(KnownDataSources::following(None).stamp().await, None);
    }
}

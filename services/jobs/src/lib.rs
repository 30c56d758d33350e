//! Jobs: long work tracked as records (delete rows, populate a materialized view, copy a pipe's
//! result into a data source, import a file from a URL, sink a result to files in a bucket or a
//! directory).
//!
//! A job is stored `waiting` before [`JobsService::submit_job`] answers. Workers poll the store,
//! claim a job with a compare-and-set on its status (so in distributed mode any number of workers
//! share one queue and never run a job twice), keep a heartbeat while they run it, and write its
//! outcome. A job whose heartbeat goes stale lost its worker: jobs that are safe to run again
//! (deletes, replacing copies and imports) go back to the queue, the others fail with a clear
//! error, so no job stays `working` forever.

mod import;
mod kinds;
mod sink;
mod worker;

use std::sync::Arc;

use async_trait::async_trait;
use roost_engine::Engine;
use roost_proto::common::v1::RequestHeader;
use roost_proto::jobs::v1 as proto;
use roost_proto::{CatalogClient, EndpointClient, IngestClient, ServiceError};
use roost_store::{JobFilter, JobRecord, Store, StoreError};
use serde_json::{Map, Value};
use tokio::sync::Notify;

pub use roost_proto::{JobsClient, JobsService};
pub use worker::WorkerHandle;

/// Job kinds, as Tinybird names them.
pub mod kind {
    /// `POST /v0/datasources/{name}/delete`.
    pub const DELETE_DATA: &str = "delete_data";
    /// Backfill of a materialized view.
    pub const POPULATE: &str = "populateview";
    /// A copy pipe's run.
    pub const COPY: &str = "copy";
    /// A file from a URL into a data source (`POST /v0/datasources?url=`).
    pub const IMPORT: &str = "import";
    /// A sink pipe's run: the node's result written as files to a bucket or a directory.
    pub const SINK: &str = "sink";
}

/// How jobs run.
#[derive(Debug, Clone)]
pub struct JobsConfig {
    /// Jobs one worker runs at once.
    pub concurrency: usize,
    /// How often workers look for waiting jobs when nothing woke them.
    pub poll_interval: std::time::Duration,
    /// How often a running job's heartbeat is written.
    pub heartbeat_interval: std::time::Duration,
    /// A working job whose heartbeat is older than this lost its worker.
    pub abandoned_after: std::time::Duration,
    /// This worker is the only one (`roost local`): every job found working at start-up was left
    /// by a previous run of this process and is recovered at once.
    pub sole_worker: bool,
}

impl Default for JobsConfig {
    fn default() -> Self {
        JobsConfig {
            concurrency: 2,
            poll_interval: std::time::Duration::from_secs(1),
            heartbeat_interval: std::time::Duration::from_secs(5),
            abandoned_after: std::time::Duration::from_secs(60),
            sole_worker: false,
        }
    }
}

/// What job kinds need to run.
#[derive(Clone)]
pub struct JobDependencies {
    /// The engine, unrestricted: jobs write.
    pub engine: Arc<dyn Engine>,
    pub catalog: CatalogClient,
    /// Compiles nodes and resolves conditions.
    pub endpoints: EndpointClient,
    /// Decodes imported files into data sources.
    pub ingest: IngestClient,
    /// Reads the files of imports.
    pub fetcher: roost_fetch::Fetcher,
    /// The directory local sinks write under; nothing is written outside it.
    pub sink_local_root: std::path::PathBuf,
}

/// The jobs service: records and the API over them. Workers are started with [`Jobs::start_worker`].
pub struct Jobs {
    store: Store,
    wake: Arc<Notify>,
}

/// Listings show the last 48 hours, at most 100 jobs, as Tinybird does.
const LIST_WINDOW_HOURS: i64 = 48;
const LIST_LIMIT: i64 = 100;

impl Jobs {
    /// The service over `store`.
    pub fn new(store: Store) -> Self {
        Jobs {
            store,
            wake: Arc::new(Notify::new()),
        }
    }

    /// Starts a worker in this process running jobs of every workspace.
    pub fn start_worker(&self, config: JobsConfig, dependencies: JobDependencies) -> WorkerHandle {
        worker::start(self.store.clone(), self.wake.clone(), config, dependencies)
    }
}

pub(crate) fn now() -> String {
    timestamp(chrono::Utc::now())
}

pub(crate) fn timestamp(at: chrono::DateTime<chrono::Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S%.6f").to_string()
}

fn workspace_id(header: &Option<RequestHeader>) -> Result<&str, ServiceError> {
    header
        .as_ref()
        .map(|h| h.workspace_id.as_str())
        .filter(|id| !id.is_empty())
        .ok_or_else(|| ServiceError::forbidden("This token is not bound to a workspace"))
}

pub(crate) fn store_error(error: StoreError) -> ServiceError {
    match error {
        StoreError::NotFound(what) => ServiceError::not_found(format!("{what} not found")),
        StoreError::Conflict(what) => ServiceError::conflict(format!("{what} already exists")),
        invalid @ StoreError::InvalidText(_) => ServiceError::bad_request(invalid.to_string()),
        other => {
            tracing::error!(error = %other, "jobs store failure");
            ServiceError::internal("internal error")
        }
    }
}

/// Whether a job of `kind` can be cancelled while `status`: waiting jobs always; working ones of
/// kinds that check for cancellation between their steps.
fn is_cancellable(kind: &str, status: &str) -> bool {
    match status {
        "waiting" => true,
        "working" => kinds::stops_between_steps(kind),
        _ => false,
    }
}

/// The job as the contract carries it: spec and result merged into the details.
pub fn job_to_proto(job: &JobRecord) -> proto::Job {
    let mut details = Map::new();
    for text in [&job.spec, &job.result] {
        if let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(text) {
            details.extend(fields);
        }
    }
    let status = match (job.status.as_str(), job.cancel_requested) {
        ("working", true) => "cancelling",
        (status, _) => status,
    };
    proto::Job {
        id: job.id.clone(),
        kind: job.kind.clone(),
        status: status.to_string(),
        workspace_id: job.workspace_id.clone(),
        created_at: job.created_at.clone(),
        updated_at: job.updated_at.clone(),
        error: job.error.clone(),
        details_json: Value::Object(details).to_string(),
        started_at: job.started_at.clone(),
        progress_percentage: job.progress as f64 / 100.0,
        is_cancellable: is_cancellable(&job.kind, &job.status) && !job.cancel_requested,
        datasource_id: job.datasource_id.clone(),
        datasource_name: job.datasource_name.clone(),
        pipe_id: job.pipe_id.clone(),
        pipe_name: job.pipe_name.clone(),
    }
}

#[async_trait]
impl JobsService for Jobs {
    async fn submit_job(
        &self,
        request: proto::SubmitJobRequest,
    ) -> Result<proto::SubmitJobResponse, ServiceError> {
        let workspace_id = workspace_id(&request.header)?;
        if !kinds::is_known(&request.kind) {
            return Err(ServiceError::bad_request(format!(
                "Unknown job kind '{}'",
                request.kind
            )));
        }
        let spec = match request.spec_json.trim() {
            "" => "{}".to_string(),
            text => match serde_json::from_str::<Value>(text) {
                Ok(Value::Object(_)) => text.to_string(),
                _ => {
                    return Err(ServiceError::bad_request(
                        "A job spec must be a JSON object",
                    ));
                }
            },
        };
        let finished = match request.finished_result_json.trim() {
            "" => None,
            text => match serde_json::from_str::<Value>(text) {
                Ok(Value::Object(_)) => Some(text.to_string()),
                _ => {
                    return Err(ServiceError::bad_request(
                        "A job result must be a JSON object",
                    ));
                }
            },
        };
        let now = now();
        let job = JobRecord {
            id: uuid::Uuid::new_v4().to_string(),
            workspace_id: workspace_id.to_string(),
            kind: request.kind,
            status: match finished {
                Some(_) => "done",
                None => "waiting",
            }
            .to_string(),
            progress: if finished.is_some() { 10_000 } else { 0 },
            started_at: if finished.is_some() {
                now.clone()
            } else {
                String::new()
            },
            finished_at: if finished.is_some() {
                now.clone()
            } else {
                String::new()
            },
            datasource_id: request.datasource_id,
            datasource_name: request.datasource_name,
            pipe_id: request.pipe_id,
            pipe_name: request.pipe_name,
            spec,
            result: finished.unwrap_or_else(|| "{}".to_string()),
            created_at: now.clone(),
            updated_at: now,
            ..JobRecord::default()
        };
        self.store.insert_job(&job).await.map_err(store_error)?;
        self.wake.notify_waiters();
        Ok(proto::SubmitJobResponse {
            job: Some(job_to_proto(&job)),
        })
    }

    async fn list_jobs(
        &self,
        request: proto::ListJobsRequest,
    ) -> Result<proto::ListJobsResponse, ServiceError> {
        let workspace_id = workspace_id(&request.header)?;
        let since = timestamp(chrono::Utc::now() - chrono::Duration::hours(LIST_WINDOW_HOURS));
        let non_empty = |s: &str| (!s.is_empty()).then_some(s.to_string());
        let (status, kind, pipe_id) = (
            non_empty(&request.status),
            non_empty(&request.kind),
            non_empty(&request.pipe_id),
        );
        let jobs = self
            .store
            .list_jobs(&JobFilter {
                workspace_id,
                status: status.as_deref(),
                kind: kind.as_deref(),
                pipe_id: pipe_id.as_deref(),
                since: Some(&since),
                limit: LIST_LIMIT,
            })
            .await
            .map_err(store_error)?;
        Ok(proto::ListJobsResponse {
            jobs: jobs.iter().map(job_to_proto).collect(),
        })
    }

    async fn get_job(
        &self,
        request: proto::GetJobRequest,
    ) -> Result<proto::GetJobResponse, ServiceError> {
        let workspace_id = workspace_id(&request.header)?;
        let job = self
            .store
            .get_job(workspace_id, &request.job_id)
            .await
            .map_err(store_error)?;
        Ok(proto::GetJobResponse {
            job: Some(job_to_proto(&job)),
        })
    }

    async fn cancel_job(
        &self,
        request: proto::CancelJobRequest,
    ) -> Result<proto::CancelJobResponse, ServiceError> {
        let workspace_id = workspace_id(&request.header)?;
        let job = self
            .store
            .get_job(workspace_id, &request.job_id)
            .await
            .map_err(store_error)?;
        if !is_cancellable(&job.kind, &job.status) {
            return Err(ServiceError::bad_request(format!(
                "Job '{}' is {} and cannot be cancelled",
                job.id, job.status
            )));
        }
        let job = self
            .store
            .cancel_job(workspace_id, &request.job_id, &now())
            .await
            .map_err(store_error)?;
        Ok(proto::CancelJobResponse {
            job: Some(job_to_proto(&job)),
        })
    }
}

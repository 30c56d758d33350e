//! The scheduler: cron schedules of copy and sink pipes, each tick run once cluster-wide.
//!
//! Schedules live in the catalog store with the scheduled time of their last run. A scheduler
//! loop looks for schedules whose latest tick (at or before now) is newer than that, claims the
//! tick with a compare-and-set on `last_tick_at`, and submits one job. The compare-and-set is what
//! makes a tick run once: any number of schedulers may look (one per process in distributed mode),
//! exactly one wins. Ticks missed while nothing ran collapse into that one latest tick, so a
//! scheduler back after downtime runs a schedule once, not once per missed tick.
//!
//! Only the scheduler holding the `scheduler` lease looks at all (in-process in `roost local`,
//! a NATS key-value lease in distributed mode), so replicas do not all scan the store every pass;
//! when the leader dies, another takes the lease once its time to live runs out.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDateTime, Utc};
use roost_bus::Leases;
use roost_proto::common::v1::RequestHeader;
use roost_proto::jobs::v1::SubmitJobRequest;
use roost_proto::scheduler::v1 as proto;
use roost_proto::{JobsClient, ServiceError};
use roost_store::{ScheduleRecord, Store, StoreError};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

pub use roost_proto::{SchedulerClient, SchedulerService};

/// The cron of a pipe that only runs when asked.
pub const ON_DEMAND: &str = "@on-demand";

/// A schedule's cron expression, parsed. Tinybird's five fields (minute to day of week) get a
/// leading seconds field of 0; six or seven fields are taken as they are.
#[derive(Debug, Clone)]
pub struct Cron(cron::Schedule);

impl FromStr for Cron {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let fields = text.split_whitespace().count();
        let expression = if fields == 5 {
            format!("0 {text}")
        } else {
            text.to_string()
        };
        cron::Schedule::from_str(&expression)
            .map(Cron)
            .map_err(|e| format!("Invalid cron expression '{text}': {e}"))
    }
}

impl Cron {
    /// The latest tick at or before `now`.
    pub fn latest_tick(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // The iterator starts strictly after its argument and walks back from there.
        self.0
            .after(&(now + chrono::Duration::nanoseconds(1)))
            .next_back()
    }

    /// The first tick after `now`.
    pub fn next_tick(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.0.after(&now).next()
    }
}

fn format_time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S%.6f").to_string()
}

fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f")
        .ok()
        .map(|t| t.and_utc())
}

fn store_error(error: StoreError) -> ServiceError {
    match error {
        StoreError::NotFound(what) => ServiceError::not_found(format!("{what} not found")),
        other => {
            tracing::error!(error = %other, "scheduler store failure");
            ServiceError::internal("internal error")
        }
    }
}

fn workspace_id(header: &Option<RequestHeader>) -> Result<&str, ServiceError> {
    header
        .as_ref()
        .map(|h| h.workspace_id.as_str())
        .filter(|id| !id.is_empty())
        .ok_or_else(|| ServiceError::forbidden("This token is not bound to a workspace"))
}

/// The scheduler service: schedules in the store; [`Scheduler::start`] runs the loop.
pub struct Scheduler {
    store: Store,
}

impl Scheduler {
    /// The service over `store`.
    pub fn new(store: Store) -> Self {
        Scheduler { store }
    }

    /// Starts the loop that submits due ticks to `jobs` while it holds the scheduler lease.
    pub fn start(&self, jobs: JobsClient, options: LoopOptions) -> SchedulerHandle {
        let store = self.store.clone();
        SchedulerHandle {
            task: tokio::spawn(run(store, jobs, options)),
        }
    }

    fn to_proto(record: &ScheduleRecord) -> proto::Schedule {
        let next_run_at = match (record.status.as_str(), Cron::from_str(&record.cron)) {
            ("running", Ok(cron)) => cron.next_tick(Utc::now()).map(format_time),
            _ => None,
        };
        proto::Schedule {
            pipe_id: record.pipe_id.clone(),
            cron: record.cron.clone(),
            status: record.status.clone(),
            next_run_at: next_run_at.unwrap_or_default(),
            pipe_name: record.pipe_name.clone(),
            kind: record.kind.clone(),
            job_spec_json: record.job_spec.clone(),
            last_run_at: record.last_tick_at.clone(),
        }
    }
}

/// The running loop; dropping it stops the loop.
pub struct SchedulerHandle {
    task: JoinHandle<()>,
}

impl Drop for SchedulerHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The lease the leading scheduler holds.
pub const LEASE: &str = "scheduler";

/// How a scheduler loop runs.
#[derive(Clone)]
pub struct LoopOptions {
    /// How often it looks for due ticks (and renews its lease).
    pub interval: Duration,
    /// Where the lease is held: the in-process bus locally, NATS when distributed.
    pub leases: Arc<dyn Leases>,
    /// Who this scheduler is, unique among the replicas.
    pub holder: String,
    /// How long the lease outlives a leader that stopped renewing it.
    pub lease_ttl: Duration,
}

async fn run(store: Store, jobs: JobsClient, options: LoopOptions) {
    let mut leading = false;
    loop {
        match options
            .leases
            .acquire(LEASE, &options.holder, options.lease_ttl)
            .await
        {
            Ok(lead) => {
                if lead != leading {
                    tracing::info!(holder = %options.holder, lead, "scheduler leadership changed");
                    leading = lead;
                }
                if lead && let Err(error) = run_due(&store, &jobs, Utc::now()).await {
                    tracing::warn!(%error, "scheduler pass failed");
                }
            }
            Err(error) => tracing::warn!(%error, "scheduler lease unavailable"),
        }
        tokio::time::sleep(options.interval).await;
    }
}

/// Submits one job for each schedule with a tick due at `now` that this scheduler claimed.
/// Returns how many it submitted.
pub async fn run_due(
    store: &Store,
    jobs: &JobsClient,
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    let mut submitted = 0;
    for schedule in store.list_schedules(None).await? {
        if schedule.status != "running" {
            continue;
        }
        let Ok(cron) = Cron::from_str(&schedule.cron) else {
            continue;
        };
        let Some(tick) = cron.latest_tick(now) else {
            continue;
        };
        let last = parse_time(&schedule.last_tick_at)
            .or_else(|| parse_time(&schedule.created_at))
            .unwrap_or(now);
        if tick <= last {
            continue;
        }
        let tick_text = format_time(tick);
        if !store
            .claim_tick(&schedule.pipe_id, &schedule.last_tick_at, &tick_text)
            .await?
        {
            continue;
        }
        let mut spec: Value = serde_json::from_str(&schedule.job_spec).unwrap_or(json!({}));
        if let Value::Object(fields) = &mut spec {
            fields.insert("scheduled_at".into(), json!(tick_text));
            fields.insert("trigger".into(), json!("schedule"));
        }
        let field = |key: &str| {
            spec.get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let request = SubmitJobRequest {
            header: Some(RequestHeader {
                workspace_id: schedule.workspace_id.clone(),
                request_id: format!("schedule:{}:{tick_text}", schedule.pipe_id),
                ..RequestHeader::default()
            }),
            kind: schedule.kind.clone(),
            datasource_id: field("datasource_id"),
            datasource_name: field("datasource_name"),
            pipe_id: schedule.pipe_id.clone(),
            pipe_name: schedule.pipe_name.clone(),
            spec_json: spec.to_string(),
            ..SubmitJobRequest::default()
        };
        match jobs.submit_job(request).await {
            Ok(_) => submitted += 1,
            Err(error) => {
                tracing::warn!(pipe = %schedule.pipe_name, tick = %tick_text, %error, "a scheduled job could not be submitted")
            }
        }
    }
    Ok(submitted)
}

#[async_trait]
impl SchedulerService for Scheduler {
    async fn list_schedules(
        &self,
        request: proto::ListSchedulesRequest,
    ) -> Result<proto::ListSchedulesResponse, ServiceError> {
        let workspace_id = workspace_id(&request.header)?;
        let schedules = self
            .store
            .list_schedules(Some(workspace_id))
            .await
            .map_err(store_error)?;
        Ok(proto::ListSchedulesResponse {
            schedules: schedules.iter().map(Scheduler::to_proto).collect(),
        })
    }

    async fn set_schedule(
        &self,
        request: proto::SetScheduleRequest,
    ) -> Result<proto::SetScheduleResponse, ServiceError> {
        let workspace_id = workspace_id(&request.header)?;
        let schedule = request
            .schedule
            .ok_or_else(|| ServiceError::bad_request("A schedule is needed"))?;
        Cron::from_str(&schedule.cron).map_err(ServiceError::bad_request)?;
        let status = match schedule.status.as_str() {
            "" | "running" => "running",
            "paused" => "paused",
            other => {
                return Err(ServiceError::bad_request(format!(
                    "Unknown schedule status '{other}'"
                )));
            }
        };
        if let Ok(existing) = self.store.get_schedule(&schedule.pipe_id).await
            && existing.workspace_id != workspace_id
        {
            return Err(ServiceError::not_found("Pipe not found"));
        }
        let now = format_time(Utc::now());
        let record = ScheduleRecord {
            pipe_id: schedule.pipe_id.clone(),
            workspace_id: workspace_id.to_string(),
            pipe_name: schedule.pipe_name,
            kind: schedule.kind,
            cron: schedule.cron,
            status: status.to_string(),
            job_spec: match schedule.job_spec_json.trim() {
                "" => "{}".to_string(),
                text => text.to_string(),
            },
            // A new schedule starts from now: its first run is its next tick.
            last_tick_at: now.clone(),
            created_at: now.clone(),
            updated_at: now,
        };
        self.store
            .upsert_schedule(&record)
            .await
            .map_err(store_error)?;
        let stored = self
            .store
            .get_schedule(&schedule.pipe_id)
            .await
            .map_err(store_error)?;
        Ok(proto::SetScheduleResponse {
            schedule: Some(Scheduler::to_proto(&stored)),
        })
    }

    async fn delete_schedule(
        &self,
        request: proto::DeleteScheduleRequest,
    ) -> Result<proto::DeleteScheduleResponse, ServiceError> {
        let workspace_id = workspace_id(&request.header)?;
        if let Ok(existing) = self.store.get_schedule(&request.pipe_id).await {
            if existing.workspace_id != workspace_id {
                return Err(ServiceError::not_found("Pipe not found"));
            }
            self.store
                .delete_schedule(&request.pipe_id)
                .await
                .map_err(store_error)?;
        }
        Ok(proto::DeleteScheduleResponse {})
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn five_field_crons_run_at_second_zero() {
        let cron: Cron = "*/5 * * * *".parse().unwrap();
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 10, 7, 30).unwrap();
        assert_eq!(
            cron.latest_tick(now),
            Some(Utc.with_ymd_and_hms(2026, 1, 1, 10, 5, 0).unwrap())
        );
        assert_eq!(
            cron.next_tick(now),
            Some(Utc.with_ymd_and_hms(2026, 1, 1, 10, 10, 0).unwrap())
        );
    }

    #[test]
    fn a_tick_exactly_now_is_the_latest() {
        let cron: Cron = "* * * * * *".parse().unwrap();
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 10, 0, 0).unwrap();
        assert_eq!(cron.latest_tick(now), Some(now));
    }

    #[test]
    fn bad_crons_are_refused_with_the_expression() {
        let error = "every minute".parse::<Cron>().unwrap_err();
        assert!(error.contains("every minute"), "{error}");
        assert!("61 * * * *".parse::<Cron>().is_err());
    }

    #[test]
    fn stored_times_round_trip() {
        let at = Utc.with_ymd_and_hms(2026, 3, 4, 5, 6, 7).unwrap();
        assert_eq!(parse_time(&format_time(at)), Some(at));
    }
}

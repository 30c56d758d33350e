//! Two schedulers sharing one store and one NATS lease: only the leader submits, each tick once,
//! and when the leader stops the other takes over. Needs NATS with JetStream at
//! `ROOST_TEST_NATS_URL` (default `nats://127.0.0.1:4222`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use roost_bus::{NatsBus, NatsBusOptions};
use roost_proto::jobs::v1 as jobs;
use roost_proto::{ErrorCode, ServiceError};
use roost_scheduler::{LoopOptions, Scheduler};
use roost_store::{Organization, ScheduleRecord, Store, User, WorkspaceRecord};

/// The jobs contract as the scheduler sees it: it records what each scheduler submitted.
#[derive(Default)]
struct SubmittedJobs(Mutex<Vec<String>>);

impl SubmittedJobs {
    fn ticks(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

#[async_trait]
impl roost_proto::JobsService for SubmittedJobs {
    async fn submit_job(
        &self,
        request: jobs::SubmitJobRequest,
    ) -> Result<jobs::SubmitJobResponse, ServiceError> {
        let spec: serde_json::Value = serde_json::from_str(&request.spec_json).unwrap();
        self.0
            .lock()
            .unwrap()
            .push(spec["scheduled_at"].as_str().unwrap().to_string());
        Ok(jobs::SubmitJobResponse::default())
    }
    async fn list_jobs(
        &self,
        _: jobs::ListJobsRequest,
    ) -> Result<jobs::ListJobsResponse, ServiceError> {
        Err(ServiceError::new(
            ErrorCode::Unsupported,
            "not used by the scheduler",
        ))
    }
    async fn get_job(&self, _: jobs::GetJobRequest) -> Result<jobs::GetJobResponse, ServiceError> {
        Err(ServiceError::new(
            ErrorCode::Unsupported,
            "not used by the scheduler",
        ))
    }
    async fn cancel_job(
        &self,
        _: jobs::CancelJobRequest,
    ) -> Result<jobs::CancelJobResponse, ServiceError> {
        Err(ServiceError::new(
            ErrorCode::Unsupported,
            "not used by the scheduler",
        ))
    }
}

async fn store_with_a_schedule_every_second(dir: &std::path::Path) -> Store {
    let store = Store::connect(&Store::sqlite_url(&dir.join("catalog.db")))
        .await
        .unwrap();
    let now = Utc::now().format("%Y-%m-%d %H:%M:%S%.6f").to_string();
    store
        .insert_organization(&Organization {
            id: "o1".into(),
            name: "org".into(),
            created_at: now.clone(),
        })
        .await
        .unwrap();
    store
        .insert_user(&User {
            id: "u1".into(),
            email: "u@example.com".into(),
            organization_id: "o1".into(),
            created_at: now.clone(),
        })
        .await
        .unwrap();
    store
        .insert_workspace(&WorkspaceRecord {
            id: "w1".into(),
            name: "ws".into(),
            organization_id: "o1".into(),
            owner_user_id: "u1".into(),
            database: "ws".into(),
            created_at: now.clone(),
        })
        .await
        .unwrap();
    store
        .upsert_schedule(&ScheduleRecord {
            pipe_id: "p1".into(),
            workspace_id: "w1".into(),
            pipe_name: "copy_every_second".into(),
            kind: "copy".into(),
            cron: "* * * * * *".into(),
            status: "running".into(),
            job_spec: "{}".into(),
            last_tick_at: String::new(),
            created_at: now.clone(),
            updated_at: now,
        })
        .await
        .unwrap();
    store
}

#[tokio::test]
async fn only_the_lease_holder_schedules_and_another_takes_over_when_it_stops() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_a_schedule_every_second(dir.path()).await;
    let url = std::env::var("ROOST_TEST_NATS_URL")
        .unwrap_or_else(|_| "nats://127.0.0.1:4222".to_string());
    let options = NatsBusOptions {
        lease_bucket: format!("ROOST_TEST_LEASES_{}", uuid::Uuid::new_v4().simple()),
        ..NatsBusOptions::default()
    };
    let scheduler = Scheduler::new(store);
    let mut loops = Vec::new();
    let mut submitted = Vec::new();
    for holder in ["first", "second"] {
        // A connection each, as two processes would have.
        let bus = NatsBus::connect(&url, options.clone())
            .await
            .expect("NATS with JetStream must run at ROOST_TEST_NATS_URL");
        let jobs = Arc::new(SubmittedJobs::default());
        loops.push(scheduler.start(
            jobs.clone(),
            LoopOptions {
                interval: Duration::from_millis(100),
                leases: Arc::new(bus),
                holder: holder.to_string(),
                lease_ttl: Duration::from_secs(1),
            },
        ));
        submitted.push(jobs);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (first, second) = (submitted[0].ticks(), submitted[1].ticks());
    assert!(first.len() >= 2, "the leader ran the ticks: {first:?}");
    assert!(second.is_empty(), "the follower ran nothing: {second:?}");

    // The leader stops without releasing; its lease runs out and the other leads.
    drop(loops.remove(0));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (first_after, second) = (submitted[0].ticks(), submitted[1].ticks());
    assert!(first_after.len() <= first.len() + 1, "{first_after:?}");
    assert!(!second.is_empty(), "the follower took over");
    let mut all: Vec<String> = first_after.into_iter().chain(second).collect();
    let total = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), total, "a tick ran twice");
}

//! The worker loop: claims waiting jobs, runs them with a heartbeat, records their outcome, and
//! recovers jobs whose worker died.

use std::sync::Arc;

use roost_proto::common::v1::RequestHeader;
use roost_store::{JobRecord, JobUpdate, Store};
use serde_json::Value;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinHandle;

use crate::kinds::{self, JobFailure};
use crate::{JobDependencies, JobsConfig, now, timestamp};

/// A running worker; dropping it stops the worker (running jobs are recovered by the next one).
pub struct WorkerHandle {
    task: JoinHandle<()>,
}

impl Drop for WorkerHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub(crate) fn start(
    store: Store,
    wake: Arc<Notify>,
    config: JobsConfig,
    dependencies: JobDependencies,
) -> WorkerHandle {
    let worker = Arc::new(Worker {
        id: format!("worker_{}", uuid::Uuid::new_v4().simple()),
        store,
        config,
        dependencies,
    });
    WorkerHandle {
        task: tokio::spawn(worker.run(wake)),
    }
}

struct Worker {
    id: String,
    store: Store,
    config: JobsConfig,
    dependencies: JobDependencies,
}

impl Worker {
    async fn run(self: Arc<Self>, wake: Arc<Notify>) {
        let slots = Arc::new(Semaphore::new(self.config.concurrency.max(1)));
        let mut first_pass = true;
        let mut last_recovery = std::time::Instant::now();
        loop {
            // Registered before looking, so a job submitted while this pass runs wakes the next.
            let woken = wake.notified();
            if first_pass || last_recovery.elapsed() >= self.config.poll_interval * 10 {
                self.recover_abandoned(first_pass && self.config.sole_worker)
                    .await;
                last_recovery = std::time::Instant::now();
                first_pass = false;
            }
            if let Err(error) = self.claim_waiting(&slots).await {
                tracing::warn!(%error, "cannot read the job queue");
            }
            tokio::select! {
                _ = woken => {}
                _ = tokio::time::sleep(self.config.poll_interval) => {}
            }
        }
    }

    async fn claim_waiting(self: &Arc<Self>, slots: &Arc<Semaphore>) -> Result<(), String> {
        let free = slots.available_permits();
        if free == 0 {
            return Ok(());
        }
        let waiting = self
            .store
            .waiting_jobs(free as i64 * 4)
            .await
            .map_err(|e| e.to_string())?;
        for job in waiting {
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                break;
            };
            if !self
                .store
                .claim_job(&job.id, &self.id, &now())
                .await
                .map_err(|e| e.to_string())?
            {
                continue;
            }
            let worker = self.clone();
            tokio::spawn(async move {
                worker.run_job(job).await;
                drop(permit);
            });
        }
        Ok(())
    }

    async fn run_job(self: Arc<Self>, job: JobRecord) {
        tracing::info!(job = %job.id, kind = %job.kind, workspace = %job.workspace_id, "job started");
        let heartbeat = {
            let worker = self.clone();
            let id = job.id.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(worker.config.heartbeat_interval).await;
                    let _ = worker
                        .store
                        .update_job(&id, &worker.id, &JobUpdate::default(), &now())
                        .await;
                }
            })
        };
        let context = JobContext {
            job: job.clone(),
            spec: serde_json::from_str(&job.spec).unwrap_or(Value::Null),
            store: self.store.clone(),
            worker: self.id.clone(),
            dependencies: self.dependencies.clone(),
        };
        let outcome = kinds::run(&context).await;
        heartbeat.abort();
        let finished = now();
        let result_text;
        let error_text;
        let update = match &outcome {
            Ok(result) => {
                result_text = result.to_string();
                JobUpdate {
                    status: Some("done"),
                    progress: Some(10_000),
                    result: Some(&result_text),
                    finished_at: Some(&finished),
                    ..JobUpdate::default()
                }
            }
            Err(JobFailure::Cancelled) => JobUpdate {
                status: Some("cancelled"),
                finished_at: Some(&finished),
                ..JobUpdate::default()
            },
            Err(JobFailure::Failed(message)) => {
                error_text = message.clone();
                JobUpdate {
                    status: Some("error"),
                    error: Some(&error_text),
                    finished_at: Some(&finished),
                    ..JobUpdate::default()
                }
            }
        };
        match self
            .store
            .update_job(&job.id, &self.id, &update, &finished)
            .await
        {
            Ok(stored) => {
                tracing::info!(job = %job.id, status = %stored.status, error = %stored.error, "job finished")
            }
            Err(error) => {
                // The heartbeat goes stale, so the job is recovered by the next pass.
                tracing::error!(job = %job.id, %error, "cannot record a job's outcome")
            }
        }
    }

    /// Jobs working under a dead worker go back to the queue when running them again is safe,
    /// else fail. `everything` (a sole worker's start-up) takes every working job.
    async fn recover_abandoned(&self, everything: bool) {
        let stale_before = if everything {
            // Any heartbeat is older than "now + 1 day".
            timestamp(chrono::Utc::now() + chrono::Duration::days(1))
        } else {
            let age = chrono::Duration::from_std(self.config.abandoned_after)
                .unwrap_or(chrono::Duration::seconds(60));
            timestamp(chrono::Utc::now() - age)
        };
        let abandoned = match self.store.abandoned_jobs(&stale_before).await {
            Ok(jobs) => jobs,
            Err(error) => {
                tracing::warn!(%error, "cannot look for abandoned jobs");
                return;
            }
        };
        for job in abandoned {
            let now = now();
            let update = if job.cancel_requested {
                JobUpdate {
                    status: Some("cancelled"),
                    finished_at: Some(&now),
                    ..JobUpdate::default()
                }
            } else if kinds::safe_to_rerun(&job.kind, &job.spec) {
                JobUpdate {
                    status: Some("waiting"),
                    ..JobUpdate::default()
                }
            } else {
                JobUpdate {
                    status: Some("error"),
                    error: Some(
                        "The job was interrupted (its worker stopped) and cannot be resumed safely; run it again",
                    ),
                    finished_at: Some(&now),
                    ..JobUpdate::default()
                }
            };
            match self.store.release_abandoned_job(&job, &update, &now).await {
                Ok(true) => tracing::warn!(
                    job = %job.id,
                    kind = %job.kind,
                    status = update.status.unwrap_or_default(),
                    "recovered a job whose worker stopped"
                ),
                Ok(false) => {}
                Err(error) => tracing::warn!(job = %job.id, %error, "cannot recover a job"),
            }
        }
    }
}

/// What a running job sees: its record and spec, the services, and the way to report progress.
pub(crate) struct JobContext {
    pub job: JobRecord,
    pub spec: Value,
    store: Store,
    worker: String,
    pub dependencies: JobDependencies,
}

impl JobContext {
    /// The header of calls made on the job's behalf.
    pub fn header(&self) -> Option<RequestHeader> {
        Some(RequestHeader {
            workspace_id: self.job.workspace_id.clone(),
            request_id: self.job.id.clone(),
            ..RequestHeader::default()
        })
    }

    /// A text field of the spec.
    pub fn spec_text(&self, key: &str) -> &str {
        self.spec
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// Reports progress (0.0 to 1.0) and, between steps, whether the job was asked to stop.
    pub async fn checkpoint(&self, done: f64) -> Result<(), JobFailure> {
        let progress = (done.clamp(0.0, 1.0) * 10_000.0).round() as i64;
        let stored = self
            .store
            .update_job(
                &self.job.id,
                &self.worker,
                &JobUpdate {
                    progress: Some(progress),
                    ..JobUpdate::default()
                },
                &now(),
            )
            .await
            .map_err(|e| JobFailure::Failed(format!("cannot record progress: {e}")))?;
        if stored.cancel_requested {
            return Err(JobFailure::Cancelled);
        }
        Ok(())
    }
}

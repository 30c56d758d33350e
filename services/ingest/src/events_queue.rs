//! The consumer side of the Events API's queue (distributed mode): workers take the batches the
//! gateways stored (`roost_proto::events_queue`), insert them, and acknowledge a batch only once
//! its rows are in the engine, so a batch whose worker or engine fails is delivered again.
//!
//! - A failure that may pass (engine or catalog unreachable, a timeout) is retried after a
//!   growing delay, up to `retry_backoff_max`, for as long as it takes: nothing is dropped.
//! - Data the engine refuses (bad data, a data source that no longer exists) can never be
//!   stored: the batch is acknowledged and a waiting gateway told why. Rows that do not fit the
//!   schema never get here as errors: they go to the quarantine table with the good rows.
//! - A redelivered batch does not store a row twice: its inserts run under statement ids made
//!   from the batch id, and each part already stored is skipped ([`Ingest::ingest_queued`]).
//! - While an insert runs the worker tells the queue it is in progress, so a long insert is not
//!   handed to another worker.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use prost::Message;
use roost_bus::{Announcer, BusError, ConsumerOptions, WorkItem, WorkQueue};
use roost_proto::events_queue::{FAILED, QUEUE, STORED, done_subject};
use roost_proto::ingest::v1::IngestDataRequest;
use roost_proto::{ErrorCode, ServiceError};
use tokio::task::JoinHandle;

use crate::Ingest;

/// The first retry's delay; each next one doubles it.
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(100);

/// How long a worker's pull waits for a batch before it asks again.
const PULL_WAIT: Duration = Duration::from_secs(5);

/// How long a worker waits before it opens the consumer again after the queue failed.
const REOPEN_DELAY: Duration = Duration::from_secs(1);

/// How the workers take batches.
#[derive(Debug, Clone)]
pub struct EventsQueueOptions {
    /// Batches one process inserts at once.
    pub consumers: usize,
    /// How long a taken batch may go without news before another worker gets it.
    pub ack_wait: Duration,
    /// Longest delay before a failed batch is tried again.
    pub retry_backoff_max: Duration,
    /// The subject prefix of "done" facts (`roost_proto::events_queue::done_subject`).
    pub done_prefix: String,
}

/// The running workers; they stop when this is dropped.
pub struct EventsQueueWorkers {
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for EventsQueueWorkers {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Starts `options.consumers` workers inserting the queued batches with `ingest`.
pub fn start_workers(
    ingest: Arc<Ingest>,
    queue: Arc<dyn WorkQueue>,
    facts: Arc<dyn Announcer>,
    options: EventsQueueOptions,
) -> EventsQueueWorkers {
    let worker = Arc::new(Worker {
        ingest,
        queue,
        facts,
        options,
    });
    let tasks = (0..worker.options.consumers.max(1))
        .map(|_| tokio::spawn(worker.clone().run()))
        .collect();
    EventsQueueWorkers { tasks }
}

/// The delay before delivery `deliveries + 1` of a batch that failed `deliveries` times:
/// [`FIRST_RETRY_DELAY`] doubled each time, at most `max`.
pub fn retry_delay(deliveries: u64, max: Duration) -> Duration {
    let doublings = u32::try_from(deliveries.saturating_sub(1))
        .unwrap_or(u32::MAX)
        .min(20);
    FIRST_RETRY_DELAY
        .saturating_mul(2u32.saturating_pow(doublings))
        .min(max)
}

/// Whether a failed batch may succeed on another try. Only what the caller sent can make a batch
/// fail for good; anything about our side (unreachable, overloaded, a bug) is retried, since a
/// batch once acknowledged to its client must not be dropped.
pub fn worth_retrying(code: ErrorCode) -> bool {
    !matches!(
        code,
        ErrorCode::BadRequest
            | ErrorCode::NotFound
            | ErrorCode::Forbidden
            | ErrorCode::Unauthorized
            | ErrorCode::PayloadTooLarge
    )
}

struct Worker {
    ingest: Arc<Ingest>,
    queue: Arc<dyn WorkQueue>,
    facts: Arc<dyn Announcer>,
    options: EventsQueueOptions,
}

impl Worker {
    async fn run(self: Arc<Self>) {
        loop {
            let consumer = self
                .queue
                .consumer(
                    QUEUE,
                    ConsumerOptions {
                        ack_wait: self.options.ack_wait,
                        max_deliveries: None,
                    },
                )
                .await;
            let mut consumer = match consumer {
                Ok(consumer) => consumer,
                Err(error) => {
                    tracing::warn!(%error, "cannot open the events queue; trying again");
                    tokio::time::sleep(REOPEN_DELAY).await;
                    continue;
                }
            };
            loop {
                match consumer.next(PULL_WAIT).await {
                    Ok(Some(item)) => self.settle(item).await,
                    Ok(None) => {}
                    Err(error) => {
                        tracing::warn!(%error, "the events queue failed; opening it again");
                        tokio::time::sleep(REOPEN_DELAY).await;
                        break;
                    }
                }
            }
        }
    }

    /// Inserts one batch and settles its delivery.
    async fn settle(&self, item: WorkItem) {
        let batch_id = item.id().to_string();
        let request = match IngestDataRequest::decode(item.payload().clone()) {
            Ok(request) => request,
            Err(error) => {
                tracing::error!(batch_id, %error, "unreadable batch in the events queue; dropped");
                log_bus_error(&batch_id, item.give_up().await);
                return;
            }
        };
        let wait = request.wait;
        let deliveries = item.deliveries();
        let outcome = self.ingest_with_progress(&item, request, &batch_id).await;
        match outcome {
            Ok(response) => {
                log_bus_error(&batch_id, item.ack().await);
                if wait {
                    self.announce(&batch_id, STORED, response.encode_to_vec())
                        .await;
                }
            }
            Err(error) if worth_retrying(error.code) => {
                let delay = retry_delay(deliveries, self.options.retry_backoff_max);
                tracing::warn!(
                    batch_id,
                    deliveries,
                    delay_ms = delay.as_millis() as u64,
                    %error,
                    "queued batch not stored; trying again"
                );
                log_bus_error(&batch_id, item.retry_after(delay).await);
            }
            Err(error) => {
                tracing::warn!(batch_id, %error, "queued batch refused; dropped");
                log_bus_error(&batch_id, item.ack().await);
                if wait {
                    self.announce(&batch_id, FAILED, error.to_status().encode_to_vec())
                        .await;
                }
            }
        }
    }

    /// Runs the insert, telling the queue every third of `ack_wait` that it is still going.
    async fn ingest_with_progress(
        &self,
        item: &WorkItem,
        request: IngestDataRequest,
        batch_id: &str,
    ) -> Result<roost_proto::ingest::v1::IngestDataResponse, ServiceError> {
        let redelivered = item.deliveries() > 1;
        let ingest = self.ingest.ingest_queued(request, batch_id, redelivered);
        tokio::pin!(ingest);
        let period = (self.options.ack_wait / 3).max(Duration::from_millis(100));
        let mut progress = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        loop {
            tokio::select! {
                outcome = &mut ingest => return outcome,
                _ = progress.tick() => {
                    if let Err(error) = item.in_progress().await {
                        tracing::warn!(batch_id, %error, "cannot report progress of a queued batch");
                    }
                }
            }
        }
    }

    async fn announce(&self, batch_id: &str, outcome: &str, payload: Vec<u8>) {
        let subject = done_subject(&self.options.done_prefix, batch_id, outcome);
        if let Err(error) = self.facts.announce(&subject, Bytes::from(payload)).await {
            tracing::warn!(batch_id, %error, "cannot announce a settled batch");
        }
    }
}

/// A failed acknowledgement only means the batch comes again; the redelivery finds its rows.
fn log_bus_error(batch_id: &str, result: Result<(), BusError>) {
    if let Err(error) = result {
        tracing::warn!(batch_id, %error, "cannot settle a queued batch; it will come again");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_wait_twice_as_long_each_time_up_to_the_cap() {
        let max = Duration::from_secs(10);
        assert_eq!(retry_delay(1, max), Duration::from_millis(100));
        assert_eq!(retry_delay(2, max), Duration::from_millis(200));
        assert_eq!(retry_delay(4, max), Duration::from_millis(800));
        assert_eq!(retry_delay(8, max), Duration::from_millis(12800).min(max));
        assert_eq!(retry_delay(1_000, max), max);
        assert_eq!(retry_delay(0, max), Duration::from_millis(100));
        assert_eq!(
            retry_delay(3, Duration::from_millis(250)),
            Duration::from_millis(250)
        );
    }

    #[test]
    fn only_what_the_caller_sent_fails_a_batch_for_good() {
        assert!(!worth_retrying(ErrorCode::BadRequest));
        assert!(!worth_retrying(ErrorCode::NotFound));
        for code in [
            ErrorCode::Unavailable,
            ErrorCode::Timeout,
            ErrorCode::Internal,
            ErrorCode::TooManyRequests,
            ErrorCode::Conflict,
        ] {
            assert!(worth_retrying(code), "{code:?}");
        }
    }
}

//! The message bus seam: facts announced to every interested process (a data source changed, a
//! job finished) and durable queues for work that must not be lost (accepted events, jobs).
//!
//! Two implementations of the same traits: [`InProcessBus`] (tokio channels, for one process)
//! and [`NatsBus`] (facts on core NATS, work queues on JetStream). Both keep the same semantics,
//! checked by one conformance suite (`tests/conformance.rs`):
//!
//! - facts are at most once: a subscriber sees the facts announced after it subscribed, and may
//!   miss some if it falls behind or the connection drops, so caches built on them also expire;
//! - work is at least once: `enqueue` returns once the message is stored, a retry with the same
//!   id within the duplicate window is not stored again, and a delivered message comes back after
//!   the consumer's `ack_wait` unless it was acknowledged, so a worker acknowledges only once the
//!   work is done (and must tolerate a second delivery).
//!
//! - a lease has at most one holder at a time, for as long as the holder renews it within its
//!   time to live (`Leases`), so one scheduler of many decides what runs; a holder that stops
//!   renewing loses it when the time runs out. NATS leases compare expiry times of different
//!   processes: their clocks must agree to well within the time to live.
//!
//! This crate knows nothing of services; it carries bytes.

mod changes;
mod memory;
mod nats;
mod subject;

pub use changes::{
    CatalogChanges, ChangeGuard, ChangeStamp, FOLLOWED_MAX_AGE, Follow, catalog_changed_subject,
};
pub use memory::InProcessBus;
pub use nats::{NatsBus, NatsBusOptions, stream_name_prefix};

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use thiserror::Error;

/// Errors of a bus.
#[derive(Debug, Error)]
pub enum BusError {
    /// The bus cannot be reached.
    #[error("bus unavailable: {0}")]
    Unavailable(String),
    /// This implementation does not offer the operation.
    #[error("not supported by this bus: {0}")]
    Unsupported(&'static str),
    /// A subject, pattern or queue name that the bus cannot use.
    #[error("invalid {what} {name:?}: {reason}")]
    InvalidName {
        /// Subject, pattern or queue.
        what: &'static str,
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The bus refused the operation (a JetStream API error, a stream configured otherwise).
    #[error("bus refused: {0}")]
    Refused(String),
}

/// A fact as a subscriber receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fact {
    /// The subject it was announced on.
    pub subject: String,
    /// What was announced.
    pub payload: Bytes,
}

/// The facts of a subscription, in the order they were announced.
pub type FactStream = BoxStream<'static, Fact>;

/// Facts: fire-and-forget messages every subscriber of a subject sees.
#[async_trait]
pub trait Announcer: Send + Sync + 'static {
    /// Publishes `payload` on `subject` (e.g. `roost.catalog.changed.<workspace>`).
    async fn announce(&self, subject: &str, payload: Bytes) -> Result<(), BusError>;

    /// Returns once the bus has taken every fact this handle announced before: a subscriber
    /// then receives them before anything announced (or requested over NATS) afterwards, from
    /// any connection.
    async fn flush(&self) -> Result<(), BusError>;

    /// Receives the facts announced, once this returns, on subjects matching `pattern`: `*`
    /// matches one token, a final `>` matches one or more (`roost.catalog.changed.>`).
    async fn subscribe(&self, pattern: &str) -> Result<FactStream, BusError>;

    /// The connection facts arrive on: `None` while there is none (facts announced now are
    /// missed); otherwise a number that changes with every reconnection (facts announced while
    /// disconnected were missed, though the subscriptions carry on).
    fn connection_epoch(&self) -> Option<u64>;
}

/// What [`WorkQueue::enqueue`] did with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// The message is stored.
    Stored,
    /// A message with the same id was stored within the duplicate window; nothing was added.
    Duplicate,
}

/// How a consumer takes messages from a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerOptions {
    /// How long a delivered message may stay unacknowledged before it is delivered again.
    pub ack_wait: Duration,
    /// Deliveries after which an unacknowledged message is no longer delivered (`None`: no limit).
    pub max_deliveries: Option<u32>,
}

impl Default for ConsumerOptions {
    fn default() -> Self {
        ConsumerOptions {
            ack_wait: Duration::from_secs(30),
            max_deliveries: None,
        }
    }
}

/// Durable work: a message is stored before `enqueue` returns and redelivered until acknowledged.
/// Queue names are letters, digits, `_` and `-`.
#[async_trait]
pub trait WorkQueue: Send + Sync + 'static {
    /// Stores `payload` on `queue` under `id` (a retry with the same id is not stored twice).
    async fn enqueue(&self, queue: &str, id: &str, payload: Bytes) -> Result<Enqueued, BusError>;

    /// The consumer the workers of `queue` share: each message goes to one of them, and one that
    /// is not acknowledged in time goes to whichever asks next. Opening it again (in this or
    /// another process) joins the same consumer; the latest options apply.
    async fn consumer(
        &self,
        queue: &str,
        options: ConsumerOptions,
    ) -> Result<Box<dyn WorkConsumer>, BusError>;

    /// Messages stored on `queue` and not yet acknowledged (delivered or not).
    async fn pending(&self, queue: &str) -> Result<u64, BusError>;

    /// Removes `queue` with its messages and consumer; removing a missing queue is not an error.
    async fn delete_queue(&self, queue: &str) -> Result<(), BusError>;
}

/// Takes messages from a queue (see [`WorkQueue::consumer`]).
#[async_trait]
pub trait WorkConsumer: Send + 'static {
    /// The next message, waiting at most `wait` for one; `None` when none came.
    async fn next(&mut self, wait: Duration) -> Result<Option<WorkItem>, BusError>;
}

/// A delivered message. Acknowledge it with [`WorkItem::ack`] once the work is done; dropping it
/// unacknowledged (a crash) leaves it to be delivered again after `ack_wait`.
pub struct WorkItem {
    id: String,
    payload: Bytes,
    deliveries: u64,
    acknowledger: Box<dyn Acknowledger>,
}

impl std::fmt::Debug for WorkItem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkItem")
            .field("id", &self.id)
            .field("payload_bytes", &self.payload.len())
            .field("deliveries", &self.deliveries)
            .finish_non_exhaustive()
    }
}

impl WorkItem {
    /// The id it was enqueued under.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// What was enqueued.
    pub fn payload(&self) -> &Bytes {
        &self.payload
    }

    /// How many times this message has been delivered, this delivery included (1 the first
    /// time; more means an earlier worker did not acknowledge it, and may have done part of it).
    pub fn deliveries(&self) -> u64 {
        self.deliveries
    }

    /// The work is done: the message is removed and never delivered again.
    pub async fn ack(self) -> Result<(), BusError> {
        self.acknowledger.ack().await
    }

    /// The work failed and should be tried again after `delay`.
    pub async fn retry_after(self, delay: Duration) -> Result<(), BusError> {
        self.acknowledger.retry_after(delay).await
    }

    /// The work is still going: restarts the `ack_wait` clock, so a long job is not handed to
    /// another worker.
    pub async fn in_progress(&self) -> Result<(), BusError> {
        self.acknowledger.in_progress().await
    }

    /// The message can never be processed: it is removed without being done.
    pub async fn give_up(self) -> Result<(), BusError> {
        self.acknowledger.give_up().await
    }
}

/// Named leases: at most one holder of a name at a time, cluster-wide. Names are letters, digits,
/// `_` and `-`.
#[async_trait]
pub trait Leases: Send + Sync + 'static {
    /// Takes the lease `name` for `holder` for `ttl` from now, or renews it when `holder` already
    /// has it. True when `holder` holds it on return; false when someone else holds it unexpired.
    async fn acquire(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool, BusError>;

    /// Gives the lease up when `holder` has it, so another may take it at once.
    async fn release(&self, name: &str, holder: &str) -> Result<(), BusError>;
}

/// How an implementation settles one delivery.
#[async_trait]
trait Acknowledger: Send + Sync + 'static {
    async fn ack(&self) -> Result<(), BusError>;
    async fn retry_after(&self, delay: Duration) -> Result<(), BusError>;
    async fn in_progress(&self) -> Result<(), BusError>;
    async fn give_up(&self) -> Result<(), BusError>;
}

/// Checks a queue name: it becomes part of a stream name and a subject.
fn check_queue_name(queue: &str) -> Result<(), BusError> {
    let invalid = |reason| {
        Err(BusError::InvalidName {
            what: "queue",
            name: queue.to_string(),
            reason,
        })
    };
    if queue.is_empty() {
        return invalid("it is empty");
    }
    if queue.len() > 200 {
        return invalid("it is longer than 200 characters");
    }
    if !queue
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return invalid("only letters, digits, '_' and '-' are allowed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_deployment_has_its_own_streams() {
        assert_eq!(stream_name_prefix("roost.rpc"), "ROOST_RPC_");
        assert_eq!(
            stream_name_prefix("roost.it0a1b2c.rpc"),
            "ROOST_IT0A1B2C_RPC_"
        );
        assert_ne!(
            stream_name_prefix("roost.a.rpc"),
            stream_name_prefix("roost.b.rpc")
        );
    }

    #[test]
    fn queue_names_are_single_safe_tokens() {
        assert!(check_queue_name("ingest_events").is_ok());
        assert!(check_queue_name("jobs-populate-2").is_ok());
        for bad in ["", "a.b", "a b", "a*", "a>", "é"] {
            assert!(check_queue_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_queue_name(&"q".repeat(201)).is_err());
    }
}

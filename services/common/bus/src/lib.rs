//! The message bus seam: facts announced to every interested process (a data source changed, a
//! job finished) and durable queues for work that must not be lost (accepted events, jobs).
//!
//! Only the contract exists so far. `roost local` calls services in-process and needs no bus; the
//! in-process and NATS (core + JetStream) implementations come with the distributed mode, and a
//! caller that asks this crate for something it cannot do gets [`BusError::Unsupported`].

use async_trait::async_trait;
use bytes::Bytes;
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
}

/// Facts: fire-and-forget messages every subscriber of a subject sees.
#[async_trait]
pub trait Announcer: Send + Sync + 'static {
    /// Publishes `payload` on `subject` (e.g. `roost.catalog.changed.<workspace>`).
    async fn announce(&self, subject: &str, payload: Bytes) -> Result<(), BusError>;
}

/// Durable work: a message is stored before `enqueue` returns and redelivered until acknowledged.
#[async_trait]
pub trait WorkQueue: Send + Sync + 'static {
    /// Stores `payload` on `queue` under `id` (a retry with the same id is not stored twice).
    async fn enqueue(&self, queue: &str, id: &str, payload: Bytes) -> Result<(), BusError>;
}

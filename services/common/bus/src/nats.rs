//! The NATS bus: facts on core NATS, work queues on JetStream. Each queue is a stream with work
//! queue retention (a message is removed once acknowledged) on the subject
//! `<work_subject_prefix>.<queue>`, created on first use, deduplicated by `Nats-Msg-Id` within
//! the duplicate window, and consumed through one durable pull consumer with explicit acks.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::ErrorCode as JetStreamCode;
use async_nats::jetstream::consumer::{AckPolicy, PullConsumer, pull};
use async_nats::jetstream::context::{
    ConsumerInfoErrorKind, CreateStreamErrorKind, GetStreamErrorKind, PublishErrorKind,
};
use async_nats::jetstream::kv;
use async_nats::jetstream::message::{AckKind, Acker};
use async_nats::jetstream::stream::{self, RetentionPolicy, StorageType};
use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;

use crate::subject::{check_pattern, check_subject};
use crate::{
    Acknowledger, Announcer, BusError, ConsumerOptions, Enqueued, Fact, FactStream, Leases,
    WorkConsumer, WorkItem, WorkQueue, check_queue_name,
};

/// The durable consumer every worker of a queue joins.
const CONSUMER_NAME: &str = "workers";

/// Tries at creating a queue's stream when the server fails to set up its storage.
const STREAM_CREATE_ATTEMPTS: u64 = 4;

/// The shortest wait a pull request is sent with (JetStream needs a positive expiry).
const MIN_PULL_WAIT: Duration = Duration::from_millis(10);

/// `roost.rpc` → `ROOST_RPC_`: a stream name may hold no `.`, `*`, `>` or spaces.
pub fn stream_name_prefix(subject_prefix: &str) -> String {
    let mut prefix: String = subject_prefix
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    prefix.push('_');
    prefix
}

/// How the NATS bus names and keeps its streams.
#[derive(Debug, Clone)]
pub struct NatsBusOptions {
    /// Work queue subjects are `<prefix>.<queue>`.
    pub work_subject_prefix: String,
    /// Stream names are `<prefix><queue>`.
    pub stream_prefix: String,
    /// How long a message id is remembered to drop retried enqueues.
    pub duplicate_window: Duration,
    /// Copies of each stream in a JetStream cluster.
    pub replicas: usize,
    /// Messages older than this are removed even if nobody acknowledged them (zero: never).
    pub max_age: Duration,
    /// The key-value bucket that holds leases.
    pub lease_bucket: String,
}

impl Default for NatsBusOptions {
    fn default() -> Self {
        NatsBusOptions {
            work_subject_prefix: "roost.work".to_string(),
            stream_prefix: "ROOST_WORK_".to_string(),
            duplicate_window: Duration::from_secs(120),
            replicas: 1,
            max_age: Duration::ZERO,
            lease_bucket: "ROOST_LEASES".to_string(),
        }
    }
}

/// A bus on a NATS connection with JetStream. Clones share the connection.
#[derive(Clone)]
pub struct NatsBus {
    client: async_nats::Client,
    jetstream: async_nats::jetstream::Context,
    options: NatsBusOptions,
    /// Streams known to exist, so enqueue does not ask JetStream each time.
    known_streams: Arc<Mutex<HashSet<String>>>,
    /// The lease bucket, once opened.
    leases: Arc<tokio::sync::OnceCell<kv::Store>>,
}

impl std::fmt::Debug for NatsBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsBus")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

fn unavailable(error: impl std::fmt::Display) -> BusError {
    BusError::Unavailable(error.to_string())
}

impl NatsBus {
    /// A bus on `client`.
    pub fn new(client: async_nats::Client, options: NatsBusOptions) -> Self {
        let jetstream = async_nats::jetstream::new(client.clone());
        NatsBus {
            client,
            jetstream,
            options,
            known_streams: Arc::default(),
            leases: Arc::default(),
        }
    }

    /// Connects to `url` and returns a bus on that connection.
    pub async fn connect(url: &str, options: NatsBusOptions) -> Result<Self, BusError> {
        let client = async_nats::connect(url).await.map_err(unavailable)?;
        Ok(Self::new(client, options))
    }

    /// The stream that holds `queue`.
    pub fn stream_name(&self, queue: &str) -> String {
        format!("{}{queue}", self.options.stream_prefix)
    }

    /// The subject messages of `queue` are published on.
    pub fn work_subject(&self, queue: &str) -> String {
        format!("{}.{queue}", self.options.work_subject_prefix)
    }

    fn forget_stream(&self, name: &str) {
        self.known_streams
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(name);
    }

    /// Creates the queue's stream unless it exists (creating an existing one with the same
    /// configuration is a no-op, so concurrent first uses are safe).
    async fn ensure_stream(&self, queue: &str) -> Result<stream::Stream, BusError> {
        check_queue_name(queue)?;
        let name = self.stream_name(queue);
        let config = stream::Config {
            name: name.clone(),
            subjects: vec![self.work_subject(queue)],
            retention: RetentionPolicy::WorkQueue,
            storage: StorageType::File,
            num_replicas: self.options.replicas.max(1),
            duplicate_window: self.options.duplicate_window,
            max_age: self.options.max_age,
            ..Default::default()
        };
        let mut attempt = 1;
        let stream = loop {
            match self.jetstream.get_or_create_stream(config.clone()).await {
                Ok(stream) => break stream,
                // The server failed to create the stream's storage: on a NATS 2.9 server this
                // happens when another stream of the account is deleted at the same moment (the
                // account's directory is removed under the new stream); it passes on a retry.
                Err(error)
                    if attempt < STREAM_CREATE_ATTEMPTS
                        && matches!(
                            error.kind(),
                            CreateStreamErrorKind::JetStream(ref jetstream)
                                if jetstream.kind() == JetStreamCode::STREAM_CREATE
                        ) =>
                {
                    tracing::warn!(stream = name, %error, attempt, "retrying stream creation");
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
                }
                Err(error) => return Err(BusError::Refused(format!("stream {name}: {error}"))),
            }
        };
        self.known_streams
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name);
        Ok(stream)
    }

    async fn publish(
        &self,
        queue: &str,
        id: &str,
        payload: Bytes,
    ) -> Result<Enqueued, PublishOutcome> {
        let mut headers = HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, id);
        let acknowledgment = self
            .jetstream
            .publish_with_headers(self.work_subject(queue), headers, payload)
            .await
            .map_err(|error| PublishOutcome::Failed(unavailable(error)))?;
        // Waiting for JetStream's PubAck is what makes the message durable before we return.
        match acknowledgment.await {
            Ok(ack) if ack.duplicate => Ok(Enqueued::Duplicate),
            Ok(_) => Ok(Enqueued::Stored),
            Err(error) if error.kind() == PublishErrorKind::StreamNotFound => {
                Err(PublishOutcome::NoStream)
            }
            Err(error) => Err(PublishOutcome::Failed(unavailable(error))),
        }
    }
}

/// Returns once the NATS server has processed everything this connection sent before (its
/// subscriptions in particular). `Client::flush` only empties the socket buffer, so a fact
/// announced from another connection right after it can still miss a new subscription; the
/// no-responders answer to a request nobody serves comes back only after the server read it.
async fn round_trip(client: &async_nats::Client) -> Result<(), BusError> {
    let subject = format!("{}.round_trip", client.new_inbox());
    match client.request(subject, Bytes::new()).await {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == async_nats::RequestErrorKind::NoResponders => Ok(()),
        Err(error) => Err(unavailable(error)),
    }
}

enum PublishOutcome {
    /// Nobody stores the subject: the stream was removed behind our back.
    NoStream,
    Failed(BusError),
}

#[async_trait]
impl Announcer for NatsBus {
    async fn announce(&self, subject: &str, payload: Bytes) -> Result<(), BusError> {
        check_subject(subject)?;
        self.client
            .publish(subject.to_string(), payload)
            .await
            .map_err(unavailable)
    }

    async fn flush(&self) -> Result<(), BusError> {
        round_trip(&self.client).await
    }

    async fn subscribe(&self, pattern: &str) -> Result<FactStream, BusError> {
        check_pattern(pattern)?;
        let subscriber = self
            .client
            .subscribe(pattern.to_string())
            .await
            .map_err(unavailable)?;
        // So that facts announced after this returns, from any connection, are seen.
        round_trip(&self.client).await?;
        Ok(subscriber
            .map(|message| Fact {
                subject: message.subject.to_string(),
                payload: message.payload,
            })
            .boxed())
    }

    fn connection_epoch(&self) -> Option<u64> {
        // The state first: the client counts a connection before it reports it connected, so
        // a connection seen as up is already counted.
        match self.client.connection_state() {
            async_nats::connection::State::Connected => {
                Some(self.client.statistics().connects.load(Ordering::Acquire))
            }
            _ => None,
        }
    }
}

#[async_trait]
impl WorkQueue for NatsBus {
    async fn enqueue(&self, queue: &str, id: &str, payload: Bytes) -> Result<Enqueued, BusError> {
        check_queue_name(queue)?;
        if id.is_empty() {
            return Err(BusError::InvalidName {
                what: "message id",
                name: String::new(),
                reason: "it is empty",
            });
        }
        let name = self.stream_name(queue);
        let known = self
            .known_streams
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&name);
        if !known {
            self.ensure_stream(queue).await?;
        }
        match self.publish(queue, id, payload.clone()).await {
            Ok(outcome) => Ok(outcome),
            Err(PublishOutcome::NoStream) => {
                self.forget_stream(&name);
                self.ensure_stream(queue).await?;
                match self.publish(queue, id, payload).await {
                    Ok(outcome) => Ok(outcome),
                    Err(PublishOutcome::NoStream) => Err(BusError::Refused(format!(
                        "no stream stores {}",
                        self.work_subject(queue)
                    ))),
                    Err(PublishOutcome::Failed(error)) => Err(error),
                }
            }
            Err(PublishOutcome::Failed(error)) => Err(error),
        }
    }

    async fn consumer(
        &self,
        queue: &str,
        options: ConsumerOptions,
    ) -> Result<Box<dyn WorkConsumer>, BusError> {
        let stream = self.ensure_stream(queue).await?;
        let config = pull::Config {
            durable_name: Some(CONSUMER_NAME.to_string()),
            ack_policy: AckPolicy::Explicit,
            ack_wait: options.ack_wait,
            max_deliver: options.max_deliveries.map_or(-1, i64::from),
            ..Default::default()
        };
        let consumer: PullConsumer = stream.create_consumer(config).await.map_err(|error| {
            BusError::Refused(format!("consumer of {}: {error}", self.stream_name(queue)))
        })?;
        Ok(Box::new(NatsConsumer { consumer }))
    }

    async fn pending(&self, queue: &str) -> Result<u64, BusError> {
        check_queue_name(queue)?;
        let name = self.stream_name(queue);
        match self.jetstream.get_stream(&name).await {
            Ok(mut stream) => {
                let info = stream
                    .info()
                    .await
                    .map_err(|error| BusError::Refused(format!("stream {name}: {error}")))?;
                Ok(info.state.messages)
            }
            Err(error) if is_stream_not_found(error.kind()) => Ok(0),
            Err(error) => Err(BusError::Refused(format!("stream {name}: {error}"))),
        }
    }

    async fn delete_queue(&self, queue: &str) -> Result<(), BusError> {
        check_queue_name(queue)?;
        let name = self.stream_name(queue);
        self.forget_stream(&name);
        match self.jetstream.delete_stream(&name).await {
            Ok(_) => Ok(()),
            Err(error) if is_stream_not_found(error.kind()) => Ok(()),
            Err(error) => Err(BusError::Refused(format!("delete stream {name}: {error}"))),
        }
    }
}

fn is_stream_not_found(kind: GetStreamErrorKind) -> bool {
    matches!(kind, GetStreamErrorKind::JetStream(error) if error.kind() == JetStreamCode::STREAM_NOT_FOUND)
}

struct NatsConsumer {
    consumer: PullConsumer,
}

impl NatsConsumer {
    /// A pull on a consumer that no longer exists just comes back empty; after an empty pull,
    /// ask, so a worker whose queue was deleted learns it (one API call per idle wait).
    async fn check_consumer_exists(&self) -> Result<(), BusError> {
        match self.consumer.get_info().await {
            Ok(_) => Ok(()),
            Err(error) => match error.kind() {
                ConsumerInfoErrorKind::NotFound | ConsumerInfoErrorKind::StreamNotFound => {
                    Err(BusError::Refused("the queue was deleted".to_string()))
                }
                ConsumerInfoErrorKind::JetStream(jetstream)
                    if jetstream.kind() == JetStreamCode::CONSUMER_NOT_FOUND
                        || jetstream.kind() == JetStreamCode::STREAM_NOT_FOUND =>
                {
                    Err(BusError::Refused("the queue was deleted".to_string()))
                }
                _ => Err(unavailable(error)),
            },
        }
    }
}

#[async_trait]
impl WorkConsumer for NatsConsumer {
    async fn next(&mut self, wait: Duration) -> Result<Option<WorkItem>, BusError> {
        // One message per pull request: a prefetched message's ack wait would run while it sits
        // in a buffer, and it would be redelivered to another worker before this one looks.
        let mut batch = self
            .consumer
            .batch()
            .max_messages(1)
            .expires(wait.max(MIN_PULL_WAIT))
            .messages()
            .await
            .map_err(unavailable)?;
        let message = match batch.next().await {
            None => return self.check_consumer_exists().await.map(|()| None),
            Some(Err(error)) => return Err(unavailable(error)),
            Some(Ok(message)) => message,
        };
        let deliveries = message
            .info()
            .map_err(|error| BusError::Refused(format!("unreadable delivery info: {error}")))?
            .delivered;
        let (message, acker) = message.split();
        let id = message
            .headers
            .as_ref()
            .and_then(|headers| headers.get(async_nats::header::NATS_MESSAGE_ID))
            .map(|id| id.as_str().to_string())
            .unwrap_or_default();
        Ok(Some(WorkItem {
            id,
            payload: message.payload,
            deliveries: u64::try_from(deliveries).unwrap_or(1),
            acknowledger: Box::new(NatsDelivery { acker }),
        }))
    }
}

/// One delivery of a JetStream message.
struct NatsDelivery {
    acker: Acker,
}

#[async_trait]
impl Acknowledger for NatsDelivery {
    async fn ack(&self) -> Result<(), BusError> {
        // Waits for JetStream to confirm, so a returned ack is recorded.
        self.acker.double_ack().await.map_err(unavailable)
    }

    async fn retry_after(&self, delay: Duration) -> Result<(), BusError> {
        self.acker
            .ack_with(AckKind::Nak(Some(delay)))
            .await
            .map_err(unavailable)
    }

    async fn in_progress(&self) -> Result<(), BusError> {
        self.acker
            .ack_with(AckKind::Progress)
            .await
            .map_err(unavailable)
    }

    async fn give_up(&self) -> Result<(), BusError> {
        self.acker
            .double_ack_with(AckKind::Term)
            .await
            .map_err(unavailable)
    }
}

/// A lease as stored: who holds it and until when (milliseconds since the Unix epoch).
#[derive(Debug, PartialEq, Eq)]
struct LeaseClaim {
    expires_at_ms: u128,
    holder: String,
}

impl LeaseClaim {
    fn encode(&self) -> Bytes {
        Bytes::from(format!("{} {}", self.expires_at_ms, self.holder))
    }

    fn decode(value: &[u8]) -> Option<LeaseClaim> {
        let text = std::str::from_utf8(value).ok()?;
        let (expires, holder) = text.split_once(' ')?;
        Some(LeaseClaim {
            expires_at_ms: expires.parse().ok()?,
            holder: holder.to_string(),
        })
    }
}

fn unix_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis()
}

impl NatsBus {
    async fn lease_store(&self) -> Result<&kv::Store, BusError> {
        self.leases
            .get_or_try_init(|| async {
                let bucket = &self.options.lease_bucket;
                if let Ok(store) = self.jetstream.get_key_value(bucket).await {
                    return Ok(store);
                }
                // The key-value stream as `create_key_value` would make it; made by hand because
                // that call first asks for account details that NATS servers before 2.10 answer
                // in a shape async-nats cannot read.
                self.jetstream
                    .get_or_create_stream(stream::Config {
                        name: format!("KV_{bucket}"),
                        subjects: vec![format!("$KV.{bucket}.>")],
                        max_messages_per_subject: 1,
                        storage: StorageType::File,
                        allow_rollup: true,
                        deny_delete: true,
                        allow_direct: true,
                        discard: stream::DiscardPolicy::New,
                        num_replicas: self.options.replicas,
                        ..stream::Config::default()
                    })
                    .await
                    .map_err(unavailable)?;
                self.jetstream
                    .get_key_value(bucket)
                    .await
                    .map_err(unavailable)
            })
            .await
    }

    /// Writes `claim` over the entry at `revision` (or creates it when there is none); false
    /// when another writer got there first.
    async fn write_lease(
        &self,
        store: &kv::Store,
        name: &str,
        claim: &LeaseClaim,
        revision: Option<u64>,
    ) -> Result<bool, BusError> {
        let written = match revision {
            Some(revision) => match store.update(name, claim.encode(), revision).await {
                Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => return Ok(false),
                other => other.map(drop).map_err(unavailable),
            },
            None => match store.create(name, claim.encode()).await {
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => return Ok(false),
                other => other.map(drop).map_err(unavailable),
            },
        };
        written.map(|()| true)
    }
}

#[async_trait]
impl Leases for NatsBus {
    async fn acquire(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool, BusError> {
        check_queue_name(name)?;
        let store = self.lease_store().await?;
        let now = unix_ms();
        let claim = LeaseClaim {
            expires_at_ms: now + ttl.as_millis(),
            holder: holder.to_string(),
        };
        let entry = store.entry(name).await.map_err(unavailable)?;
        let revision = match entry {
            Some(entry) if entry.operation == kv::Operation::Put => {
                let current = LeaseClaim::decode(&entry.value);
                let ours = current.as_ref().is_some_and(|c| c.holder == holder);
                let expired = current.is_none_or(|c| c.expires_at_ms <= now);
                if !ours && !expired {
                    return Ok(false);
                }
                Some(entry.revision)
            }
            // Never written, or released: `create` takes a deleted key too.
            _ => None,
        };
        self.write_lease(store, name, &claim, revision).await
    }

    async fn release(&self, name: &str, holder: &str) -> Result<(), BusError> {
        check_queue_name(name)?;
        let store = self.lease_store().await?;
        let Some(entry) = store.entry(name).await.map_err(unavailable)? else {
            return Ok(());
        };
        let ours = entry.operation == kv::Operation::Put
            && LeaseClaim::decode(&entry.value).is_some_and(|c| c.holder == holder);
        if ours {
            // A failed compare means someone took it since: then it is not ours to release.
            let expired = LeaseClaim {
                expires_at_ms: 0,
                holder: String::new(),
            };
            self.write_lease(store, name, &expired, Some(entry.revision))
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod lease_tests {
    use super::LeaseClaim;

    #[test]
    fn a_lease_claim_reads_back_and_garbage_reads_as_none() {
        let claim = LeaseClaim {
            expires_at_ms: 1_700_000_000_123,
            holder: "scheduler host-1 42".to_string(),
        };
        assert_eq!(LeaseClaim::decode(&claim.encode()), Some(claim));
        assert_eq!(LeaseClaim::decode(b"soon someone"), None);
        assert_eq!(LeaseClaim::decode(b""), None);
    }
}

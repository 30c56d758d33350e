//! The calling side: one [`RpcClient`] per process, shared by the `Nats<Service>Client`s that
//! implement the service traits on top of it.
//!
//! Every answer comes back on a subject under one wildcard subscription of the client
//! (`<inbox>.<call id>`) and is routed to its call by the id, so a call costs one publish and no
//! subscribe/unsubscribe round trips, and multi-message answers need nothing extra.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use async_nats::{HeaderMap, Message};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use roost_proto::query::v1::ExecuteSqlChunk;
use roost_proto::{ErrorCode, ServiceError, SqlAnswer};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::RpcError;
use crate::reassembly::{ChannelMessages, FrameReceiver, ReceiveError};
use crate::wire::{self, Frame};

/// How a client calls services.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Subjects start with this; it must be the servers' prefix.
    pub subject_prefix: String,
    /// How long a call may take before it fails with `Timeout`; the server gets it as the deadline.
    pub timeout: Duration,
    /// How long to wait for each further frame of a multi-message answer before failing with
    /// `Timeout` (a lost chunk, a replica that died mid-answer).
    pub chunk_timeout: Duration,
    /// Largest frame payload this client sends; `None` follows the server's `max_payload`.
    pub max_frame_bytes: Option<usize>,
    /// Bytes of out-of-order frames held per call while waiting for a missing one.
    pub max_early_bytes: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            subject_prefix: wire::DEFAULT_SUBJECT_PREFIX.to_string(),
            timeout: Duration::from_secs(30),
            chunk_timeout: Duration::from_secs(10),
            max_frame_bytes: None,
            max_early_bytes: 64 * 1024 * 1024,
        }
    }
}

type CallTable = Arc<Mutex<HashMap<u64, mpsc::UnboundedSender<Message>>>>;

/// Calls services over NATS request/reply. Cheap to clone; every clone shares one connection and
/// one reply subscription.
#[derive(Clone)]
pub struct RpcClient {
    shared: Arc<ClientShared>,
}

impl std::fmt::Debug for RpcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcClient")
            .field("options", &self.shared.options)
            .finish_non_exhaustive()
    }
}

struct ClientShared {
    nats: async_nats::Client,
    options: ClientOptions,
    reply_prefix: String,
    calls: CallTable,
    next_call: AtomicU64,
    router: JoinHandle<()>,
}

impl Drop for ClientShared {
    fn drop(&mut self) {
        self.router.abort();
    }
}

impl RpcClient {
    /// Subscribes to this client's reply subjects on `nats` and starts routing answers to calls.
    pub async fn new(nats: async_nats::Client, options: ClientOptions) -> Result<Self, RpcError> {
        let reply_prefix = nats.new_inbox();
        let replies = format!("{reply_prefix}.*");
        let subscriber =
            nats.subscribe(replies.clone())
                .await
                .map_err(|error| RpcError::Subscribe {
                    subject: replies,
                    reason: error.to_string(),
                })?;
        let calls: CallTable = Arc::default();
        let router = tokio::spawn(route_replies(subscriber, calls.clone()));
        Ok(RpcClient {
            shared: Arc::new(ClientShared {
                nats,
                options,
                reply_prefix,
                calls,
                next_call: AtomicU64::new(0),
                router,
            }),
        })
    }

    /// The options this client was built with.
    pub fn options(&self) -> &ClientOptions {
        &self.shared.options
    }

    /// Calls a method whose answer is one message (the generated clients use this).
    pub async fn unary<Request, Response>(
        &self,
        service: &'static str,
        method: &'static str,
        request: Request,
    ) -> Result<Response, ServiceError>
    where
        Request: prost::Message,
        Response: prost::Message + Default,
    {
        let mut call = self.start(service, method, request.encode_to_vec()).await?;
        let data = match call.first_frame().await? {
            Frame::Whole(data) => data,
            Frame::Failed { error, .. } => return Err(error),
            Frame::Chunk { data, .. } => call.collect_chunks(data).await?,
            Frame::End { .. } => Bytes::new(),
            Frame::UploadTo(_) => return Err(call.protocol_error("a second upload subject")),
        };
        Response::decode(data).map_err(|error| {
            tracing::warn!(service, method, %error, "undecodable answer");
            ServiceError::internal(format!("the {service} service sent an unreadable answer"))
        })
    }

    /// Calls a method whose answer is a query result streamed in chunks (the generated clients
    /// use this). The call's timeout covers the head; each body chunk then has `chunk_timeout`.
    pub async fn stream<Request>(
        &self,
        service: &'static str,
        method: &'static str,
        request: Request,
    ) -> Result<SqlAnswer, ServiceError>
    where
        Request: prost::Message,
    {
        let mut call = self.start(service, method, request.encode_to_vec()).await?;
        let head = match call.first_frame().await? {
            Frame::Chunk { data, .. } => <ExecuteSqlChunk as prost::Message>::decode(data)
                .map_err(|_| call.protocol_error("an unreadable stream head"))?,
            Frame::Failed { error, .. } => return Err(error),
            Frame::Whole(_) | Frame::End { .. } | Frame::UploadTo(_) => {
                return Err(call.protocol_error("a stream without a head"));
            }
        };
        let first = (!head.data.is_empty()).then(|| Ok(head.data));
        let rest = futures::stream::unfold(Some(call), |state| async move {
            let mut call = state?;
            match call.next_body_chunk().await {
                Ok(Some(data)) => Some((Ok(data), Some(call))),
                Ok(None) => None,
                Err(error) => Some((Err(error), None)),
            }
        });
        Ok(SqlAnswer {
            content_type: head.content_type,
            body: futures::stream::iter(first).chain(rest).boxed(),
        })
    }

    /// The largest frame payload this client sends.
    fn frame_limit(&self) -> usize {
        let server = wire::frame_limit(self.shared.nats.server_info().max_payload);
        match self.shared.options.max_frame_bytes {
            Some(configured) => configured.clamp(1, server),
            None => server,
        }
    }

    /// Registers a call, publishes its request (uploading it in chunks when it is too large for
    /// one message) and returns the call, ready to read the answer.
    async fn start(
        &self,
        service: &'static str,
        method: &'static str,
        payload: Vec<u8>,
    ) -> Result<Call, ServiceError> {
        let options = &self.shared.options;
        let subject = wire::method_subject(&options.subject_prefix, service, method);
        let id = self.shared.next_call.fetch_add(1, Ordering::Relaxed);
        let reply = format!("{}.{id}", self.shared.reply_prefix);
        let (sender, receiver) = mpsc::unbounded_channel();
        self.shared
            .calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, sender);
        let mut call = Call {
            _registration: Registration {
                id,
                calls: self.shared.calls.clone(),
            },
            frames: FrameReceiver::new(ChannelMessages(receiver), options.max_early_bytes),
            deadline: Instant::now() + options.timeout,
            chunk_timeout: options.chunk_timeout,
            timeout: options.timeout,
            service,
            method,
        };
        let mut headers = HeaderMap::new();
        headers.insert(
            wire::HEADER_DEADLINE,
            wire::encode_deadline(SystemTime::now() + options.timeout),
        );
        let limit = self.frame_limit();
        let nats = &self.shared.nats;
        if payload.len() <= limit {
            nats.publish_with_reply_and_headers(subject, reply, headers, Bytes::from(payload))
                .await
                .map_err(|error| call.unavailable(error))?;
            return Ok(call);
        }
        headers.insert(wire::HEADER_UPLOAD, payload.len().to_string());
        nats.publish_with_reply_and_headers(subject, reply, headers, Bytes::new())
            .await
            .map_err(|error| call.unavailable(error))?;
        let target = match call.first_frame().await? {
            Frame::UploadTo(target) => target,
            Frame::Failed { error, .. } => return Err(error),
            _ => return Err(call.protocol_error("an answer before the upload")),
        };
        let chunks = wire::chunk_frames(Bytes::from(payload), limit, 0);
        let end = Frame::End {
            seq: chunks.len() as u64,
        };
        for frame in chunks.iter().chain(std::iter::once(&end)) {
            let (headers, data) = frame.to_message();
            nats.publish_with_headers(target.clone(), headers, data)
                .await
                .map_err(|error| call.unavailable(error))?;
        }
        Ok(call)
    }
}

/// Routes every message on the client's reply subjects to the call its last token names.
async fn route_replies(mut subscriber: async_nats::Subscriber, calls: CallTable) {
    while let Some(message) = subscriber.next().await {
        let Some(id) = message
            .subject
            .rsplit('.')
            .next()
            .and_then(|token| token.parse::<u64>().ok())
        else {
            continue;
        };
        let sender = calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id)
            .cloned();
        // A call that already gave up has no entry; its late frames are dropped here.
        if let Some(sender) = sender {
            let _ = sender.send(message);
        }
    }
}

/// Removes a call from the routing table when the call ends, however it ends.
struct Registration {
    id: u64,
    calls: CallTable,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.id);
    }
}

/// One call in progress.
struct Call {
    _registration: Registration,
    frames: FrameReceiver<ChannelMessages>,
    deadline: Instant,
    chunk_timeout: Duration,
    timeout: Duration,
    service: &'static str,
    method: &'static str,
}

impl Call {
    /// The first frame of the answer, within the call's deadline.
    async fn first_frame(&mut self) -> Result<Frame, ServiceError> {
        let deadline = self.deadline;
        self.frames
            .next(deadline)
            .await
            .map_err(|error| self.receive_error(error))
    }

    /// The next frame of a multi-message answer, within `chunk_timeout`.
    async fn next_frame(&mut self) -> Result<Frame, ServiceError> {
        let deadline = Instant::now() + self.chunk_timeout;
        self.frames
            .next(deadline)
            .await
            .map_err(|error| self.receive_error(error))
    }

    /// The rest of an answer that came as chunks, joined in order.
    async fn collect_chunks(&mut self, first: Bytes) -> Result<Bytes, ServiceError> {
        let mut data = BytesMut::from(first);
        loop {
            match self.next_frame().await? {
                Frame::Chunk { data: chunk, .. } => data.extend_from_slice(&chunk),
                Frame::End { .. } => return Ok(data.freeze()),
                Frame::Failed { error, .. } => return Err(error),
                Frame::Whole(_) | Frame::UploadTo(_) => {
                    return Err(self.protocol_error("an unnumbered frame inside an answer"));
                }
            }
        }
    }

    /// The next bytes of a streamed body; `None` at its end.
    async fn next_body_chunk(&mut self) -> Result<Option<Bytes>, ServiceError> {
        loop {
            match self.next_frame().await? {
                Frame::Chunk { data, .. } if data.is_empty() => continue,
                Frame::Chunk { data, .. } => return Ok(Some(data)),
                Frame::End { .. } => return Ok(None),
                Frame::Failed { error, .. } => return Err(error),
                Frame::Whole(_) | Frame::UploadTo(_) => {
                    return Err(self.protocol_error("an unnumbered frame inside a stream"));
                }
            }
        }
    }

    fn receive_error(&self, error: ReceiveError) -> ServiceError {
        let (service, method) = (self.service, self.method);
        match error {
            ReceiveError::TimedOut {
                waiting_for: 0,
                gap: false,
            } => ServiceError::new(
                ErrorCode::Timeout,
                format!(
                    "the {service} service did not answer {method} within {:?}",
                    self.timeout
                ),
            ),
            ReceiveError::TimedOut { waiting_for, .. } => ServiceError::new(
                ErrorCode::Timeout,
                format!(
                    "part {waiting_for} of the {service} service's answer to {method} did not arrive within {:?}",
                    self.chunk_timeout
                ),
            ),
            ReceiveError::NoResponders => ServiceError::new(
                ErrorCode::Unavailable,
                format!("no replica of the {service} service is serving {method}"),
            ),
            ReceiveError::Closed => ServiceError::new(
                ErrorCode::Unavailable,
                format!("the connection closed during a call to the {service} service"),
            ),
            ReceiveError::Protocol(reason) => self.protocol_error(&reason),
        }
    }

    fn protocol_error(&self, what: &str) -> ServiceError {
        tracing::warn!(
            service = self.service,
            method = self.method,
            what,
            "RPC protocol violation"
        );
        ServiceError::internal(format!(
            "the {} service answered {} with {what}",
            self.service, self.method
        ))
    }

    fn unavailable(&self, error: impl std::fmt::Display) -> ServiceError {
        tracing::warn!(service = self.service, method = self.method, %error, "cannot publish a call");
        ServiceError::new(
            ErrorCode::Unavailable,
            format!("cannot reach the {} service: {error}", self.service),
        )
    }
}

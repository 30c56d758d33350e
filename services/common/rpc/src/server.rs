//! The serving side: one queue subscription per method of a service, requests handled on their
//! own tasks with bounded concurrency, answers sent as frames (see [`crate::wire`]).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_nats::{Message, Subject, Subscriber};
use bytes::{Bytes, BytesMut};
use futures::future::BoxFuture;
use futures::stream::{BoxStream, SelectAll};
use futures::{FutureExt, Stream, StreamExt};
use roost_proto::query::v1::ExecuteSqlChunk;
use roost_proto::{ErrorCode, ServiceError, SqlAnswer};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::Instrument;

use crate::RpcError;
use crate::reassembly::{FrameReceiver, ReceiveError};
use crate::wire::{self, Frame};

/// How a server takes calls.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Subjects start with this; clients must use the same prefix.
    pub subject_prefix: String,
    /// Calls of this server that run at the same time.
    pub max_in_flight: usize,
    /// Calls that may wait for a free slot beyond `max_in_flight`; more are refused at once
    /// with `TooManyRequests`.
    pub max_queued: usize,
    /// Largest frame payload sent; `None` follows the server's `max_payload`.
    pub max_frame_bytes: Option<usize>,
    /// Largest request accepted as an upload; larger ones fail with `PayloadTooLarge`.
    pub max_request_bytes: usize,
    /// How long to wait for each chunk of an uploaded request.
    pub chunk_timeout: Duration,
    /// The deadline of a request that carries none.
    pub default_timeout: Duration,
    /// Bytes of out-of-order upload frames held per call.
    pub max_early_bytes: usize,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            subject_prefix: wire::DEFAULT_SUBJECT_PREFIX.to_string(),
            max_in_flight: 64,
            max_queued: 1024,
            max_frame_bytes: None,
            max_request_bytes: 256 * 1024 * 1024,
            chunk_timeout: Duration::from_secs(10),
            default_timeout: Duration::from_secs(30),
            max_early_bytes: 64 * 1024 * 1024,
        }
    }
}

/// What a method handler produced, before it is cut into frames.
pub(crate) enum Reply {
    /// One encoded response message, or the error.
    Unary(Result<Bytes, ServiceError>),
    /// The encoded head message and the body of a streamed answer, or the error.
    Stream(Result<(Bytes, BoxStream<'static, Result<Bytes, ServiceError>>), ServiceError>),
}

/// Runs one method of a service: decodes the request, calls the service, encodes the answer.
pub(crate) type Handler<S> = fn(Arc<S>, Bytes) -> BoxFuture<'static, Reply>;

/// One method of a service and its handler.
pub(crate) struct Route<S: ?Sized> {
    /// The method's name, snake_case, as it appears in the subject.
    pub(crate) method: &'static str,
    /// Its handler.
    pub(crate) handler: Handler<S>,
}

/// Decodes a request, runs a method that answers one message, encodes the response.
pub(crate) async fn unary<Request, Response, Call, Running>(payload: Bytes, call: Call) -> Reply
where
    Request: prost::Message + Default,
    Response: prost::Message,
    Call: FnOnce(Request) -> Running,
    Running: Future<Output = Result<Response, ServiceError>>,
{
    let request = match Request::decode(payload) {
        Ok(request) => request,
        Err(error) => return Reply::Unary(Err(undecodable(error))),
    };
    Reply::Unary(
        call(request)
            .await
            .map(|response| Bytes::from(response.encode_to_vec())),
    )
}

/// Decodes a request, runs a method that answers a streamed query result, and encodes its head
/// (an `ExecuteSqlChunk` carrying the content type).
pub(crate) async fn stream<Request, Call, Running>(payload: Bytes, call: Call) -> Reply
where
    Request: prost::Message + Default,
    Call: FnOnce(Request) -> Running,
    Running: Future<Output = Result<SqlAnswer, ServiceError>>,
{
    let request = match Request::decode(payload) {
        Ok(request) => request,
        Err(error) => return Reply::Stream(Err(undecodable(error))),
    };
    Reply::Stream(call(request).await.map(|answer| {
        let head = ExecuteSqlChunk {
            content_type: answer.content_type,
            data: Bytes::new(),
        };
        (
            Bytes::from(prost::Message::encode_to_vec(&head)),
            answer.body,
        )
    }))
}

fn undecodable(error: prost::DecodeError) -> ServiceError {
    tracing::warn!(%error, "undecodable request");
    ServiceError::bad_request("the request could not be decoded")
}

/// A service being served. [`RpcServer::shutdown`] stops taking calls and waits for the running
/// ones; dropping the handle does the same in the background.
pub struct RpcServer {
    service: &'static str,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for RpcServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcServer")
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

impl RpcServer {
    /// Subscribes every route of `service` in the queue group of `name` and starts serving.
    /// When this returns, the subscriptions are registered with the NATS server.
    pub(crate) async fn start<S: ?Sized + Send + Sync + 'static>(
        nats: async_nats::Client,
        name: &'static str,
        service: Arc<S>,
        routes: Vec<Route<S>>,
        options: ServerOptions,
    ) -> Result<RpcServer, RpcError> {
        let group = wire::queue_group(name);
        let mut incoming = SelectAll::new();
        for (index, route) in routes.iter().enumerate() {
            let subject = wire::method_subject(&options.subject_prefix, name, route.method);
            let subscriber = nats
                .queue_subscribe(subject.clone(), group.clone())
                .await
                .map_err(|error| RpcError::Subscribe {
                    subject,
                    reason: error.to_string(),
                })?;
            incoming.push(RouteMessages { index, subscriber });
        }
        // So that calls made once `start` returns find a responder.
        crate::round_trip(&nats).await?;
        let frame_limit = match options.max_frame_bytes {
            Some(configured) => {
                configured.clamp(1, wire::frame_limit(nats.server_info().max_payload))
            }
            None => wire::frame_limit(nats.server_info().max_payload),
        };
        let slots = options.max_in_flight.max(1) + options.max_queued;
        let shared = Arc::new(ServerShared {
            nats,
            name,
            service,
            routes,
            admission: Arc::new(Semaphore::new(slots)),
            running: Arc::new(Semaphore::new(options.max_in_flight.max(1))),
            slots,
            frame_limit,
            options,
        });
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(serve(shared, incoming, stopped));
        Ok(RpcServer {
            service: name,
            stop: Some(stop),
            task,
        })
    }

    /// The name of the service served (`catalog`, ...).
    pub fn service(&self) -> &'static str {
        self.service
    }

    /// Stops taking calls (the subscriptions are drained, so requests already delivered are
    /// still answered) and returns once every running call has answered.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let task = &mut self.task;
        if let Err(error) = task.await {
            tracing::error!(service = self.service, %error, "RPC server task failed");
        }
    }

    /// Stops taking calls at once: the subscriptions are dropped without draining, so requests
    /// delivered but not yet admitted are lost (their callers time out); calls already running
    /// still answer.
    pub fn abort(self) {
        self.task.abort();
    }
}

impl Drop for RpcServer {
    fn drop(&mut self) {
        // Dropping the sender makes the serving task drain in the background.
        self.stop.take();
    }
}

/// The messages of one route's subscription, tagged with the route.
struct RouteMessages {
    index: usize,
    subscriber: Subscriber,
}

impl Stream for RouteMessages {
    type Item = (usize, Message);

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let index = self.index;
        self.subscriber
            .poll_next_unpin(cx)
            .map(|message| message.map(|message| (index, message)))
    }
}

struct ServerShared<S: ?Sized> {
    nats: async_nats::Client,
    name: &'static str,
    service: Arc<S>,
    routes: Vec<Route<S>>,
    /// Calls running or waiting for a slot; bounded so overload is refused, not queued forever.
    admission: Arc<Semaphore>,
    /// Calls running.
    running: Arc<Semaphore>,
    slots: usize,
    frame_limit: usize,
    options: ServerOptions,
}

/// The subscription loop: it only admits messages and spawns their handling, so a slow call
/// never holds up the next request.
async fn serve<S: ?Sized + Send + Sync + 'static>(
    shared: Arc<ServerShared<S>>,
    mut incoming: SelectAll<RouteMessages>,
    mut stop: oneshot::Receiver<()>,
) {
    let mut draining = false;
    loop {
        tokio::select! {
            _ = &mut stop, if !draining => {
                draining = true;
                for route in incoming.iter_mut() {
                    if let Err(error) = route.subscriber.drain().await {
                        tracing::warn!(service = shared.name, %error, "cannot drain a subscription");
                    }
                }
            }
            next = incoming.next() => match next {
                Some((index, message)) => admit(&shared, index, message),
                None => break,
            },
        }
    }
    // Every running or waiting call holds an admission permit: taking them all waits for them.
    let slots = u32::try_from(shared.slots).unwrap_or(u32::MAX);
    let _ = shared.admission.acquire_many(slots).await;
}

fn admit<S: ?Sized + Send + Sync + 'static>(
    shared: &Arc<ServerShared<S>>,
    index: usize,
    message: Message,
) {
    let Some(reply) = message.reply.clone() else {
        tracing::debug!(service = shared.name, subject = %message.subject, "request without a reply subject");
        return;
    };
    let method = shared.routes[index].method;
    match shared.admission.clone().try_acquire_owned() {
        Ok(permit) => {
            let span = tracing::debug_span!("rpc", service = shared.name, method);
            tokio::spawn(handle(shared.clone(), index, message, reply, permit).instrument(span));
        }
        Err(_) => {
            let shared = shared.clone();
            tokio::spawn(async move {
                let error = ServiceError::new(
                    ErrorCode::TooManyRequests,
                    format!("the {} service is overloaded; retry later", shared.name),
                );
                shared
                    .send(&reply, &Frame::Failed { seq: None, error })
                    .await;
            });
        }
    }
}

async fn handle<S: ?Sized + Send + Sync + 'static>(
    shared: Arc<ServerShared<S>>,
    index: usize,
    message: Message,
    reply: Subject,
    _admitted: OwnedSemaphorePermit,
) {
    let headers = message.headers.as_ref();
    let header = |name: &str| headers.and_then(|h| h.get(name)).map(|v| v.as_str());
    let remaining = match header(wire::HEADER_DEADLINE).and_then(wire::decode_deadline) {
        Some(deadline) => deadline.duration_since(SystemTime::now()).ok(),
        None => Some(shared.options.default_timeout),
    };
    let Some(remaining) = remaining.filter(|remaining| !remaining.is_zero()) else {
        shared
            .fail(
                &reply,
                timeout_error("the call's deadline passed before it started"),
            )
            .await;
        return;
    };
    let deadline = Instant::now() + remaining;
    let _running =
        match tokio::time::timeout_at(deadline, shared.running.clone().acquire_owned()).await {
            Ok(Ok(permit)) => permit,
            Ok(Err(_closed)) => return,
            Err(_) => {
                shared
                    .fail(
                        &reply,
                        timeout_error("the call's deadline passed while it waited for a free slot"),
                    )
                    .await;
                return;
            }
        };
    let upload = header(wire::HEADER_UPLOAD).map(str::to_string);
    let payload = match upload {
        None => message.payload,
        Some(declared) => match shared.receive_upload(&reply, &declared, deadline).await {
            Ok(payload) => payload,
            Err(error) => {
                shared.fail(&reply, error).await;
                return;
            }
        },
    };
    let route = &shared.routes[index];
    let outcome =
        tokio::time::timeout_at(deadline, (route.handler)(shared.service.clone(), payload)).await;
    match outcome {
        Err(_) => {
            // The handler future is dropped here: the work stops with the caller's patience.
            shared
                .fail(
                    &reply,
                    timeout_error("the call did not finish before its deadline"),
                )
                .await;
        }
        Ok(Reply::Unary(Err(error))) | Ok(Reply::Stream(Err(error))) => {
            shared.fail(&reply, error).await
        }
        Ok(Reply::Unary(Ok(response))) => shared.send_response(&reply, response).await,
        Ok(Reply::Stream(Ok((head, body)))) => shared.send_stream(&reply, head, body).await,
    }
}

fn timeout_error(message: &str) -> ServiceError {
    ServiceError::new(ErrorCode::Timeout, message)
}

impl<S: ?Sized + Send + Sync + 'static> ServerShared<S> {
    /// Publishes one frame; a failure is logged (the caller will time out).
    async fn send(&self, reply: &Subject, frame: &Frame) -> bool {
        let (headers, payload) = frame.to_message();
        match self
            .nats
            .publish_with_headers(reply.clone(), headers, payload)
            .await
        {
            Ok(()) => true,
            Err(error) => {
                tracing::warn!(service = self.name, %error, "cannot publish an answer");
                false
            }
        }
    }

    async fn fail(&self, reply: &Subject, error: ServiceError) {
        self.send(reply, &Frame::Failed { seq: None, error }).await;
    }

    /// One message when it fits, otherwise chunks and an end frame.
    async fn send_response(&self, reply: &Subject, response: Bytes) {
        if response.len() <= self.frame_limit {
            self.send(reply, &Frame::Whole(response)).await;
            return;
        }
        let chunks = wire::chunk_frames(response, self.frame_limit, 0);
        let end = Frame::End {
            seq: chunks.len() as u64,
        };
        for frame in chunks.iter().chain(std::iter::once(&end)) {
            if !self.send(reply, frame).await {
                return;
            }
        }
    }

    /// The head as chunk 0, then the body in frames of at most `frame_limit` bytes: pieces that
    /// are ready together are joined, large pieces are cut.
    async fn send_stream(
        &self,
        reply: &Subject,
        head: Bytes,
        mut body: BoxStream<'static, Result<Bytes, ServiceError>>,
    ) {
        if !self.send(reply, &Frame::Chunk { seq: 0, data: head }).await {
            return;
        }
        let mut seq = 1;
        let mut pending = BytesMut::new();
        loop {
            let item = match body.next().now_or_never() {
                Some(item) => item,
                None => {
                    // Nothing more is ready: what is pending goes out now rather than waiting.
                    if !pending.is_empty() {
                        let data = pending.split().freeze();
                        if !self.send(reply, &Frame::Chunk { seq, data }).await {
                            return;
                        }
                        seq += 1;
                    }
                    body.next().await
                }
            };
            match item {
                Some(Ok(piece)) => {
                    pending.extend_from_slice(&piece);
                    while pending.len() >= self.frame_limit {
                        let data = pending.split_to(self.frame_limit).freeze();
                        if !self.send(reply, &Frame::Chunk { seq, data }).await {
                            return;
                        }
                        seq += 1;
                    }
                }
                Some(Err(error)) => {
                    if !pending.is_empty() {
                        let data = pending.split().freeze();
                        if !self.send(reply, &Frame::Chunk { seq, data }).await {
                            return;
                        }
                        seq += 1;
                    }
                    self.send(
                        reply,
                        &Frame::Failed {
                            seq: Some(seq),
                            error,
                        },
                    )
                    .await;
                    return;
                }
                None => break,
            }
        }
        if !pending.is_empty() {
            let data = pending.split().freeze();
            if !self.send(reply, &Frame::Chunk { seq, data }).await {
                return;
            }
            seq += 1;
        }
        self.send(reply, &Frame::End { seq }).await;
    }

    /// Receives a request announced as an upload on a subject of this replica's own.
    async fn receive_upload(
        &self,
        reply: &Subject,
        declared: &str,
        deadline: Instant,
    ) -> Result<Bytes, ServiceError> {
        let limit = self.options.max_request_bytes;
        let declared: usize = declared
            .trim()
            .parse()
            .map_err(|_| ServiceError::bad_request("the upload size is not a number"))?;
        if declared > limit {
            return Err(too_large(limit));
        }
        let target = self.nats.new_inbox();
        let subscriber = self.nats.subscribe(target.clone()).await.map_err(|error| {
            ServiceError::new(
                ErrorCode::Unavailable,
                format!("cannot receive the request: {error}"),
            )
        })?;
        // The subscription was sent before this frame on the same connection, so the chunks the
        // client sends after reading it cannot arrive before the subscription exists.
        if !self.send(reply, &Frame::UploadTo(target)).await {
            return Err(ServiceError::new(
                ErrorCode::Unavailable,
                "cannot answer the upload",
            ));
        }
        let mut frames = FrameReceiver::new(subscriber, self.options.max_early_bytes);
        let mut request = BytesMut::with_capacity(declared);
        loop {
            let wait = (Instant::now() + self.options.chunk_timeout).min(deadline);
            match frames.next(wait).await {
                Ok(Frame::Chunk { data, .. }) => {
                    if request.len() + data.len() > limit {
                        return Err(too_large(limit));
                    }
                    request.extend_from_slice(&data);
                }
                Ok(Frame::End { .. }) => return Ok(request.freeze()),
                Ok(_) => {
                    return Err(ServiceError::bad_request(
                        "an upload carried a frame that is not a chunk",
                    ));
                }
                Err(ReceiveError::TimedOut { waiting_for, .. }) => {
                    return Err(timeout_error(&format!(
                        "part {waiting_for} of the request did not arrive in time"
                    )));
                }
                Err(error) => {
                    return Err(ServiceError::bad_request(format!(
                        "the upload broke off: {error:?}"
                    )));
                }
            }
        }
    }
}

fn too_large(limit: usize) -> ServiceError {
    ServiceError::new(
        ErrorCode::PayloadTooLarge,
        format!("the request is larger than {limit} bytes"),
    )
}

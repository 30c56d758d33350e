//! The serving side: tonic adapters from the service traits to the generated gRPC servers, and a
//! [`GrpcServerBuilder`] that serves them on one address with health and reflection.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, stream};
use roost_proto::query::v1::ExecuteSqlChunk;
use roost_proto::{ServiceError, SqlAnswer};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::service::RoutesBuilder;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;
use tracing::Instrument;

use super::{STREAM_CHUNK_BYTES, to_status};
use crate::RpcError;

/// How a gRPC server takes calls.
#[derive(Debug, Clone)]
pub struct GrpcServerOptions {
    /// Largest message sent or accepted.
    pub max_message_bytes: usize,
    /// The longest a call may run, whatever `grpc-timeout` it carries; `None`: as long as the
    /// caller's `grpc-timeout` says (or forever without one).
    pub timeout: Option<Duration>,
    /// Calls served at the same time on one connection; `None` for no limit.
    pub concurrency_limit_per_connection: Option<usize>,
}

impl Default for GrpcServerOptions {
    fn default() -> Self {
        GrpcServerOptions {
            max_message_bytes: super::MAX_MESSAGE_BYTES,
            timeout: None,
            concurrency_limit_per_connection: None,
        }
    }
}

/// A service trait object seen as the tonic server trait of the same contract.
pub struct GrpcAdapter<S: ?Sized> {
    pub(crate) service: Arc<S>,
}

/// A streamed answer as the generated servers send it.
pub type GrpcAnswerStream = BoxStream<'static, Result<ExecuteSqlChunk, tonic::Status>>;

/// Runs a method that answers one message.
pub(crate) async fn serve_unary<Request, Response, Call, Running>(
    service: &'static str,
    method: &'static str,
    request: tonic::Request<Request>,
    call: Call,
) -> Result<tonic::Response<Response>, tonic::Status>
where
    Call: FnOnce(Request) -> Running,
    Running: Future<Output = Result<Response, ServiceError>>,
{
    let span = tracing::debug_span!("grpc", service, method);
    call(request.into_inner())
        .instrument(span)
        .await
        .map(tonic::Response::new)
        .map_err(to_status)
}

/// Runs a method that answers a query result: a first message with the content type, then the
/// body in chunks of at most [`STREAM_CHUNK_BYTES`], in order. An error in the middle of the body
/// ends the stream with its status.
pub(crate) async fn serve_stream<Request, Call, Running>(
    service: &'static str,
    method: &'static str,
    request: tonic::Request<Request>,
    call: Call,
) -> Result<tonic::Response<GrpcAnswerStream>, tonic::Status>
where
    Call: FnOnce(Request) -> Running,
    Running: Future<Output = Result<SqlAnswer, ServiceError>>,
{
    let span = tracing::debug_span!("grpc", service, method);
    let answer = call(request.into_inner())
        .instrument(span)
        .await
        .map_err(to_status)?;
    let head = ExecuteSqlChunk {
        content_type: answer.content_type,
        data: Bytes::new(),
    };
    let body = answer.body.flat_map(|chunk| match chunk {
        Ok(data) => stream::iter(pieces(data).into_iter().map(|data| {
            Ok(ExecuteSqlChunk {
                content_type: String::new(),
                data,
            })
        }))
        .left_stream(),
        Err(error) => stream::iter([Err(to_status(error))]).right_stream(),
    });
    Ok(tonic::Response::new(
        stream::iter([Ok(head)]).chain(body).boxed(),
    ))
}

/// `data` cut into pieces of at most [`STREAM_CHUNK_BYTES`] (no copy); none when it is empty.
fn pieces(mut data: Bytes) -> Vec<Bytes> {
    let mut pieces = Vec::with_capacity(data.len().div_ceil(STREAM_CHUNK_BYTES));
    while data.len() > STREAM_CHUNK_BYTES {
        pieces.push(data.split_to(STREAM_CHUNK_BYTES));
    }
    if !data.is_empty() {
        pieces.push(data);
    }
    pieces
}

/// Collects the services one process serves over gRPC, then serves them on one address with the
/// health service and reflection v1 (`serve_<service>` adds one; [`Self::start`] listens).
pub struct GrpcServerBuilder {
    pub(crate) options: GrpcServerOptions,
    pub(crate) routes: RoutesBuilder,
    /// Full names (`roost.auth.v1.AuthService`) of the services added.
    pub(crate) services: Vec<&'static str>,
}

impl GrpcServerBuilder {
    /// A builder with no service yet.
    pub fn new(options: GrpcServerOptions) -> Self {
        GrpcServerBuilder {
            options,
            routes: RoutesBuilder::default(),
            services: Vec::new(),
        }
    }

    /// Full names of the services added so far.
    pub fn services(&self) -> &[&'static str] {
        &self.services
    }

    /// Listens on `listen` (`host:port`; port 0 picks a free one) and serves the services added,
    /// the health service (each of them `SERVING`, and the server as a whole) and reflection v1.
    pub async fn start(self, listen: &str) -> Result<GrpcServer, RpcError> {
        let listen_error = |reason: String| RpcError::Listen {
            address: listen.to_string(),
            reason,
        };
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|error| listen_error(error.to_string()))?;
        let local_addr = listener
            .local_addr()
            .map_err(|error| listen_error(error.to_string()))?;

        let (health, health_service) = tonic_health::server::health_reporter();
        for name in &self.services {
            health
                .set_service_status(name, ServingStatus::Serving)
                .await;
        }
        let mut reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(roost_proto::grpc::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .with_service_name("grpc.health.v1.Health")
            .with_service_name("grpc.reflection.v1.ServerReflection");
        for name in &self.services {
            reflection = reflection.with_service_name(*name);
        }
        let reflection = reflection
            .build_v1()
            .map_err(|error| listen_error(format!("reflection: {error}")))?;

        let mut routes = self.routes;
        routes.add_service(health_service).add_service(reflection);
        let mut server = tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(Duration::from_secs(30)));
        if let Some(limit) = self.options.concurrency_limit_per_connection {
            server = server.concurrency_limit_per_connection(limit);
        }
        if let Some(timeout) = self.options.timeout {
            server = server.timeout(timeout);
        }
        let (stop, stopped) = oneshot::channel::<()>();
        let serving = server
            .add_routes(routes.routes())
            .serve_with_incoming_shutdown(
                TcpIncoming::from(listener).with_nodelay(Some(true)),
                async move {
                    // A dropped sender stops the server too.
                    let _ = stopped.await;
                },
            );
        let services = self.services;
        let task = tokio::spawn(async move {
            if let Err(error) = serving.await {
                tracing::error!(%error, "the gRPC server stopped");
            }
        });
        tracing::info!(address = %local_addr, services = ?services, "serving gRPC");
        Ok(GrpcServer {
            local_addr,
            services,
            health,
            stop: Some(stop),
            task: Some(task),
        })
    }
}

/// A running gRPC server; dropping it stops it.
pub struct GrpcServer {
    local_addr: SocketAddr,
    services: Vec<&'static str>,
    health: HealthReporter,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for GrpcServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcServer")
            .field("local_addr", &self.local_addr)
            .field("services", &self.services)
            .finish_non_exhaustive()
    }
}

impl GrpcServer {
    /// The address it listens on (with the port picked when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Full names of the services it serves.
    pub fn services(&self) -> &[&'static str] {
        &self.services
    }

    /// Reports every service `NOT_SERVING`, stops taking calls and waits for the running ones.
    pub async fn shutdown(mut self) {
        for name in &self.services {
            self.health
                .set_service_status(name, ServingStatus::NotServing)
                .await;
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for GrpcServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_cut_into_pieces_of_at_most_one_mebibyte() {
        assert!(pieces(Bytes::new()).is_empty());
        let small = Bytes::from_static(b"abc");
        assert_eq!(pieces(small.clone()), vec![small]);
        let data = Bytes::from(vec![7u8; 2 * STREAM_CHUNK_BYTES + 5]);
        let cut = pieces(data.clone());
        assert_eq!(
            cut.iter().map(Bytes::len).collect::<Vec<_>>(),
            [STREAM_CHUNK_BYTES, STREAM_CHUNK_BYTES, 5]
        );
        assert_eq!(cut.concat(), data.to_vec());
    }
}

//! The calling side: a [`GrpcChannel`] to one address, shared by the `Grpc<Service>Client`s of
//! the services served there.

use std::future::Future;
use std::time::Duration;

use futures::StreamExt;
use roost_proto::query::v1::ExecuteSqlChunk;
use roost_proto::{ErrorCode, ServiceError, SqlAnswer};
use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint};

use super::from_status;
use crate::RpcError;

/// How a client calls services over gRPC.
#[derive(Debug, Clone)]
pub struct GrpcClientOptions {
    /// How long a call may take before it fails with `Timeout`; the server gets it as
    /// `grpc-timeout`. For a streamed answer it covers the first message.
    pub timeout: Duration,
    /// How long to wait for each further message of a streamed answer.
    pub chunk_timeout: Duration,
    /// How long to wait for a connection to be set up.
    pub connect_timeout: Duration,
    /// Largest message sent or accepted.
    pub max_message_bytes: usize,
}

impl Default for GrpcClientOptions {
    fn default() -> Self {
        GrpcClientOptions {
            timeout: Duration::from_secs(30),
            chunk_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            max_message_bytes: super::MAX_MESSAGE_BYTES,
        }
    }
}

/// A connection to the gRPC server at one address, made on first use (and made again after it
/// breaks), so processes can start in any order. Cheap to clone.
#[derive(Debug, Clone)]
pub struct GrpcChannel {
    pub(crate) channel: Channel,
    pub(crate) options: GrpcClientOptions,
    address: String,
}

impl GrpcChannel {
    /// A channel to `address` (`host:port`, or a `http://` URL).
    pub fn connect_lazy(address: &str, options: GrpcClientOptions) -> Result<Self, RpcError> {
        let uri = if address.contains("://") {
            address.to_string()
        } else {
            format!("http://{address}")
        };
        let endpoint = Endpoint::from_shared(uri.clone())
            .map_err(|error| RpcError::Address {
                address: address.to_string(),
                reason: error.to_string(),
            })?
            .connect_timeout(options.connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_while_idle(true);
        Ok(GrpcChannel {
            channel: endpoint.connect_lazy(),
            options,
            address: uri,
        })
    }

    /// The address it calls.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The options it was built with.
    pub fn options(&self) -> &GrpcClientOptions {
        &self.options
    }

    /// A request carrying the call's deadline as `grpc-timeout`.
    fn request<Request>(&self, request: Request) -> tonic::Request<Request> {
        let mut request = tonic::Request::new(request);
        request.set_timeout(self.options.timeout);
        request
    }

    /// Calls a method whose answer is one message (the generated clients use this).
    pub(crate) async fn unary<Request, Response, Call, Calling>(
        &self,
        service: &'static str,
        method: &'static str,
        request: Request,
        call: Call,
    ) -> Result<Response, ServiceError>
    where
        Call: FnOnce(tonic::Request<Request>) -> Calling,
        Calling: Future<Output = Result<tonic::Response<Response>, tonic::Status>>,
    {
        let deadline = Instant::now() + self.options.timeout;
        match tokio::time::timeout_at(deadline, call(self.request(request))).await {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) => Err(self.error(service, method, status, deadline)),
            Err(_) => Err(self.timed_out(service, method)),
        }
    }

    /// Calls a method whose answer is a query result streamed in chunks (the generated clients
    /// use this). The first message carries the content type.
    pub(crate) async fn stream<Request, Call, Calling>(
        &self,
        service: &'static str,
        method: &'static str,
        request: Request,
        call: Call,
    ) -> Result<SqlAnswer, ServiceError>
    where
        Call: FnOnce(tonic::Request<Request>) -> Calling,
        Calling: Future<
            Output = Result<tonic::Response<tonic::Streaming<ExecuteSqlChunk>>, tonic::Status>,
        >,
    {
        let deadline = Instant::now() + self.options.timeout;
        let head = async {
            let mut messages = call(self.request(request)).await?.into_inner();
            let head = messages.message().await?;
            Ok::<_, tonic::Status>((head, messages))
        };
        let (head, messages) = match tokio::time::timeout_at(deadline, head).await {
            Ok(Ok((Some(head), messages))) => (head, messages),
            Ok(Ok((None, _))) => {
                tracing::warn!(service, method, "a stream without a head");
                return Err(ServiceError::internal(format!(
                    "the {service} service answered {method} with a stream without a head"
                )));
            }
            Ok(Err(status)) => return Err(self.error(service, method, status, deadline)),
            Err(_) => return Err(self.timed_out(service, method)),
        };
        let first = (!head.data.is_empty()).then(|| Ok(head.data));
        let chunk_timeout = self.options.chunk_timeout;
        let rest = futures::stream::unfold(Some(messages), move |state| async move {
            let mut messages = state?;
            match tokio::time::timeout(chunk_timeout, messages.message()).await {
                Ok(Ok(Some(chunk))) => Some((Ok(chunk.data), Some(messages))),
                Ok(Ok(None)) => None,
                Ok(Err(status)) => Some((Err(from_status(status)), None)),
                Err(_) => Some((
                    Err(ServiceError::new(
                        ErrorCode::Timeout,
                        format!(
                            "part of the {service} service's answer to {method} did not arrive within {chunk_timeout:?}"
                        ),
                    )),
                    None,
                )),
            }
        })
        .filter(|chunk| std::future::ready(!matches!(chunk, Ok(data) if data.is_empty())));
        Ok(SqlAnswer {
            content_type: head.content_type,
            body: futures::stream::iter(first).chain(rest).boxed(),
        })
    }

    /// The error of a failed call: the service's own error as it sent it; else the transport's,
    /// where a call that failed at its deadline timed out, whatever the transport called it.
    fn error(
        &self,
        service: &'static str,
        method: &'static str,
        status: tonic::Status,
        deadline: Instant,
    ) -> ServiceError {
        let from_service = status.metadata().contains_key(super::ERROR_CODE_METADATA);
        let error = from_status(status);
        if from_service {
            return error;
        }
        if error.code == ErrorCode::Timeout || Instant::now() >= deadline {
            return self.timed_out(service, method);
        }
        tracing::warn!(service, method, address = %self.address, %error, "gRPC call failed");
        match error.code {
            ErrorCode::Unavailable => ServiceError::new(
                ErrorCode::Unavailable,
                format!(
                    "cannot reach the {service} service at {}: {}",
                    self.address, error.message
                ),
            ),
            _ => error,
        }
    }

    fn timed_out(&self, service: &'static str, method: &'static str) -> ServiceError {
        ServiceError::new(
            ErrorCode::Timeout,
            format!(
                "the {service} service did not answer {method} within {:?}",
                self.options.timeout
            ),
        )
    }
}

//! The gRPC transport of the same contracts: a `Grpc<Service>Client` per service implementing its
//! trait over a tonic [`GrpcChannel`], and a [`GrpcServerBuilder`] that serves chosen services on
//! one address together with the gRPC health service (each served service `SERVING`) and server
//! reflection v1.
//!
//! What the NATS transport keeps, this one keeps too: a [`ServiceError`]'s code travels as
//! `roost-error-code` metadata next to the gRPC status ([`to_status`], [`from_status`]), the
//! client's timeout travels as `grpc-timeout` (and a call that runs out of it fails with
//! `Timeout`), a server nobody runs fails with `Unavailable`, and a streamed answer
//! ([`SqlAnswer`]) travels as a server stream of chunks of at most [`STREAM_CHUNK_BYTES`].

mod client;
mod server;
mod status;

pub use client::{GrpcChannel, GrpcClientOptions};
pub use server::{GrpcAdapter, GrpcAnswerStream, GrpcServer, GrpcServerBuilder, GrpcServerOptions};
pub use status::{ERROR_CODE_METADATA, from_status, to_status};

#[allow(unused_imports)] // for the documentation links
use roost_proto::{ServiceError, SqlAnswer};

/// The server side of each kind of method, named as the kinds of the `rpc_services!` lists.
pub(crate) mod serve {
    pub(crate) use super::server::{serve_stream as stream, serve_unary as unary};
}

/// Largest message a gRPC client or server of Roost sends or accepts.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024 * 1024;

/// Largest body chunk of a streamed answer: bigger pieces of the body are cut to this.
pub const STREAM_CHUNK_BYTES: usize = 1024 * 1024;

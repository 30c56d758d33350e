//! The transports of Roost's service contracts, NATS and gRPC. Over NATS: every trait of `roost-proto` served on
//! `roost.rpc.<service>.<method>` with a queue group per service (`roost.<service>`), so replicas
//! share the calls with no load balancer, and called through `Nats<Service>Client`s that
//! implement the same traits, so a caller holding `Arc<dyn XService>` cannot tell the difference.
//!
//! Errors keep their [`roost_proto::ErrorCode`] across the wire; a call nobody serves fails with
//! `Unavailable`, a call that runs out of time with `Timeout` (the deadline travels with the
//! request and the server refuses to start work that is already late). Answers and requests
//! larger than one NATS message travel as numbered chunks, reassembled in order. The protocol is
//! described in [`wire`].
//!
//! The same contracts are served and called over tonic gRPC too ([`grpc`]): `Grpc<Service>Client`s
//! implement the same traits, and a [`GrpcServerBuilder`] serves chosen services on one address
//! with the gRPC health service and reflection. Which transport a caller uses is configuration.
//!
//! Building blocks only: this crate depends on `roost-proto`, NATS and tonic, never on a service crate;
//! `roost-server` decides which service is served or called where.
//!
//! ```no_run
//! # async fn example(catalog: roost_proto::CatalogClient) -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use roost_rpc::{ClientOptions, NatsCatalogClient, RpcClient, ServerOptions, serve_catalog};
//!
//! let nats = roost_rpc::async_nats::connect("nats://127.0.0.1:4222").await?;
//! // In the catalog process:
//! let server = serve_catalog(nats.clone(), catalog, ServerOptions::default()).await?;
//! // In any process that calls the catalog:
//! let rpc = RpcClient::new(nats, ClientOptions::default()).await?;
//! let client: roost_proto::CatalogClient = Arc::new(NatsCatalogClient::new(rpc));
//! // ... and on the way out:
//! server.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod client;
pub mod grpc;
mod reassembly;
mod server;
mod services;
pub mod wire;

pub use async_nats;
pub use client::{ClientOptions, RpcClient};
pub use grpc::{GrpcChannel, GrpcClientOptions, GrpcServer, GrpcServerBuilder, GrpcServerOptions};
pub use server::{RpcServer, ServerOptions};
pub use services::*;

use thiserror::Error;

/// Failures to set up serving or calling (a call's own failures are `ServiceError`s).
#[derive(Debug, Error)]
pub enum RpcError {
    /// A subscription was refused.
    #[error("cannot subscribe to {subject}: {reason}")]
    Subscribe {
        /// The subject.
        subject: String,
        /// Why.
        reason: String,
    },
    /// The NATS connection failed.
    #[error("NATS connection failed: {0}")]
    Connection(String),
    /// A gRPC address that is not one.
    #[error("invalid gRPC address {address}: {reason}")]
    Address {
        /// The address.
        address: String,
        /// Why.
        reason: String,
    },
    /// A gRPC server could not listen.
    #[error("cannot serve gRPC on {address}: {reason}")]
    Listen {
        /// The address.
        address: String,
        /// Why.
        reason: String,
    },
}

/// Returns once the NATS server has processed everything this connection sent before (its
/// subscriptions in particular). `Client::flush` only empties the socket buffer, so a message
/// published from another connection right after it can still miss a new subscription; the
/// no-responders answer to a request nobody serves comes back only after the server read it.
pub(crate) async fn round_trip(nats: &async_nats::Client) -> Result<(), RpcError> {
    let subject = format!("{}.round_trip", nats.new_inbox());
    match nats.request(subject, bytes::Bytes::new()).await {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == async_nats::RequestErrorKind::NoResponders => Ok(()),
        Err(error) => Err(RpcError::Connection(error.to_string())),
    }
}

//! The service contracts of Roost: the prost messages generated from `proto/*.proto` (package
//! `roost.<service>.v1`), one async trait per service, and the one [`ErrorCode`] every service
//! error maps to.
//!
//! A caller holds a client (`Arc<dyn XService>`); `roost-server` decides whether it wraps the
//! in-process implementation or, in distributed mode, a transport. Service crates depend on this
//! crate only, never on each other. Generated code lives in `src/gen/` (`make gen` rewrites it).

mod convert;
mod error;
pub mod events_queue;
mod services;

pub use convert::{columns_from_proto, columns_to_proto, parse_schema_to_proto, schema_string};
pub use error::{ErrorCode, ServiceError};
pub use services::*;

/// `roost.common.*`.
pub mod common {
    /// `roost.common.v1`.
    pub mod v1 {
        include!("gen/roost.common.v1.rs");
    }
}
/// `roost.auth.*`.
pub mod auth {
    /// `roost.auth.v1`.
    pub mod v1 {
        include!("gen/roost.auth.v1.rs");
    }
}
/// `roost.catalog.*`.
pub mod catalog {
    /// `roost.catalog.v1`.
    pub mod v1 {
        include!("gen/roost.catalog.v1.rs");
    }
}
/// `roost.query.*`.
pub mod query {
    /// `roost.query.v1`.
    pub mod v1 {
        include!("gen/roost.query.v1.rs");
    }
}
/// `roost.ingest.*`.
pub mod ingest {
    /// `roost.ingest.v1`.
    pub mod v1 {
        include!("gen/roost.ingest.v1.rs");
    }
}
/// `roost.jobs.*`.
pub mod jobs {
    /// `roost.jobs.v1`.
    pub mod v1 {
        include!("gen/roost.jobs.v1.rs");
    }
}
/// `roost.scheduler.*`.
pub mod scheduler {
    /// `roost.scheduler.v1`.
    pub mod v1 {
        include!("gen/roost.scheduler.v1.rs");
    }
}

/// The tonic clients and servers of every service, generated from the same `.proto` files
/// (`proto/src/gen/grpc/`); their messages are the prost messages above.
#[cfg(feature = "grpc")]
pub mod grpc {
    /// The encoded `FileDescriptorSet` of every `.proto` file, for gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!("gen/grpc/descriptors.bin");

    /// `roost.auth.v1`.
    pub mod auth {
        include!("gen/grpc/roost.auth.v1.rs");
    }
    /// `roost.catalog.v1`.
    pub mod catalog {
        include!("gen/grpc/roost.catalog.v1.rs");
    }
    /// `roost.query.v1`.
    pub mod query {
        include!("gen/grpc/roost.query.v1.rs");
    }
    /// `roost.ingest.v1`.
    pub mod ingest {
        include!("gen/grpc/roost.ingest.v1.rs");
    }
    /// `roost.jobs.v1`.
    pub mod jobs {
        include!("gen/grpc/roost.jobs.v1.rs");
    }
    /// `roost.scheduler.v1`.
    pub mod scheduler {
        include!("gen/grpc/roost.scheduler.v1.rs");
    }
}

//! Jobs: long work tracked as records (delete rows, replace, import from URL, populate, copy, sink).
//!
//! Its contract is `roost_proto::JobsService` (`proto/proto/jobs.proto`); the implementation and
//! its workers come with the jobs issue. Until then `roost local` serves no jobs routes, rather than
//! pretending to.

pub use roost_proto::{JobsClient, JobsService};

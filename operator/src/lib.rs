//! The Kubernetes operator: `Workspace` and `DataSource` custom resources (`roost.dev/v1alpha1`)
//! reconciled onto a ClickHouse cluster. A Workspace is registered in the catalog through its
//! contract (`AuthClient`: in-process in tests, NATS in production) and becomes a database on
//! every server; a DataSource becomes a replicated table per shard plus a Distributed table.
//! ClickHouse is reached through roost-engine; DDL pieces come from roost-catalog's builders and
//! the schema parser from roost-types. No other service crate is a dependency.

pub mod controller;
pub mod crd;
pub mod datasource;
pub mod ddl;
mod error;
pub mod http;
pub mod lease;
pub mod metrics;
pub mod secrets;
pub mod workspace;

pub use controller::{Context, FINALIZER, run};
pub use error::Error;

/// The field manager of the operator's server-side applies, and its events' reporter.
pub const MANAGER: &str = "roost-operator";

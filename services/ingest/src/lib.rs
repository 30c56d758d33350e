//! Ingestion: decoding NDJSON, CSV and Parquet into a data source's table, mapping jsonpaths
//! straight into typed columns, sending rows that do not fit to the quarantine table, and creating
//! a data source from the data when the caller asks (the Events API does), guessing schemas
//! (`analyze`), and replacing rows atomically through staging tables (`replace`). Reaches data
//! sources through the catalog contract only, and the query service's endpoints to resolve
//! replace conditions.

mod analyze;
pub mod coalesce;
pub mod decode;
pub mod events_queue;
mod replace;
mod service;

pub use service::Ingest;

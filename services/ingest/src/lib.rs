//! Ingestion: decoding NDJSON, CSV and Parquet into a data source's table, mapping jsonpaths
//! straight into typed columns, sending rows that do not fit to the quarantine table, and creating
//! a data source from the data when the caller asks (the Events API does). Reaches data sources
//! through the catalog contract only.

pub mod coalesce;
pub mod decode;
mod service;

pub use service::Ingest;

//! Configuration of `roost local`: defaults, then environment (`ROOST_…`), then flags (clap reads
//! the last two in the binary). The distributed mode adds a TOML file and a struct per service.

use std::path::PathBuf;

/// `roost local`.
#[derive(Debug, Clone)]
pub struct LocalConfig {
    /// Address to listen on; loopback only by default.
    pub host: String,
    /// Port of the HTTP API (Tinybird Local's is 7181).
    pub port: u16,
    /// Directory for the catalog (SQLite) and the engine's data.
    pub data_dir: PathBuf,
    /// Explicit libchdb.so, else the engine looks in the usual places.
    pub libchdb: Option<PathBuf>,
    /// Limits every user query (`/v0/sql`, endpoints) runs under.
    pub query_limits: QueryLimits,
    /// Capacity of the Events API per data source.
    pub events_limits: EventsLimits,
    /// The directory local sink connections write under (default `<data_dir>/exports`); no
    /// sink writes outside it.
    pub sink_local_root: Option<PathBuf>,
    /// Imports of files from URLs.
    pub imports: ImportLimits,
}

/// What imports from URLs (and `/v0/analyze?url=`) may reach and read.
#[derive(Debug, Clone)]
pub struct ImportLimits {
    /// Non-public addresses (private, loopback, link-local, ...) imports may connect to anyway:
    /// empty or `0` for none, `1` for all, or a comma-separated list of addresses and networks
    /// (`127.0.0.1,10.0.0.0/8`).
    pub allow_private: String,
    /// Largest imported file, after decompression.
    pub max_bytes: u64,
    /// Largest Parquet file imported (it is read whole into memory).
    pub max_parquet_bytes: u64,
}

impl Default for ImportLimits {
    fn default() -> Self {
        ImportLimits {
            allow_private: String::new(),
            max_bytes: 32 << 30,
            max_parquet_bytes: 1 << 30,
        }
    }
}

/// Capacity of the Events API per data source; past it, requests get 429.
#[derive(Debug, Clone)]
pub struct EventsLimits {
    /// Requests per second (Tinybird: 100).
    pub requests_per_second: u64,
    /// Bytes per second, after decompression (Tinybird: 20 MB).
    pub bytes_per_second: u64,
}

impl Default for EventsLimits {
    fn default() -> Self {
        EventsLimits {
            requests_per_second: 100,
            bytes_per_second: 20 * 1024 * 1024,
        }
    }
}

/// Limits on user queries, enforced by the engine; no query may raise them.
#[derive(Debug, Clone)]
pub struct QueryLimits {
    /// Seconds a query may run.
    pub max_execution_time_secs: u64,
    /// Bytes of memory a query may use.
    pub max_memory_bytes: u64,
    /// Rows a result may hold.
    pub max_result_rows: u64,
    /// Bytes a result may hold.
    pub max_result_bytes: u64,
}

impl Default for QueryLimits {
    fn default() -> Self {
        QueryLimits {
            max_execution_time_secs: 10,
            max_memory_bytes: 4 << 30,
            max_result_rows: 10_000_000,
            max_result_bytes: 1 << 30,
        }
    }
}

impl QueryLimits {
    /// The ClickHouse settings that enforce the limits.
    pub fn settings(&self) -> Vec<(String, String)> {
        [
            (
                "max_execution_time",
                self.max_execution_time_secs.to_string(),
            ),
            ("max_memory_usage", self.max_memory_bytes.to_string()),
            ("max_result_rows", self.max_result_rows.to_string()),
            ("max_result_bytes", self.max_result_bytes.to_string()),
            ("result_overflow_mode", "throw".to_string()),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_string(), value))
        .collect()
    }
}

impl LocalConfig {
    /// The directory local sinks write under.
    pub fn sink_local_root(&self) -> PathBuf {
        self.sink_local_root
            .clone()
            .unwrap_or_else(|| self.data_dir.join("exports"))
    }
}

impl Default for LocalConfig {
    fn default() -> Self {
        LocalConfig {
            host: "127.0.0.1".into(),
            port: 7181,
            data_dir: PathBuf::from("./roost-data"),
            libchdb: None,
            query_limits: QueryLimits::default(),
            events_limits: EventsLimits::default(),
            imports: ImportLimits::default(),
            sink_local_root: None,
        }
    }
}

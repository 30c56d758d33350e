//! Roost's configuration, one struct for every mode: defaults (the commented
//! [`DEFAULT_CONFIG`]), then a TOML file, then the environment (`ROOST_…`), then flags. Each
//! layer is a TOML tree merged over the one below, so every layer can set any key and a key
//! nobody knows is an error, not silently ignored.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;
use toml::{Table, Value};

/// The default configuration, with a comment on every key (`roost config default`).
pub const DEFAULT_CONFIG: &str = include_str!("default.toml");

/// The environment variable naming the configuration file.
pub const CONFIG_FILE_ENV: &str = "ROOST_CONFIG";

/// Environment variables kept from before the configuration file, and the keys they set. The
/// regular name (`ROOST_<SECTION>_<KEY>`) wins when both are set.
const ENV_ALIASES: &[(&str, &str)] = &[
    ("ROOST_PORT", "http.port"),
    ("ROOST_HOST", "http.listen"),
    ("ROOST_NATS_RPC_TIMEOUT_MS", "rpc.timeout_ms"),
    ("ROOST_EVENTS_RPS", "events.requests_per_second"),
    ("ROOST_SINK_LOCAL_ROOT", "sinks.local_root"),
    ("ROOST_IMPORT_ALLOW_PRIVATE", "imports.allow_private"),
    ("ROOST_IMPORT_MAX_BYTES", "imports.max_bytes"),
    (
        "ROOST_IMPORT_MAX_PARQUET_BYTES",
        "imports.max_parquet_bytes",
    ),
];

/// Keys that moved, and where to: a file or a flag may still use the old name; the new one wins
/// when a layer sets both.
const KEY_ALIASES: &[(&str, &str)] = &[("nats.rpc_timeout_ms", "rpc.timeout_ms")];

/// A configuration that cannot be read or makes no sense.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the configuration file {path}: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A layer is not valid TOML, or names a key that does not exist.
    #[error("invalid configuration ({source_name}): {reason}")]
    Invalid {
        /// Which layer: the file's path, an environment variable, a flag.
        source_name: String,
        /// What is wrong.
        reason: String,
    },
}

/// Everything a `roost` process reads at start-up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Directory of `roost local`'s catalog and engine data.
    pub data_dir: PathBuf,
    /// The HTTP API.
    pub http: HttpConfig,
    /// The catalog and auth store.
    pub store: StoreConfig,
    /// The ClickHouse engine.
    pub engine: EngineConfig,
    /// NATS: service calls and leases.
    pub nats: NatsConfig,
    /// How services call each other.
    pub rpc: RpcConfig,
    /// gRPC: where this process serves, where the others are.
    pub grpc: GrpcConfig,
    /// Job workers.
    pub jobs: JobsSettings,
    /// The copy and sink scheduler.
    pub scheduler: SchedulerSettings,
    /// Capacity of the Events API per data source.
    pub events: EventsLimits,
    /// Sink pipes.
    pub sinks: SinksSettings,
    /// Imports of files from URLs.
    pub imports: ImportLimits,
    /// Limits every user query runs under.
    pub query_limits: QueryLimits,
}

/// The HTTP API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Address to listen on.
    pub listen: String,
    /// Port to listen on.
    pub port: u16,
    /// Whether `GET /tokens` answers without authentication.
    pub serve_tokens: bool,
}

/// The catalog and auth store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// A `postgres://` URL; empty for SQLite in the data directory.
    pub url: String,
}

/// Which engine, and how to reach it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// Embedded chDB.
    Chdb,
    /// A ClickHouse server or cluster over HTTP.
    Clickhouse,
}

/// The engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineConfig {
    /// chDB or ClickHouse.
    pub kind: EngineKind,
    /// The libchdb.so to load; empty to let the engine look for it.
    pub libchdb: String,
    /// ClickHouse HTTP URLs.
    pub urls: Vec<String>,
    /// ClickHouse user.
    pub user: String,
    /// ClickHouse password.
    pub password: String,
    /// ClickHouse cluster for ON CLUSTER DDL; empty for a single server.
    pub cluster: String,
}

impl EngineConfig {
    /// The libchdb.so given, if any.
    pub fn libchdb_path(&self) -> Option<PathBuf> {
        non_empty(&self.libchdb).map(PathBuf::from)
    }

    /// The cluster given, if any.
    pub fn cluster_name(&self) -> Option<String> {
        non_empty(&self.cluster).map(str::to_string)
    }
}

/// NATS.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsConfig {
    /// The server.
    pub url: String,
    /// Service calls go on `<subject_prefix>.<service>.<method>`.
    pub subject_prefix: String,
    /// The key-value bucket of leases.
    pub lease_bucket: String,
}

/// The transport a process calls other processes' services over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// NATS request/reply, a queue group per service.
    Nats,
    /// tonic gRPC, each service at its `[grpc.services]` address.
    Grpc,
}

/// How services call each other.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RpcConfig {
    /// The transport of calls to other processes.
    pub transport: Transport,
    /// How long a service call may take.
    pub timeout_ms: u64,
}

impl RpcConfig {
    /// [`Self::timeout_ms`] as a duration.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

/// gRPC serving and addresses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcConfig {
    /// Address this process serves its services on; empty for no gRPC server.
    pub listen: String,
    /// Where callers reach each service.
    pub services: GrpcServiceAddresses,
}

impl GrpcConfig {
    /// The listen address, if one is set.
    pub fn listen_address(&self) -> Option<&str> {
        non_empty(&self.listen)
    }
}

/// The gRPC address of each service (`host:port` or an `http://` URL); empty when not set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcServiceAddresses {
    /// AuthService.
    pub auth: String,
    /// CatalogService.
    pub catalog: String,
    /// PipeCatalogService.
    pub pipe_catalog: String,
    /// QueryService.
    pub query: String,
    /// EndpointService.
    pub endpoint: String,
    /// IngestService.
    pub ingest: String,
    /// JobsService.
    pub jobs: String,
    /// SchedulerService.
    pub scheduler: String,
}

impl GrpcServiceAddresses {
    /// The address of the service named `service` (`auth`, `pipe_catalog`, ...), if set.
    pub fn address(&self, service: &str) -> Option<&str> {
        let address = match service {
            "auth" => &self.auth,
            "catalog" => &self.catalog,
            "pipe_catalog" => &self.pipe_catalog,
            "query" => &self.query,
            "endpoint" => &self.endpoint,
            "ingest" => &self.ingest,
            "jobs" => &self.jobs,
            "scheduler" => &self.scheduler,
            _ => return None,
        };
        non_empty(address)
    }
}

/// Job workers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobsSettings {
    /// Jobs one worker runs at once.
    pub concurrency: usize,
    /// How often a worker looks for waiting jobs when nothing woke it.
    pub poll_interval_ms: u64,
    /// How often a running job's heartbeat is written.
    pub heartbeat_interval_ms: u64,
    /// A working job whose heartbeat is older than this lost its worker.
    pub abandoned_after_ms: u64,
}

/// Sink pipes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinksSettings {
    /// The directory local sink connections write under; empty for `<data_dir>/exports`.
    pub local_root: String,
}

/// The scheduler loop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchedulerSettings {
    /// How often it looks for due ticks.
    pub interval_ms: u64,
    /// How long the leader's lease outlives a leader that stopped renewing it.
    pub lease_ttl_ms: u64,
}

/// What imports from URLs (and `/v0/analyze?url=`) may reach and read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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
        Config::default().imports
    }
}

/// Capacity of the Events API per data source; past it, requests get 429.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsLimits {
    /// Requests per second (Tinybird: 100).
    pub requests_per_second: u64,
    /// Bytes per second, after decompression (Tinybird: 20 MB).
    pub bytes_per_second: u64,
    /// Distributed mode: accepted batches go through a JetStream queue to ingest.
    pub queue: bool,
    /// Batches one ingest process inserts at once.
    pub consumers: usize,
    /// How long a `wait=true` request waits for its batch to be inserted.
    pub wait_timeout_ms: u64,
    /// Longest wait between two tries of a failed insert.
    pub retry_backoff_max_ms: u64,
    /// How long a taken batch may go without news before another process gets it.
    pub ack_wait_ms: u64,
}

impl Default for EventsLimits {
    fn default() -> Self {
        Config::default().events
    }
}

/// Limits on user queries, enforced by the engine; no query may raise them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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
        Config::default().query_limits
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

impl Config {
    /// The directory local sinks write under.
    pub fn sink_local_root(&self) -> PathBuf {
        non_empty(&self.sinks.local_root)
            .map(PathBuf::from)
            .unwrap_or_else(|| self.data_dir.join("exports"))
    }
}

impl Default for Config {
    fn default() -> Self {
        Value::Table(default_tree())
            .try_into()
            .expect("the built-in default configuration is valid")
    }
}

fn default_tree() -> Table {
    DEFAULT_CONFIG
        .parse()
        .expect("the built-in default configuration is TOML")
}

fn non_empty(text: &str) -> Option<&str> {
    Some(text.trim()).filter(|text| !text.is_empty())
}

/// Builds a [`Config`] layer by layer.
#[derive(Debug, Clone)]
pub struct ConfigBuilder {
    tree: Table,
}

impl Default for ConfigBuilder {
    fn default() -> Self {
        ConfigBuilder {
            tree: default_tree(),
        }
    }
}

impl ConfigBuilder {
    /// Merges a TOML document over what is there; it may hold any subset of the keys.
    pub fn toml(mut self, text: &str, source_name: &str) -> Result<Self, ConfigError> {
        let mut layer: Table =
            text.parse()
                .map_err(|error: toml::de::Error| ConfigError::Invalid {
                    source_name: source_name.to_string(),
                    reason: error.message().to_string(),
                })?;
        rename_aliases(&mut layer);
        merge(&mut self.tree, layer, "", source_name)?;
        Ok(self)
    }

    /// Merges the TOML file at `path`.
    pub fn file(self, path: &std::path::Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_path_buf(),
            reason: error.to_string(),
        })?;
        self.toml(&text, &path.display().to_string())
    }

    /// Applies the environment through `lookup` (pass `|name| std::env::var(name).ok()`): the
    /// old variable names first, then `ROOST_<SECTION>_<KEY>` for every key.
    pub fn env(mut self, lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        for (name, key) in ENV_ALIASES {
            if let Some(value) = lookup(name) {
                self = self.set(key, &value, name)?;
            }
        }
        for key in leaf_keys(&default_tree(), "") {
            let name = env_name(&key);
            if let Some(value) = lookup(&name) {
                self = self.set(&key, &value, &name)?;
            }
        }
        Ok(self)
    }

    /// Sets one key (`section.name`) from text, converted to the key's type (lists:
    /// comma-separated).
    pub fn set(mut self, key: &str, text: &str, source_name: &str) -> Result<Self, ConfigError> {
        let invalid = |reason: String| ConfigError::Invalid {
            source_name: source_name.to_string(),
            reason,
        };
        let key = KEY_ALIASES
            .iter()
            .find(|(old, _)| *old == key)
            .map_or(key, |(_, new)| *new);
        let mut path: Vec<&str> = key.split('.').collect();
        let leaf = path.pop().unwrap_or_default();
        let mut table = &mut self.tree;
        for part in path {
            table = table
                .get_mut(part)
                .and_then(Value::as_table_mut)
                .ok_or_else(|| invalid(format!("there is no section [{part}]")))?;
        }
        let current = table
            .get(leaf)
            .ok_or_else(|| invalid(format!("there is no key {key}")))?;
        let value = typed_like(current, text)
            .map_err(|reason| invalid(format!("{key} = {text:?}: {reason}")))?;
        table.insert(leaf.to_string(), value);
        Ok(self)
    }

    /// The configuration.
    pub fn build(self) -> Result<Config, ConfigError> {
        Value::Table(self.tree)
            .try_into()
            .map_err(|error| ConfigError::Invalid {
                source_name: "merged configuration".into(),
                reason: error.message().to_string(),
            })
    }
}

/// The environment variable of `key`: `data_dir` → `ROOST_DATA_DIR`, `nats.url` → `ROOST_NATS_URL`.
pub fn env_name(key: &str) -> String {
    format!("ROOST_{}", key.replace('.', "_").to_uppercase())
}

/// Moves the values of old key names in `layer` to their new names (unless it sets both).
fn rename_aliases(layer: &mut Table) {
    'aliases: for (old, new) in KEY_ALIASES {
        let Some(value) = take_key(layer, old) else {
            continue;
        };
        let mut path: Vec<&str> = new.split('.').collect();
        let leaf = path.pop().unwrap_or_default();
        let mut table = &mut *layer;
        for part in path {
            let entry = table
                .entry(part.to_string())
                .or_insert_with(|| Value::Table(Table::new()));
            let Value::Table(inner) = entry else {
                // The new section is not a section in this layer: merging reports that.
                continue 'aliases;
            };
            table = inner;
        }
        table.entry(leaf.to_string()).or_insert(value);
    }
}

/// Removes `key` (`section.name`) from `table`, returning its value.
fn take_key(table: &mut Table, key: &str) -> Option<Value> {
    let mut path: Vec<&str> = key.split('.').collect();
    let leaf = path.pop()?;
    let mut table = table;
    for part in path {
        table = table.get_mut(part)?.as_table_mut()?;
    }
    table.remove(leaf)
}

/// Every key of `table` as `section.name`.
fn leaf_keys(table: &Table, prefix: &str) -> Vec<String> {
    table
        .iter()
        .flat_map(|(name, value)| {
            let key = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}.{name}")
            };
            match value {
                Value::Table(inner) => leaf_keys(inner, &key),
                _ => vec![key],
            }
        })
        .collect()
}

/// Puts `layer` over `base`, refusing keys `base` lacks and values of another type.
fn merge(
    base: &mut Table,
    layer: Table,
    prefix: &str,
    source_name: &str,
) -> Result<(), ConfigError> {
    for (name, value) in layer {
        let key = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        let invalid = |reason: String| ConfigError::Invalid {
            source_name: source_name.to_string(),
            reason,
        };
        let Some(current) = base.get_mut(&name) else {
            return Err(invalid(format!("there is no key {key}")));
        };
        match (current, value) {
            (Value::Table(current), Value::Table(inner)) => {
                merge(current, inner, &key, source_name)?
            }
            (current, value) if current.same_type(&value) && !current.is_table() => {
                *current = value
            }
            (current, _) => {
                return Err(invalid(format!("{key} must be {}", type_name(current))));
            }
        }
    }
    Ok(())
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a number",
        Value::Boolean(_) => "true or false",
        Value::Datetime(_) => "a date",
        Value::Array(_) => "a list",
        Value::Table(_) => "a section",
    }
}

/// `text` read as a value of `like`'s type.
fn typed_like(like: &Value, text: &str) -> Result<Value, String> {
    let text = text.trim();
    match like {
        Value::String(_) => Ok(Value::String(text.to_string())),
        Value::Integer(_) => text
            .parse()
            .map(Value::Integer)
            .map_err(|_| "expected an integer".to_string()),
        Value::Float(_) => text
            .parse()
            .map(Value::Float)
            .map_err(|_| "expected a number".to_string()),
        Value::Boolean(_) => match text {
            "true" | "1" | "yes" | "on" => Ok(Value::Boolean(true)),
            "false" | "0" | "no" | "off" | "" => Ok(Value::Boolean(false)),
            _ => Err("expected true or false".to_string()),
        },
        Value::Array(_) => Ok(Value::Array(
            text.split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(|item| Value::String(item.to_string()))
                .collect(),
        )),
        Value::Datetime(_) | Value::Table(_) => Err("not settable from text".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.clone())
        }
    }

    #[test]
    fn the_printed_default_is_every_key_with_a_comment() {
        let config = Config::default();
        assert_eq!(config.http.port, 7181);
        assert_eq!(config.engine.kind, EngineKind::Chdb);
        // Every key the struct has appears in the text, and each is preceded by a comment.
        let serialized = toml::to_string(&config).unwrap();
        let round: Table = serialized.parse().unwrap();
        assert_eq!(leaf_keys(&round, ""), leaf_keys(&default_tree(), ""));
        let lines: Vec<&str> = DEFAULT_CONFIG.lines().collect();
        for (index, line) in lines.iter().enumerate() {
            if line.contains(" = ") && !line.starts_with('#') {
                assert!(
                    index > 0 && lines[index - 1].starts_with('#'),
                    "no comment above {line:?}"
                );
            }
        }
    }

    #[test]
    fn layers_apply_in_order_file_then_env_then_flags() {
        let config = ConfigBuilder::default()
            .toml(
                "data_dir = \"/file\"\n[http]\nport = 1\n[nats]\nurl = \"nats://file\"\n",
                "file",
            )
            .unwrap()
            .env(env(&[("ROOST_HTTP_PORT", "2"), ("ROOST_DATA_DIR", "/env")]))
            .unwrap()
            .set("http.port", "3", "--set")
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(config.http.port, 3);
        assert_eq!(config.data_dir, PathBuf::from("/env"));
        assert_eq!(config.nats.url, "nats://file");
        assert_eq!(config.store.url, "", "untouched keys keep their default");
    }

    #[test]
    fn old_environment_names_still_work_and_the_regular_name_wins() {
        let config = ConfigBuilder::default()
            .env(env(&[
                ("ROOST_PORT", "9000"),
                ("ROOST_EVENTS_RPS", "7"),
                ("ROOST_IMPORT_ALLOW_PRIVATE", "1"),
                ("ROOST_IMPORT_MAX_BYTES", "10"),
                ("ROOST_HOST", "0.0.0.0"),
                ("ROOST_EVENTS_BYTES_PER_SECOND", "11"),
            ]))
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(config.http.port, 9000);
        assert_eq!(config.http.listen, "0.0.0.0");
        assert_eq!(config.events.requests_per_second, 7);
        assert_eq!(config.events.bytes_per_second, 11);
        assert_eq!(config.imports.allow_private, "1");
        assert_eq!(config.imports.max_bytes, 10);
        let both = ConfigBuilder::default()
            .env(env(&[("ROOST_PORT", "1"), ("ROOST_HTTP_PORT", "2")]))
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(both.http.port, 2);
    }

    #[test]
    fn the_rpc_timeout_keeps_its_old_nats_names() {
        let default = Config::default();
        assert_eq!(default.rpc.transport, Transport::Nats);
        assert_eq!(default.rpc.timeout(), Duration::from_secs(30));
        let file = ConfigBuilder::default()
            .toml("[nats]\nrpc_timeout_ms = 5\n", "file")
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(file.rpc.timeout_ms, 5);
        let both = ConfigBuilder::default()
            .toml(
                "[nats]\nrpc_timeout_ms = 5\n[rpc]\ntimeout_ms = 6\n",
                "file",
            )
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(both.rpc.timeout_ms, 6, "the new name wins");
        let env_old = ConfigBuilder::default()
            .env(env(&[("ROOST_NATS_RPC_TIMEOUT_MS", "7")]))
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(env_old.rpc.timeout_ms, 7);
        let env_both = ConfigBuilder::default()
            .env(env(&[
                ("ROOST_NATS_RPC_TIMEOUT_MS", "7"),
                ("ROOST_RPC_TIMEOUT_MS", "8"),
            ]))
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(env_both.rpc.timeout_ms, 8);
        let flag = ConfigBuilder::default()
            .set("nats.rpc_timeout_ms", "9", "--set")
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(flag.rpc.timeout_ms, 9);
    }

    #[test]
    fn the_transport_and_grpc_addresses_come_from_any_layer() {
        let config = ConfigBuilder::default()
            .toml(
                "[rpc]\ntransport = \"grpc\"\n[grpc.services]\nauth = \"10.0.0.1:50051\"\n",
                "file",
            )
            .unwrap()
            .env(env(&[
                ("ROOST_GRPC_LISTEN", "0.0.0.0:50051"),
                ("ROOST_GRPC_SERVICES_PIPE_CATALOG", "catalog:50051"),
            ]))
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(config.rpc.transport, Transport::Grpc);
        assert_eq!(config.grpc.listen_address(), Some("0.0.0.0:50051"));
        assert_eq!(config.grpc.services.address("auth"), Some("10.0.0.1:50051"));
        assert_eq!(
            config.grpc.services.address("pipe_catalog"),
            Some("catalog:50051")
        );
        assert_eq!(config.grpc.services.address("query"), None);
        assert_eq!(Config::default().grpc.listen_address(), None);
        let unknown = ConfigBuilder::default()
            .set("rpc.transport", "carrier-pigeon", "--set")
            .unwrap()
            .build()
            .unwrap_err()
            .to_string();
        assert!(unknown.contains("carrier-pigeon"), "{unknown}");
    }

    #[test]
    fn values_are_typed_and_lists_are_comma_separated() {
        let config = ConfigBuilder::default()
            .env(env(&[
                ("ROOST_ENGINE_KIND", "clickhouse"),
                ("ROOST_ENGINE_URLS", "http://a:1, http://b:2"),
                ("ROOST_HTTP_SERVE_TOKENS", "true"),
            ]))
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(config.engine.kind, EngineKind::Clickhouse);
        assert_eq!(config.engine.urls, vec!["http://a:1", "http://b:2"]);
        assert!(config.http.serve_tokens);
        assert_eq!(config.engine.cluster_name(), None);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors_that_name_them() {
        let unknown = ConfigBuilder::default()
            .toml("[http]\nprot = 1\n", "roost.toml")
            .unwrap_err()
            .to_string();
        assert!(
            unknown.contains("roost.toml") && unknown.contains("http.prot"),
            "{unknown}"
        );
        let typed = ConfigBuilder::default()
            .toml("[http]\nport = \"x\"\n", "roost.toml")
            .unwrap_err()
            .to_string();
        assert!(typed.contains("http.port must be an integer"), "{typed}");
        let env_error = ConfigBuilder::default()
            .env(env(&[("ROOST_HTTP_PORT", "eighty")]))
            .unwrap_err()
            .to_string();
        assert!(env_error.contains("ROOST_HTTP_PORT"), "{env_error}");
        let kind = ConfigBuilder::default()
            .set("engine.kind", "duckdb", "--set")
            .unwrap()
            .build()
            .unwrap_err()
            .to_string();
        assert!(kind.contains("duckdb"), "{kind}");
        let flag = ConfigBuilder::default()
            .set("nope.key", "1", "--set")
            .unwrap_err()
            .to_string();
        assert!(flag.contains("[nope]"), "{flag}");
    }
}

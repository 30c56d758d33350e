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
}

impl Default for LocalConfig {
    fn default() -> Self {
        LocalConfig { host: "127.0.0.1".into(), port: 7181, data_dir: PathBuf::from("./roost-data"), libchdb: None }
    }
}

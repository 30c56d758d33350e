//! A real ClickHouse cluster for integration tests: two clickhouse-server shards and a ZooKeeper
//! on loopback, started by `scripts/clickhouse-up.sh` (which installs Debian's packages when they
//! are missing). The script runs once per test process; later calls reuse what it printed.
//!
//! When `ROOST_TEST_CLICKHOUSE_URLS` (comma-separated) or `ROOST_TEST_CLICKHOUSE_URL` is set, that
//! cluster is used as it is and nothing is started; such a cluster cannot be stopped and started
//! by tests ([`ClickHouseCluster::managed`] is false).

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{Context, bail};

/// Set to make a missing cluster fail the test instead of skipping it (CI, where it must run).
pub const REQUIRE_ENV: &str = "ROOST_TEST_REQUIRE_CLICKHOUSE";

/// A running ClickHouse cluster.
#[derive(Debug, Clone)]
pub struct ClickHouseCluster {
    /// HTTP base URLs, one per shard (`http://127.0.0.1:18123`, ...).
    pub urls: Vec<String>,
    /// The cluster name DDL names in `ON CLUSTER`.
    pub cluster: String,
    /// ZooKeeper's `host:port`, when known.
    pub zookeeper: Option<String>,
    /// Whether the harness started it, so [`Self::stop_server`] and [`Self::start`] can work.
    pub managed: bool,
}

impl ClickHouseCluster {
    /// The cluster, started on first use in this process; `Err` says why it cannot run here (a
    /// reason to skip the test). Blocks while the script runs (a few seconds the first time, more
    /// when it has to install packages).
    pub fn ensure() -> Result<&'static ClickHouseCluster, String> {
        static CLUSTER: OnceLock<Result<ClickHouseCluster, String>> = OnceLock::new();
        CLUSTER
            .get_or_init(find_or_start)
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The first shard's URL.
    pub fn url(&self) -> &str {
        &self.urls[0]
    }

    /// Stops one server (`index` 0 is the first shard) by the pid the harness recorded.
    pub fn stop_server(&self, index: usize) -> anyhow::Result<()> {
        if index >= self.urls.len() {
            bail!(
                "there is no server {index}: the cluster has {}",
                self.urls.len()
            );
        }
        self.require_managed()?;
        run_script("clickhouse-down.sh", &[&format!("shard{}", index + 1)]).map(|_| ())
    }

    /// Stops ZooKeeper (replicated tables turn read-only, ON CLUSTER DDL waits).
    pub fn stop_zookeeper(&self) -> anyhow::Result<()> {
        self.require_managed()?;
        run_script("clickhouse-down.sh", &["zookeeper"]).map(|_| ())
    }

    /// Starts whatever part of the cluster is not running, and waits until it is ready.
    pub fn start(&self) -> anyhow::Result<()> {
        self.require_managed()?;
        run_script("clickhouse-up.sh", &[]).map(|_| ())
    }

    fn require_managed(&self) -> anyhow::Result<()> {
        if !self.managed {
            bail!(
                "the cluster comes from ROOST_TEST_CLICKHOUSE_URL(S); the harness cannot stop or start it"
            );
        }
        Ok(())
    }
}

/// For a test: the cluster, or None after printing `SKIPPED: <test>: <why>`; with
/// [`REQUIRE_ENV`] set, a missing cluster panics instead.
pub fn cluster_or_skip(test: &str) -> Option<&'static ClickHouseCluster> {
    match ClickHouseCluster::ensure() {
        Ok(cluster) => Some(cluster),
        Err(why) if std::env::var_os(REQUIRE_ENV).is_some() => {
            panic!("{test}: no ClickHouse cluster and {REQUIRE_ENV} is set: {why}")
        }
        Err(why) => {
            println!("SKIPPED: {test}: {why}");
            None
        }
    }
}

fn find_or_start() -> Result<ClickHouseCluster, String> {
    let given = std::env::var("ROOST_TEST_CLICKHOUSE_URLS")
        .or_else(|_| std::env::var("ROOST_TEST_CLICKHOUSE_URL"))
        .ok()
        .filter(|urls| !urls.trim().is_empty());
    if let Some(urls) = given {
        return Ok(ClickHouseCluster {
            urls: urls.split(',').map(|url| url.trim().to_string()).collect(),
            cluster: std::env::var("ROOST_TEST_CLICKHOUSE_CLUSTER")
                .unwrap_or_else(|_| "roost".into()),
            zookeeper: std::env::var("ROOST_TEST_ZOOKEEPER").ok(),
            managed: false,
        });
    }
    let printed = run_script("clickhouse-up.sh", &[]).map_err(|e| format!("{e:#}"))?;
    let value = |key: &str| {
        printed.lines().find_map(|line| {
            line.strip_prefix(key)
                .and_then(|rest| rest.strip_prefix('='))
                .map(str::to_string)
        })
    };
    let urls = value("ROOST_TEST_CLICKHOUSE_URLS")
        .ok_or_else(|| format!("clickhouse-up.sh printed no URLs:\n{printed}"))?;
    Ok(ClickHouseCluster {
        urls: urls.split(',').map(str::to_string).collect(),
        cluster: value("ROOST_TEST_CLICKHOUSE_CLUSTER").unwrap_or_else(|| "roost".into()),
        zookeeper: value("ROOST_TEST_ZOOKEEPER"),
        managed: true,
    })
}

fn scripts_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../scripts")
}

/// Runs one of the harness scripts and returns its standard output.
fn run_script(name: &str, args: &[&str]) -> anyhow::Result<String> {
    let script = scripts_dir().join(name);
    let output = Command::new("bash")
        .arg(&script)
        .args(args)
        .output()
        .with_context(|| format!("cannot run {}", script.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    match output.status.code() {
        Some(0) => Ok(stdout),
        // The script's code for "the packages are missing and cannot be installed".
        Some(3) => bail!(
            "ClickHouse is not installed and cannot be installed here: {}",
            stderr.trim()
        ),
        _ => {
            let command = std::iter::once(name).chain(args.iter().copied());
            bail!(
                "{} failed ({}): {}",
                command.collect::<Vec<_>>().join(" "),
                output.status,
                stderr.trim()
            )
        }
    }
}

//! `roost`: the Tinybird API, self-hosted.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::{Parser, Subcommand};
use roost_config::{EventsLimits, ImportLimits, LocalConfig};

#[derive(Parser)]
#[command(
    name = "roost",
    version,
    about = "A self-hostable implementation of the Tinybird API"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs every service in this process on an embedded ClickHouse (chDB), like Tinybird Local.
    Local {
        /// Port of the HTTP API.
        #[arg(long, env = "ROOST_PORT", default_value_t = 7181)]
        port: u16,
        /// Address to listen on.
        #[arg(long, env = "ROOST_HOST", default_value = "127.0.0.1")]
        host: String,
        /// Where the catalog and the data live; kept across restarts.
        #[arg(long, env = "ROOST_DATA_DIR", default_value = "./roost-data")]
        data_dir: PathBuf,
        /// The libchdb.so to load (default: ROOST_LIBCHDB, then where `make setup` puts it).
        #[arg(long)]
        libchdb: Option<PathBuf>,
        /// Events API requests per second per data source (Tinybird: 100).
        #[arg(long, env = "ROOST_EVENTS_RPS", default_value_t = EventsLimits::default().requests_per_second)]
        events_rps: u64,
        /// Events API bytes per second per data source (Tinybird: 20 MB).
        #[arg(long, env = "ROOST_EVENTS_BYTES_PER_SECOND", default_value_t = EventsLimits::default().bytes_per_second)]
        events_bytes_per_second: u64,
        /// Private, loopback and other non-public addresses that URL imports may reach: `1` for
        /// all, or a comma-separated list of addresses and networks (default: none).
        #[arg(long, env = "ROOST_IMPORT_ALLOW_PRIVATE", default_value = "")]
        import_allow_private: String,
        /// Largest file a URL import reads, after decompression.
        #[arg(long, env = "ROOST_IMPORT_MAX_BYTES", default_value_t = ImportLimits::default().max_bytes)]
        import_max_bytes: u64,
        /// Largest Parquet file a URL import reads (it is held whole in memory).
        #[arg(long, env = "ROOST_IMPORT_MAX_PARQUET_BYTES", default_value_t = ImportLimits::default().max_parquet_bytes)]
        import_max_parquet_bytes: u64,
        /// The directory local sink connections write under (default: <data-dir>/exports).
        #[arg(long, env = "ROOST_SINK_LOCAL_ROOT")]
        sink_local_root: Option<PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    roost_telemetry::init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Local {
            port,
            host,
            data_dir,
            libchdb,
            events_rps,
            events_bytes_per_second,
            import_allow_private,
            import_max_bytes,
            import_max_parquet_bytes,
            sink_local_root,
        } => {
            let events_limits = EventsLimits {
                requests_per_second: events_rps.max(1),
                bytes_per_second: events_bytes_per_second.max(1),
            };
            runtime.block_on(run_local(LocalConfig {
                host,
                port,
                data_dir,
                libchdb,
                events_limits,
                imports: ImportLimits {
                    allow_private: import_allow_private,
                    max_bytes: import_max_bytes,
                    max_parquet_bytes: import_max_parquet_bytes,
                },
                sink_local_root,
                ..LocalConfig::default()
            }))?;
        }
    }
    Ok(())
}

async fn run_local(config: LocalConfig) -> anyhow::Result<()> {
    let started = Instant::now();
    let local = roost_server::local(&config).await?;
    let address = format!("{}:{}", config.host, config.port);
    let listener = tokio::net::TcpListener::bind(&address)
        .await
        .with_context(|| format!("cannot listen on {address}"))?;
    tracing::info!(
        address = %address,
        data_dir = %config.data_dir.display(),
        workspace = %local.seeded.workspace_id,
        startup_ms = started.elapsed().as_millis() as u64,
        "roost local is ready; GET /tokens shows the tokens"
    );
    let server = axum::serve(listener, local.router);
    tokio::select! {
        result = server => result.context("server failed")?,
        _ = tokio::signal::ctrl_c() => tracing::info!("stopping"),
    }
    // chDB cannot shut an engine with MergeTree tables down cleanly; its parts are already on
    // disk, so the process ends here without closing it.
    std::process::exit(0)
}

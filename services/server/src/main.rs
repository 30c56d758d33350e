//! `roost`: the Tinybird API, self-hosted.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use roost_config::{CONFIG_FILE_ENV, Config, ConfigBuilder};
use roost_server::Role;

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

/// Where the configuration comes from, besides the defaults and the environment.
#[derive(Args)]
struct ConfigArgs {
    /// A TOML configuration file (`roost config default` prints every key).
    #[arg(long, env = CONFIG_FILE_ENV)]
    config: Option<PathBuf>,
    /// Sets any configuration key, over the file and the environment: `--set nats.url=nats://h:4222`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Port of the HTTP API (http.port).
    #[arg(long)]
    port: Option<u16>,
    /// Address to listen on (http.listen).
    #[arg(long)]
    host: Option<String>,
    /// Where roost local's catalog and data live; kept across restarts (data_dir).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Runs every service in this process on an embedded ClickHouse (chDB), like Tinybird Local.
    Local {
        #[command(flatten)]
        config: ConfigArgs,
        /// The libchdb.so to load (engine.libchdb; default: ROOST_LIBCHDB, then where `make setup`
        /// puts it).
        #[arg(long)]
        libchdb: Option<PathBuf>,
        /// Events API requests per second per data source (events.requests_per_second).
        #[arg(long)]
        events_rps: Option<u64>,
        /// Events API bytes per second per data source (events.bytes_per_second).
        #[arg(long)]
        events_bytes_per_second: Option<u64>,
        /// Non-public addresses URL imports may reach: `1` for all, or a comma-separated list of
        /// addresses and networks (imports.allow_private).
        #[arg(long)]
        import_allow_private: Option<String>,
        /// Largest file a URL import reads, after decompression (imports.max_bytes).
        #[arg(long)]
        import_max_bytes: Option<u64>,
        /// Largest Parquet file a URL import reads (imports.max_parquet_bytes).
        #[arg(long)]
        import_max_parquet_bytes: Option<u64>,
        /// The directory local sink connections write under (sinks.local_root; default:
        /// <data_dir>/exports).
        #[arg(long)]
        sink_local_root: Option<PathBuf>,
    },
    /// Runs some of the services (any subset of the roles) in this process, on PostgreSQL and
    /// ClickHouse, reaching the others over NATS.
    Serve {
        #[command(flatten)]
        config: ConfigArgs,
        /// Comma-separated roles: gateway, auth, catalog, query, ingest, jobs, scheduler, or all.
        #[arg(long, env = "ROOST_ROLE", value_name = "ROLES")]
        role: String,
    },
    /// The configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Prints the default configuration: every key, with what it does.
    Default,
    /// Prints the configuration this environment, file and flags make (the password hidden).
    Show {
        #[command(flatten)]
        config: ConfigArgs,
    },
}

impl ConfigArgs {
    /// Defaults, then the file, then the environment, then these flags and `extra` ones.
    fn load(&self, extra: &[(&str, Option<String>)]) -> anyhow::Result<Config> {
        let mut builder = ConfigBuilder::default();
        if let Some(path) = &self.config {
            builder = builder.file(path)?;
        }
        builder = builder.env(|name| std::env::var(name).ok())?;
        let named = [
            ("http.port", self.port.map(|port| port.to_string())),
            ("http.listen", self.host.clone()),
            (
                "data_dir",
                self.data_dir.as_ref().map(|dir| dir.display().to_string()),
            ),
        ];
        for (key, value) in named.iter().chain(extra) {
            if let Some(value) = value {
                builder =
                    builder.set(key, value, &format!("--{}", key.replace(['.', '_'], "-")))?;
            }
        }
        for assignment in &self.set {
            let (key, value) = assignment
                .split_once('=')
                .with_context(|| format!("--set {assignment}: expected KEY=VALUE"))?;
            builder = builder.set(key.trim(), value, &format!("--set {assignment}"))?;
        }
        Ok(builder.build()?)
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Command::Config { command } = &cli.command {
        match command {
            ConfigCommand::Default => print!("{}", roost_config::DEFAULT_CONFIG),
            ConfigCommand::Show { config } => {
                let mut config = config.load(&[])?;
                if !config.engine.password.is_empty() {
                    config.engine.password = "<hidden>".into();
                }
                print!("{}", toml::to_string(&config)?);
            }
        }
        return Ok(());
    }
    roost_telemetry::init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Local {
            config,
            libchdb,
            events_rps,
            events_bytes_per_second,
            import_allow_private,
            import_max_bytes,
            import_max_parquet_bytes,
            sink_local_root,
        } => {
            let config = config.load(&[
                (
                    "engine.libchdb",
                    libchdb.map(|path| path.display().to_string()),
                ),
                (
                    "events.requests_per_second",
                    events_rps.map(|n| n.to_string()),
                ),
                (
                    "events.bytes_per_second",
                    events_bytes_per_second.map(|n| n.to_string()),
                ),
                ("imports.allow_private", import_allow_private),
                ("imports.max_bytes", import_max_bytes.map(|n| n.to_string())),
                (
                    "imports.max_parquet_bytes",
                    import_max_parquet_bytes.map(|n| n.to_string()),
                ),
                (
                    "sinks.local_root",
                    sink_local_root.map(|path| path.display().to_string()),
                ),
            ])?;
            runtime.block_on(run_local(config))?;
        }
        Command::Serve { config, role } => {
            let config = config.load(&[])?;
            let roles = Role::parse_list(&role)?;
            runtime.block_on(run_serve(config, roles))?;
        }
        Command::Config { .. } => unreachable!("handled before the runtime starts"),
    }
    Ok(())
}

async fn listen(config: &Config) -> anyhow::Result<(tokio::net::TcpListener, String)> {
    let address = format!("{}:{}", config.http.listen, config.http.port);
    let listener = tokio::net::TcpListener::bind(&address)
        .await
        .with_context(|| format!("cannot listen on {address}"))?;
    Ok((listener, address))
}

async fn run_local(config: Config) -> anyhow::Result<()> {
    let started = Instant::now();
    let local = roost_server::local(&config).await?;
    let (listener, address) = listen(&config).await?;
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

/// Resolves on SIGINT or SIGTERM (what `make stop-cluster` and orchestrators send).
async fn stop_signal() {
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let terminated = async {
        match terminate.as_mut() {
            Some(signal) => {
                signal.recv().await;
            }
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminated => {}
    }
}

async fn run_serve(config: Config, roles: std::collections::BTreeSet<Role>) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut node = roost_server::serve(&config, &roles).await?;
    let names: Vec<&str> = roles.iter().map(|role| role.name()).collect();
    let names = names.join(",");
    let transport = format!("{:?}", config.rpc.transport).to_lowercase();
    let grpc_address = match &node.grpc {
        Some(grpc) => grpc.local_addr().to_string(),
        None => "off".to_string(),
    };
    match node.router.take() {
        Some(router) => {
            let (listener, address) = listen(&config).await?;
            tracing::info!(
                roles = %names,
                address = %address,
                subject_prefix = %config.nats.subject_prefix,
                grpc = %grpc_address,
                transport = %transport,
                startup_ms = started.elapsed().as_millis() as u64,
                "roost serve is ready"
            );
            let server = axum::serve(listener, router).with_graceful_shutdown(stop_signal());
            server.await.context("server failed")?;
        }
        None => {
            tracing::info!(
                roles = %names,
                subject_prefix = %config.nats.subject_prefix,
                grpc = %grpc_address,
                transport = %transport,
                startup_ms = started.elapsed().as_millis() as u64,
                "roost serve is ready"
            );
            stop_signal().await;
        }
    }
    tracing::info!(roles = %names, "stopping");
    node.shutdown().await;
    Ok(())
}

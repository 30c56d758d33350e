//! `roost-operator`: reconciles Workspace and DataSource resources onto a ClickHouse cluster,
//! reaching the catalog over NATS. With more than one replica only the holder of the leader
//! Lease reconciles; `/health` and `/metrics` answer on every replica.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use kube::Client;
use kube::runtime::events::Reporter;
use roost_engine::{ClickHouse, ClickHouseConfig};
use roost_operator::lease::LeaderElection;
use roost_operator::metrics::Metrics;
use roost_operator::secrets::KubeSecrets;
use roost_operator::{Context, MANAGER};
use roost_rpc::{ClientOptions, NatsAuthClient, RpcClient};

/// The operator's configuration: flags, or the environment variables named beside them.
#[derive(Debug, Parser)]
#[command(name = "roost-operator", version)]
struct Config {
    /// ClickHouse HTTP URLs of every server of the cluster, comma separated: DDL goes to the
    /// first that answers; the Distributed tables are altered on each.
    #[arg(
        long,
        env = "ROOST_CLICKHOUSE_URLS",
        value_delimiter = ',',
        required = true
    )]
    clickhouse_urls: Vec<String>,
    /// The ClickHouse user.
    #[arg(long, env = "ROOST_CLICKHOUSE_USER", default_value = "default")]
    clickhouse_user: String,
    /// The ClickHouse user's password.
    #[arg(
        long,
        env = "ROOST_CLICKHOUSE_PASSWORD",
        default_value = "",
        hide_env_values = true
    )]
    clickhouse_password: String,
    /// The cluster DDL runs on (`ON CLUSTER`); Workspaces must name it.
    #[arg(long, env = "ROOST_CLICKHOUSE_CLUSTER")]
    clickhouse_cluster: String,
    /// NATS, where the catalog's services answer.
    #[arg(long, env = "ROOST_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    nats_url: String,
    /// The catalog user that owns the workspaces the operator registers.
    #[arg(long, env = "ROOST_OPERATOR_USER_ID")]
    owner_user_id: String,
    /// Where `/health` and `/metrics` listen.
    #[arg(long, env = "ROOST_OPERATOR_LISTEN", default_value = "0.0.0.0:8080")]
    listen: String,
    /// Compete for the leader Lease before reconciling (needed with more than one replica).
    #[arg(long, env = "ROOST_OPERATOR_LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    leader_election: bool,
    /// The Lease's namespace (the pod's own, from the downward API).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    lease_namespace: String,
    /// The Lease's name.
    #[arg(long, env = "ROOST_OPERATOR_LEASE", default_value = "roost-operator")]
    lease_name: String,
    /// This replica's identity in the Lease and in events (the pod's name).
    #[arg(long, env = "POD_NAME", default_value = "roost-operator")]
    pod_name: String,
    /// Seconds a Lease holder has to renew before another replica takes over.
    #[arg(long, env = "ROOST_OPERATOR_LEASE_SECONDS", default_value_t = 15)]
    lease_seconds: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,kube=warn".into()),
        )
        .init();
    let config = Config::parse();
    let mut clickhouse = ClickHouseConfig::new(config.clickhouse_urls[0].clone());
    clickhouse.urls = config.clickhouse_urls.clone();
    clickhouse.user = config.clickhouse_user.clone();
    clickhouse.password = config.clickhouse_password.clone();
    clickhouse.cluster = Some(config.clickhouse_cluster.clone());
    let engine = Arc::new(ClickHouse::new(&clickhouse)?);
    let mut servers: Vec<Arc<dyn roost_engine::Engine>> = Vec::new();
    for url in &config.clickhouse_urls {
        let mut server = clickhouse.clone();
        server.urls = vec![url.clone()];
        servers.push(Arc::new(ClickHouse::new(&server)?));
    }
    let nats = roost_rpc::async_nats::connect(&config.nats_url)
        .await
        .with_context(|| format!("cannot connect to NATS at {}", config.nats_url))?;
    let rpc = RpcClient::new(nats, ClientOptions::default()).await?;
    let client = Client::try_default()
        .await
        .context("cannot reach the Kubernetes API")?;
    let metrics = Arc::new(Metrics::default());
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let router = roost_operator::http::router(metrics.clone());
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, router).await {
            tracing::error!(%error, "the HTTP server stopped");
        }
    });
    let ctx = Arc::new(Context::new(
        client.clone(),
        engine,
        servers,
        Arc::new(NatsAuthClient::new(rpc)),
        Arc::new(KubeSecrets::new(client.clone())),
        config.owner_user_id.clone(),
        metrics.clone(),
        Reporter {
            controller: MANAGER.to_string(),
            instance: Some(config.pod_name.clone()),
        },
    ));
    if !config.leader_election {
        metrics.set_leader(true);
        roost_operator::run(ctx).await;
        return Ok(());
    }
    let election = LeaderElection::new(
        client,
        &config.lease_namespace,
        &config.lease_name,
        &config.pod_name,
        Duration::from_secs(config.lease_seconds.max(3)),
    );
    tracing::info!(lease = %config.lease_name, "waiting to lead");
    election.acquire().await;
    metrics.set_leader(true);
    tracing::info!("leading: reconciling");
    tokio::select! {
        () = roost_operator::run(ctx) => Ok(()),
        () = election.hold() => {
            // Another replica may already reconcile: stop at once, and let the Deployment
            // restart this one as a standby.
            metrics.set_leader(false);
            anyhow::bail!("lost the leader lease")
        }
    }
}

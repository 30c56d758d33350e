//! Measures the NATS transport on this machine: round-trip latency of small sequential calls,
//! throughput with concurrent callers, and the time of a 5 MB streamed answer. The server and
//! the client use separate connections, as separate processes would.
//!
//! `cargo run --release -p roost-rpc --example rpc_latency` (NATS at `ROOST_TEST_NATS_URL`,
//! default `nats://127.0.0.1:4222`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use roost_proto::catalog::v1 as catalog;
use roost_proto::query::v1 as query;
use roost_proto::{CatalogService, QueryService, ServiceError, SqlAnswer};
use roost_rpc::{
    ClientOptions, NatsCatalogClient, NatsQueryClient, RpcClient, ServerOptions, serve_catalog,
    serve_query,
};

/// Answers `get_data_source` with a small data source at once; nothing else is measured.
struct Catalog;

fn unused<T>() -> Result<T, ServiceError> {
    Err(ServiceError::internal("not measured"))
}

#[async_trait]
impl CatalogService for Catalog {
    async fn create_data_source(
        &self,
        _: catalog::CreateDataSourceRequest,
    ) -> Result<catalog::CreateDataSourceResponse, ServiceError> {
        unused()
    }
    async fn get_data_source(
        &self,
        request: catalog::GetDataSourceRequest,
    ) -> Result<catalog::GetDataSourceResponse, ServiceError> {
        Ok(catalog::GetDataSourceResponse {
            data_source: Some(catalog::DataSource {
                id: "t_0123456789abcdef".to_string(),
                name: request.name_or_id,
                workspace_id: "ws_0123456789".to_string(),
                columns: vec![catalog::Column {
                    name: "timestamp".to_string(),
                    r#type: "DateTime".to_string(),
                    jsonpath: "$.timestamp".to_string(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
        })
    }
    async fn list_data_sources(
        &self,
        _: catalog::ListDataSourcesRequest,
    ) -> Result<catalog::ListDataSourcesResponse, ServiceError> {
        unused()
    }
    async fn rename_data_source(
        &self,
        _: catalog::RenameDataSourceRequest,
    ) -> Result<catalog::RenameDataSourceResponse, ServiceError> {
        unused()
    }
    async fn delete_data_source(
        &self,
        _: catalog::DeleteDataSourceRequest,
    ) -> Result<catalog::DeleteDataSourceResponse, ServiceError> {
        unused()
    }
    async fn truncate_data_source(
        &self,
        _: catalog::TruncateDataSourceRequest,
    ) -> Result<catalog::TruncateDataSourceResponse, ServiceError> {
        unused()
    }
    async fn alter_data_source(
        &self,
        _: catalog::AlterDataSourceRequest,
    ) -> Result<catalog::AlterDataSourceResponse, ServiceError> {
        unused()
    }
    async fn drop_workspace_data(
        &self,
        _: catalog::DropWorkspaceDataRequest,
    ) -> Result<catalog::DropWorkspaceDataResponse, ServiceError> {
        unused()
    }
    async fn create_connection(
        &self,
        _: catalog::CreateConnectionRequest,
    ) -> Result<catalog::CreateConnectionResponse, ServiceError> {
        unused()
    }
    async fn get_connection(
        &self,
        _: catalog::GetConnectionRequest,
    ) -> Result<catalog::GetConnectionResponse, ServiceError> {
        unused()
    }
    async fn list_connections(
        &self,
        _: catalog::ListConnectionsRequest,
    ) -> Result<catalog::ListConnectionsResponse, ServiceError> {
        unused()
    }
    async fn delete_connection(
        &self,
        _: catalog::DeleteConnectionRequest,
    ) -> Result<catalog::DeleteConnectionResponse, ServiceError> {
        unused()
    }
}

/// Streams 5 MB in 64 KiB pieces.
struct Query;

#[async_trait]
impl QueryService for Query {
    async fn execute_sql(&self, _: query::ExecuteSqlRequest) -> Result<SqlAnswer, ServiceError> {
        let piece = Bytes::from(vec![b'x'; 64 * 1024]);
        Ok(SqlAnswer {
            content_type: "application/json".to_string(),
            body: futures::stream::iter((0..80).map(move |_| Ok(piece.clone()))).boxed(),
        })
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn request(i: usize) -> catalog::GetDataSourceRequest {
    catalog::GetDataSourceRequest {
        name_or_id: format!("events_{i}"),
        ..Default::default()
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::var("ROOST_TEST_NATS_URL")
        .unwrap_or_else(|_| "nats://127.0.0.1:4222".to_string());
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let prefix = format!("roost.bench.{}.rpc", &suffix[..12]);
    let server_nats = async_nats::connect(&url).await.context("connect")?;
    let client_nats = async_nats::connect(&url).await.context("connect")?;
    let options = ServerOptions {
        subject_prefix: prefix.clone(),
        ..ServerOptions::default()
    };
    let catalog_server =
        serve_catalog(server_nats.clone(), Arc::new(Catalog), options.clone()).await?;
    let query_server = serve_query(server_nats, Arc::new(Query), options).await?;
    let rpc = RpcClient::new(
        client_nats,
        ClientOptions {
            subject_prefix: prefix,
            ..ClientOptions::default()
        },
    )
    .await?;
    let client = NatsCatalogClient::new(rpc.clone());

    for i in 0..200 {
        client.get_data_source(request(i)).await?;
    }

    let mut latencies = Vec::with_capacity(1000);
    for i in 0..1000 {
        let started = Instant::now();
        client.get_data_source(request(i)).await?;
        latencies.push(started.elapsed());
    }
    latencies.sort();
    let mean = latencies.iter().sum::<Duration>() / latencies.len() as u32;
    println!(
        "sequential, 1000 small calls: p50 {:?}  p99 {:?}  max {:?}  mean {:?}",
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        latencies[latencies.len() - 1],
        mean
    );

    let callers = 32;
    let calls_per_caller = 1000;
    let started = Instant::now();
    let tasks: Vec<_> = (0..callers)
        .map(|caller| {
            let client = client.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(calls_per_caller);
                for i in 0..calls_per_caller {
                    let call_started = Instant::now();
                    client
                        .get_data_source(request(caller * calls_per_caller + i))
                        .await?;
                    latencies.push(call_started.elapsed());
                }
                Ok::<_, ServiceError>(latencies)
            })
        })
        .collect();
    let mut all = Vec::with_capacity(callers * calls_per_caller);
    for task in tasks {
        all.extend(task.await??);
    }
    let elapsed = started.elapsed();
    all.sort();
    println!(
        "{callers} concurrent callers, {} calls: {:.0} calls/s  p50 {:?}  p99 {:?}",
        all.len(),
        all.len() as f64 / elapsed.as_secs_f64(),
        percentile(&all, 0.50),
        percentile(&all, 0.99)
    );

    let query = NatsQueryClient::new(rpc);
    let mut times = Vec::new();
    for _ in 0..10 {
        let started = Instant::now();
        let answer = query
            .execute_sql(query::ExecuteSqlRequest::default())
            .await?;
        let mut body = answer.body;
        let mut size = 0;
        while let Some(piece) = body.next().await {
            size += piece?.len();
        }
        anyhow::ensure!(size == 80 * 64 * 1024, "got {size} bytes");
        times.push(started.elapsed());
    }
    times.sort();
    println!(
        "5 MB streamed answer (64 KiB pieces): median {:?} ({:.0} MB/s)",
        percentile(&times, 0.5),
        5.0 / percentile(&times, 0.5).as_secs_f64()
    );

    catalog_server.shutdown().await;
    query_server.shutdown().await;
    Ok(())
}

//! The `roost` binary's wiring: the only place that chooses which implementation each caller
//! gets. `roost local` puts every service in this process, on chDB and SQLite, with in-process
//! clients; the distributed mode will hand the same gateway NATS or gRPC clients instead.

use std::sync::Arc;

use anyhow::Context;
use roost_auth::{Auth, SeedOptions, Seeded};
use roost_bus::CatalogChanges;
use roost_catalog::Catalog;
use roost_config::LocalConfig;
use roost_engine::{Chdb, ChdbConfig, Engine};
use roost_gateway::{GatewayConfig, Services};
use roost_ingest::Ingest;
use roost_jobs::{JobDependencies, Jobs, JobsConfig, WorkerHandle};
use roost_proto::{CatalogClient, EndpointClient, IngestClient, JobsClient, PipeCatalogClient};
use roost_query::{Endpoints, Query};
use roost_scheduler::{LoopOptions, Scheduler, SchedulerHandle};
use roost_store::Store;

/// Everything `roost local` runs.
pub struct Local {
    /// The HTTP API.
    pub router: axum::Router,
    /// The seed's ids and tokens.
    pub seeded: Seeded,
    /// The engine, for callers that need it directly (benchmarks, tests).
    pub engine: Arc<dyn Engine>,
    /// The job worker and the scheduler loop: they run while these live.
    pub background: (WorkerHandle, SchedulerHandle),
}

/// Session settings that make the engine answer as Tinybird does.
fn engine_settings() -> Vec<(String, String)> {
    [
        // Tinybird's JSON answers carry 64-bit integers as numbers.
        ("output_format_json_quote_64bit_integers", "0"),
        // Times are UTC unless a column says otherwise, as in Tinybird.
        ("session_timezone", "UTC"),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_string(), value.to_string()))
    .collect()
}

/// How imports reach remote files, from the config.
fn fetch_config(config: &LocalConfig) -> anyhow::Result<roost_fetch::FetchConfig> {
    let private_access = config
        .imports
        .allow_private
        .parse()
        .map_err(|e| anyhow::anyhow!("invalid ROOST_IMPORT_ALLOW_PRIVATE: {e}"))?;
    Ok(roost_fetch::FetchConfig {
        private_access,
        max_bytes: config.imports.max_bytes,
        max_parquet_bytes: config.imports.max_parquet_bytes,
        ..roost_fetch::FetchConfig::default()
    })
}

/// Builds every service of `roost local` on `config.data_dir`, creating the seed on first start.
pub async fn local(config: &LocalConfig) -> anyhow::Result<Local> {
    let fetch = fetch_config(config)?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create {}", config.data_dir.display()))?;
    let mut engine_config = ChdbConfig::new(config.data_dir.join("engine"));
    engine_config.library = config.libchdb.clone();
    engine_config.settings = engine_settings();
    // Writes and DDL run unrestricted; user queries run on their own connections whose session
    // settings carry the limits, which the SQL validator lets no query change.
    let mut query_config = engine_config.clone();
    query_config.settings.extend(config.query_limits.settings());
    let (engine, query_engine) = tokio::task::spawn_blocking(move || {
        Ok::<_, roost_engine::EngineError>((
            Chdb::open(&engine_config)?,
            Chdb::open(&query_config)?,
        ))
    })
    .await??;
    let engine: Arc<dyn Engine> = Arc::new(engine);
    let query_engine: Arc<dyn Engine> = Arc::new(query_engine);
    let store = Store::connect(&Store::sqlite_url(&config.data_dir.join("catalog.db"))).await?;
    let seeded = Seeded::ensure(&store, &SeedOptions::default()).await?;
    // The catalog and the endpoints share a process: endpoints cache what the catalog lists
    // until the catalog counts a change.
    let changes = CatalogChanges::local();
    let catalog_service =
        Arc::new(Catalog::new(store.clone(), engine.clone()).with_changes(changes.clone()));
    let catalog: CatalogClient = catalog_service.clone();
    let pipes: PipeCatalogClient = catalog_service;
    let endpoints: EndpointClient = Arc::new(
        Endpoints::new(query_engine.clone(), catalog.clone(), pipes.clone())
            .with_changes(changes.clone()),
    );
    let ingest: IngestClient =
        Arc::new(Ingest::new(engine.clone(), catalog.clone()).with_conditions(endpoints.clone()));
    let jobs_service = Jobs::new(store.clone());
    // One process runs every job locally: jobs it left working when it stopped are recovered at
    // start-up rather than after a heartbeat timeout.
    let worker = jobs_service.start_worker(
        JobsConfig {
            sole_worker: true,
            ..JobsConfig::default()
        },
        JobDependencies {
            engine: engine.clone(),
            catalog: catalog.clone(),
            endpoints: endpoints.clone(),
            ingest: ingest.clone(),
            fetcher: roost_fetch::Fetcher::new(fetch.clone())?,
            sink_local_root: config.sink_local_root(),
        },
    );
    let jobs: JobsClient = Arc::new(jobs_service);
    let scheduler = Scheduler::new(store.clone());
    let scheduler_loop = scheduler.start(
        jobs.clone(),
        LoopOptions {
            interval: std::time::Duration::from_millis(250),
            leases: Arc::new(roost_bus::InProcessBus::default()),
            holder: "local".to_string(),
            lease_ttl: std::time::Duration::from_secs(10),
        },
    );
    let services = Services {
        auth: Arc::new(Auth::new(store, Some(seeded.clone()))),
        catalog: catalog.clone(),
        query: Arc::new(Query::new(query_engine, catalog.clone()).with_changes(changes)),
        ingest,
        pipes,
        endpoints,
        jobs,
        scheduler: Arc::new(scheduler),
    };
    let router = roost_gateway::router(
        services,
        GatewayConfig {
            local: true,
            events_requests_per_second: config.events_limits.requests_per_second,
            events_bytes_per_second: config.events_limits.bytes_per_second,
            imports: fetch,
            sink_local_root: config.sink_local_root(),
            ..GatewayConfig::default()
        },
    );
    Ok(Local {
        router,
        seeded,
        engine,
        background: (worker, scheduler_loop),
    })
}

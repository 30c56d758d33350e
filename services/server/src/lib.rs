//! The `roost` binary's wiring: the only place that chooses which implementation each caller
//! gets. One builder, [`build`], serves both modes; only what is passed in differs:
//!
//! - `roost local` ([`local`]): every role in this process, on the configured store and engine
//!   (SQLite and chDB by default), with in-process clients and in-process leases.
//! - `roost serve --role ...` ([`serve`]): the roles given run here, on PostgreSQL and ClickHouse,
//!   and are served over NATS request/reply (a queue group per service, so replicas share the
//!   calls) and, when `grpc.listen` is set, over gRPC on that address (with the health service
//!   and reflection); every service of another process is reached over `rpc.transport`: its
//!   `Nats<Service>Client`, or its `Grpc<Service>Client` at its `grpc.services` address. The
//!   scheduler's leader holds its lease in NATS, and catalog changes are facts on core NATS
//!   whatever the transport (`catalog_changes`).

use std::collections::BTreeSet;
use std::sync::Arc;

use anyhow::{Context, bail};
use roost_auth::{Auth, SeedOptions, Seeded};
use roost_bus::{CatalogChanges, Follow};
use roost_catalog::Catalog;
use roost_config::{Config, EngineKind, Transport};
use roost_engine::{Chdb, ChdbConfig, ClickHouse, ClickHouseConfig, Engine};
use roost_gateway::{GatewayConfig, Services};
use roost_ingest::Ingest;
use roost_ingest::events_queue::{EventsQueueOptions, EventsQueueWorkers};
use roost_jobs::{JobDependencies, Jobs, JobsConfig, WorkerHandle};
use roost_proto::{
    AuthClient, CatalogClient, EndpointClient, IngestClient, JobsClient, PipeCatalogClient,
    QueryClient, SchedulerClient,
};
use roost_query::{Endpoints, Query};
use roost_rpc::{ClientOptions, GrpcChannel, GrpcClientOptions, GrpcServer, RpcClient, RpcServer};
use roost_scheduler::{LoopOptions, Scheduler, SchedulerHandle};
use roost_store::Store;

pub use roost_config as config;

/// A part of Roost a process can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// The HTTP API.
    Gateway,
    /// Tokens and workspaces.
    Auth,
    /// Data sources, pipes and nodes.
    Catalog,
    /// SQL and published endpoints.
    Query,
    /// Data into data sources.
    Ingest,
    /// The jobs service and a worker that runs jobs.
    Jobs,
    /// The schedules service and the loop that turns them into jobs (one leader at a time).
    Scheduler,
}

impl Role {
    /// Every role, in start-up order.
    pub const ALL: [Role; 7] = [
        Role::Auth,
        Role::Catalog,
        Role::Query,
        Role::Ingest,
        Role::Jobs,
        Role::Scheduler,
        Role::Gateway,
    ];

    /// The role's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Role::Gateway => "gateway",
            Role::Auth => "auth",
            Role::Catalog => "catalog",
            Role::Query => "query",
            Role::Ingest => "ingest",
            Role::Jobs => "jobs",
            Role::Scheduler => "scheduler",
        }
    }

    /// Whether the role's services read or write the engine.
    fn uses_engine(self) -> bool {
        matches!(
            self,
            Role::Catalog | Role::Query | Role::Ingest | Role::Jobs
        )
    }

    /// Whether the role's services read or write the store.
    fn uses_store(self) -> bool {
        matches!(
            self,
            Role::Auth | Role::Catalog | Role::Jobs | Role::Scheduler
        )
    }

    /// Reads a comma-separated list of roles (`all` for every one).
    pub fn parse_list(text: &str) -> anyhow::Result<BTreeSet<Role>> {
        let mut roles = BTreeSet::new();
        for name in text
            .split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
        {
            if name == "all" {
                roles.extend(Role::ALL);
                continue;
            }
            let role = Role::ALL
                .into_iter()
                .find(|role| role.name() == name)
                .with_context(|| {
                    let known: Vec<&str> = Role::ALL.iter().map(|role| role.name()).collect();
                    format!("unknown role {name:?}; roles: {}, all", known.join(", "))
                })?;
            roles.insert(role);
        }
        if roles.is_empty() {
            bail!("no role given");
        }
        Ok(roles)
    }
}

/// How the services of a process reach each other and what they share.
enum Mode {
    /// Everything in this process: in-process calls and leases; the worker is the only one.
    Local,
    /// Some roles here, the others over NATS or gRPC.
    Distributed {
        /// The connection for serving and for leases.
        nats: roost_rpc::async_nats::Client,
        /// Calls to the services of other processes.
        remote: Remote,
    },
}

/// How this process calls the services of other processes (`rpc.transport`).
enum Remote {
    /// NATS request/reply.
    Nats(RpcClient),
    /// gRPC, each service at its `grpc.services` address.
    Grpc(Box<GrpcClientOptions>),
}

/// What one process runs: the HTTP router when it is a gateway, and everything that must stay
/// alive while it serves (RPC servers, the job worker, the scheduler loop).
pub struct Node {
    /// The HTTP API, when this process is a gateway.
    pub router: Option<axum::Router>,
    /// The seed's ids and tokens, when this process runs auth.
    pub seeded: Option<Seeded>,
    /// The engine, when a role here uses it.
    pub engine: Option<Arc<dyn Engine>>,
    /// The job worker, when this process runs jobs.
    pub worker: Option<WorkerHandle>,
    /// The scheduler loop, when this process runs the scheduler.
    pub scheduler_loop: Option<SchedulerHandle>,
    /// The workers inserting queued events batches, when this process runs ingest in
    /// distributed mode with the queue on.
    pub events_workers: Option<EventsQueueWorkers>,
    /// The NATS servers of this process's services.
    pub servers: Vec<RpcServer>,
    /// The gRPC server of this process's services, when `grpc.listen` is set.
    pub grpc: Option<GrpcServer>,
}

impl Node {
    /// Stops taking service calls and waits for the running ones to answer.
    pub async fn shutdown(self) {
        if let Some(grpc) = self.grpc {
            grpc.shutdown().await;
        }
        for server in self.servers {
            server.shutdown().await;
        }
    }
}

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
fn engine_settings(kind: EngineKind, cluster: bool) -> Vec<(String, String)> {
    // Tinybird's JSON answers carry 64-bit integers as numbers.
    let mut settings = vec![("output_format_json_quote_64bit_integers", "0")];
    // An insert into a Distributed table answers once the shards have the rows, so an
    // acknowledged write (events with wait=true, imports) is readable at once and is not lost
    // with a server's pending queue.
    // Replicated tables drop a block identical to one inserted before; appends, as in roost
    // local, keep every row they are given (the same events sent twice are twice the rows).
    if cluster {
        settings.push(("insert_distributed_sync", "1"));
        settings.push(("insert_deduplicate", "0"));
    }
    // Times are UTC unless a column says otherwise, as in Tinybird. A ClickHouse server has no
    // `session_timezone` before 23.6 and refuses unknown settings, so there the server's own
    // `<timezone>` must be UTC (scripts/clickhouse-up.sh sets it).
    if kind == EngineKind::Chdb {
        settings.push(("session_timezone", "UTC"));
    }
    settings
        .into_iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
}

/// How imports reach remote files, from the config.
fn fetch_config(config: &Config) -> anyhow::Result<roost_fetch::FetchConfig> {
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

/// The engine for writes and DDL, and the one user queries run on: the latter's session settings
/// carry the limits, which the SQL validator lets no query change.
async fn open_engines(config: &Config) -> anyhow::Result<(Arc<dyn Engine>, Arc<dyn Engine>)> {
    let settings = engine_settings(config.engine.kind, config.engine.cluster_name().is_some());
    let mut query_settings = settings.clone();
    query_settings.extend(config.query_limits.settings());
    match config.engine.kind {
        EngineKind::Chdb => {
            std::fs::create_dir_all(&config.data_dir)
                .with_context(|| format!("cannot create {}", config.data_dir.display()))?;
            let mut engine_config = ChdbConfig::new(config.data_dir.join("engine"));
            engine_config.library = config.engine.libchdb_path();
            engine_config.settings = settings;
            let mut query_config = engine_config.clone();
            query_config.settings = query_settings;
            let (engine, query_engine) = tokio::task::spawn_blocking(move || {
                Ok::<_, roost_engine::EngineError>((
                    Chdb::open(&engine_config)?,
                    Chdb::open(&query_config)?,
                ))
            })
            .await??;
            Ok((Arc::new(engine), Arc::new(query_engine)))
        }
        EngineKind::Clickhouse => {
            let mut engine_config = ClickHouseConfig::new(String::new());
            engine_config.urls = config.engine.urls.clone();
            engine_config.user = config.engine.user.clone();
            engine_config.password = config.engine.password.clone();
            engine_config.cluster = config.engine.cluster_name();
            engine_config.settings = settings;
            let mut query_config = engine_config.clone();
            query_config.settings = query_settings;
            Ok((
                Arc::new(ClickHouse::new(&engine_config)?),
                Arc::new(ClickHouse::new(&query_config)?),
            ))
        }
    }
}

/// The store: the configured URL, else SQLite in the data directory.
async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let url = if config.store.url.trim().is_empty() {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("cannot create {}", config.data_dir.display()))?;
        Store::sqlite_url(&config.data_dir.join("catalog.db"))
    } else {
        config.store.url.clone()
    };
    Ok(Store::connect(&url).await?)
}

/// A client of the service named `service`: the implementation when this process runs it, else
/// its NATS or gRPC client, as `rpc.transport` says.
fn client<T: ?Sized>(
    here: Option<Arc<T>>,
    mode: &Mode,
    config: &Config,
    service: &str,
    nats: impl FnOnce(RpcClient) -> Arc<T>,
    grpc: impl FnOnce(GrpcChannel) -> Arc<T>,
) -> anyhow::Result<Arc<T>> {
    match (here, mode) {
        (Some(service), _) => Ok(service),
        (None, Mode::Distributed { remote, .. }) => match remote {
            Remote::Nats(rpc) => Ok(nats(rpc.clone())),
            Remote::Grpc(options) => {
                let key = format!("grpc.services.{service}");
                let address = config.grpc.services.address(service).with_context(|| {
                    format!(
                        "rpc.transport is grpc but {key} ({}) is not set",
                        roost_config::env_name(&key)
                    )
                })?;
                Ok(grpc(GrpcChannel::connect_lazy(
                    address,
                    options.as_ref().clone(),
                )?))
            }
        },
        (None, Mode::Local) => bail!("a local process must run every role"),
    }
}

/// Builds the roles of one process: implementations for the roles here, clients for the rest.
async fn build(config: &Config, roles: &BTreeSet<Role>, mode: Mode) -> anyhow::Result<Node> {
    use roost_rpc::*;
    let here = |role: Role| roles.contains(&role);
    let local = matches!(mode, Mode::Local);
    let fetch = fetch_config(config)?;

    let engines = if roles.iter().any(|role| role.uses_engine()) {
        Some(open_engines(config).await?)
    } else {
        None
    };
    let store = if roles.iter().any(|role| role.uses_store()) {
        Some(open_store(config).await?)
    } else {
        None
    };
    let engine = || engines.as_ref().map(|(engine, _)| engine.clone());
    let query_engine = || engines.as_ref().map(|(_, query)| query.clone());
    let store_here = || store.clone().context("no store");

    // Only auth creates the seed, so processes starting together on a new store never race to.
    let seeded = match &store {
        Some(store) if here(Role::Auth) => {
            Some(Seeded::ensure(store, &SeedOptions::default()).await?)
        }
        _ => None,
    };

    let changes = catalog_changes(config, roles, &mode).await;
    let catalog_service = match (here(Role::Catalog), &store, engine()) {
        (true, Some(store), Some(engine)) => {
            let catalog = Catalog::new(store.clone(), engine);
            Some(Arc::new(match &changes {
                Some(changes) => catalog.with_changes(changes.clone()),
                None => catalog,
            }))
        }
        _ => None,
    };
    let catalog: CatalogClient = client(
        catalog_service.clone().map(|c| c as CatalogClient),
        &mode,
        config,
        "catalog",
        |rpc| Arc::new(NatsCatalogClient::new(rpc)),
        |channel| Arc::new(GrpcCatalogClient::new(channel)),
    )?;
    let pipes: PipeCatalogClient = client(
        catalog_service.map(|c| c as PipeCatalogClient),
        &mode,
        config,
        "pipe_catalog",
        |rpc| Arc::new(NatsPipeCatalogClient::new(rpc)),
        |channel| Arc::new(GrpcPipeCatalogClient::new(channel)),
    )?;
    let endpoints: EndpointClient = client(
        query_engine().filter(|_| here(Role::Query)).map(|engine| {
            let endpoints = Endpoints::new(engine, catalog.clone(), pipes.clone());
            Arc::new(match &changes {
                Some(changes) => endpoints.with_changes(changes.clone()),
                None => endpoints,
            }) as EndpointClient
        }),
        &mode,
        config,
        "endpoint",
        |rpc| Arc::new(NatsEndpointClient::new(rpc)),
        |channel| Arc::new(GrpcEndpointClient::new(channel)),
    )?;
    let query: QueryClient = client(
        query_engine().filter(|_| here(Role::Query)).map(|engine| {
            let query = Query::new(engine, catalog.clone());
            Arc::new(match &changes {
                Some(changes) => query.with_changes(changes.clone()),
                None => query,
            }) as QueryClient
        }),
        &mode,
        config,
        "query",
        |rpc| Arc::new(NatsQueryClient::new(rpc)),
        |channel| Arc::new(GrpcQueryClient::new(channel)),
    )?;
    let ingest_here = engine().filter(|_| here(Role::Ingest)).map(|engine| {
        Arc::new(Ingest::new(engine, catalog.clone()).with_conditions(endpoints.clone()))
    });
    let ingest: IngestClient = client(
        ingest_here.clone().map(|ingest| ingest as IngestClient),
        &mode,
        config,
        "ingest",
        |rpc| Arc::new(NatsIngestClient::new(rpc)),
        |channel| Arc::new(GrpcIngestClient::new(channel)),
    )?;
    // Distributed mode: accepted events wait in JetStream until an ingest process stored them.
    // A NATS message holds at most the server's max_payload: larger batches take the direct path.
    let (events_bus, max_queued_batch_bytes) = match &mode {
        Mode::Distributed { nats, .. } if config.events.queue => (
            Some(events_bus(config, nats)),
            nats.server_info()
                .max_payload
                .saturating_sub(QUEUED_BATCH_OVERHEAD),
        ),
        _ => (None, 0),
    };
    let events_workers = match (&events_bus, ingest_here) {
        (Some(bus), Some(ingest)) => Some(roost_ingest::events_queue::start_workers(
            ingest,
            Arc::new(bus.clone()),
            Arc::new(bus.clone()),
            EventsQueueOptions {
                consumers: config.events.consumers.max(1),
                ack_wait: millis(config.events.ack_wait_ms.max(1000)),
                retry_backoff_max: millis(config.events.retry_backoff_max_ms.max(100)),
                done_prefix: events_done_prefix(config),
            },
        )),
        _ => None,
    };
    let auth: AuthClient = client(
        match &store {
            Some(store) if here(Role::Auth) => {
                let auth = Auth::new(store.clone(), seeded.clone());
                // One process is the store's only writer: it may remember who a token is.
                let auth = if local {
                    auth.with_principal_cache()
                } else {
                    auth
                };
                Some(Arc::new(auth) as AuthClient)
            }
            _ => None,
        },
        &mode,
        config,
        "auth",
        |rpc| Arc::new(NatsAuthClient::new(rpc)),
        |channel| Arc::new(GrpcAuthClient::new(channel)),
    )?;

    let mut worker = None;
    let jobs_here = if here(Role::Jobs) {
        let jobs_service = Jobs::new(store_here()?);
        worker = Some(jobs_service.start_worker(
            JobsConfig {
                concurrency: config.jobs.concurrency,
                poll_interval: millis(config.jobs.poll_interval_ms),
                heartbeat_interval: millis(config.jobs.heartbeat_interval_ms),
                abandoned_after: millis(config.jobs.abandoned_after_ms),
                // A lone local worker recovers the jobs it left working at start-up; among
                // several workers only the heartbeat timeout tells a dead one from a busy one.
                sole_worker: local,
            },
            JobDependencies {
                engine: engine().context("no engine")?,
                catalog: catalog.clone(),
                endpoints: endpoints.clone(),
                ingest: ingest.clone(),
                fetcher: roost_fetch::Fetcher::new(fetch.clone())?,
                sink_local_root: config.sink_local_root(),
            },
        ));
        Some(Arc::new(jobs_service) as JobsClient)
    } else {
        None
    };
    let jobs: JobsClient = client(
        jobs_here,
        &mode,
        config,
        "jobs",
        |rpc| Arc::new(NatsJobsClient::new(rpc)),
        |channel| Arc::new(GrpcJobsClient::new(channel)),
    )?;

    let mut scheduler_loop = None;
    let scheduler_here = if here(Role::Scheduler) {
        let scheduler = Scheduler::new(store_here()?);
        let leases: Arc<dyn roost_bus::Leases> = match &mode {
            Mode::Local => Arc::new(roost_bus::InProcessBus::default()),
            Mode::Distributed { nats, .. } => Arc::new(roost_bus::NatsBus::new(
                nats.clone(),
                roost_bus::NatsBusOptions {
                    lease_bucket: config.nats.lease_bucket.clone(),
                    ..roost_bus::NatsBusOptions::default()
                },
            )),
        };
        scheduler_loop = Some(scheduler.start(
            jobs.clone(),
            LoopOptions {
                interval: millis(config.scheduler.interval_ms),
                leases,
                holder: if local {
                    "local".to_string()
                } else {
                    format!("scheduler-{}-{}", std::process::id(), uuid::Uuid::new_v4())
                },
                lease_ttl: millis(config.scheduler.lease_ttl_ms),
            },
        ));
        Some(Arc::new(scheduler) as SchedulerClient)
    } else {
        None
    };

    let mut servers = Vec::new();
    if let Mode::Distributed { nats, .. } = &mode {
        let options = ServerOptions {
            subject_prefix: config.nats.subject_prefix.clone(),
            ..ServerOptions::default()
        };
        if here(Role::Auth) {
            servers.push(serve_auth(nats.clone(), auth.clone(), options.clone()).await?);
        }
        if here(Role::Catalog) {
            servers.push(serve_catalog(nats.clone(), catalog.clone(), options.clone()).await?);
            servers.push(serve_pipe_catalog(nats.clone(), pipes.clone(), options.clone()).await?);
        }
        if here(Role::Query) {
            servers.push(serve_query(nats.clone(), query.clone(), options.clone()).await?);
            servers.push(serve_endpoint(nats.clone(), endpoints.clone(), options.clone()).await?);
        }
        if here(Role::Ingest) {
            servers.push(serve_ingest(nats.clone(), ingest.clone(), options.clone()).await?);
        }
        if here(Role::Jobs) {
            servers.push(serve_jobs(nats.clone(), jobs.clone(), options.clone()).await?);
        }
        if let Some(scheduler) = &scheduler_here {
            servers.push(serve_scheduler(nats.clone(), scheduler.clone(), options.clone()).await?);
        }
    }
    let scheduler: SchedulerClient = client(
        scheduler_here.clone(),
        &mode,
        config,
        "scheduler",
        |rpc| Arc::new(NatsSchedulerClient::new(rpc)),
        |channel| Arc::new(GrpcSchedulerClient::new(channel)),
    )?;

    // The same services over gRPC, on one address with health and reflection.
    let mut grpc = None;
    if let (Mode::Distributed { .. }, Some(listen)) = (&mode, config.grpc.listen_address()) {
        let mut builder = GrpcServerBuilder::new(GrpcServerOptions::default());
        if here(Role::Auth) {
            builder = builder.serve_auth(auth.clone());
        }
        if here(Role::Catalog) {
            builder = builder
                .serve_catalog(catalog.clone())
                .serve_pipe_catalog(pipes.clone());
        }
        if here(Role::Query) {
            builder = builder
                .serve_query(query.clone())
                .serve_endpoint(endpoints.clone());
        }
        if here(Role::Ingest) {
            builder = builder.serve_ingest(ingest.clone());
        }
        if here(Role::Jobs) {
            builder = builder.serve_jobs(jobs.clone());
        }
        if let Some(scheduler) = &scheduler_here {
            builder = builder.serve_scheduler(scheduler.clone());
        }
        grpc = Some(builder.start(listen).await?);
    }

    let router = here(Role::Gateway).then(|| {
        roost_gateway::router(
            Services {
                auth,
                catalog,
                query,
                ingest,
                pipes,
                endpoints,
                jobs,
                scheduler,
            },
            GatewayConfig {
                local: local || config.http.serve_tokens,
                events_requests_per_second: config.events.requests_per_second.max(1),
                events_bytes_per_second: config.events.bytes_per_second.max(1),
                imports: fetch,
                sink_local_root: config.sink_local_root(),
                events_queue: events_bus.map(|bus| roost_gateway::EventsQueue {
                    queue: Arc::new(bus.clone()),
                    facts: Arc::new(bus),
                    done_prefix: events_done_prefix(config),
                    wait_timeout: millis(config.events.wait_timeout_ms),
                    max_batch_bytes: max_queued_batch_bytes,
                }),
                catalog_changes: changes,
                ..GatewayConfig::default()
            },
        )
    });
    Ok(Node {
        router,
        seeded,
        engine: engine(),
        worker,
        scheduler_loop,
        events_workers,
        servers,
        grpc,
    })
}

/// What tells this process's caches of catalog reads (endpoints, /v0/sql, the Events API's known
/// data sources) that the catalog changed, so they need no catalog round trip per call; `None`:
/// nothing here caches catalog reads, or announces changes.
///
/// In one process, the catalog's own count. Across processes, facts on core NATS under
/// `nats.subject_prefix`, whatever `rpc.transport` is: the catalog announces each change before
/// it answers, the query and gateway processes follow them (see `roost_bus::CatalogChanges`);
/// over gRPC each of their reads first makes a round trip to the NATS server, still no catalog
/// call.
async fn catalog_changes(
    config: &Config,
    roles: &BTreeSet<Role>,
    mode: &Mode,
) -> Option<Arc<CatalogChanges>> {
    match mode {
        Mode::Local => Some(CatalogChanges::local()),
        Mode::Distributed { nats, .. } => {
            let announces = roles.contains(&Role::Catalog);
            let caches = roles.contains(&Role::Query) || roles.contains(&Role::Gateway);
            // Over NATS a call reaches this process after the facts its caller's catalog
            // answer waited for; a gRPC call may overtake them (see `roost_bus::Follow`).
            let follow = match (caches, config.rpc.transport) {
                (false, _) => Follow::Not,
                (true, Transport::Nats) => Follow::CallsOverTheBus,
                (true, Transport::Grpc) => Follow::CallsOverAnotherPath,
            };
            if !announces && follow == Follow::Not {
                return None;
            }
            let bus = roost_bus::NatsBus::new(nats.clone(), roost_bus::NatsBusOptions::default());
            Some(
                CatalogChanges::distributed(
                    Arc::new(bus),
                    &config.nats.subject_prefix,
                    announces,
                    follow,
                )
                .await,
            )
        }
    }
}

/// Room a queued batch's message keeps for its headers and the request's fields besides the body.
const QUEUED_BATCH_OVERHEAD: usize = 64 * 1024;

/// The bus of the events queue.
fn events_bus(config: &Config, nats: &roost_rpc::async_nats::Client) -> roost_bus::NatsBus {
    roost_bus::NatsBus::new(
        nats.clone(),
        events_bus_options(&config.nats.subject_prefix),
    )
}

/// Where the events queue of the deployment on `subject_prefix` lives. Its stream and subjects
/// are named after the prefix, so deployments (and test clusters) sharing a NATS server never
/// share batches.
pub fn events_bus_options(subject_prefix: &str) -> roost_bus::NatsBusOptions {
    roost_bus::NatsBusOptions {
        work_subject_prefix: format!("{subject_prefix}.queue"),
        stream_prefix: roost_bus::stream_name_prefix(subject_prefix),
        ..roost_bus::NatsBusOptions::default()
    }
}

/// Where ingest announces settled events batches.
fn events_done_prefix(config: &Config) -> String {
    format!("{}.events.done", config.nats.subject_prefix)
}

fn millis(value: u64) -> std::time::Duration {
    std::time::Duration::from_millis(value)
}

/// Builds every service of `roost local`, creating the seed on first start.
pub async fn local(config: &Config) -> anyhow::Result<Local> {
    let roles = Role::ALL.into_iter().collect();
    let node = build(config, &roles, Mode::Local).await?;
    match node {
        Node {
            router: Some(router),
            seeded: Some(seeded),
            engine: Some(engine),
            worker: Some(worker),
            scheduler_loop: Some(scheduler_loop),
            ..
        } => Ok(Local {
            router,
            seeded,
            engine,
            background: (worker, scheduler_loop),
        }),
        _ => bail!("roost local must run every role"),
    }
}

/// Builds the `roles` of one `roost serve` process: connects to NATS, serves those roles there
/// (and over gRPC when `grpc.listen` is set), and reaches the others over `rpc.transport`.
pub async fn serve(config: &Config, roles: &BTreeSet<Role>) -> anyhow::Result<Node> {
    if roles.iter().any(|role| role.uses_store()) && config.store.url.trim().is_empty() {
        bail!(
            "roost serve needs a shared store: set store.url (ROOST_STORE_URL) to a postgres:// URL"
        );
    }
    if roles.iter().any(|role| role.uses_engine()) && config.engine.kind != EngineKind::Clickhouse {
        bail!(
            "roost serve needs a shared engine: set engine.kind = \"clickhouse\" \
             (ROOST_ENGINE_KIND) and engine.urls; chDB is for roost local"
        );
    }
    let nats = roost_rpc::async_nats::connect(&config.nats.url)
        .await
        .with_context(|| format!("cannot connect to NATS at {}", config.nats.url))?;
    let remote = match config.rpc.transport {
        Transport::Nats => Remote::Nats(
            RpcClient::new(
                nats.clone(),
                ClientOptions {
                    subject_prefix: config.nats.subject_prefix.clone(),
                    timeout: config.rpc.timeout(),
                    ..ClientOptions::default()
                },
            )
            .await?,
        ),
        Transport::Grpc => Remote::Grpc(Box::new(GrpcClientOptions {
            timeout: config.rpc.timeout(),
            ..GrpcClientOptions::default()
        })),
    };
    build(config, roles, Mode::Distributed { nats, remote }).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_a_comma_separated_list_or_all() {
        let roles = Role::parse_list("gateway, query,query").unwrap();
        assert_eq!(
            roles.into_iter().collect::<Vec<_>>(),
            [Role::Gateway, Role::Query]
        );
        assert_eq!(Role::parse_list("all").unwrap().len(), Role::ALL.len());
        let unknown = Role::parse_list("gateway,search").unwrap_err().to_string();
        assert!(
            unknown.contains("\"search\"") && unknown.contains("scheduler"),
            "{unknown}"
        );
        assert!(Role::parse_list(" , ").is_err());
    }

    #[test]
    fn a_clickhouse_server_gets_no_setting_it_does_not_know() {
        let names = |settings: Vec<(String, String)>| -> Vec<String> {
            settings.into_iter().map(|(name, _)| name).collect()
        };
        assert!(
            names(engine_settings(EngineKind::Chdb, false)).contains(&"session_timezone".into())
        );
        assert!(
            !names(engine_settings(EngineKind::Clickhouse, false))
                .contains(&"session_timezone".into())
        );
        let cluster = names(engine_settings(EngineKind::Clickhouse, true));
        assert!(
            cluster.contains(&"insert_distributed_sync".into()),
            "{cluster:?}"
        );
        assert!(
            cluster.contains(&"insert_deduplicate".into()),
            "{cluster:?}"
        );
    }
}

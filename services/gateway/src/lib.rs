//! The Tinybird HTTP API (v0) on axum. The gateway holds only service clients from `roost-proto`:
//! it authenticates, parses what Tinybird's clients send (query string, form bodies, multipart
//! files, raw bodies, gzip), calls the services and shapes their answers as Tinybird does. Every
//! non-2xx answer is JSON `{"error": ...}`.

mod datafile;
mod error;
mod params;
mod rate_limit;
mod routes;

pub use error::ApiError;
pub use routes::events::EventsQueue;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use roost_proto::{
    AuthClient, CatalogClient, EndpointClient, IngestClient, JobsClient, PipeCatalogClient,
    QueryClient, SchedulerClient,
};

/// The clients the gateway calls.
#[derive(Clone)]
pub struct Services {
    /// Tokens and workspaces.
    pub auth: AuthClient,
    /// Data sources.
    pub catalog: CatalogClient,
    /// SQL.
    pub query: QueryClient,
    /// Data into data sources.
    pub ingest: IngestClient,
    /// Pipes and nodes.
    pub pipes: PipeCatalogClient,
    /// Published endpoints.
    pub endpoints: EndpointClient,
    /// Long work: deletes, populates, copies.
    pub jobs: JobsClient,
    /// Copy and sink schedules.
    pub scheduler: SchedulerClient,
}

/// Gateway settings.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// `roost local`: serves `GET /tokens` without authentication, as Tinybird Local does.
    pub local: bool,
    /// Largest Events API request, after decompression (Tinybird: 10 MB).
    pub max_events_body: usize,
    /// Largest file upload to `/v0/datasources`.
    pub max_upload_body: usize,
    /// Events API requests per second per data source (Tinybird: 100).
    pub events_requests_per_second: u64,
    /// Events API bytes per second per data source (Tinybird: 20 MB).
    pub events_bytes_per_second: u64,
    /// How URLs given to imports and `/v0/analyze` are checked and read.
    pub imports: roost_fetch::FetchConfig,
    /// The directory local sink connections write under: a connection's root is taken
    /// relative to it, and an absolute root must lie inside it.
    pub sink_local_root: std::path::PathBuf,
    /// Distributed mode: where accepted events batches are stored for ingest; `None`: the
    /// Events API calls ingest and answers after the insert.
    pub events_queue: Option<EventsQueue>,
    /// What tells this process the catalog changed, so catalog answers may be remembered until
    /// then; `None`: every answer is asked for again.
    pub catalog_changes: Option<Arc<roost_bus::CatalogChanges>>,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            local: true,
            max_events_body: 10 * 1024 * 1024,
            max_upload_body: 1024 * 1024 * 1024,
            events_requests_per_second: 100,
            events_bytes_per_second: 20 * 1024 * 1024,
            imports: roost_fetch::FetchConfig::default(),
            sink_local_root: std::path::PathBuf::from("./roost-data/exports"),
            events_queue: None,
            catalog_changes: None,
        }
    }
}

/// What every handler shares.
#[derive(Clone)]
pub(crate) struct AppState {
    pub services: Services,
    pub config: Arc<GatewayConfig>,
    pub limiters: Arc<rate_limit::Limiters>,
    /// Checks import URLs and reads samples of remote files.
    pub fetcher: roost_fetch::Fetcher,
    /// Data sources the Events API saw exist since the last catalog change, so queued events
    /// need no catalog call.
    pub known_data_sources: Arc<routes::events::KnownDataSources>,
}

/// The request span: method and path only, since query strings may carry tokens, never logged.
fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    tracing::debug_span!("request", method = %request.method(), path = %request.uri().path())
}

/// The whole API.
pub fn router(services: Services, config: GatewayConfig) -> Router {
    let upload_limit = config.max_upload_body;
    let fetcher = roost_fetch::Fetcher::new(config.imports.clone())
        .expect("the HTTP client for imports starts");
    let known_data_sources = Arc::new(routes::events::KnownDataSources::following(
        config.catalog_changes.clone(),
    ));
    let state = AppState {
        services,
        config: Arc::new(config),
        limiters: Arc::new(rate_limit::Limiters::default()),
        fetcher,
        known_data_sources,
    };
    routes::routes()
        .layer(DefaultBodyLimit::max(upload_limit))
        .layer(axum::middleware::from_fn(rate_limit::headers))
        .layer(axum::middleware::map_response(error::json_errors))
        .layer(tower_http::trace::TraceLayer::new_for_http().make_span_with(request_span))
        .with_state(state)
}

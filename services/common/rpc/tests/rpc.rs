//! The NATS transport against the real NATS server (`ROOST_TEST_NATS_URL`, default
//! `nats://127.0.0.1:4222`). Each test serves under its own subject prefix, so tests running at
//! the same time (and other people's servers) never see each other's calls.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use prost::Message as _;
use roost_proto::catalog::v1 as catalog;
use roost_proto::common::v1::RequestHeader;
use roost_proto::ingest::v1 as ingest;
use roost_proto::query::v1 as query;
use roost_proto::{
    CatalogService, ErrorCode, IngestService, QueryService, ServiceError, SqlAnswer,
};
use roost_rpc::wire::{self, Frame};
use roost_rpc::{
    ClientOptions, NatsCatalogClient, NatsIngestClient, NatsQueryClient, RpcClient, RpcServer,
    ServerOptions, serve_catalog, serve_ingest, serve_query,
};

fn nats_url() -> String {
    std::env::var("ROOST_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_string())
}

async fn connect() -> async_nats::Client {
    async_nats::connect(nats_url())
        .await
        .expect("NATS must run at ROOST_TEST_NATS_URL (default nats://127.0.0.1:4222)")
}

/// A subject prefix nobody else uses.
fn unique_prefix(test: &str) -> String {
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("roost.test.{test}.{}.rpc", &suffix[..12])
}

fn server_options(prefix: &str) -> ServerOptions {
    ServerOptions {
        subject_prefix: prefix.to_string(),
        ..ServerOptions::default()
    }
}

fn client_options(prefix: &str) -> ClientOptions {
    ClientOptions {
        subject_prefix: prefix.to_string(),
        timeout: Duration::from_secs(10),
        chunk_timeout: Duration::from_secs(5),
        ..ClientOptions::default()
    }
}

async fn catalog_client(nats: &async_nats::Client, options: ClientOptions) -> NatsCatalogClient {
    let rpc = RpcClient::new(nats.clone(), options)
        .await
        .expect("rpc client");
    NatsCatalogClient::new(rpc)
}

fn header() -> Option<RequestHeader> {
    Some(RequestHeader {
        workspace_id: "ws_test".to_string(),
        token_id: "tk_test".to_string(),
        request_id: "req-1".to_string(),
        traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_string(),
    })
}

/// Bytes of a recognizable pattern, so a reordered or truncated answer cannot pass for the real one.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// A small in-memory catalog: real answers for data sources, plus names that make it misbehave
/// (`error-<code>`, `slow-<ms>`, `big-<bytes>`), because the transport is what is under test.
struct FakeCatalog {
    data_sources: Mutex<BTreeMap<String, catalog::DataSource>>,
    calls: AtomicUsize,
    started: AtomicUsize,
    finished: AtomicUsize,
}

impl FakeCatalog {
    fn new() -> Arc<Self> {
        Arc::new(FakeCatalog {
            data_sources: Mutex::default(),
            calls: AtomicUsize::new(0),
            started: AtomicUsize::new(0),
            finished: AtomicUsize::new(0),
        })
    }
}

#[async_trait]
impl CatalogService for FakeCatalog {
    async fn create_data_source(
        &self,
        request: catalog::CreateDataSourceRequest,
    ) -> Result<catalog::CreateDataSourceResponse, ServiceError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if request.name.is_empty() {
            return Err(ServiceError::bad_request("a data source needs a name"));
        }
        let workspace_id = request.header.unwrap_or_default().workspace_id;
        let data_source = catalog::DataSource {
            id: format!("t_{}", request.name),
            name: request.name.clone(),
            workspace_id,
            columns: request.columns,
            engine: request.engine,
            description: request.description,
            ..Default::default()
        };
        let mut data_sources = self.data_sources.lock().expect("lock");
        if data_sources.contains_key(&request.name) {
            return Err(ServiceError::conflict(format!(
                "Data Source '{}' already exists",
                request.name
            )));
        }
        data_sources.insert(request.name, data_source.clone());
        Ok(catalog::CreateDataSourceResponse {
            data_source: Some(data_source),
        })
    }

    async fn get_data_source(
        &self,
        request: catalog::GetDataSourceRequest,
    ) -> Result<catalog::GetDataSourceResponse, ServiceError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let name = request.name_or_id;
        if let Some(code) = name.strip_prefix("error-") {
            let code = ErrorCode::try_from(code.parse::<i32>().unwrap_or(10))
                .unwrap_or(ErrorCode::Internal);
            return Err(ServiceError::new(
                code,
                format!("forced {}", code.as_str_name()),
            ));
        }
        if let Some(millis) = name.strip_prefix("slow-") {
            self.started.fetch_add(1, Ordering::SeqCst);
            let millis: u64 = millis.parse().unwrap_or(1000);
            tokio::time::sleep(Duration::from_millis(millis)).await;
            self.finished.fetch_add(1, Ordering::SeqCst);
            return Ok(catalog::GetDataSourceResponse {
                data_source: Some(catalog::DataSource {
                    name,
                    ..Default::default()
                }),
            });
        }
        if let Some(size) = name.strip_prefix("big-") {
            let size: usize = size.parse().unwrap_or(0);
            return Ok(catalog::GetDataSourceResponse {
                data_source: Some(catalog::DataSource {
                    name,
                    // A string field: the pattern as hex is still distinctive.
                    description: pattern(size / 2)
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect(),
                    ..Default::default()
                }),
            });
        }
        let data_sources = self.data_sources.lock().expect("lock");
        match data_sources.get(&name) {
            Some(data_source) => Ok(catalog::GetDataSourceResponse {
                data_source: Some(data_source.clone()),
            }),
            None => Err(ServiceError::not_found(format!(
                "Data Source '{name}' not found"
            ))),
        }
    }

    async fn list_data_sources(
        &self,
        _request: catalog::ListDataSourcesRequest,
    ) -> Result<catalog::ListDataSourcesResponse, ServiceError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let data_sources = self.data_sources.lock().expect("lock");
        Ok(catalog::ListDataSourcesResponse {
            data_sources: data_sources.values().cloned().collect(),
        })
    }

    async fn rename_data_source(
        &self,
        _request: catalog::RenameDataSourceRequest,
    ) -> Result<catalog::RenameDataSourceResponse, ServiceError> {
        Err(ServiceError::new(ErrorCode::Unsupported, "not in the fake"))
    }

    async fn delete_data_source(
        &self,
        _request: catalog::DeleteDataSourceRequest,
    ) -> Result<catalog::DeleteDataSourceResponse, ServiceError> {
        Err(ServiceError::new(ErrorCode::Unsupported, "not in the fake"))
    }

    async fn truncate_data_source(
        &self,
        _request: catalog::TruncateDataSourceRequest,
    ) -> Result<catalog::TruncateDataSourceResponse, ServiceError> {
        Err(ServiceError::new(ErrorCode::Unsupported, "not in the fake"))
    }

    async fn alter_data_source(
        &self,
        _request: catalog::AlterDataSourceRequest,
    ) -> Result<catalog::AlterDataSourceResponse, ServiceError> {
        Err(ServiceError::new(ErrorCode::Unsupported, "not in the fake"))
    }

    async fn drop_workspace_data(
        &self,
        _request: catalog::DropWorkspaceDataRequest,
    ) -> Result<catalog::DropWorkspaceDataResponse, ServiceError> {
        Err(ServiceError::new(ErrorCode::Unsupported, "not in the fake"))
    }
    async fn create_connection(
        &self,
        _request: catalog::CreateConnectionRequest,
    ) -> Result<catalog::CreateConnectionResponse, ServiceError> {
        Err(ServiceError::new(ErrorCode::Unsupported, "not in the fake"))
    }
    async fn get_connection(
        &self,
        _request: catalog::GetConnectionRequest,
    ) -> Result<catalog::GetConnectionResponse, ServiceError> {
        Err(ServiceError::new(ErrorCode::Unsupported, "not in the fake"))
    }
    async fn list_connections(
        &self,
        _request: catalog::ListConnectionsRequest,
    ) -> Result<catalog::ListConnectionsResponse, ServiceError> {
        Err(ServiceError::new(ErrorCode::Unsupported, "not in the fake"))
    }
    async fn delete_connection(
        &self,
        _request: catalog::DeleteConnectionRequest,
    ) -> Result<catalog::DeleteConnectionResponse, ServiceError> {
        Err(ServiceError::new(ErrorCode::Unsupported, "not in the fake"))
    }
}

async fn serve_fake_catalog(
    nats: &async_nats::Client,
    prefix: &str,
) -> (Arc<FakeCatalog>, RpcServer) {
    let fake = FakeCatalog::new();
    let server = serve_catalog(nats.clone(), fake.clone(), server_options(prefix))
        .await
        .expect("serve catalog");
    (fake, server)
}

fn get(name: &str) -> catalog::GetDataSourceRequest {
    catalog::GetDataSourceRequest {
        header: header(),
        name_or_id: name.to_string(),
        with_statistics: false,
    }
}

#[tokio::test]
async fn unary_calls_round_trip_with_their_messages() {
    let nats = connect().await;
    let prefix = unique_prefix("round_trip");
    let (fake, server) = serve_fake_catalog(&nats, &prefix).await;
    let client = catalog_client(&nats, client_options(&prefix)).await;

    let created = client
        .create_data_source(catalog::CreateDataSourceRequest {
            header: header(),
            name: "events".to_string(),
            columns: vec![catalog::Column {
                name: "timestamp".to_string(),
                r#type: "DateTime".to_string(),
                jsonpath: "$.timestamp".to_string(),
                ..Default::default()
            }],
            engine: Some(catalog::EngineSettings {
                engine: "MergeTree".to_string(),
                sorting_key: "timestamp".to_string(),
                ..Default::default()
            }),
            description: "clicks".to_string(),
            origin_format: String::new(),
        })
        .await
        .expect("create")
        .data_source
        .expect("a data source");
    assert_eq!(created.id, "t_events");
    assert_eq!(created.workspace_id, "ws_test", "the header travelled");

    let fetched = client.get_data_source(get("events")).await.expect("get");
    assert_eq!(fetched.data_source, Some(created.clone()));

    let listed = client
        .list_data_sources(catalog::ListDataSourcesRequest {
            header: header(),
            with_statistics: false,
        })
        .await
        .expect("list");
    assert_eq!(listed.data_sources, vec![created]);

    let missing = client
        .get_data_source(get("nope"))
        .await
        .expect_err("missing");
    assert_eq!(
        missing,
        ServiceError::not_found("Data Source 'nope' not found")
    );
    let again = client
        .create_data_source(catalog::CreateDataSourceRequest {
            header: header(),
            name: "events".to_string(),
            ..Default::default()
        })
        .await
        .expect_err("exists");
    assert_eq!(again.code, ErrorCode::Conflict);
    assert_eq!(fake.calls.load(Ordering::SeqCst), 5);
    server.shutdown().await;
}

#[tokio::test]
async fn every_error_code_survives_the_trip() {
    let nats = connect().await;
    let prefix = unique_prefix("error_codes");
    let (_fake, server) = serve_fake_catalog(&nats, &prefix).await;
    let client = catalog_client(&nats, client_options(&prefix)).await;
    for value in 0..=11 {
        let code = ErrorCode::try_from(value).expect("code");
        let error = client
            .get_data_source(get(&format!("error-{value}")))
            .await
            .expect_err("forced error");
        assert_eq!(
            error,
            ServiceError::new(code, format!("forced {}", code.as_str_name()))
        );
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_call_past_its_deadline_times_out_and_its_work_is_dropped() {
    let nats = connect().await;
    let prefix = unique_prefix("deadline");
    let (fake, server) = serve_fake_catalog(&nats, &prefix).await;
    let client = catalog_client(
        &nats,
        ClientOptions {
            timeout: Duration::from_millis(300),
            ..client_options(&prefix)
        },
    )
    .await;
    let started = Instant::now();
    let error = client
        .get_data_source(get("slow-2000"))
        .await
        .expect_err("too slow");
    assert_eq!(error.code, ErrorCode::Timeout, "{error}");
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    // The server enforces the same deadline: the handler is dropped, not left running.
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert_eq!(fake.started.load(Ordering::SeqCst), 1);
    assert_eq!(fake.finished.load(Ordering::SeqCst), 0);
    server.shutdown().await;
}

#[tokio::test]
async fn a_request_whose_deadline_passed_is_not_run() {
    let nats = connect().await;
    let prefix = unique_prefix("late");
    let (fake, server) = serve_fake_catalog(&nats, &prefix).await;
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(
        wire::HEADER_DEADLINE,
        wire::encode_deadline(SystemTime::now() - Duration::from_secs(1)),
    );
    let reply = nats
        .request_with_headers(
            wire::method_subject(&prefix, "catalog", "get_data_source"),
            headers,
            Bytes::from(get("slow-10").encode_to_vec()),
        )
        .await
        .expect("an answer");
    let frame = Frame::from_message(reply.headers.as_ref(), reply.payload).expect("a frame");
    match frame {
        Frame::Failed { seq: None, error } => assert_eq!(error.code, ErrorCode::Timeout),
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert_eq!(
        fake.calls.load(Ordering::SeqCst),
        0,
        "the service never ran"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_call_nobody_serves_is_unavailable_at_once() {
    let nats = connect().await;
    let prefix = unique_prefix("no_responders");
    let client = catalog_client(&nats, client_options(&prefix)).await;
    let started = Instant::now();
    let error = client
        .get_data_source(get("events"))
        .await
        .expect_err("nobody serves");
    assert_eq!(error.code, ErrorCode::Unavailable, "{error}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "no-responders must not wait for the timeout: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn replicas_share_calls_and_the_survivors_take_over() {
    let prefix = unique_prefix("replicas");
    let caller = connect().await;
    let client = catalog_client(&caller, client_options(&prefix)).await;
    // Each replica on its own connection, like separate processes.
    let nats_a = connect().await;
    let nats_b = connect().await;
    let (fake_a, server_a) = serve_fake_catalog(&nats_a, &prefix).await;
    let (fake_b, server_b) = serve_fake_catalog(&nats_b, &prefix).await;

    for _ in 0..100 {
        client.list_data_sources(list()).await.expect("call");
    }
    let (a, b) = (
        fake_a.calls.load(Ordering::SeqCst),
        fake_b.calls.load(Ordering::SeqCst),
    );
    assert_eq!(a + b, 100, "each call reached exactly one replica");
    assert!(
        a > 10 && b > 10,
        "the queue group spreads calls: a={a} b={b}"
    );

    // A replica stopping gracefully: the other takes every call.
    server_b.shutdown().await;
    for _ in 0..50 {
        client
            .list_data_sources(list())
            .await
            .expect("call after B stopped");
    }
    assert_eq!(fake_b.calls.load(Ordering::SeqCst), b);
    assert_eq!(fake_a.calls.load(Ordering::SeqCst), a + 50);

    // The last replica gone: callers learn at once that nobody serves.
    server_a.shutdown().await;
    let error = client
        .list_data_sources(list())
        .await
        .expect_err("nobody left");
    assert_eq!(error.code, ErrorCode::Unavailable);
}

fn list() -> catalog::ListDataSourcesRequest {
    catalog::ListDataSourcesRequest {
        header: header(),
        with_statistics: false,
    }
}

/// Tells [`replica_process`] to serve under this prefix.
const REPLICA_PREFIX_ENV: &str = "ROOST_RPC_TEST_REPLICA_PREFIX";
/// The data source the replica process lists, so callers can tell its answers apart.
const REPLICA_MARK: &str = "served_by_the_replica_process";

/// Not a test of its own: the body of the replica process that
/// `a_killed_replica_process_is_skipped` starts (this test binary, run again with
/// `REPLICA_PREFIX_ENV`) and kills with SIGKILL.
#[tokio::test]
#[ignore = "runs only as the child process of a_killed_replica_process_is_skipped"]
async fn replica_process() {
    let Ok(prefix) = std::env::var(REPLICA_PREFIX_ENV) else {
        return;
    };
    let nats = connect().await;
    let (fake, _server) = serve_fake_catalog(&nats, &prefix).await;
    fake.data_sources.lock().expect("lock").insert(
        REPLICA_MARK.to_string(),
        catalog::DataSource {
            name: REPLICA_MARK.to_string(),
            ..Default::default()
        },
    );
    println!("replica ready");
    std::future::pending::<()>().await;
}

#[tokio::test]
async fn a_killed_replica_process_is_skipped() {
    let prefix = unique_prefix("killed");
    let nats = connect().await;
    let (fake, server) = serve_fake_catalog(&nats, &prefix).await;
    let client = catalog_client(&nats, client_options(&prefix)).await;

    let mut replica = tokio::process::Command::new(std::env::current_exe().expect("test binary"))
        .args(["replica_process", "--exact", "--ignored", "--nocapture"])
        .env(REPLICA_PREFIX_ENV, &prefix)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("replica process");
    let stdout = replica.stdout.take().expect("stdout");
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.expect("read") {
            if line.contains("replica ready") {
                return;
            }
        }
        panic!("the replica process ended before it was ready");
    })
    .await
    .expect("replica ready in time");

    let from_replica = |answer: &catalog::ListDataSourcesResponse| {
        answer.data_sources.iter().any(|ds| ds.name == REPLICA_MARK)
    };
    let mut served_by_replica = 0;
    for _ in 0..60 {
        let answer = client.list_data_sources(list()).await.expect("call");
        served_by_replica += usize::from(from_replica(&answer));
    }
    assert!(
        served_by_replica > 5 && served_by_replica < 55,
        "both replicas served: {served_by_replica} of 60 by the process"
    );

    // SIGKILL: no drain, no goodbye; the OS closes its socket and NATS drops its subscriptions.
    replica.start_kill().expect("kill");
    replica.wait().await.expect("reaped");
    // The NATS server reads the closed socket at once; a call routed to the replica in that
    // instant would be lost (it would time out), so give it a moment before calling again.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = fake.calls.load(Ordering::SeqCst);
    for _ in 0..50 {
        let answer = client
            .list_data_sources(list())
            .await
            .expect("call after the replica died");
        assert!(!from_replica(&answer));
    }
    assert_eq!(fake.calls.load(Ordering::SeqCst), before + 50);
    server.shutdown().await;
}

#[tokio::test]
async fn graceful_shutdown_answers_calls_already_running() {
    let nats = connect().await;
    let prefix = unique_prefix("shutdown");
    let (fake, server) = serve_fake_catalog(&nats, &prefix).await;
    let client = catalog_client(&nats, client_options(&prefix)).await;
    let running = {
        let client = client.clone();
        tokio::spawn(async move { client.get_data_source(get("slow-500")).await })
    };
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(fake.started.load(Ordering::SeqCst), 1);
    let shutdown_started = Instant::now();
    server.shutdown().await;
    assert!(
        shutdown_started.elapsed() >= Duration::from_millis(250),
        "shutdown waited"
    );
    let answer = running
        .await
        .expect("task")
        .expect("the running call was answered");
    assert_eq!(answer.data_source.expect("ds").name, "slow-500");
    let error = client.get_data_source(get("x")).await.expect_err("stopped");
    assert_eq!(error.code, ErrorCode::Unavailable);
}

#[tokio::test]
async fn two_hundred_parallel_calls_all_succeed() {
    let nats = connect().await;
    let prefix = unique_prefix("parallel");
    let (fake, server) = serve_fake_catalog(&nats, &prefix).await;
    let client = catalog_client(&nats, client_options(&prefix)).await;
    let started = Instant::now();
    let calls = (0..200).map(|i| {
        let client = client.clone();
        async move {
            // Every call sleeps 100 ms on the server: sequentially that would take 20 s.
            let name = if i % 2 == 0 {
                "slow-100".to_string()
            } else {
                format!("error-{}", i % 12)
            };
            (i, client.get_data_source(get(&name)).await)
        }
    });
    let results = futures::future::join_all(calls).await;
    for (i, result) in results {
        if i % 2 == 0 {
            assert_eq!(
                result.expect("slow call").data_source.expect("ds").name,
                "slow-100"
            );
        } else {
            let code = ErrorCode::try_from(i % 12).expect("code");
            assert_eq!(result.expect_err("error call").code, code);
        }
    }
    assert_eq!(fake.calls.load(Ordering::SeqCst), 200);
    // 100 sleeping calls with 64 at a time: two rounds, far below sequential time.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    server.shutdown().await;
}

#[tokio::test]
async fn overload_beyond_the_queue_is_refused_with_too_many_requests() {
    let nats = connect().await;
    let prefix = unique_prefix("overload");
    let fake = FakeCatalog::new();
    let server = serve_catalog(
        nats.clone(),
        fake.clone(),
        ServerOptions {
            max_in_flight: 2,
            max_queued: 2,
            ..server_options(&prefix)
        },
    )
    .await
    .expect("serve");
    let client = catalog_client(&nats, client_options(&prefix)).await;
    let calls = (0..10).map(|_| {
        let client = client.clone();
        async move { client.get_data_source(get("slow-300")).await }
    });
    let results = futures::future::join_all(calls).await;
    let succeeded = results.iter().filter(|result| result.is_ok()).count();
    let refused = results
        .iter()
        .filter(|result| matches!(result, Err(error) if error.code == ErrorCode::TooManyRequests))
        .count();
    assert_eq!(succeeded, 4, "two running and two queued");
    assert_eq!(refused, 6);
    server.shutdown().await;
}

#[tokio::test]
async fn a_five_megabyte_answer_travels_in_chunks() {
    let nats = connect().await;
    assert!(
        nats.server_info().max_payload < 5 * 1024 * 1024,
        "the test must exceed the server's max_payload"
    );
    let prefix = unique_prefix("big_unary");
    let (_fake, server) = serve_fake_catalog(&nats, &prefix).await;
    let client = catalog_client(&nats, client_options(&prefix)).await;
    let size = 5 * 1024 * 1024;
    let answer = client
        .get_data_source(get(&format!("big-{size}")))
        .await
        .expect("big answer");
    let description = answer.data_source.expect("ds").description;
    let expected: String = pattern(size / 2)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(description.len(), expected.len());
    assert!(
        description == expected,
        "the answer was reassembled in order"
    );
    server.shutdown().await;
}

/// A query service whose SQL says what to stream: `big <bytes> <piece>`, `fail-after <bytes>`,
/// and an empty statement is refused before any answer.
struct FakeQuery;

#[async_trait]
impl QueryService for FakeQuery {
    async fn execute_sql(
        &self,
        request: query::ExecuteSqlRequest,
    ) -> Result<SqlAnswer, ServiceError> {
        let words: Vec<&str> = request.sql.split_whitespace().collect();
        match words.as_slice() {
            ["big", size, piece] => {
                let size: usize = size.parse().unwrap_or(0);
                let piece: usize = piece.parse().unwrap_or(1).max(1);
                let data = Bytes::from(pattern(size));
                let pieces: Vec<Result<Bytes, ServiceError>> = (0..size)
                    .step_by(piece)
                    .map(|start| Ok(data.slice(start..(start + piece).min(size))))
                    .collect();
                Ok(SqlAnswer {
                    content_type: "application/json".to_string(),
                    body: futures::stream::iter(pieces).boxed(),
                })
            }
            ["fail-after", size] => {
                let size: usize = size.parse().unwrap_or(0);
                let pieces = vec![
                    Ok(Bytes::from(pattern(size))),
                    Err(ServiceError::new(
                        ErrorCode::Timeout,
                        "the query ran out of time",
                    )),
                ];
                Ok(SqlAnswer {
                    content_type: "text/csv".to_string(),
                    body: futures::stream::iter(pieces).boxed(),
                })
            }
            _ => Err(ServiceError::bad_request("empty query")),
        }
    }
}

async fn collect_body(answer: SqlAnswer) -> (String, Vec<u8>, Option<ServiceError>) {
    let mut body = Vec::new();
    let mut failure = None;
    let mut stream = answer.body;
    while let Some(item) = stream.next().await {
        match item {
            Ok(bytes) => body.extend_from_slice(&bytes),
            Err(error) => {
                failure = Some(error);
                break;
            }
        }
    }
    (answer.content_type, body, failure)
}

#[tokio::test]
async fn a_five_megabyte_query_result_streams_in_order() {
    let nats = connect().await;
    let prefix = unique_prefix("big_stream");
    let server = serve_query(nats.clone(), Arc::new(FakeQuery), server_options(&prefix))
        .await
        .expect("serve");
    let rpc = RpcClient::new(nats.clone(), client_options(&prefix))
        .await
        .expect("client");
    let client = NatsQueryClient::new(rpc);
    let size = 5 * 1024 * 1024;
    // Pieces of 64 KiB are joined into frames; pieces of 3 MB are cut.
    for piece in [64 * 1024, 3 * 1024 * 1024] {
        let answer = client
            .execute_sql(query::ExecuteSqlRequest {
                header: header(),
                sql: format!("big {size} {piece}"),
                ..Default::default()
            })
            .await
            .expect("answer");
        let (content_type, body, failure) = collect_body(answer).await;
        assert_eq!(content_type, "application/json");
        assert_eq!(failure, None);
        assert_eq!(body.len(), size);
        assert!(body == pattern(size), "body in order (piece {piece})");
    }

    let refused = client
        .execute_sql(query::ExecuteSqlRequest::default())
        .await
        .expect_err("refused before the head");
    assert_eq!(refused, ServiceError::bad_request("empty query"));

    let answer = client
        .execute_sql(query::ExecuteSqlRequest {
            sql: "fail-after 2000000".to_string(),
            ..Default::default()
        })
        .await
        .expect("head");
    let (content_type, body, failure) = collect_body(answer).await;
    assert_eq!(content_type, "text/csv");
    assert_eq!(body, pattern(2_000_000), "what came before the failure");
    assert_eq!(
        failure,
        Some(ServiceError::new(
            ErrorCode::Timeout,
            "the query ran out of time"
        ))
    );
    server.shutdown().await;
}

/// Answers every `get_data_source` request with the frames `order` picks from a chunked answer:
/// a stand-in for a replica whose frames arrive shuffled or lost.
async fn scripted_responder(
    nats: async_nats::Client,
    prefix: &str,
    answer: Bytes,
    chunk: usize,
    order: Vec<usize>,
) -> tokio::task::JoinHandle<()> {
    let mut requests = nats
        .subscribe(wire::method_subject(prefix, "catalog", "get_data_source"))
        .await
        .expect("subscribe");
    // The callers use this same connection, so the subscription is in place before their calls.
    tokio::spawn(async move {
        while let Some(request) = requests.next().await {
            let Some(reply) = request.reply else { continue };
            let mut frames = wire::chunk_frames(answer.clone(), chunk, 0);
            frames.push(Frame::End {
                seq: frames.len() as u64,
            });
            for index in &order {
                let (headers, payload) = frames[*index].to_message();
                nats.publish_with_headers(reply.clone(), headers, payload)
                    .await
                    .expect("publish");
            }
        }
    })
}

fn big_response() -> (catalog::GetDataSourceResponse, Bytes) {
    let response = catalog::GetDataSourceResponse {
        data_source: Some(catalog::DataSource {
            name: "shuffled".to_string(),
            description: "x".repeat(3500),
            ..Default::default()
        }),
    };
    let encoded = Bytes::from(response.encode_to_vec());
    (response, encoded)
}

#[tokio::test]
async fn chunks_arriving_out_of_order_are_put_back_in_order() {
    let nats = connect().await;
    let prefix = unique_prefix("reorder");
    let (response, encoded) = big_response();
    assert_eq!(encoded.len().div_ceil(1000), 4);
    // Chunks 0..4 and the end (4), shuffled, with a duplicate.
    let responder =
        scripted_responder(nats.clone(), &prefix, encoded, 1000, vec![2, 0, 4, 3, 0, 1]).await;
    let client = catalog_client(&nats, client_options(&prefix)).await;
    let answer = client
        .get_data_source(get("shuffled"))
        .await
        .expect("answer");
    assert_eq!(answer, response);
    responder.abort();
}

#[tokio::test]
async fn a_missing_chunk_fails_the_call_with_a_timeout() {
    let nats = connect().await;
    let prefix = unique_prefix("missing_chunk");
    let (_, encoded) = big_response();
    // Chunk 1 never comes.
    let responder =
        scripted_responder(nats.clone(), &prefix, encoded, 1000, vec![0, 2, 3, 4]).await;
    let client = catalog_client(
        &nats,
        ClientOptions {
            chunk_timeout: Duration::from_millis(400),
            ..client_options(&prefix)
        },
    )
    .await;
    let started = Instant::now();
    let error = client
        .get_data_source(get("shuffled"))
        .await
        .expect_err("a gap");
    assert_eq!(error.code, ErrorCode::Timeout, "{error}");
    assert!(error.message.contains("part 1"), "{error}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    responder.abort();
}

/// Ingest that reports what it received: the size as `successful_rows`, a checksum as the error.
struct EchoIngest;

fn checksum(data: &[u8]) -> String {
    let sum = data.iter().enumerate().fold(0u64, |sum, (i, b)| {
        sum.wrapping_mul(31).wrapping_add(u64::from(*b) ^ i as u64)
    });
    format!("{sum:016x}")
}

#[async_trait]
impl IngestService for EchoIngest {
    async fn ingest_data(
        &self,
        request: ingest::IngestDataRequest,
    ) -> Result<ingest::IngestDataResponse, ServiceError> {
        Ok(ingest::IngestDataResponse {
            successful_rows: request.data.len() as u64,
            errors: vec![checksum(&request.data), request.data_source],
            ..Default::default()
        })
    }

    async fn analyze_data(
        &self,
        _request: ingest::AnalyzeDataRequest,
    ) -> Result<ingest::AnalyzeDataResponse, ServiceError> {
        Err(ServiceError::new(ErrorCode::Unsupported, "not in the fake"))
    }

    async fn finish_replace(
        &self,
        _request: ingest::FinishReplaceRequest,
    ) -> Result<ingest::FinishReplaceResponse, ServiceError> {
        Err(ServiceError::new(ErrorCode::Unsupported, "not in the fake"))
    }
}

#[tokio::test]
async fn a_request_larger_than_one_message_is_uploaded_in_chunks() {
    let nats = connect().await;
    let prefix = unique_prefix("upload");
    let server = serve_ingest(
        nats.clone(),
        Arc::new(EchoIngest),
        ServerOptions {
            max_request_bytes: 8 * 1024 * 1024,
            ..server_options(&prefix)
        },
    )
    .await
    .expect("serve");
    let rpc = RpcClient::new(nats.clone(), client_options(&prefix))
        .await
        .expect("client");
    let client = NatsIngestClient::new(rpc);
    let data = pattern(3 * 1024 * 1024 + 17);
    let answer = client
        .ingest_data(ingest::IngestDataRequest {
            header: header(),
            data_source: "events".to_string(),
            data: Bytes::from(data.clone()),
            ..Default::default()
        })
        .await
        .expect("ingested");
    assert_eq!(answer.successful_rows, data.len() as u64);
    assert_eq!(answer.errors, vec![checksum(&data), "events".to_string()]);

    let too_big = client
        .ingest_data(ingest::IngestDataRequest {
            data: Bytes::from(vec![b'x'; 9 * 1024 * 1024]),
            ..Default::default()
        })
        .await
        .expect_err("over the server's limit");
    assert_eq!(too_big.code, ErrorCode::PayloadTooLarge);
    server.shutdown().await;
}

#[tokio::test]
async fn undecodable_requests_are_bad_requests() {
    let nats = connect().await;
    let prefix = unique_prefix("garbage");
    let (fake, server) = serve_fake_catalog(&nats, &prefix).await;
    let reply = nats
        .request(
            wire::method_subject(&prefix, "catalog", "get_data_source"),
            Bytes::from_static(b"\xff\xff\xff\xff"),
        )
        .await
        .expect("an answer");
    let frame = Frame::from_message(reply.headers.as_ref(), reply.payload).expect("frame");
    match frame {
        Frame::Failed { error, .. } => assert_eq!(error.code, ErrorCode::BadRequest),
        other => panic!("expected a failure, got {other:?}"),
    }
    assert_eq!(fake.calls.load(Ordering::SeqCst), 0);
    server.shutdown().await;
}

#[tokio::test]
async fn each_method_has_its_own_subject() {
    let nats = connect().await;
    let prefix = unique_prefix("subjects");
    let (_fake, server) = serve_fake_catalog(&nats, &prefix).await;
    // Every catalog method answers on `<prefix>.catalog.<method>`: the fake answers Unsupported
    // for the ones it does not implement, a wrong subject would get no responders.
    let mut answers = HashMap::new();
    for method in NatsCatalogClient::METHODS {
        let reply = nats
            .request(
                wire::method_subject(&prefix, "catalog", method),
                Bytes::new(),
            )
            .await
            .expect("an answer");
        let frame = Frame::from_message(reply.headers.as_ref(), reply.payload).expect("frame");
        answers.insert(*method, frame);
    }
    assert_eq!(answers.len(), 12);
    assert!(matches!(answers["list_data_sources"], Frame::Whole(_)));
    assert!(matches!(
        &answers["rename_data_source"],
        Frame::Failed { error, .. } if error.code == ErrorCode::Unsupported
    ));
    server.shutdown().await;
}

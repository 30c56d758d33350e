//! The gRPC transport: calls and streamed answers round trip, errors keep their Roost code, a
//! call past its deadline fails with `Timeout`, a server nobody runs with `Unavailable`, large
//! requests and answers arrive whole and in order, and the server answers the gRPC health and
//! reflection services.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use roost_proto::common::v1::RequestHeader;
use roost_proto::jobs::v1 as jobs;
use roost_proto::query::v1 as query;
use roost_proto::{ErrorCode, JobsService, QueryService, ServiceError, SqlAnswer};
use roost_rpc::{
    GrpcChannel, GrpcClientOptions, GrpcJobsClient, GrpcQueryClient, GrpcServer, GrpcServerBuilder,
    GrpcServerOptions,
};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

/// `list_jobs` calls that ran to their end.
static SLOW_CALLS_FINISHED: AtomicUsize = AtomicUsize::new(0);

/// Jobs that echo what they are asked: `get_job` the id and the request id, `submit_job` the
/// size of the spec, `cancel_job` fails with the code numbered by the id, `list_jobs` sleeps.
struct EchoJobs;

#[async_trait]
impl JobsService for EchoJobs {
    async fn submit_job(
        &self,
        request: jobs::SubmitJobRequest,
    ) -> Result<jobs::SubmitJobResponse, ServiceError> {
        Ok(jobs::SubmitJobResponse {
            job: Some(jobs::Job {
                details_json: request.spec_json.len().to_string(),
                ..jobs::Job::default()
            }),
        })
    }

    async fn list_jobs(
        &self,
        _request: jobs::ListJobsRequest,
    ) -> Result<jobs::ListJobsResponse, ServiceError> {
        tokio::time::sleep(Duration::from_secs(3)).await;
        SLOW_CALLS_FINISHED.fetch_add(1, Ordering::SeqCst);
        Ok(jobs::ListJobsResponse::default())
    }

    async fn get_job(
        &self,
        request: jobs::GetJobRequest,
    ) -> Result<jobs::GetJobResponse, ServiceError> {
        let header = request.header.unwrap_or_default();
        Ok(jobs::GetJobResponse {
            job: Some(jobs::Job {
                id: request.job_id,
                workspace_id: header.workspace_id,
                details_json: header.request_id,
                ..jobs::Job::default()
            }),
        })
    }

    async fn cancel_job(
        &self,
        request: jobs::CancelJobRequest,
    ) -> Result<jobs::CancelJobResponse, ServiceError> {
        let code = request
            .job_id
            .parse()
            .ok()
            .and_then(|code: i32| ErrorCode::try_from(code).ok())
            .unwrap_or(ErrorCode::Internal);
        Err(ServiceError::new(
            code,
            format!("job {} says no", request.job_id),
        ))
    }
}

/// The body `big:<n>` answers: `n` bytes that are not all alike.
fn big_body(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

/// Answers by the SQL: `rows` three small chunks; `big:<n>` `n` bytes in two uneven chunks;
/// `broken` a chunk, then an error; `fail` an error before any answer; `slow` after 3 s.
struct ScriptedQuery;

#[async_trait]
impl QueryService for ScriptedQuery {
    async fn execute_sql(
        &self,
        request: query::ExecuteSqlRequest,
    ) -> Result<SqlAnswer, ServiceError> {
        let chunks: Vec<Result<Bytes, ServiceError>> = match request.sql.as_str() {
            "rows" => vec![
                Ok("a".into()),
                Ok(Bytes::new()),
                Ok("bc".into()),
                Ok("d".into()),
            ],
            "broken" => vec![
                Ok("first".into()),
                Err(ServiceError::new(ErrorCode::Timeout, "the engine gave up")),
            ],
            "fail" => return Err(ServiceError::forbidden("not your table")),
            "slow" => {
                tokio::time::sleep(Duration::from_secs(3)).await;
                vec![]
            }
            sql => {
                let n: usize = sql
                    .strip_prefix("big:")
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(|| ServiceError::bad_request("unknown script"))?;
                let body = Bytes::from(big_body(n));
                let cut = n * 7 / 10;
                vec![Ok(body.slice(..cut)), Ok(body.slice(cut..))]
            }
        };
        Ok(SqlAnswer {
            content_type: "application/x-test".to_string(),
            body: futures::stream::iter(chunks).boxed(),
        })
    }
}

async fn start() -> GrpcServer {
    GrpcServerBuilder::new(GrpcServerOptions::default())
        .serve_jobs(Arc::new(EchoJobs))
        .serve_query(Arc::new(ScriptedQuery))
        .start("127.0.0.1:0")
        .await
        .expect("the server starts")
}

fn channel(server: &GrpcServer, timeout: Duration) -> GrpcChannel {
    GrpcChannel::connect_lazy(
        &server.local_addr().to_string(),
        GrpcClientOptions {
            timeout,
            ..GrpcClientOptions::default()
        },
    )
    .expect("a channel")
}

/// A plain tonic channel, for the generated clients of other gRPC services.
async fn connect(address: String) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(address)
        .expect("an address")
        .connect()
        .await
        .expect("connected")
}

async fn body(answer: SqlAnswer) -> Result<Vec<u8>, ServiceError> {
    let mut body = Vec::new();
    let mut chunks = answer.body;
    while let Some(chunk) = chunks.next().await {
        body.extend_from_slice(&chunk?);
    }
    Ok(body)
}

#[tokio::test]
async fn unary_calls_round_trip_with_their_header() {
    let server = start().await;
    let client: roost_proto::JobsClient = Arc::new(GrpcJobsClient::new(channel(
        &server,
        Duration::from_secs(10),
    )));
    let answer = client
        .get_job(jobs::GetJobRequest {
            header: Some(RequestHeader {
                workspace_id: "w1".into(),
                request_id: "r1".into(),
                ..RequestHeader::default()
            }),
            job_id: "j1".into(),
        })
        .await
        .expect("an answer")
        .job
        .expect("a job");
    assert_eq!(
        (
            answer.id.as_str(),
            answer.workspace_id.as_str(),
            answer.details_json.as_str()
        ),
        ("j1", "w1", "r1")
    );
    server.shutdown().await;
}

#[tokio::test]
async fn every_error_code_and_message_survive_the_trip() {
    let server = start().await;
    let client = GrpcJobsClient::new(channel(&server, Duration::from_secs(10)));
    for code in 1..=11 {
        let expected = ErrorCode::try_from(code).expect("a code");
        let error = client
            .cancel_job(jobs::CancelJobRequest {
                header: None,
                job_id: code.to_string(),
            })
            .await
            .expect_err("the service refuses");
        assert_eq!(
            error,
            ServiceError::new(expected, format!("job {code} says no")),
            "{expected:?}"
        );
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_call_past_its_deadline_fails_with_timeout() {
    let server = start().await;
    let short = channel(&server, Duration::from_millis(300));
    let started = Instant::now();
    let error = GrpcJobsClient::new(short.clone())
        .list_jobs(jobs::ListJobsRequest::default())
        .await
        .expect_err("too slow");
    assert_eq!(error.code, ErrorCode::Timeout, "{error}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let error = GrpcQueryClient::new(short)
        .execute_sql(query::ExecuteSqlRequest {
            sql: "slow".into(),
            ..query::ExecuteSqlRequest::default()
        })
        .await
        .expect_err("too slow");
    assert_eq!(error.code, ErrorCode::Timeout, "{error}");
    // The server dropped the late call (its `grpc-timeout` passed, and the caller gave up)
    // instead of running it to its end.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(SLOW_CALLS_FINISHED.load(Ordering::SeqCst), 0);
    server.shutdown().await;
}

#[tokio::test]
async fn a_server_nobody_runs_is_unavailable() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
        listener.local_addr().expect("an address").port()
    };
    let channel =
        GrpcChannel::connect_lazy(&format!("127.0.0.1:{port}"), GrpcClientOptions::default())
            .expect("a lazy channel");
    let error = GrpcJobsClient::new(channel.clone())
        .get_job(jobs::GetJobRequest::default())
        .await
        .expect_err("nobody serves");
    assert_eq!(error.code, ErrorCode::Unavailable, "{error}");
    let error = GrpcQueryClient::new(channel)
        .execute_sql(query::ExecuteSqlRequest::default())
        .await
        .expect_err("nobody serves");
    assert_eq!(error.code, ErrorCode::Unavailable, "{error}");
    assert!(GrpcChannel::connect_lazy("not an address", GrpcClientOptions::default()).is_err());
}

#[tokio::test]
async fn streamed_answers_arrive_in_order_with_their_content_type() {
    let server = start().await;
    let client: roost_proto::QueryClient = Arc::new(GrpcQueryClient::new(channel(
        &server,
        Duration::from_secs(10),
    )));
    let ask = |sql: &str| query::ExecuteSqlRequest {
        sql: sql.to_string(),
        ..query::ExecuteSqlRequest::default()
    };
    let answer = client.execute_sql(ask("rows")).await.expect("an answer");
    assert_eq!(answer.content_type, "application/x-test");
    assert_eq!(body(answer).await.expect("a body"), b"abcd");

    // An error before the answer comes back as the call's error ...
    let refused = client.execute_sql(ask("fail")).await.expect_err("refused");
    assert_eq!(refused, ServiceError::forbidden("not your table"));
    // ... and one in the middle of the body ends it with that error.
    let broken = client.execute_sql(ask("broken")).await.expect("a head");
    let mut chunks = broken.body;
    assert_eq!(
        chunks.next().await.expect("a chunk").expect("data"),
        "first"
    );
    let error = chunks
        .next()
        .await
        .expect("the error")
        .expect_err("an error");
    assert_eq!(
        error,
        ServiceError::new(ErrorCode::Timeout, "the engine gave up")
    );
    assert!(chunks.next().await.is_none(), "nothing after the error");
    server.shutdown().await;
}

#[tokio::test]
async fn large_answers_come_in_chunks_of_a_mebibyte_and_are_reassembled() {
    let server = start().await;
    let client = GrpcQueryClient::new(channel(&server, Duration::from_secs(30)));
    let size = 10 * 1024 * 1024 + 17;
    let answer = client
        .execute_sql(query::ExecuteSqlRequest {
            sql: format!("big:{size}"),
            ..query::ExecuteSqlRequest::default()
        })
        .await
        .expect("an answer");
    let chunks: Vec<Bytes> = answer
        .body
        .map(|chunk| chunk.expect("a chunk"))
        .collect()
        .await;
    assert!(
        chunks
            .iter()
            .all(|chunk| chunk.len() <= roost_rpc::grpc::STREAM_CHUNK_BYTES),
        "{:?}",
        chunks.iter().map(Bytes::len).collect::<Vec<_>>()
    );
    assert!(chunks.len() >= 11, "{}", chunks.len());
    assert_eq!(chunks.concat(), big_body(size));

    // A request larger than gRPC's usual 4 MiB limit goes through too.
    let spec = "x".repeat(20 * 1024 * 1024);
    let submitted = GrpcJobsClient::new(channel(&server, Duration::from_secs(30)))
        .submit_job(jobs::SubmitJobRequest {
            spec_json: spec,
            ..jobs::SubmitJobRequest::default()
        })
        .await
        .expect("accepted");
    assert_eq!(
        submitted.job.expect("a job").details_json,
        (20 * 1024 * 1024).to_string()
    );
    server.shutdown().await;
}

#[tokio::test]
async fn the_health_service_reports_each_served_service() {
    let server = start().await;
    let address = format!("http://{}", server.local_addr());
    let mut health = HealthClient::new(connect(address).await);
    let status = |name: &str| tonic_health::pb::HealthCheckRequest {
        service: name.to_string(),
    };
    for name in ["", GrpcJobsClient::GRPC_NAME, GrpcQueryClient::GRPC_NAME] {
        let answer = health
            .check(status(name))
            .await
            .expect("known")
            .into_inner();
        assert_eq!(answer.status(), ServingStatus::Serving, "{name:?}");
    }
    assert_eq!(GrpcJobsClient::GRPC_NAME, "roost.jobs.v1.JobsService");
    let unknown = health
        .check(status("roost.auth.v1.AuthService"))
        .await
        .expect_err("not served here");
    assert_eq!(unknown.code(), tonic::Code::NotFound);
    server.shutdown().await;
}

#[tokio::test]
async fn reflection_lists_the_served_services_and_describes_them() {
    let server = start().await;
    let address = format!("http://{}", server.local_addr());
    let mut reflection = ServerReflectionClient::new(connect(address).await);
    let ask = |request: MessageRequest| ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    };
    let requests = futures::stream::iter(vec![
        ask(MessageRequest::ListServices(String::new())),
        ask(MessageRequest::FileContainingSymbol(
            "roost.query.v1.QueryService".to_string(),
        )),
    ]);
    let mut answers = reflection
        .server_reflection_info(requests)
        .await
        .expect("a stream")
        .into_inner();
    let listed = match answers
        .message()
        .await
        .expect("an answer")
        .and_then(|a| a.message_response)
    {
        Some(MessageResponse::ListServicesResponse(list)) => list
            .service
            .into_iter()
            .map(|service| service.name)
            .collect::<Vec<_>>(),
        other => panic!("not a list: {other:?}"),
    };
    for name in [
        "roost.jobs.v1.JobsService",
        "roost.query.v1.QueryService",
        "grpc.health.v1.Health",
    ] {
        assert!(
            listed.iter().any(|listed| listed == name),
            "{name} in {listed:?}"
        );
    }
    match answers
        .message()
        .await
        .expect("an answer")
        .and_then(|a| a.message_response)
    {
        Some(MessageResponse::FileDescriptorResponse(files)) => {
            assert!(!files.file_descriptor_proto.is_empty());
        }
        other => panic!("no descriptor: {other:?}"),
    }
    server.shutdown().await;
}

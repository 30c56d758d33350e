//! All eight service contracts over both transports: every method of every service, served by a
//! stub that names the method it ran, is called through its `Nats<Service>Client` and its
//! `Grpc<Service>Client` and reaches that method. (`tests/rpc.rs` and `tests/grpc.rs` cover the
//! transports themselves; this covers the generated routing.)

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use roost_proto::auth::v1 as auth;
use roost_proto::catalog::v1 as catalog;
use roost_proto::ingest::v1 as ingest;
use roost_proto::jobs::v1 as jobs;
use roost_proto::query::v1 as query;
use roost_proto::scheduler::v1 as scheduler;
use roost_proto::{
    AuthService, CatalogService, EndpointService, ErrorCode, IngestService, JobsService,
    PipeCatalogService, QueryService, SchedulerService, ServiceError, SqlAnswer,
};
use roost_rpc::{
    ClientOptions, GrpcAuthClient, GrpcCatalogClient, GrpcChannel, GrpcClientOptions,
    GrpcEndpointClient, GrpcIngestClient, GrpcJobsClient, GrpcPipeCatalogClient, GrpcQueryClient,
    GrpcSchedulerClient, GrpcServerBuilder, GrpcServerOptions, NatsAuthClient, NatsCatalogClient,
    NatsEndpointClient, NatsIngestClient, NatsJobsClient, NatsPipeCatalogClient, NatsQueryClient,
    NatsSchedulerClient, RpcClient, ServerOptions,
};

fn nats_url() -> String {
    std::env::var("ROOST_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_string())
}

/// For each service: a stub whose every method fails with `Unsupported` and the message
/// `<service>.<method>`, and a function calling every method of a client in order.
macro_rules! stubs {
    ($(
        $stub:ident, $call_all:ident: $service:ident as $name:literal {
            $( $method:ident($request:ty) -> $response:ty; )+
        }
    )+) => {$(
        struct $stub;

        #[async_trait]
        impl $service for $stub {
            $(
                async fn $method(&self, _request: $request) -> Result<$response, ServiceError> {
                    Err(ServiceError::new(
                        ErrorCode::Unsupported,
                        concat!($name, ".", stringify!($method)),
                    ))
                }
            )+
        }

        async fn $call_all(client: &dyn $service) -> Vec<String> {
            let mut reached = Vec::new();
            $(
                let error = client
                    .$method(<$request>::default())
                    .await
                    .err()
                    .expect("the stub fails");
                assert_eq!(error.code, ErrorCode::Unsupported, "{error}");
                reached.push(error.message);
            )+
            reached
        }
    )+};
}

stubs! {
    StubAuth, call_auth: AuthService as "auth" {
        authenticate(auth::AuthenticateRequest) -> auth::AuthenticateResponse;
        get_local_tokens(auth::GetLocalTokensRequest) -> auth::GetLocalTokensResponse;
        get_workspace(auth::GetWorkspaceRequest) -> auth::GetWorkspaceResponse;
        create_token(auth::CreateTokenRequest) -> auth::CreateTokenResponse;
        list_tokens(auth::ListTokensRequest) -> auth::ListTokensResponse;
        get_token(auth::GetTokenRequest) -> auth::GetTokenResponse;
        update_token(auth::UpdateTokenRequest) -> auth::UpdateTokenResponse;
        delete_token(auth::DeleteTokenRequest) -> auth::DeleteTokenResponse;
        refresh_token(auth::RefreshTokenRequest) -> auth::RefreshTokenResponse;
        create_jwt(auth::CreateJwtRequest) -> auth::CreateJwtResponse;
        get_organization(auth::GetOrganizationRequest) -> auth::GetOrganizationResponse;
        list_user_workspaces(auth::ListUserWorkspacesRequest) -> auth::ListUserWorkspacesResponse;
        create_workspace(auth::CreateWorkspaceRequest) -> auth::CreateWorkspaceResponse;
        delete_workspace(auth::DeleteWorkspaceRequest) -> auth::DeleteWorkspaceResponse;
    }
    StubCatalog, call_catalog: CatalogService as "catalog" {
        create_data_source(catalog::CreateDataSourceRequest) -> catalog::CreateDataSourceResponse;
        get_data_source(catalog::GetDataSourceRequest) -> catalog::GetDataSourceResponse;
        list_data_sources(catalog::ListDataSourcesRequest) -> catalog::ListDataSourcesResponse;
        rename_data_source(catalog::RenameDataSourceRequest) -> catalog::RenameDataSourceResponse;
        delete_data_source(catalog::DeleteDataSourceRequest) -> catalog::DeleteDataSourceResponse;
        truncate_data_source(catalog::TruncateDataSourceRequest) -> catalog::TruncateDataSourceResponse;
        alter_data_source(catalog::AlterDataSourceRequest) -> catalog::AlterDataSourceResponse;
        drop_workspace_data(catalog::DropWorkspaceDataRequest) -> catalog::DropWorkspaceDataResponse;
        create_connection(catalog::CreateConnectionRequest) -> catalog::CreateConnectionResponse;
        get_connection(catalog::GetConnectionRequest) -> catalog::GetConnectionResponse;
        list_connections(catalog::ListConnectionsRequest) -> catalog::ListConnectionsResponse;
        delete_connection(catalog::DeleteConnectionRequest) -> catalog::DeleteConnectionResponse;
    }
    StubPipeCatalog, call_pipe_catalog: PipeCatalogService as "pipe_catalog" {
        create_pipe(catalog::CreatePipeRequest) -> catalog::CreatePipeResponse;
        get_pipe(catalog::GetPipeRequest) -> catalog::GetPipeResponse;
        list_pipes(catalog::ListPipesRequest) -> catalog::ListPipesResponse;
        update_pipe(catalog::UpdatePipeRequest) -> catalog::UpdatePipeResponse;
        delete_pipe(catalog::DeletePipeRequest) -> catalog::DeletePipeResponse;
        create_node(catalog::CreateNodeRequest) -> catalog::CreateNodeResponse;
        update_node(catalog::UpdateNodeRequest) -> catalog::UpdateNodeResponse;
        delete_node(catalog::DeleteNodeRequest) -> catalog::DeleteNodeResponse;
        set_endpoint(catalog::SetEndpointRequest) -> catalog::SetEndpointResponse;
        set_materialization(catalog::SetMaterializationRequest) -> catalog::SetMaterializationResponse;
        drop_materialization(catalog::DropMaterializationRequest) -> catalog::DropMaterializationResponse;
        set_node_settings(catalog::SetNodeSettingsRequest) -> catalog::SetNodeSettingsResponse;
        list_variables(catalog::ListVariablesRequest) -> catalog::ListVariablesResponse;
        set_variable(catalog::SetVariableRequest) -> catalog::SetVariableResponse;
        delete_variable(catalog::DeleteVariableRequest) -> catalog::DeleteVariableResponse;
    }
    StubQuery, call_query: QueryService as "query" {
        execute_sql(query::ExecuteSqlRequest) -> SqlAnswer;
    }
    StubEndpoint, call_endpoint: EndpointService as "endpoint" {
        execute_endpoint(query::ExecuteEndpointRequest) -> SqlAnswer;
        explain_endpoint(query::ExecuteEndpointRequest) -> query::ExplainEndpointResponse;
        describe_endpoint(query::DescribeEndpointRequest) -> query::DescribeEndpointResponse;
        compile_node(query::ExecuteEndpointRequest) -> query::CompileNodeResponse;
        resolve_condition(query::ResolveConditionRequest) -> query::ResolveConditionResponse;
    }
    StubIngest, call_ingest: IngestService as "ingest" {
        ingest_data(ingest::IngestDataRequest) -> ingest::IngestDataResponse;
        analyze_data(ingest::AnalyzeDataRequest) -> ingest::AnalyzeDataResponse;
        finish_replace(ingest::FinishReplaceRequest) -> ingest::FinishReplaceResponse;
    }
    StubJobs, call_jobs: JobsService as "jobs" {
        submit_job(jobs::SubmitJobRequest) -> jobs::SubmitJobResponse;
        list_jobs(jobs::ListJobsRequest) -> jobs::ListJobsResponse;
        get_job(jobs::GetJobRequest) -> jobs::GetJobResponse;
        cancel_job(jobs::CancelJobRequest) -> jobs::CancelJobResponse;
    }
    StubScheduler, call_scheduler: SchedulerService as "scheduler" {
        list_schedules(scheduler::ListSchedulesRequest) -> scheduler::ListSchedulesResponse;
        set_schedule(scheduler::SetScheduleRequest) -> scheduler::SetScheduleResponse;
        delete_schedule(scheduler::DeleteScheduleRequest) -> scheduler::DeleteScheduleResponse;
    }
}

/// `<service>.<method>` for every method a generated client lists.
fn expected(service: &str, methods: &[&str]) -> Vec<String> {
    methods
        .iter()
        .map(|method| format!("{service}.{method}"))
        .collect()
}

#[tokio::test]
async fn every_method_of_every_service_reaches_its_implementation() {
    let nats = async_nats::connect(nats_url()).await.expect("NATS");
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let prefix = format!("roost.test.services.{}.rpc", &suffix[..12]);
    let server_options = ServerOptions {
        subject_prefix: prefix.clone(),
        ..ServerOptions::default()
    };
    let rpc = RpcClient::new(
        nats.clone(),
        ClientOptions {
            subject_prefix: prefix.clone(),
            timeout: Duration::from_secs(10),
            ..ClientOptions::default()
        },
    )
    .await
    .expect("client");
    let options = || server_options.clone();
    let servers = vec![
        roost_rpc::serve_auth(nats.clone(), Arc::new(StubAuth), options())
            .await
            .expect("auth"),
        roost_rpc::serve_catalog(nats.clone(), Arc::new(StubCatalog), options())
            .await
            .expect("catalog"),
        roost_rpc::serve_pipe_catalog(nats.clone(), Arc::new(StubPipeCatalog), options())
            .await
            .expect("pipes"),
        roost_rpc::serve_query(nats.clone(), Arc::new(StubQuery), options())
            .await
            .expect("query"),
        roost_rpc::serve_endpoint(nats.clone(), Arc::new(StubEndpoint), options())
            .await
            .expect("endpoint"),
        roost_rpc::serve_ingest(nats.clone(), Arc::new(StubIngest), options())
            .await
            .expect("ingest"),
        roost_rpc::serve_jobs(nats.clone(), Arc::new(StubJobs), options())
            .await
            .expect("jobs"),
        roost_rpc::serve_scheduler(nats.clone(), Arc::new(StubScheduler), options())
            .await
            .expect("scheduler"),
    ];

    let auth: roost_proto::AuthClient = Arc::new(NatsAuthClient::new(rpc.clone()));
    assert_eq!(
        call_auth(auth.as_ref()).await,
        expected("auth", NatsAuthClient::METHODS)
    );
    let catalog = NatsCatalogClient::new(rpc.clone());
    assert_eq!(
        call_catalog(&catalog).await,
        expected("catalog", NatsCatalogClient::METHODS)
    );
    let pipes = NatsPipeCatalogClient::new(rpc.clone());
    assert_eq!(
        call_pipe_catalog(&pipes).await,
        expected("pipe_catalog", NatsPipeCatalogClient::METHODS)
    );
    let query = NatsQueryClient::new(rpc.clone());
    assert_eq!(
        call_query(&query).await,
        expected("query", NatsQueryClient::METHODS)
    );
    let endpoint = NatsEndpointClient::new(rpc.clone());
    assert_eq!(
        call_endpoint(&endpoint).await,
        expected("endpoint", NatsEndpointClient::METHODS)
    );
    let ingest = NatsIngestClient::new(rpc.clone());
    assert_eq!(
        call_ingest(&ingest).await,
        expected("ingest", NatsIngestClient::METHODS)
    );
    let jobs = NatsJobsClient::new(rpc.clone());
    assert_eq!(
        call_jobs(&jobs).await,
        expected("jobs", NatsJobsClient::METHODS)
    );
    let scheduler = NatsSchedulerClient::new(rpc.clone());
    assert_eq!(
        call_scheduler(&scheduler).await,
        expected("scheduler", NatsSchedulerClient::METHODS)
    );
    let method_count: usize = [
        NatsAuthClient::METHODS.len(),
        NatsCatalogClient::METHODS.len(),
        NatsPipeCatalogClient::METHODS.len(),
        NatsQueryClient::METHODS.len(),
        NatsEndpointClient::METHODS.len(),
        NatsIngestClient::METHODS.len(),
        NatsJobsClient::METHODS.len(),
        NatsSchedulerClient::METHODS.len(),
    ]
    .iter()
    .sum();
    assert_eq!(method_count, 57);

    for server in servers {
        server.shutdown().await;
    }
}

#[tokio::test]
async fn every_method_of_every_service_reaches_its_implementation_over_grpc() {
    let server = GrpcServerBuilder::new(GrpcServerOptions::default())
        .serve_auth(Arc::new(StubAuth))
        .serve_catalog(Arc::new(StubCatalog))
        .serve_pipe_catalog(Arc::new(StubPipeCatalog))
        .serve_query(Arc::new(StubQuery))
        .serve_endpoint(Arc::new(StubEndpoint))
        .serve_ingest(Arc::new(StubIngest))
        .serve_jobs(Arc::new(StubJobs))
        .serve_scheduler(Arc::new(StubScheduler))
        .start("127.0.0.1:0")
        .await
        .expect("the server starts");
    assert_eq!(server.services().len(), 8);
    let channel = GrpcChannel::connect_lazy(
        &server.local_addr().to_string(),
        GrpcClientOptions {
            timeout: Duration::from_secs(10),
            ..GrpcClientOptions::default()
        },
    )
    .expect("a channel");

    let auth: roost_proto::AuthClient = Arc::new(GrpcAuthClient::new(channel.clone()));
    assert_eq!(
        call_auth(auth.as_ref()).await,
        expected("auth", GrpcAuthClient::METHODS)
    );
    assert_eq!(
        call_catalog(&GrpcCatalogClient::new(channel.clone())).await,
        expected("catalog", GrpcCatalogClient::METHODS)
    );
    assert_eq!(
        call_pipe_catalog(&GrpcPipeCatalogClient::new(channel.clone())).await,
        expected("pipe_catalog", GrpcPipeCatalogClient::METHODS)
    );
    assert_eq!(
        call_query(&GrpcQueryClient::new(channel.clone())).await,
        expected("query", GrpcQueryClient::METHODS)
    );
    assert_eq!(
        call_endpoint(&GrpcEndpointClient::new(channel.clone())).await,
        expected("endpoint", GrpcEndpointClient::METHODS)
    );
    assert_eq!(
        call_ingest(&GrpcIngestClient::new(channel.clone())).await,
        expected("ingest", GrpcIngestClient::METHODS)
    );
    assert_eq!(
        call_jobs(&GrpcJobsClient::new(channel.clone())).await,
        expected("jobs", GrpcJobsClient::METHODS)
    );
    assert_eq!(
        call_scheduler(&GrpcSchedulerClient::new(channel)).await,
        expected("scheduler", GrpcSchedulerClient::METHODS)
    );
    let names = [
        GrpcAuthClient::GRPC_NAME,
        GrpcCatalogClient::GRPC_NAME,
        GrpcPipeCatalogClient::GRPC_NAME,
        GrpcQueryClient::GRPC_NAME,
        GrpcEndpointClient::GRPC_NAME,
        GrpcIngestClient::GRPC_NAME,
        GrpcJobsClient::GRPC_NAME,
        GrpcSchedulerClient::GRPC_NAME,
    ];
    assert_eq!(server.services(), names);
    assert_eq!(names[2], "roost.catalog.v1.PipeCatalogService");
    server.shutdown().await;
}

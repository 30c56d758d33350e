//! The eight service contracts over both transports, generated from one method list per
//! service: for each, a `Nats<Service>Client` implementing the trait and a `serve_<service>`
//! function (NATS), and a `Grpc<Service>Client` implementing the trait, a tonic server adapter and
//! a `GrpcServerBuilder::serve_<service>` method (gRPC).

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::future::BoxFuture;
use roost_proto::auth::v1 as auth;
use roost_proto::catalog::v1 as catalog;
use roost_proto::ingest::v1 as ingest;
use roost_proto::jobs::v1 as jobs;
use roost_proto::query::v1 as query;
use roost_proto::scheduler::v1 as scheduler;
use roost_proto::{
    AuthService, CatalogService, EndpointService, IngestService, JobsService, PipeCatalogService,
    QueryService, SchedulerService, ServiceError, SqlAnswer,
};
use tonic::server::NamedService;
use tonic::transport::Channel;

use crate::grpc::{GrpcAdapter, GrpcChannel, GrpcServerBuilder};
use crate::server::{self, Reply, Route, RpcServer, ServerOptions};
use crate::{RpcClient, RpcError};

/// The message a generated gRPC method answers with: the response itself (`unary`), or the
/// stream of chunks of a [`SqlAnswer`] (`stream`).
macro_rules! grpc_reply {
    (unary $response:ty) => {
        $response
    };
    (stream $response:ty) => {
        crate::grpc::GrpcAnswerStream
    };
}

/// Generates the clients and servers of each service. Each method is `unary` (the answer is one
/// prost message, chunked when large) or `stream` (the answer is a [`SqlAnswer`]; `as` names the
/// stream type of the generated tonic server); the kind names the [`RpcClient`] and
/// [`GrpcChannel`] methods and the [`server`] and `grpc::serve` functions that carry it.
macro_rules! rpc_services {
    ($(
        $service:ident as $name:literal, client $client:ident, serve $serve:ident,
        grpc $grpc_client:ident($package:ident::{$client_mod:ident::$generated_client:ident, $server_mod:ident::$generated_server:ident}) {
            $( $kind:ident $method:ident($request:ty) -> $response:ty $(as $stream:ident)?; )+
        }
    )+) => {$(
        #[doc = concat!("A [`", stringify!($service), "`] reached over NATS: each method is a call on `<prefix>.", $name, ".<method>`.")]
        #[derive(Debug, Clone)]
        pub struct $client {
            rpc: RpcClient,
        }

        impl $client {
            /// The service's name in subjects and in its queue group (`roost.<name>`).
            pub const SERVICE: &'static str = $name;
            /// The methods, as they appear in subjects.
            pub const METHODS: &'static [&'static str] = &[$(stringify!($method)),+];

            /// A client that calls through `rpc`.
            pub fn new(rpc: RpcClient) -> Self {
                $client { rpc }
            }
        }

        #[async_trait]
        impl $service for $client {
            $(
                async fn $method(&self, request: $request) -> Result<$response, ServiceError> {
                    self.rpc.$kind($name, stringify!($method), request).await
                }
            )+
        }

        #[doc = concat!("Serves `service` as the [`", stringify!($service), "`] on `<prefix>.", $name, ".<method>`, in the queue group `roost.", $name, "` so replicas share the calls.")]
        pub async fn $serve(
            nats: async_nats::Client,
            service: Arc<dyn $service>,
            options: ServerOptions,
        ) -> Result<RpcServer, RpcError> {
            let routes: Vec<Route<dyn $service>> = vec![$(
                Route {
                    method: stringify!($method),
                    handler: |service: Arc<dyn $service>, payload: Bytes| -> BoxFuture<'static, Reply> {
                        Box::pin(server::$kind(payload, move |request: $request| async move {
                            service.$method(request).await
                        }))
                    },
                },
            )+];
            RpcServer::start(nats, $name, service, routes, options).await
        }

        #[doc = concat!("A [`", stringify!($service), "`] reached over gRPC (`roost.", stringify!($package), ".v1.", stringify!($service), "`).")]
        #[derive(Debug, Clone)]
        pub struct $grpc_client {
            channel: GrpcChannel,
            client: roost_proto::grpc::$package::$client_mod::$generated_client<Channel>,
        }

        impl $grpc_client {
            /// The service's short name, as in NATS subjects and `[grpc.services]`.
            pub const SERVICE: &'static str = $name;
            /// The methods, snake_case.
            pub const METHODS: &'static [&'static str] = &[$(stringify!($method)),+];
            /// The service's full gRPC name.
            pub const GRPC_NAME: &'static str =
                <roost_proto::grpc::$package::$server_mod::$generated_server<GrpcAdapter<dyn $service>> as NamedService>::NAME;

            /// A client that calls through `channel`.
            pub fn new(channel: GrpcChannel) -> Self {
                let limit = channel.options.max_message_bytes;
                let client = roost_proto::grpc::$package::$client_mod::$generated_client::new(channel.channel.clone())
                    .max_decoding_message_size(limit)
                    .max_encoding_message_size(limit);
                $grpc_client { channel, client }
            }
        }

        #[async_trait]
        impl $service for $grpc_client {
            $(
                async fn $method(&self, request: $request) -> Result<$response, ServiceError> {
                    let mut client = self.client.clone();
                    self.channel
                        .$kind($name, stringify!($method), request, |request| async move {
                            client.$method(request).await
                        })
                        .await
                }
            )+
        }

        #[tonic::async_trait]
        impl roost_proto::grpc::$package::$server_mod::$service for GrpcAdapter<dyn $service> {
            $( $( type $stream = crate::grpc::GrpcAnswerStream; )? )+
            $(
                async fn $method(
                    &self,
                    request: tonic::Request<$request>,
                ) -> Result<tonic::Response<grpc_reply!($kind $response)>, tonic::Status> {
                    let service = self.service.clone();
                    crate::grpc::serve::$kind($name, stringify!($method), request, |request| async move {
                        service.$method(request).await
                    })
                    .await
                }
            )+
        }

        impl GrpcServerBuilder {
            #[doc = concat!("Serves `service` as `roost.", stringify!($package), ".v1.", stringify!($service), "`.")]
            pub fn $serve(mut self, service: Arc<dyn $service>) -> Self {
                let limit = self.options.max_message_bytes;
                let server = roost_proto::grpc::$package::$server_mod::$generated_server::new(GrpcAdapter { service })
                    .max_decoding_message_size(limit)
                    .max_encoding_message_size(limit);
                self.services.push($grpc_client::GRPC_NAME);
                self.routes.add_service(server);
                self
            }
        }
    )+};
}

rpc_services! {
    AuthService as "auth", client NatsAuthClient, serve serve_auth,
        grpc GrpcAuthClient(auth::{auth_service_client::AuthServiceClient, auth_service_server::AuthServiceServer}) {
        unary authenticate(auth::AuthenticateRequest) -> auth::AuthenticateResponse;
        unary get_local_tokens(auth::GetLocalTokensRequest) -> auth::GetLocalTokensResponse;
        unary get_workspace(auth::GetWorkspaceRequest) -> auth::GetWorkspaceResponse;
        unary create_token(auth::CreateTokenRequest) -> auth::CreateTokenResponse;
        unary list_tokens(auth::ListTokensRequest) -> auth::ListTokensResponse;
        unary get_token(auth::GetTokenRequest) -> auth::GetTokenResponse;
        unary update_token(auth::UpdateTokenRequest) -> auth::UpdateTokenResponse;
        unary delete_token(auth::DeleteTokenRequest) -> auth::DeleteTokenResponse;
        unary refresh_token(auth::RefreshTokenRequest) -> auth::RefreshTokenResponse;
        unary create_jwt(auth::CreateJwtRequest) -> auth::CreateJwtResponse;
        unary get_organization(auth::GetOrganizationRequest) -> auth::GetOrganizationResponse;
        unary list_user_workspaces(auth::ListUserWorkspacesRequest) -> auth::ListUserWorkspacesResponse;
        unary create_workspace(auth::CreateWorkspaceRequest) -> auth::CreateWorkspaceResponse;
        unary delete_workspace(auth::DeleteWorkspaceRequest) -> auth::DeleteWorkspaceResponse;
    }

    CatalogService as "catalog", client NatsCatalogClient, serve serve_catalog,
        grpc GrpcCatalogClient(catalog::{catalog_service_client::CatalogServiceClient, catalog_service_server::CatalogServiceServer}) {
        unary create_data_source(catalog::CreateDataSourceRequest) -> catalog::CreateDataSourceResponse;
        unary get_data_source(catalog::GetDataSourceRequest) -> catalog::GetDataSourceResponse;
        unary list_data_sources(catalog::ListDataSourcesRequest) -> catalog::ListDataSourcesResponse;
        unary rename_data_source(catalog::RenameDataSourceRequest) -> catalog::RenameDataSourceResponse;
        unary delete_data_source(catalog::DeleteDataSourceRequest) -> catalog::DeleteDataSourceResponse;
        unary truncate_data_source(catalog::TruncateDataSourceRequest) -> catalog::TruncateDataSourceResponse;
        unary alter_data_source(catalog::AlterDataSourceRequest) -> catalog::AlterDataSourceResponse;
        unary drop_workspace_data(catalog::DropWorkspaceDataRequest) -> catalog::DropWorkspaceDataResponse;
        unary create_connection(catalog::CreateConnectionRequest) -> catalog::CreateConnectionResponse;
        unary get_connection(catalog::GetConnectionRequest) -> catalog::GetConnectionResponse;
        unary list_connections(catalog::ListConnectionsRequest) -> catalog::ListConnectionsResponse;
        unary delete_connection(catalog::DeleteConnectionRequest) -> catalog::DeleteConnectionResponse;
    }

    PipeCatalogService as "pipe_catalog", client NatsPipeCatalogClient, serve serve_pipe_catalog,
        grpc GrpcPipeCatalogClient(catalog::{pipe_catalog_service_client::PipeCatalogServiceClient, pipe_catalog_service_server::PipeCatalogServiceServer}) {
        unary create_pipe(catalog::CreatePipeRequest) -> catalog::CreatePipeResponse;
        unary get_pipe(catalog::GetPipeRequest) -> catalog::GetPipeResponse;
        unary list_pipes(catalog::ListPipesRequest) -> catalog::ListPipesResponse;
        unary update_pipe(catalog::UpdatePipeRequest) -> catalog::UpdatePipeResponse;
        unary delete_pipe(catalog::DeletePipeRequest) -> catalog::DeletePipeResponse;
        unary create_node(catalog::CreateNodeRequest) -> catalog::CreateNodeResponse;
        unary update_node(catalog::UpdateNodeRequest) -> catalog::UpdateNodeResponse;
        unary delete_node(catalog::DeleteNodeRequest) -> catalog::DeleteNodeResponse;
        unary set_endpoint(catalog::SetEndpointRequest) -> catalog::SetEndpointResponse;
        unary set_materialization(catalog::SetMaterializationRequest) -> catalog::SetMaterializationResponse;
        unary drop_materialization(catalog::DropMaterializationRequest) -> catalog::DropMaterializationResponse;
        unary set_node_settings(catalog::SetNodeSettingsRequest) -> catalog::SetNodeSettingsResponse;
        unary list_variables(catalog::ListVariablesRequest) -> catalog::ListVariablesResponse;
        unary set_variable(catalog::SetVariableRequest) -> catalog::SetVariableResponse;
        unary delete_variable(catalog::DeleteVariableRequest) -> catalog::DeleteVariableResponse;
    }

    QueryService as "query", client NatsQueryClient, serve serve_query,
        grpc GrpcQueryClient(query::{query_service_client::QueryServiceClient, query_service_server::QueryServiceServer}) {
        stream execute_sql(query::ExecuteSqlRequest) -> SqlAnswer as ExecuteSqlStream;
    }

    EndpointService as "endpoint", client NatsEndpointClient, serve serve_endpoint,
        grpc GrpcEndpointClient(query::{endpoint_service_client::EndpointServiceClient, endpoint_service_server::EndpointServiceServer}) {
        stream execute_endpoint(query::ExecuteEndpointRequest) -> SqlAnswer as ExecuteEndpointStream;
        unary explain_endpoint(query::ExecuteEndpointRequest) -> query::ExplainEndpointResponse;
        unary describe_endpoint(query::DescribeEndpointRequest) -> query::DescribeEndpointResponse;
        unary compile_node(query::ExecuteEndpointRequest) -> query::CompileNodeResponse;
        unary resolve_condition(query::ResolveConditionRequest) -> query::ResolveConditionResponse;
    }

    IngestService as "ingest", client NatsIngestClient, serve serve_ingest,
        grpc GrpcIngestClient(ingest::{ingest_service_client::IngestServiceClient, ingest_service_server::IngestServiceServer}) {
        unary ingest_data(ingest::IngestDataRequest) -> ingest::IngestDataResponse;
        unary analyze_data(ingest::AnalyzeDataRequest) -> ingest::AnalyzeDataResponse;
        unary finish_replace(ingest::FinishReplaceRequest) -> ingest::FinishReplaceResponse;
    }

    JobsService as "jobs", client NatsJobsClient, serve serve_jobs,
        grpc GrpcJobsClient(jobs::{jobs_service_client::JobsServiceClient, jobs_service_server::JobsServiceServer}) {
        unary submit_job(jobs::SubmitJobRequest) -> jobs::SubmitJobResponse;
        unary list_jobs(jobs::ListJobsRequest) -> jobs::ListJobsResponse;
        unary get_job(jobs::GetJobRequest) -> jobs::GetJobResponse;
        unary cancel_job(jobs::CancelJobRequest) -> jobs::CancelJobResponse;
    }

    SchedulerService as "scheduler", client NatsSchedulerClient, serve serve_scheduler,
        grpc GrpcSchedulerClient(scheduler::{scheduler_service_client::SchedulerServiceClient, scheduler_service_server::SchedulerServiceServer}) {
        unary list_schedules(scheduler::ListSchedulesRequest) -> scheduler::ListSchedulesResponse;
        unary set_schedule(scheduler::SetScheduleRequest) -> scheduler::SetScheduleResponse;
        unary delete_schedule(scheduler::DeleteScheduleRequest) -> scheduler::DeleteScheduleResponse;
    }
}

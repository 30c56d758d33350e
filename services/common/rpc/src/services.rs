//! The eight service contracts over NATS: for each, a `Nats<Service>Client` implementing the
//! trait and a `serve_<service>` function, generated from one method list per service.

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

use crate::server::{self, Reply, Route, RpcServer, ServerOptions};
use crate::{RpcClient, RpcError};

/// Generates a client and a serve function per service. Each method is `unary` (the answer is one
/// prost message, chunked when large) or `stream` (the answer is a [`SqlAnswer`]); the kind names
/// the [`RpcClient`] method and the [`server`] function that carry it.
macro_rules! rpc_services {
    ($(
        $service:ident as $name:literal, client $client:ident, serve $serve:ident {
            $( $kind:ident $method:ident($request:ty) -> $response:ty; )+
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
    )+};
}

rpc_services! {
    AuthService as "auth", client NatsAuthClient, serve serve_auth {
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

    CatalogService as "catalog", client NatsCatalogClient, serve serve_catalog {
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

    PipeCatalogService as "pipe_catalog", client NatsPipeCatalogClient, serve serve_pipe_catalog {
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

    QueryService as "query", client NatsQueryClient, serve serve_query {
        stream execute_sql(query::ExecuteSqlRequest) -> SqlAnswer;
    }

    EndpointService as "endpoint", client NatsEndpointClient, serve serve_endpoint {
        stream execute_endpoint(query::ExecuteEndpointRequest) -> SqlAnswer;
        unary explain_endpoint(query::ExecuteEndpointRequest) -> query::ExplainEndpointResponse;
        unary describe_endpoint(query::DescribeEndpointRequest) -> query::DescribeEndpointResponse;
        unary compile_node(query::ExecuteEndpointRequest) -> query::CompileNodeResponse;
        unary resolve_condition(query::ResolveConditionRequest) -> query::ResolveConditionResponse;
    }

    IngestService as "ingest", client NatsIngestClient, serve serve_ingest {
        unary ingest_data(ingest::IngestDataRequest) -> ingest::IngestDataResponse;
        unary analyze_data(ingest::AnalyzeDataRequest) -> ingest::AnalyzeDataResponse;
        unary finish_replace(ingest::FinishReplaceRequest) -> ingest::FinishReplaceResponse;
    }

    JobsService as "jobs", client NatsJobsClient, serve serve_jobs {
        unary submit_job(jobs::SubmitJobRequest) -> jobs::SubmitJobResponse;
        unary list_jobs(jobs::ListJobsRequest) -> jobs::ListJobsResponse;
        unary get_job(jobs::GetJobRequest) -> jobs::GetJobResponse;
        unary cancel_job(jobs::CancelJobRequest) -> jobs::CancelJobResponse;
    }

    SchedulerService as "scheduler", client NatsSchedulerClient, serve serve_scheduler {
        unary list_schedules(scheduler::ListSchedulesRequest) -> scheduler::ListSchedulesResponse;
        unary set_schedule(scheduler::SetScheduleRequest) -> scheduler::SetScheduleResponse;
        unary delete_schedule(scheduler::DeleteScheduleRequest) -> scheduler::DeleteScheduleResponse;
    }
}

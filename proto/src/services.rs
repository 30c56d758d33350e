//! One async trait per service of `proto/*.proto`, with the same methods and messages. Any
//! implementation (in-process, NATS, gRPC) is used through its client alias, `Arc<dyn Trait>`.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;

use crate::ServiceError;
use crate::auth::v1 as auth;
use crate::catalog::v1 as catalog;
use crate::ingest::v1 as ingest;
use crate::jobs::v1 as jobs;
use crate::query::v1 as query;
use crate::scheduler::v1 as scheduler;

/// `roost.auth.v1.AuthService`.
#[async_trait]
pub trait AuthService: Send + Sync + 'static {
    /// Resolves a token value to the principal it acts as.
    async fn authenticate(
        &self,
        request: auth::AuthenticateRequest,
    ) -> Result<auth::AuthenticateResponse, ServiceError>;
    /// The seed's tokens, as Tinybird Local's `GET /tokens` shows them.
    async fn get_local_tokens(
        &self,
        request: auth::GetLocalTokensRequest,
    ) -> Result<auth::GetLocalTokensResponse, ServiceError>;
    /// One workspace.
    async fn get_workspace(
        &self,
        request: auth::GetWorkspaceRequest,
    ) -> Result<auth::GetWorkspaceResponse, ServiceError>;
    /// Creates a static token in the header's workspace.
    async fn create_token(
        &self,
        request: auth::CreateTokenRequest,
    ) -> Result<auth::CreateTokenResponse, ServiceError>;
    /// The workspace's static tokens.
    async fn list_tokens(
        &self,
        request: auth::ListTokensRequest,
    ) -> Result<auth::ListTokensResponse, ServiceError>;
    /// One static token by id or name.
    async fn get_token(
        &self,
        request: auth::GetTokenRequest,
    ) -> Result<auth::GetTokenResponse, ServiceError>;
    /// Renames a token, changes its description or replaces its scopes.
    async fn update_token(
        &self,
        request: auth::UpdateTokenRequest,
    ) -> Result<auth::UpdateTokenResponse, ServiceError>;
    /// Revokes a token.
    async fn delete_token(
        &self,
        request: auth::DeleteTokenRequest,
    ) -> Result<auth::DeleteTokenResponse, ServiceError>;
    /// Gives a token a new value with the same scopes; the old value stops working.
    async fn refresh_token(
        &self,
        request: auth::RefreshTokenRequest,
    ) -> Result<auth::RefreshTokenResponse, ServiceError>;
    /// Signs a JWT with the workspace admin token.
    async fn create_jwt(
        &self,
        request: auth::CreateJwtRequest,
    ) -> Result<auth::CreateJwtResponse, ServiceError>;
    /// An organization with its members and workspaces.
    async fn get_organization(
        &self,
        request: auth::GetOrganizationRequest,
    ) -> Result<auth::GetOrganizationResponse, ServiceError>;
    /// The workspaces a user owns, with their admin tokens, and the user's organization.
    async fn list_user_workspaces(
        &self,
        request: auth::ListUserWorkspacesRequest,
    ) -> Result<auth::ListUserWorkspacesResponse, ServiceError>;
    /// Creates a workspace with its admin tokens; its database is created on first use.
    async fn create_workspace(
        &self,
        request: auth::CreateWorkspaceRequest,
    ) -> Result<auth::CreateWorkspaceResponse, ServiceError>;
    /// Removes a workspace's records and tokens; the caller then drops its data.
    async fn delete_workspace(
        &self,
        request: auth::DeleteWorkspaceRequest,
    ) -> Result<auth::DeleteWorkspaceResponse, ServiceError>;
}
/// A handle on an [`AuthService`].
pub type AuthClient = Arc<dyn AuthService>;

/// `roost.catalog.v1.CatalogService`.
#[async_trait]
pub trait CatalogService: Send + Sync + 'static {
    /// Creates a data source and its tables.
    async fn create_data_source(
        &self,
        request: catalog::CreateDataSourceRequest,
    ) -> Result<catalog::CreateDataSourceResponse, ServiceError>;
    /// One data source by name or id.
    async fn get_data_source(
        &self,
        request: catalog::GetDataSourceRequest,
    ) -> Result<catalog::GetDataSourceResponse, ServiceError>;
    /// The workspace's data sources.
    async fn list_data_sources(
        &self,
        request: catalog::ListDataSourcesRequest,
    ) -> Result<catalog::ListDataSourcesResponse, ServiceError>;
    /// Renames a data source.
    async fn rename_data_source(
        &self,
        request: catalog::RenameDataSourceRequest,
    ) -> Result<catalog::RenameDataSourceResponse, ServiceError>;
    /// Drops a data source (or, as a dry run, lists what depends on it).
    async fn delete_data_source(
        &self,
        request: catalog::DeleteDataSourceRequest,
    ) -> Result<catalog::DeleteDataSourceResponse, ServiceError>;
    /// Removes every row of a data source.
    async fn truncate_data_source(
        &self,
        request: catalog::TruncateDataSourceRequest,
    ) -> Result<catalog::TruncateDataSourceResponse, ServiceError>;
    /// Adds columns, sets the description or the TTL.
    async fn alter_data_source(
        &self,
        request: catalog::AlterDataSourceRequest,
    ) -> Result<catalog::AlterDataSourceResponse, ServiceError>;
    /// Drops the engine database of a deleted workspace.
    async fn drop_workspace_data(
        &self,
        request: catalog::DropWorkspaceDataRequest,
    ) -> Result<catalog::DropWorkspaceDataResponse, ServiceError>;
    /// Stores a connection (the credentials a sink writes with).
    async fn create_connection(
        &self,
        request: catalog::CreateConnectionRequest,
    ) -> Result<catalog::CreateConnectionResponse, ServiceError>;
    /// One connection by name or id; its secrets only when asked.
    async fn get_connection(
        &self,
        request: catalog::GetConnectionRequest,
    ) -> Result<catalog::GetConnectionResponse, ServiceError>;
    /// The workspace's connections, without secrets.
    async fn list_connections(
        &self,
        request: catalog::ListConnectionsRequest,
    ) -> Result<catalog::ListConnectionsResponse, ServiceError>;
    /// Removes a connection no sink uses.
    async fn delete_connection(
        &self,
        request: catalog::DeleteConnectionRequest,
    ) -> Result<catalog::DeleteConnectionResponse, ServiceError>;
}
/// A handle on a [`CatalogService`].
pub type CatalogClient = Arc<dyn CatalogService>;

/// `roost.catalog.v1.PipeCatalogService`.
#[async_trait]
pub trait PipeCatalogService: Send + Sync + 'static {
    /// Creates a pipe with its nodes (or replaces one, with `force`).
    async fn create_pipe(
        &self,
        request: catalog::CreatePipeRequest,
    ) -> Result<catalog::CreatePipeResponse, ServiceError>;
    /// One pipe by name or id, with its nodes in order.
    async fn get_pipe(
        &self,
        request: catalog::GetPipeRequest,
    ) -> Result<catalog::GetPipeResponse, ServiceError>;
    /// The workspace's pipes.
    async fn list_pipes(
        &self,
        request: catalog::ListPipesRequest,
    ) -> Result<catalog::ListPipesResponse, ServiceError>;
    /// Renames a pipe or changes its description.
    async fn update_pipe(
        &self,
        request: catalog::UpdatePipeRequest,
    ) -> Result<catalog::UpdatePipeResponse, ServiceError>;
    /// Removes a pipe.
    async fn delete_pipe(
        &self,
        request: catalog::DeletePipeRequest,
    ) -> Result<catalog::DeletePipeResponse, ServiceError>;
    /// Appends a node to a pipe.
    async fn create_node(
        &self,
        request: catalog::CreateNodeRequest,
    ) -> Result<catalog::CreateNodeResponse, ServiceError>;
    /// Changes a node.
    async fn update_node(
        &self,
        request: catalog::UpdateNodeRequest,
    ) -> Result<catalog::UpdateNodeResponse, ServiceError>;
    /// Removes a node.
    async fn delete_node(
        &self,
        request: catalog::DeleteNodeRequest,
    ) -> Result<catalog::DeleteNodeResponse, ServiceError>;
    /// Publishes a node as the pipe's endpoint, or unpublishes.
    async fn set_endpoint(
        &self,
        request: catalog::SetEndpointRequest,
    ) -> Result<catalog::SetEndpointResponse, ServiceError>;
    /// Makes a node materialized into a data source (a materialized view in the engine).
    async fn set_materialization(
        &self,
        request: catalog::SetMaterializationRequest,
    ) -> Result<catalog::SetMaterializationResponse, ServiceError>;
    /// Drops a node's materialized view; the node becomes a standard node.
    async fn drop_materialization(
        &self,
        request: catalog::DropMaterializationRequest,
    ) -> Result<catalog::DropMaterializationResponse, ServiceError>;
    /// Changes a node's type and merges settings into it (copy and sink settings).
    async fn set_node_settings(
        &self,
        request: catalog::SetNodeSettingsRequest,
    ) -> Result<catalog::SetNodeSettingsResponse, ServiceError>;
    /// The workspace's environment variables.
    async fn list_variables(
        &self,
        request: catalog::ListVariablesRequest,
    ) -> Result<catalog::ListVariablesResponse, ServiceError>;
    /// Creates or updates an environment variable.
    async fn set_variable(
        &self,
        request: catalog::SetVariableRequest,
    ) -> Result<catalog::SetVariableResponse, ServiceError>;
    /// Removes an environment variable.
    async fn delete_variable(
        &self,
        request: catalog::DeleteVariableRequest,
    ) -> Result<catalog::DeleteVariableResponse, ServiceError>;
}
/// A handle on a [`PipeCatalogService`].
pub type PipeCatalogClient = Arc<dyn PipeCatalogService>;

/// A query's answer: its content type, then the body as ordered chunks.
pub struct SqlAnswer {
    /// HTTP Content-Type of the body.
    pub content_type: String,
    /// The body.
    pub body: BoxStream<'static, Result<Bytes, ServiceError>>,
}

impl std::fmt::Debug for SqlAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlAnswer")
            .field("content_type", &self.content_type)
            .finish_non_exhaustive()
    }
}

/// `roost.query.v1.QueryService`.
#[async_trait]
pub trait QueryService: Send + Sync + 'static {
    /// Validates, resolves and runs one SELECT.
    async fn execute_sql(
        &self,
        request: query::ExecuteSqlRequest,
    ) -> Result<SqlAnswer, ServiceError>;
}
/// A handle on a [`QueryService`].
pub type QueryClient = Arc<dyn QueryService>;

/// `roost.query.v1.EndpointService`.
#[async_trait]
pub trait EndpointService: Send + Sync + 'static {
    /// Renders and runs a pipe's published endpoint.
    async fn execute_endpoint(
        &self,
        request: query::ExecuteEndpointRequest,
    ) -> Result<SqlAnswer, ServiceError>;
    /// The SQL an endpoint call would run, and ClickHouse's plan for it.
    async fn explain_endpoint(
        &self,
        request: query::ExecuteEndpointRequest,
    ) -> Result<query::ExplainEndpointResponse, ServiceError>;
    /// The parameters an endpoint takes.
    async fn describe_endpoint(
        &self,
        request: query::DescribeEndpointRequest,
    ) -> Result<query::DescribeEndpointResponse, ServiceError>;
    /// A node compiled to one resolved statement, with its output columns.
    async fn compile_node(
        &self,
        request: query::ExecuteEndpointRequest,
    ) -> Result<query::CompileNodeResponse, ServiceError>;
    /// A WHERE condition over a data source, validated and resolved.
    async fn resolve_condition(
        &self,
        request: query::ResolveConditionRequest,
    ) -> Result<query::ResolveConditionResponse, ServiceError>;
}
/// A handle on an [`EndpointService`].
pub type EndpointClient = Arc<dyn EndpointService>;

/// `roost.ingest.v1.IngestService`.
#[async_trait]
pub trait IngestService: Send + Sync + 'static {
    /// Decodes data into a data source; rows that do not fit go to its quarantine.
    async fn ingest_data(
        &self,
        request: ingest::IngestDataRequest,
    ) -> Result<ingest::IngestDataResponse, ServiceError>;
    /// Guesses the columns of a sample of data.
    async fn analyze_data(
        &self,
        request: ingest::AnalyzeDataRequest,
    ) -> Result<ingest::AnalyzeDataResponse, ServiceError>;
    /// Swaps the rows staged for a replace into the data source, or discards them.
    async fn finish_replace(
        &self,
        request: ingest::FinishReplaceRequest,
    ) -> Result<ingest::FinishReplaceResponse, ServiceError>;
}
/// A handle on an [`IngestService`].
pub type IngestClient = Arc<dyn IngestService>;

/// `roost.jobs.v1.JobsService`.
#[async_trait]
pub trait JobsService: Send + Sync + 'static {
    /// Stores a job; a worker runs it.
    async fn submit_job(
        &self,
        request: jobs::SubmitJobRequest,
    ) -> Result<jobs::SubmitJobResponse, ServiceError>;
    /// Recent jobs of the workspace.
    async fn list_jobs(
        &self,
        request: jobs::ListJobsRequest,
    ) -> Result<jobs::ListJobsResponse, ServiceError>;
    /// One job.
    async fn get_job(
        &self,
        request: jobs::GetJobRequest,
    ) -> Result<jobs::GetJobResponse, ServiceError>;
    /// Cancels a job that has not finished.
    async fn cancel_job(
        &self,
        request: jobs::CancelJobRequest,
    ) -> Result<jobs::CancelJobResponse, ServiceError>;
}
/// A handle on a [`JobsService`].
pub type JobsClient = Arc<dyn JobsService>;

/// `roost.scheduler.v1.SchedulerService`.
#[async_trait]
pub trait SchedulerService: Send + Sync + 'static {
    /// The workspace's schedules.
    async fn list_schedules(
        &self,
        request: scheduler::ListSchedulesRequest,
    ) -> Result<scheduler::ListSchedulesResponse, ServiceError>;
    /// Creates or replaces a pipe's schedule.
    async fn set_schedule(
        &self,
        request: scheduler::SetScheduleRequest,
    ) -> Result<scheduler::SetScheduleResponse, ServiceError>;
    /// Removes a pipe's schedule.
    async fn delete_schedule(
        &self,
        request: scheduler::DeleteScheduleRequest,
    ) -> Result<scheduler::DeleteScheduleResponse, ServiceError>;
}
/// A handle on a [`SchedulerService`].
pub type SchedulerClient = Arc<dyn SchedulerService>;

//! The route table and what every handler needs: authentication and scope checks.

mod build;
mod connectors;
mod datasources;
pub(crate) mod events;
mod imports;
mod internal;
mod jobs;
mod pipe_jobs;
mod pipes;
mod sinks;
mod sql;
mod tokens;
mod variables;
mod workspace;
mod workspaces;

use axum::Router;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::{get, post};
use roost_proto::auth::v1::{AuthenticateRequest, FixedParam, Principal};
use roost_proto::common::v1::RequestHeader;
use roost_proto::query::v1::RowFilter;

use crate::params::{Params, token};
use crate::{ApiError, AppState, rate_limit};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/tokens", get(workspace::local_tokens))
        .route("/v0/workspace", get(workspace::current))
        .route("/v1/workspace", get(workspace::current))
        .route("/v0/organizations", get(workspaces::organizations))
        .route("/v0/organizations/{id}", get(workspaces::organization))
        .route("/v0/organizations/{id}/members", get(workspaces::members))
        .route(
            "/v0/organizations/{id}/workspaces",
            get(workspaces::organization_workspaces),
        )
        .route("/v0/user/workspaces", get(workspaces::user_workspaces))
        .route("/v0/user/workspaces/", get(workspaces::user_workspaces))
        .route("/v1/user/workspaces", get(workspaces::user_workspaces))
        .route("/v1/user/workspaces/", get(workspaces::user_workspaces))
        .route("/v0/workspaces", post(workspaces::create))
        .route("/v1/workspaces", post(workspaces::create))
        .route(
            "/v0/workspaces/{id}",
            axum::routing::delete(workspaces::delete),
        )
        .route(
            "/v1/workspaces/{id}",
            axum::routing::delete(workspaces::delete),
        )
        .route(
            "/v0/datasources",
            get(datasources::list).post(datasources::create_or_append),
        )
        .route(
            "/v0/datasources/{name}",
            get(datasources::get_one)
                .put(datasources::update)
                .delete(datasources::delete),
        )
        .route(
            "/v0/datasources/{name}/truncate",
            post(datasources::truncate),
        )
        .route("/v0/datasources/{name}/alter", post(datasources::alter))
        .route("/v0/datasources/{name}/delete", post(jobs::delete_rows))
        .route("/v0/jobs", get(jobs::list))
        .route("/v0/jobs/{id}", get(jobs::get_one))
        .route("/v0/jobs/{id}/cancel", post(jobs::cancel))
        .route(
            "/v0/variables",
            get(variables::list).post(variables::create),
        )
        .route(
            "/v0/variables/{name}",
            get(variables::get_one)
                .put(variables::update)
                .delete(variables::delete),
        )
        .route("/v0/env_vars", get(variables::list).post(variables::create))
        .route(
            "/v0/env_vars/{name}",
            get(variables::get_one)
                .put(variables::update)
                .delete(variables::delete),
        )
        .route(
            "/v0/pipes/{name}/nodes/{node}/materialization",
            post(pipe_jobs::create_materialization).delete(pipe_jobs::delete_materialization),
        )
        .route(
            "/v0/pipes/{name}/nodes/{node}/population",
            post(pipe_jobs::populate),
        )
        .route(
            "/v0/pipes/{name}/nodes/{node}/analysis",
            get(pipe_jobs::analysis),
        )
        .route(
            "/v0/pipes/{name}/nodes/{node}/copy",
            axum::routing::put(pipe_jobs::set_copy).delete(pipe_jobs::remove_copy),
        )
        .route("/v0/pipes/{name}/copy", post(pipe_jobs::run_copy))
        .route("/v0/pipes/{name}/copy/pause", post(pipe_jobs::pause_copy))
        .route("/v0/pipes/{name}/copy/resume", post(pipe_jobs::resume_copy))
        .route(
            "/v0/pipes/{name}/nodes/{node}/sink",
            post(sinks::create_sink).delete(sinks::remove_sink),
        )
        .route("/v0/pipes/{name}/sink", post(sinks::run_sink))
        .route(
            "/v0/connectors",
            get(connectors::list).post(connectors::create),
        )
        .route(
            "/v0/connectors/{id}",
            get(connectors::get_one).delete(connectors::delete),
        )
        .route("/v0/analyze", post(imports::analyze))
        .route("/v1/build", post(build::build))
        .route("/v1/datasources/{name}/{mode}", post(imports::import_v1))
        .route("/v0/events", post(events::append))
        .route("/v0/sql", get(sql::run).post(sql::run))
        .route("/v0/pipes", get(pipes::list).post(pipes::create))
        .route("/v0/pipes/openapi.json", get(pipes::openapi))
        .route(
            "/v0/pipes/{name}",
            get(pipes::get_one)
                .post(pipes::post_endpoint)
                .put(pipes::update)
                .delete(pipes::delete),
        )
        .route("/v0/pipes/{name}/explain", get(pipes::explain))
        .route("/v0/pipes/{name}/nodes", post(pipes::create_node))
        .route(
            "/v0/pipes/{name}/nodes/{node}",
            axum::routing::put(pipes::update_node).delete(pipes::delete_node),
        )
        .route(
            "/v0/pipes/{name}/nodes/{node}/endpoint",
            post(pipes::publish).delete(pipes::unpublish),
        )
        .route("/v0/tokens", get(tokens::list).post(tokens::create))
        .route(
            "/v0/tokens/{token}",
            get(tokens::get_one)
                .put(tokens::update)
                .delete(tokens::delete),
        )
        .route("/v0/tokens/{token}/refresh", post(tokens::refresh))
        .route("/health", get(|| async { "ok" }))
        .fallback(
            |uri: Uri| async move { ApiError::not_found(format!("Not found: {}", uri.path())) },
        )
        .method_not_allowed_fallback(|| async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed")
        })
}

/// What a request may touch, as Tinybird scopes say.
#[derive(Debug, Clone, Copy)]
pub enum Need<'a> {
    /// Create data sources.
    CreateDataSource,
    /// Append to (or create by appending) this data source.
    Append(&'a str),
    /// Read this data source.
    Read(&'a str),
    /// Drop or truncate this data source.
    Drop(&'a str),
    /// Create pipes.
    CreatePipe,
    /// Call this pipe's endpoint and read its definition.
    ReadPipe(&'a str),
    /// Change or remove this pipe.
    DropPipe(&'a str),
    /// List, create, change and revoke tokens (`TOKENS`).
    ManageTokens,
}

/// An authenticated caller bound to a workspace.
pub struct Caller {
    pub principal: Principal,
    pub header: RequestHeader,
}

impl Caller {
    /// True when the token's scopes grant `need`.
    pub fn may(&self, need: Need<'_>) -> bool {
        self.principal.scopes.iter().any(|scope| {
            if scope == "ADMIN" || scope == "ADMIN_USER" {
                return true;
            }
            let mut parts = scope.splitn(4, ':');
            let (kind, action, resource) = (parts.next(), parts.next(), parts.next());
            match (need, kind, action, resource) {
                (
                    Need::CreateDataSource | Need::Append(_),
                    Some("DATASOURCES"),
                    Some("CREATE"),
                    _,
                ) => true,
                (Need::Append(name), Some("DATASOURCES"), Some("APPEND"), Some(resource)) => {
                    resource == name
                }
                (Need::Read(name), Some("DATASOURCES"), Some("READ"), Some(resource)) => {
                    resource == name
                }
                (Need::Drop(name), Some("DATASOURCES"), Some("DROP"), Some(resource)) => {
                    resource == name
                }
                (Need::CreatePipe, Some("PIPES"), Some("CREATE"), _) => true,
                (Need::ReadPipe(name), Some("PIPES"), Some("READ"), Some(resource)) => {
                    resource == name
                }
                (Need::DropPipe(name), Some("PIPES"), Some("DROP"), Some(resource)) => {
                    resource == name
                }
                (Need::ManageTokens, Some("TOKENS"), None, _) => true,
                _ => false,
            }
        })
    }

    /// Refuses with 403 unless the token grants `need`.
    pub fn require(&self, need: Need<'_>) -> Result<(), ApiError> {
        if self.may(need) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "Not enough permissions for this operation ({need:?})"
            )))
        }
    }

    /// True for ADMIN tokens, which read every data source.
    pub fn reads_all(&self) -> bool {
        self.principal
            .scopes
            .iter()
            .any(|s| s == "ADMIN" || s == "ADMIN_USER")
    }

    /// The row filters of `DATASOURCES:READ:ds:filter` scopes, for every read of those data
    /// sources; a data source the token also reads unfiltered (or an ADMIN token) has none.
    pub fn row_filters(&self) -> Vec<RowFilter> {
        if self.reads_all() {
            return Vec::new();
        }
        let scopes = &self.principal.scopes;
        let unfiltered = |name: &str| {
            scopes
                .iter()
                .any(|s| s.strip_prefix("DATASOURCES:READ:") == Some(name))
        };
        scopes
            .iter()
            .filter_map(|s| s.strip_prefix("DATASOURCES:READ:"))
            .filter_map(|rest| rest.split_once(':'))
            .filter(|(name, filter)| !filter.trim().is_empty() && !unfiltered(name))
            .map(|(name, filter)| RowFilter {
                data_source: name.to_string(),
                filter: filter.to_string(),
            })
            .collect()
    }

    /// The endpoint parameters a JWT fixes for `pipe`: they replace what the request sends.
    pub fn fixed_params(&self, pipe: &str) -> Vec<&FixedParam> {
        self.principal
            .fixed_params
            .iter()
            .filter(|p| p.pipe == pipe)
            .collect()
    }

    /// Data sources the token may read by name.
    pub fn readable(&self) -> Vec<String> {
        self.principal
            .scopes
            .iter()
            .filter_map(|s| s.strip_prefix("DATASOURCES:READ:"))
            .map(|rest| rest.split(':').next().unwrap_or(rest).to_string())
            .collect()
    }
}

/// Authenticates a request's token, whatever it is bound to.
pub async fn principal(
    state: &AppState,
    headers: &HeaderMap,
    params: &Params,
) -> Result<Principal, ApiError> {
    let token = token(headers, params).ok_or_else(|| {
        ApiError::forbidden("Missing token: use the Authorization header or ?token=")
    })?;
    let principal = state
        .services
        .auth
        .authenticate(AuthenticateRequest {
            header: None,
            token: token.clone(),
        })
        .await?
        .principal
        .ok_or_else(|| ApiError::forbidden("Invalid token"))?;
    if principal.is_jwt && principal.limit_rps > 0 {
        // Keyed by the whole JWT: each signed token has its own limit.
        let decision = state
            .limiters
            .jwt_requests
            .check(&token, principal.limit_rps as u64, 1);
        rate_limit::record(decision);
        if !decision.allowed {
            return Err(ApiError::too_many_requests(format!(
                "Too many requests: this token allows {} requests per second",
                principal.limit_rps
            )));
        }
    }
    Ok(principal)
}

/// Authenticates a request and requires a token that acts for a user: the user token, or the
/// user's own admin token for reads (`write` needs the user token itself).
pub async fn user_caller(
    state: &AppState,
    headers: &HeaderMap,
    params: &Params,
    write: bool,
) -> Result<Principal, ApiError> {
    let principal = principal(state, headers, params).await?;
    let allowed = if write {
        principal.is_user_token
    } else {
        principal.acts_for_user
    };
    if !allowed {
        return Err(ApiError::forbidden(
            "This operation needs the user token (GET /tokens shows it in roost local): workspace tokens see only their workspace",
        ));
    }
    Ok(principal)
}

/// Authenticates a request and requires a workspace token.
pub async fn caller(
    state: &AppState,
    headers: &HeaderMap,
    params: &Params,
) -> Result<Caller, ApiError> {
    let principal = principal(state, headers, params).await?;
    let workspace = principal.workspace.as_ref().ok_or_else(|| {
        ApiError::forbidden("This is a user token: use a workspace token for this operation")
    })?;
    let header = RequestHeader {
        workspace_id: workspace.id.clone(),
        token_id: principal.token_id.clone(),
        request_id: uuid::Uuid::new_v4().to_string(),
        traceparent: String::new(),
    };
    Ok(Caller { principal, header })
}

/// A query's answer as an HTTP response: its content type, and the body streamed as it comes.
pub fn answer_response(
    answer: roost_proto::SqlAnswer,
) -> Result<axum::response::Response, ApiError> {
    use futures::TryStreamExt;
    let body = axum::body::Body::from_stream(
        answer
            .body
            .map_err(|error| std::io::Error::other(error.message)),
    );
    axum::response::Response::builder()
        .header(axum::http::header::CONTENT_TYPE, answer.content_type)
        .body(body)
        .map_err(|e| ApiError::bad_request(e.to_string()))
}

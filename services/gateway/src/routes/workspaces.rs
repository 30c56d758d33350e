//! Organizations and workspaces: `/v0/organizations[/{id}[/members|/workspaces]]`, and the calls
//! the Forward `tb` makes in local mode: `GET /v1/user/workspaces`, `POST /v1/workspaces?name=`,
//! `DELETE /v1/workspaces/{id or name}` (the same under `/v0`).
//!
//! Only a user token creates and deletes workspaces; the user's own admin token (`admin <email>`,
//! the CLI token) may also list them, as the Forward `tb` does. Other workspace tokens see only
//! their workspace (`/v0/workspace`) and get 403 here. Deleting a workspace removes its records
//! and tokens in auth first, so nothing can use it any more, then drops its database.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use roost_proto::auth::v1::{
    CreateWorkspaceRequest, DeleteWorkspaceRequest, GetOrganizationRequest,
    ListUserWorkspacesRequest, Organization, Principal, Workspace, WorkspaceAccess,
};
use roost_proto::catalog::v1::DropWorkspaceDataRequest;
use roost_proto::common::v1::RequestHeader;
use serde_json::{Value, json};

use super::user_caller;
use crate::params::Params;
use crate::{ApiError, AppState};

fn params_of(query: Option<String>) -> Params {
    Params::from_query(query)
}

fn organization_json(organization: &Organization) -> Value {
    json!({ "id": organization.id, "name": organization.name, "created_at": organization.created_at })
}

fn workspace_json(workspace: &Workspace) -> Value {
    json!({
        "id": workspace.id,
        "name": workspace.name,
        "owner": workspace.owner_email,
        "organization_id": workspace.organization_id,
        "created_at": workspace.created_at,
        "role": "admin",
        "plan": "dev",
        "is_branch": false,
        "main": Value::Null,
    })
}

fn access_json(access: &WorkspaceAccess, organization: Option<&Organization>) -> Value {
    let mut out = workspace_json(&access.workspace.clone().unwrap_or_default());
    out["token"] = access.token.clone().into();
    if let Some(organization) = organization {
        out["organization"] = organization_json(organization);
    }
    out
}

fn header_for(principal: &Principal) -> RequestHeader {
    RequestHeader {
        workspace_id: principal
            .workspace
            .as_ref()
            .map(|w| w.id.clone())
            .unwrap_or_default(),
        token_id: principal.token_id.clone(),
        request_id: uuid::Uuid::new_v4().to_string(),
        traceparent: String::new(),
    }
}

/// The organization of the user the token acts for; 403 for another one, so ids are not probed.
async fn own_organization(
    state: &AppState,
    headers: &HeaderMap,
    params: &Params,
    id: Option<&str>,
) -> Result<roost_proto::auth::v1::GetOrganizationResponse, ApiError> {
    let principal = user_caller(state, headers, params, false).await?;
    let listed = state
        .services
        .auth
        .list_user_workspaces(ListUserWorkspacesRequest {
            header: Some(header_for(&principal)),
            user_id: principal.user_id.clone(),
        })
        .await?;
    let own = listed.organization.map(|o| o.id).unwrap_or_default();
    if id.is_some_and(|id| id != own) {
        return Err(ApiError::forbidden(
            "The token's user is not a member of this organization",
        ));
    }
    Ok(state
        .services
        .auth
        .get_organization(GetOrganizationRequest {
            header: Some(header_for(&principal)),
            organization_id: own,
        })
        .await?)
}

/// `GET /v0/organizations`: the user's organization.
pub async fn organizations(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let found = own_organization(&state, &headers, &params_of(query), None).await?;
    let organizations: Vec<Value> = found.organization.iter().map(organization_json).collect();
    Ok(Json(json!({ "organizations": organizations })))
}

/// `GET /v0/organizations/{id}`.
pub async fn organization(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let found = own_organization(&state, &headers, &params_of(query), Some(&id)).await?;
    let mut out = organization_json(&found.organization.unwrap_or_default());
    out["workspaces"] = found
        .workspaces
        .iter()
        .map(workspace_json)
        .collect::<Vec<_>>()
        .into();
    Ok(Json(out))
}

/// `GET /v0/organizations/{id}/members`.
pub async fn members(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let found = own_organization(&state, &headers, &params_of(query), Some(&id)).await?;
    let members: Vec<Value> = found
        .members
        .iter()
        .map(|m| json!({ "id": m.id, "email": m.email, "role": "admin", "created_at": m.created_at }))
        .collect();
    Ok(Json(json!({ "members": members })))
}

/// `GET /v0/organizations/{id}/workspaces`.
pub async fn organization_workspaces(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let found = own_organization(&state, &headers, &params_of(query), Some(&id)).await?;
    let workspaces: Vec<Value> = found.workspaces.iter().map(workspace_json).collect();
    Ok(Json(json!({ "workspaces": workspaces })))
}

/// `GET /v1/user/workspaces`: the user's workspaces, each with its admin token, and the user's
/// organization. Called with the user's admin token of a workspace, that workspace's id and name
/// lead the answer, as the CLI reads them.
pub async fn user_workspaces(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let params = params_of(query);
    let principal = user_caller(&state, &headers, &params, false).await?;
    let listed = state
        .services
        .auth
        .list_user_workspaces(ListUserWorkspacesRequest {
            header: Some(header_for(&principal)),
            user_id: principal.user_id.clone(),
        })
        .await?;
    let organization = listed.organization.unwrap_or_default();
    let with_organization = params.flag("with_organization");
    let workspaces: Vec<Value> = listed
        .workspaces
        .iter()
        .map(|w| access_json(w, with_organization.then_some(&organization)))
        .collect();
    let mut out = json!({
        "organization_id": organization.id,
        "user_id": principal.user_id,
        "email": principal.user_email,
        "workspaces": workspaces,
    });
    if let Some(current) = &principal.workspace {
        out["id"] = current.id.clone().into();
        out["name"] = current.name.clone().into();
    }
    Ok(Json(out))
}

/// `POST /v1/workspaces?name=&assign_to_organization_id=`: a new workspace with its own admin
/// token and database.
pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = params_of(query);
    let principal = user_caller(&state, &headers, &params, true).await?;
    let name = params
        .text("name")
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::bad_request("The 'name' parameter is required"))?;
    let created = state
        .services
        .auth
        .create_workspace(CreateWorkspaceRequest {
            header: Some(header_for(&principal)),
            user_id: principal.user_id.clone(),
            name: name.to_string(),
            organization_id: params
                .text("assign_to_organization_id")
                .unwrap_or_default()
                .to_string(),
        })
        .await?;
    let access = created.workspace.unwrap_or_default();
    Ok((StatusCode::OK, Json(access_json(&access, None))).into_response())
}

/// `DELETE /v1/workspaces/{id or name}`: removes the workspace and drops its data. Tinybird asks
/// for `hard_delete_confirmation`; a workspace here is always deleted for good.
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = params_of(query);
    let principal = user_caller(&state, &headers, &params, true).await?;
    let deleted = state
        .services
        .auth
        .delete_workspace(DeleteWorkspaceRequest {
            header: Some(header_for(&principal)),
            user_id: principal.user_id.clone(),
            name_or_id: id,
        })
        .await?
        .workspace
        .unwrap_or_default();
    let mut header = header_for(&principal);
    header.workspace_id = deleted.id.clone();
    state
        .services
        .catalog
        .drop_workspace_data(DropWorkspaceDataRequest {
            header: Some(header),
            database: deleted.database,
        })
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

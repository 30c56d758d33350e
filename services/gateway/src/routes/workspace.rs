//! `GET /tokens` (Tinybird Local) and `GET /v0/workspace`.

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use roost_proto::auth::v1::GetLocalTokensRequest;
use serde_json::{Value, json};

use super::caller;
use crate::params::Params;
use crate::{ApiError, AppState};

pub async fn local_tokens(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    if !state.config.local {
        return Err(ApiError::not_found("Not found: /tokens"));
    }
    let tokens = state
        .services
        .auth
        .get_local_tokens(GetLocalTokensRequest { header: None })
        .await?;
    Ok(Json(json!({
        "user_token": tokens.user_token,
        "admin_token": tokens.admin_token,
        "workspace_admin_token": tokens.workspace_admin_token,
    })))
}

pub async fn current(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let params = Params::from_query(query);
    let caller = caller(&state, &headers, &params).await?;
    let workspace = caller.principal.workspace.clone().unwrap_or_default();
    Ok(Json(json!({
        "id": workspace.id,
        "name": workspace.name,
        "user_email": caller.principal.user_email,
        "user_id": caller.principal.user_id,
        "scope": if caller.reads_all() { "admin" } else { "user" },
        "organization_id": workspace.organization_id,
        "created_at": workspace.created_at,
        "main": Value::Null,
        "is_branch": false,
    })))
}

//! Environment variables: `/v0/variables` (what `tb` uses) and `/v0/env_vars`, the same API.
//! Values are secrets: they are written, and read only by templates (`tb_secret`, `tb_var`);
//! no answer ever carries one.

use axum::Json;
use axum::extract::{Path, Request, State};
use roost_proto::catalog::v1::{
    DeleteVariableRequest, ListVariablesRequest, SetVariableRequest, Variable,
};
use serde_json::{Value, json};

use super::{Caller, caller};
use crate::params::{Params, read_request};
use crate::{ApiError, AppState};

const MAX_VARIABLE_BODY: usize = 256 * 1024;

fn variable_json(variable: &Variable) -> Value {
    json!({
        "name": variable.name,
        "type": variable.r#type,
        "created_at": variable.created_at,
        "updated_at": variable.updated_at,
        "edited_by": variable.edited_by,
    })
}

/// Variables hold credentials: only admin tokens manage them.
async fn admin(state: &AppState, request: Request) -> Result<(Caller, Params, Value), ApiError> {
    let (headers, mut params, payload) = read_request(request, MAX_VARIABLE_BODY).await?;
    let caller = caller(state, &headers, &params).await?;
    if !caller.reads_all() {
        return Err(ApiError::forbidden(
            "Environment variables need an admin token",
        ));
    }
    let body = params.extend_with_json_body(&payload.data);
    Ok((caller, params, body))
}

fn edited_by(caller: &Caller) -> String {
    caller.principal.token_name.clone()
}

/// `GET /v0/variables`.
pub async fn list(
    State(state): State<AppState>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let (caller, _, _) = admin(&state, request).await?;
    let variables = state
        .services
        .pipes
        .list_variables(ListVariablesRequest {
            header: Some(caller.header.clone()),
            with_values: false,
        })
        .await?
        .variables;
    Ok(Json(
        json!({ "variables": variables.iter().map(variable_json).collect::<Vec<_>>() }),
    ))
}

/// Creates (`create`) or updates the variable `name` with the request's `value` and `type`.
async fn set(
    state: &AppState,
    caller: &Caller,
    params: &Params,
    name: String,
    create: bool,
) -> Result<Json<Value>, ApiError> {
    let value = params
        .get("value")
        .ok_or_else(|| ApiError::bad_request("The 'value' parameter is required"))?;
    let variable = state
        .services
        .pipes
        .set_variable(SetVariableRequest {
            header: Some(caller.header.clone()),
            name,
            r#type: params.text("type").unwrap_or("secret").to_string(),
            value: value.to_string(),
            edited_by: edited_by(caller),
            create,
        })
        .await?
        .variable
        .unwrap_or_default();
    Ok(Json(variable_json(&variable)))
}

/// `POST /v0/variables` with `name`, `value` and optionally `type=secret`.
pub async fn create(
    State(state): State<AppState>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let (caller, params, _) = admin(&state, request).await?;
    let name = params
        .text("name")
        .ok_or_else(|| ApiError::bad_request("The 'name' parameter is required"))?
        .to_string();
    set(&state, &caller, &params, name, true).await
}

/// `GET /v0/variables/{name}`: the variable without its value.
pub async fn get_one(
    State(state): State<AppState>,
    Path(name): Path<String>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let (caller, _, _) = admin(&state, request).await?;
    let variables = state
        .services
        .pipes
        .list_variables(ListVariablesRequest {
            header: Some(caller.header.clone()),
            with_values: false,
        })
        .await?
        .variables;
    let variable = variables
        .iter()
        .find(|v| v.name == name)
        .ok_or_else(|| ApiError::not_found(format!("Variable '{name}' not found")))?;
    Ok(Json(variable_json(variable)))
}

/// `PUT /v0/variables/{name}` with a new `value`.
pub async fn update(
    State(state): State<AppState>,
    Path(name): Path<String>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let (caller, params, _) = admin(&state, request).await?;
    set(&state, &caller, &params, name, false).await
}

/// `DELETE /v0/variables/{name}`.
pub async fn delete(
    State(state): State<AppState>,
    Path(name): Path<String>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let (caller, _, _) = admin(&state, request).await?;
    state
        .services
        .pipes
        .delete_variable(DeleteVariableRequest {
            header: Some(caller.header.clone()),
            name,
        })
        .await?;
    Ok(Json(json!({ "ok": true })))
}

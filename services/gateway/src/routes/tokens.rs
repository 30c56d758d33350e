//! `/v0/tokens`: the Tokens API as the `tb` CLI uses it. Static tokens are listed, created
//! (`?name=&scope=...&scope=...`), read, changed (`PUT`, scopes replaced), revoked and refreshed;
//! `POST /v0/tokens?name=&expiration_time=` with a JSON body of scopes signs a JWT instead.
//!
//! Every call needs an ADMIN or TOKENS token. A TOKENS token cannot see, grant or change ADMIN,
//! so it cannot lift itself to admin. New resource scopes must name an existing data source or
//! pipe, and row filters are checked by running them once, so a bad filter fails here rather than
//! on every later read.

use axum::Json;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, StatusCode};
use roost_proto::auth::v1::{
    CreateJwtRequest, CreateTokenRequest, DeleteTokenRequest, GetTokenRequest, JwtScope,
    ListTokensRequest, RefreshTokenRequest, Token, UpdateTokenRequest,
};
use roost_proto::catalog::v1::{GetDataSourceRequest, GetPipeRequest};
use roost_proto::query::v1::{ExecuteSqlRequest, RowFilter};
use serde_json::{Value, json};

use super::{Caller, Need, caller};
use crate::params::{Params, read_request};
use crate::{ApiError, AppState};

const MAX_TOKEN_BODY: usize = 1024 * 1024;

/// `{type, resource, filter}` of a scope string, as Tinybird lists scopes; keys without a value
/// are left out (the CLI tells resource scopes by the presence of `resource`).
fn scope_json(scope: &str) -> Value {
    let mut parts = scope.splitn(4, ':');
    let first = parts.next().unwrap_or_default();
    let (kind, resource, filter) = match parts.next() {
        None => (first.to_string(), None, None),
        Some(action) => (format!("{first}:{action}"), parts.next(), parts.next()),
    };
    let mut out = serde_json::Map::new();
    out.insert("type".into(), kind.into());
    if let Some(resource) = resource {
        out.insert("resource".into(), resource.into());
    }
    if let Some(filter) = filter.filter(|f| !f.is_empty()) {
        out.insert("filter".into(), filter.into());
    }
    Value::Object(out)
}

/// A token as Tinybird's Tokens API shows it.
fn token_json(token: &Token) -> Value {
    let mut origin =
        json!({ "type": if token.origin.is_empty() { "C" } else { token.origin.as_str() } });
    if !token.origin_resource.is_empty() {
        origin["resource_id"] = token.origin_resource.clone().into();
    }
    json!({
        "id": token.id,
        "token": token.token,
        "name": token.name,
        "description": token.description,
        "scopes": token.scopes.iter().map(|s| scope_json(s)).collect::<Vec<_>>(),
        "origin": origin,
        "created_at": token.created_at,
    })
}

fn is_admin_scope(scope: &str) -> bool {
    scope.eq_ignore_ascii_case("ADMIN") || scope.eq_ignore_ascii_case("ADMIN_USER")
}

/// Whether the caller may see and manage `token`: ADMIN manages every token; TOKENS every token
/// but the ADMIN ones.
fn manages(caller: &Caller, token: &Token) -> bool {
    caller.may(Need::ManageTokens)
        && (caller.reads_all() || !token.scopes.iter().any(|s| is_admin_scope(s)))
}

/// The resource a scope names and whether it is a pipe, if any.
fn scope_resource(scope: &str) -> Option<(bool, &str)> {
    let mut parts = scope.splitn(4, ':');
    let kind = parts.next()?.to_ascii_uppercase();
    let _action = parts.next()?;
    let resource = parts.next()?.trim();
    (!resource.is_empty()).then_some((kind == "PIPES", resource))
}

/// Refuses scopes the caller may not grant and resources that do not exist, and runs each row
/// filter once so an invalid one is a 400 now.
async fn check_new_scopes(
    state: &AppState,
    caller: &Caller,
    scopes: &[String],
) -> Result<(), ApiError> {
    if !caller.reads_all() && scopes.iter().any(|s| is_admin_scope(s)) {
        return Err(ApiError::forbidden(
            "Only an ADMIN token may grant the ADMIN scope",
        ));
    }
    for scope in scopes {
        let Some((is_pipe, resource)) = scope_resource(scope) else {
            continue;
        };
        let found = if is_pipe {
            state
                .services
                .pipes
                .get_pipe(GetPipeRequest {
                    header: Some(caller.header.clone()),
                    name_or_id: resource.to_string(),
                })
                .await
                .map(|_| ())
        } else {
            state
                .services
                .catalog
                .get_data_source(GetDataSourceRequest {
                    header: Some(caller.header.clone()),
                    name_or_id: resource.to_string(),
                    with_statistics: false,
                })
                .await
                .map(|_| ())
        };
        if let Err(error) = found {
            return Err(if error.code.http_status() == 404 {
                ApiError::bad_request(format!(
                    "Invalid scope '{scope}': {} '{resource}' not found",
                    if is_pipe { "Pipe" } else { "Data Source" }
                ))
            } else {
                error.into()
            });
        }
        if let Some(filter) = scope.splitn(4, ':').nth(3).filter(|f| !f.trim().is_empty()) {
            check_filter(state, caller, resource, filter).await?;
        }
    }
    Ok(())
}

/// Runs `SELECT * FROM ds LIMIT 0` under the filter: its syntax and columns are checked by the
/// query service's validation and by the engine.
async fn check_filter(
    state: &AppState,
    caller: &Caller,
    data_source: &str,
    filter: &str,
) -> Result<(), ApiError> {
    let quoted = format!("`{data_source}`");
    state
        .services
        .query
        .execute_sql(ExecuteSqlRequest {
            header: Some(caller.header.clone()),
            sql: format!("SELECT * FROM {quoted} LIMIT 0"),
            default_format: "JSON".into(),
            readable: Vec::new(),
            read_all: true,
            filters: vec![RowFilter {
                data_source: data_source.to_string(),
                filter: filter.to_string(),
            }],
        })
        .await
        .map(|_| ())
        .map_err(|error| {
            ApiError::bad_request(format!(
                "Invalid filter '{filter}' for '{data_source}': {}",
                error.message
            ))
        })
}

fn scope_params(params: &Params) -> Vec<String> {
    params
        .pairs()
        .iter()
        .filter(|(key, _)| key == "scope")
        .map(|(_, value)| value.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect()
}

async fn manager(
    state: &AppState,
    headers: &HeaderMap,
    params: &Params,
) -> Result<Caller, ApiError> {
    let caller = caller(state, headers, params).await?;
    caller.require(Need::ManageTokens)?;
    Ok(caller)
}

/// A token the caller manages, by id or name; 403 for one it may not manage.
async fn fetch(state: &AppState, caller: &Caller, name_or_id: &str) -> Result<Token, ApiError> {
    let token = state
        .services
        .auth
        .get_token(GetTokenRequest {
            header: Some(caller.header.clone()),
            name_or_id: name_or_id.to_string(),
        })
        .await?
        .token
        .unwrap_or_default();
    if !manages(caller, &token) {
        return Err(ApiError::forbidden(format!(
            "Not enough permissions to manage the token '{name_or_id}'"
        )));
    }
    Ok(token)
}

/// `GET /v0/tokens`: the tokens the caller may manage (a TOKENS token does not see ADMIN ones).
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let params = Params::from_query(query);
    let caller = manager(&state, &headers, &params).await?;
    let tokens = state
        .services
        .auth
        .list_tokens(ListTokensRequest {
            header: Some(caller.header.clone()),
        })
        .await?
        .tokens;
    let visible: Vec<Value> = tokens
        .iter()
        .filter(|token| manages(&caller, token))
        .map(token_json)
        .collect();
    Ok(Json(json!({ "tokens": visible })))
}

/// `POST /v0/tokens`: a static token from `name`, `scope`s, `description`, `origin`,
/// `resource_id`; with `expiration_time`, a JWT from the JSON body's `scopes` and `limits`.
pub async fn create(
    State(state): State<AppState>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let (headers, params, payload) = read_request(request, MAX_TOKEN_BODY).await?;
    let caller = manager(&state, &headers, &params).await?;
    let name = params
        .text("name")
        .ok_or_else(|| ApiError::bad_request("The 'name' parameter is required"))?
        .to_string();
    if let Some(expiration) = params.text("expiration_time") {
        let expiration_time: i64 = expiration.parse().map_err(|_| {
            ApiError::bad_request("'expiration_time' must be a Unix timestamp in seconds")
        })?;
        return create_jwt(&state, &caller, name, expiration_time, &payload.data).await;
    }
    let scopes = scope_params(&params);
    check_new_scopes(&state, &caller, &scopes).await?;
    let token = state
        .services
        .auth
        .create_token(CreateTokenRequest {
            header: Some(caller.header.clone()),
            name,
            description: params.get("description").unwrap_or_default().to_string(),
            scopes,
            origin: params.get("origin").unwrap_or_default().to_string(),
            origin_resource: params.get("resource_id").unwrap_or_default().to_string(),
        })
        .await?
        .token
        .unwrap_or_default();
    Ok(Json(token_json(&token)))
}

async fn create_jwt(
    state: &AppState,
    caller: &Caller,
    name: String,
    expiration_time: i64,
    body: &[u8],
) -> Result<Json<Value>, ApiError> {
    let body: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!("A JWT needs a JSON body with 'scopes': {e}"))
    })?;
    let scopes = body
        .get("scopes")
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::bad_request("A JWT needs a JSON body with 'scopes'"))?;
    let text = |scope: &Value, key: &str| {
        scope
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    let scopes: Vec<JwtScope> = scopes
        .iter()
        .map(|scope| JwtScope {
            r#type: text(scope, "type"),
            resource: text(scope, "resource"),
            fixed_params_json: scope
                .get("fixed_params")
                .map(Value::to_string)
                .unwrap_or_default(),
            filter: text(scope, "filter"),
        })
        .collect();
    let as_strings: Vec<String> = scopes
        .iter()
        .map(|s| {
            if s.filter.is_empty() {
                format!("{}:{}", s.r#type, s.resource)
            } else {
                format!("{}:{}:{}", s.r#type, s.resource, s.filter)
            }
        })
        .collect();
    check_new_scopes(state, caller, &as_strings).await?;
    let limit_rps = body
        .pointer("/limits/rps")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let created = state
        .services
        .auth
        .create_jwt(CreateJwtRequest {
            header: Some(caller.header.clone()),
            name,
            expiration_time,
            scopes,
            limit_rps,
        })
        .await?;
    Ok(Json(json!({ "token": created.token })))
}

/// `GET /v0/tokens/{id or name}`.
pub async fn get_one(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let params = Params::from_query(query);
    let caller = manager(&state, &headers, &params).await?;
    Ok(Json(token_json(&fetch(&state, &caller, &name).await?)))
}

/// `PUT /v0/tokens/{id or name}`: `name` renames, `description` describes, `scope`s (in the query
/// string or, for long lists, the body) replace the scopes.
pub async fn update(
    State(state): State<AppState>,
    Path(name): Path<String>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let (headers, mut params, payload) = read_request(request, MAX_TOKEN_BODY).await?;
    // The CLI sends long scope lists as a body without a Content-Type.
    if !payload.data.is_empty() && !payload.data.starts_with(b"{") {
        params.extend(Params::from_urlencoded(&payload.data));
    }
    let caller = manager(&state, &headers, &params).await?;
    let current = fetch(&state, &caller, &name).await?;
    let scopes = scope_params(&params);
    let added: Vec<String> = scopes
        .iter()
        .filter(|s| !current.scopes.contains(s))
        .cloned()
        .collect();
    check_new_scopes(&state, &caller, &added).await?;
    let token = state
        .services
        .auth
        .update_token(UpdateTokenRequest {
            header: Some(caller.header.clone()),
            name_or_id: current.id,
            new_name: params.text("name").map(str::to_owned),
            description: params.get("description").map(str::to_owned),
            replace_scopes: !scopes.is_empty(),
            scopes,
        })
        .await?
        .token
        .unwrap_or_default();
    Ok(Json(token_json(&token)))
}

/// `DELETE /v0/tokens/{id or name}`: the value stops working at once.
pub async fn delete(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<StatusCode, ApiError> {
    let params = Params::from_query(query);
    let caller = manager(&state, &headers, &params).await?;
    let current = fetch(&state, &caller, &name).await?;
    state
        .services
        .auth
        .delete_token(DeleteTokenRequest {
            header: Some(caller.header.clone()),
            name_or_id: current.id,
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v0/tokens/{id or name}/refresh`: a new value, the same scopes.
pub async fn refresh(
    State(state): State<AppState>,
    Path(name): Path<String>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let (headers, params, _) = read_request(request, MAX_TOKEN_BODY).await?;
    let caller = manager(&state, &headers, &params).await?;
    let current = fetch(&state, &caller, &name).await?;
    let token = state
        .services
        .auth
        .refresh_token(RefreshTokenRequest {
            header: Some(caller.header.clone()),
            name_or_id: current.id,
        })
        .await?
        .token
        .unwrap_or_default();
    Ok(Json(token_json(&token)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_list_as_tinybird_shows_them() {
        assert_eq!(scope_json("ADMIN"), json!({ "type": "ADMIN" }));
        assert_eq!(
            scope_json("DATASOURCES:CREATE"),
            json!({ "type": "DATASOURCES:CREATE" })
        );
        assert_eq!(
            scope_json("PIPES:READ:top"),
            json!({ "type": "PIPES:READ", "resource": "top" })
        );
        assert_eq!(
            scope_json("DATASOURCES:READ:events:country = 'ES' AND x::Int8 > 1"),
            json!({ "type": "DATASOURCES:READ", "resource": "events", "filter": "country = 'ES' AND x::Int8 > 1" })
        );
        assert_eq!(scope_resource("PIPES:DROP:top"), Some((true, "top")));
        assert_eq!(
            scope_resource("DATASOURCES:READ:ds:a=1"),
            Some((false, "ds"))
        );
        assert_eq!(scope_resource("TOKENS"), None);
        assert_eq!(scope_resource("DATASOURCES:CREATE"), None);
    }
}

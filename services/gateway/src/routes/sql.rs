//! `GET /v0/sql?q=` and `POST /v0/sql` (raw SQL body, form `q=`, or JSON `{"q": ...}`).

use axum::extract::{Request, State};
use axum::response::Response;
use roost_proto::query::v1::ExecuteSqlRequest;

use super::caller;
use crate::params::read_request;
use crate::{ApiError, AppState};

const MAX_SQL_BODY: usize = 8 * 1024 * 1024;

pub async fn run(State(state): State<AppState>, request: Request) -> Result<Response, ApiError> {
    let (headers, params, payload) = read_request(request, MAX_SQL_BODY).await?;
    let caller = caller(&state, &headers, &params).await?;
    let sql = match params.text("q") {
        Some(sql) => sql.to_string(),
        None => {
            let raw = if payload.data.is_empty() {
                &payload.form
            } else {
                &payload.data
            };
            let body = String::from_utf8(raw.to_vec())
                .map_err(|_| ApiError::bad_request("The SQL is not valid UTF-8"))?;
            let trimmed = body.trim();
            if trimmed.starts_with('{') {
                let parsed: serde_json::Value = serde_json::from_str(trimmed)
                    .map_err(|e| ApiError::bad_request(format!("Invalid JSON body: {e}")))?;
                parsed
                    .get("q")
                    .and_then(|q| q.as_str())
                    .map(str::to_owned)
                    .ok_or_else(|| ApiError::bad_request("The JSON body needs a 'q' field"))?
            } else {
                trimmed.to_string()
            }
        }
    };
    if sql.trim().is_empty() {
        return Err(ApiError::bad_request(
            "The 'q' parameter with the SQL is required",
        ));
    }
    let answer = state
        .services
        .query
        .execute_sql(ExecuteSqlRequest {
            header: Some(caller.header.clone()),
            sql,
            default_format: params.text("format").unwrap_or_default().to_string(),
            readable: caller.readable(),
            read_all: caller.reads_all(),
            filters: caller.row_filters(),
        })
        .await?;
    super::answer_response(answer)
}

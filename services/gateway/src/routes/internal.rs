//! This server's own API called from inside a request, with the caller's credentials: how
//! composite operations (a Forward build, Forward's v1 imports) do exactly what the equivalent
//! public calls and their scope checks do, with no second implementation of them.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, header};
use serde_json::Value;
use tower::ServiceExt;

use crate::AppState;

/// The route table, answering as the holder of `authorization` (an `Authorization` header value).
pub(crate) struct InternalApi {
    pub state: AppState,
    pub authorization: HeaderValue,
}

impl InternalApi {
    /// Calls `method uri` with `headers` besides the credentials; the JSON answer, or the
    /// answer's error message.
    pub async fn call(
        &self,
        method: Method,
        uri: &str,
        headers: HeaderMap,
        body: Body,
    ) -> Result<Value, String> {
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .body(body)
            .map_err(|e| e.to_string())?;
        *request.headers_mut() = headers;
        request
            .headers_mut()
            .insert(header::AUTHORIZATION, self.authorization.clone());
        let routes = super::routes().with_state(self.state.clone());
        let response = routes.oneshot(request).await.map_err(|e| e.to_string())?;
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .map_err(|e| e.to_string())?;
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(body);
        }
        Err(body["error"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{status}")))
    }

    /// A call with a JSON body (or none).
    pub async fn json(&self, method: Method, uri: &str, body: Body) -> Result<Value, String> {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        self.call(method, uri, headers, body).await
    }

    pub async fn get(&self, uri: &str) -> Result<Value, String> {
        self.json(Method::GET, uri, Body::empty()).await
    }

    pub async fn delete(&self, uri: &str) -> Result<Value, String> {
        self.json(Method::DELETE, uri, Body::empty()).await
    }
}

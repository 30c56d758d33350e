//! Assertions on the Roost API's answers, shared by the black-box suites.

use reqwest::header::CONTENT_TYPE;
use reqwest::{Response, StatusCode};
use serde_json::Value;

/// The Content-Type of an answer, or "".
pub fn content_type(response: &Response) -> String {
    response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

/// Status and JSON body; the body must be JSON with a JSON content type.
pub async fn json(response: Response) -> (StatusCode, Value) {
    let status = response.status();
    let kind = content_type(&response);
    let text = response.text().await.expect("a readable body");
    assert!(
        kind.starts_with("application/json"),
        "{status} answered {kind:?}, not JSON: {text:.500}"
    );
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{status}: invalid JSON ({e}): {text:.500}"));
    (status, body)
}

/// A 200 JSON body.
pub async fn ok_json(response: Response) -> Value {
    let (status, body) = json(response).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// Asserts an error answer as Tinybird gives it: this status, a JSON content type and an `error`
/// string. Returns the message.
pub async fn error(response: Response, expected: u16) -> String {
    let (status, body) = json(response).await;
    assert_eq!(status.as_u16(), expected, "{body}");
    body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no 'error' string in {body}"))
        .to_string()
}

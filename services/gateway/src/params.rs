//! What a Tinybird client sends besides the path: parameters in the query string and in form
//! bodies, files in multipart bodies or as the raw body, optionally gzip-compressed, and the token
//! as a Bearer header or `?token=`.

use std::io::Read;

use axum::extract::{FromRequest, Multipart, Request};
use axum::http::{HeaderMap, header};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;

use crate::ApiError;

/// Request parameters, in the order they came (query string first, then form fields).
#[derive(Debug, Default, Clone)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Parses a query string or form body.
    pub fn from_urlencoded(text: &[u8]) -> Self {
        Params(form_urlencoded::parse(text).into_owned().collect())
    }

    /// The parameters of a request's query string (as axum's `RawQuery` gives it).
    pub fn from_query(query: Option<String>) -> Self {
        Self::from_urlencoded(query.unwrap_or_default().as_bytes())
    }

    /// Adds the pairs of another source.
    pub fn extend(&mut self, other: Params) {
        self.0.extend(other.0);
    }

    /// Adds one pair.
    pub fn push(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0.push((name.into(), value.into()));
    }

    /// The last value of a parameter (later sources override earlier ones).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// A non-empty value.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.get(name)
            .map(str::trim)
            .filter(|value| !value.is_empty())
    }

    /// A boolean flag (`true`, `1`, `yes`).
    pub fn flag(&self, name: &str) -> bool {
        matches!(
            self.get(name).map(str::to_ascii_lowercase).as_deref(),
            Some("true" | "1" | "yes" | "on")
        )
    }

    /// Every pair, in order.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }

    /// Adds the text fields of a JSON object body, which carry the same fields as a form, and
    /// returns the body (`Null` when it is not JSON).
    pub fn extend_with_json_body(&mut self, data: &[u8]) -> serde_json::Value {
        let body: serde_json::Value = serde_json::from_slice(data).unwrap_or_default();
        if let serde_json::Value::Object(fields) = &body {
            for (key, value) in fields {
                if let Some(text) = value.as_str() {
                    self.push(key.clone(), text);
                }
            }
        }
        body
    }

    /// A boolean with a default when absent.
    pub fn flag_or(&self, name: &str, default: bool) -> bool {
        match self.get(name) {
            None | Some("") => default,
            Some(_) => self.flag(name),
        }
    }
}

/// The token of a request: `Authorization: Bearer`, else `?token=`.
pub fn token(headers: &HeaderMap, params: &Params) -> Option<String> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
        })
        .map(|value| value.trim().to_string());
    bearer.or_else(|| params.text("token").map(str::to_owned))
}

/// A request's data: a multipart file (its field name says the format), the raw body, or nothing.
#[derive(Debug, Default)]
pub struct Payload {
    /// The multipart field the data came in (`csv`, `ndjson`, `parquet`), if any.
    pub field: Option<String>,
    /// The file name the multipart part gave, if any.
    pub file_name: Option<String>,
    /// The bytes, decompressed.
    pub data: Bytes,
    /// A form body as sent, already parsed into the parameters: `curl -d 'SELECT ...'` labels
    /// raw SQL as a form, so `/v0/sql` falls back to it when no `q` came.
    pub form: Bytes,
}

fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase()
}

fn is_gzip(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("gzip"))
}

/// Inflates a gzip body, refusing more than `limit` bytes of output.
pub fn gunzip(data: &[u8], limit: usize) -> Result<Bytes, ApiError> {
    let mut out = Vec::with_capacity(data.len() * 4);
    let mut decoder = flate2::read::MultiGzDecoder::new(data).take(limit as u64 + 1);
    decoder
        .read_to_end(&mut out)
        .map_err(|e| ApiError::bad_request(format!("Invalid gzip body: {e}")))?;
    if out.len() > limit {
        return Err(ApiError::too_large(format!(
            "The decompressed body is larger than {limit} bytes"
        )));
    }
    Ok(Bytes::from(out))
}

/// Past its limit, a body is still read and dropped up to this many bytes, so a client that is
/// still sending gets its 413 instead of a connection reset in the middle of its upload.
const DRAIN_LIMIT: usize = 256 * 1024 * 1024;

/// The whole body if it has at most `limit` bytes; else 413, once the rest has been drained.
async fn read_body(body: axum::body::Body, limit: usize) -> Result<Bytes, ApiError> {
    use axum::body::HttpBody;
    // Sized from Content-Length up front (growing a multi-megabyte body by doubling copies it
    // twice over), within a bound: the length is only what the client claims.
    const MAX_RESERVED: usize = 64 << 20;
    let declared = usize::try_from(body.size_hint().lower()).unwrap_or(usize::MAX);
    let mut data = BytesMut::with_capacity(declared.min(limit).min(MAX_RESERVED));
    let mut chunks = body.into_data_stream();
    let mut seen = 0usize;
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk
            .map_err(|e| ApiError::bad_request(format!("Could not read the request body: {e}")))?;
        seen = seen.saturating_add(chunk.len());
        if seen <= limit {
            data.extend_from_slice(&chunk);
        } else if seen > DRAIN_LIMIT {
            break;
        }
    }
    if seen > limit {
        return Err(ApiError::too_large(format!(
            "The request body is larger than {limit} bytes"
        )));
    }
    Ok(data.freeze())
}

/// A request whose body is data whatever its Content-Type (the Events API): query parameters and
/// the decompressed body.
pub async fn read_data_request(
    request: Request,
    limit: usize,
) -> Result<(HeaderMap, Params, Bytes), ApiError> {
    let headers = request.headers().clone();
    let params = Params::from_urlencoded(request.uri().query().unwrap_or("").as_bytes());
    let body = read_body(request.into_body(), limit).await?;
    let body = if is_gzip(&headers) {
        gunzip(&body, limit)?
    } else {
        body
    };
    Ok((headers, params, body))
}

/// Splits a request into its parameters (query string, then form or multipart text fields) and
/// its data. Bodies over `limit` bytes (compressed or not) are refused with 413.
pub async fn read_request(
    request: Request,
    limit: usize,
) -> Result<(HeaderMap, Params, Payload), ApiError> {
    let headers = request.headers().clone();
    let mut params = Params::from_urlencoded(request.uri().query().unwrap_or("").as_bytes());
    let kind = content_type(&headers);
    let gzip = is_gzip(&headers);
    if kind.starts_with("multipart/form-data") {
        let mut multipart = Multipart::from_request(request, &())
            .await
            .map_err(|e| ApiError::bad_request(format!("Invalid multipart body: {e}")))?;
        let mut payload = Payload::default();
        while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
            let name = field.name().unwrap_or_default().to_string();
            let file_name = field.file_name().map(str::to_owned);
            let is_file = file_name.is_some()
                || matches!(name.as_str(), "csv" | "ndjson" | "parquet" | "file");
            let data = field.bytes().await.map_err(multipart_error)?;
            if is_file && payload.field.is_none() {
                let data = if gzip || data.starts_with(&[0x1f, 0x8b]) {
                    gunzip(&data, limit)?
                } else {
                    data
                };
                payload = Payload {
                    field: Some(name),
                    file_name,
                    data,
                    form: Bytes::new(),
                };
            } else {
                params
                    .0
                    .push((name, String::from_utf8_lossy(&data).into_owned()));
            }
        }
        return Ok((headers, params, payload));
    }
    let body = read_body(request.into_body(), limit).await?;
    let body = if gzip { gunzip(&body, limit)? } else { body };
    if kind.starts_with("application/x-www-form-urlencoded") {
        params.extend(Params::from_urlencoded(&body));
        return Ok((
            headers,
            params,
            Payload {
                form: body,
                ..Payload::default()
            },
        ));
    }
    Ok((
        headers,
        params,
        Payload {
            data: body,
            ..Payload::default()
        },
    ))
}

fn multipart_error(error: axum::extract::multipart::MultipartError) -> ApiError {
    if error.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::too_large(error.body_text())
    } else {
        ApiError::bad_request(format!("Invalid multipart body: {}", error.body_text()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_values_override_and_flags_parse() {
        let mut params = Params::from_urlencoded(b"mode=create&name=a&wait=true&dry=0");
        params.extend(Params::from_urlencoded(b"name=b&schema=a%20String"));
        assert_eq!(params.get("name"), Some("b"));
        assert_eq!(params.text("schema"), Some("a String"));
        assert!(params.flag("wait"));
        assert!(!params.flag("dry"));
        assert!(params.flag_or("type_guessing", true));
    }

    #[test]
    fn bearer_wins_over_query_token() {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(
            token(&headers, &Params::from_urlencoded(b"token=xyz")).as_deref(),
            Some("abc")
        );
        assert_eq!(
            token(&HeaderMap::new(), &Params::from_urlencoded(b"token=xyz")).as_deref(),
            Some("xyz")
        );
        assert_eq!(token(&HeaderMap::new(), &Params::default()), None);
    }

    #[test]
    fn gzip_is_bounded() {
        use std::io::Write;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(&vec![b'a'; 10_000]).unwrap();
        let compressed = encoder.finish().unwrap();
        assert_eq!(gunzip(&compressed, 10_000).unwrap().len(), 10_000);
        assert_eq!(gunzip(&compressed, 9_999).unwrap_err().status, 413);
        assert_eq!(gunzip(b"not gzip", 100).unwrap_err().status, 400);
    }
}

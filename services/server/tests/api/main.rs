//! Black-box HTTP scenarios against a real `roost local` process: request in, status and JSON body
//! out, compared with what Tinybird documents for its v0 API. Each test starts its own server on a
//! spare port with its own data directory, so tests share nothing and run in parallel.

mod datasources;
mod errors;
mod events;
mod quarantine;
mod sql;

use reqwest::{Client, RequestBuilder, StatusCode};
use roost_testkit::RoostLocal;
pub use roost_testkit::http::{content_type, error, json, ok_json};
use serde_json::Value;

/// A running server, a client and the workspace admin token.
pub struct Api {
    /// The server process.
    pub roost: RoostLocal,
    /// A plain HTTP client.
    pub http: Client,
    /// The token every helper sends.
    pub token: String,
}

impl Api {
    /// Starts a fresh `roost local`.
    pub async fn start() -> Api {
        let roost = RoostLocal::start(env!("CARGO_BIN_EXE_roost"))
            .await
            .expect("roost local starts");
        Api::on(roost)
    }

    /// Wraps an already running server (after a restart).
    pub fn on(roost: RoostLocal) -> Api {
        let token = roost.tokens.workspace_admin.clone();
        assert!(
            !token.is_empty(),
            "GET /tokens gave no workspace admin token"
        );
        Api {
            roost,
            http: Client::new(),
            token,
        }
    }

    /// `base_url` + `path`.
    pub fn url(&self, path: &str) -> String {
        self.roost.url(path)
    }

    /// An authenticated GET.
    pub fn get(&self, path: &str) -> RequestBuilder {
        self.http.get(self.url(path)).bearer_auth(&self.token)
    }

    /// An authenticated POST.
    pub fn post(&self, path: &str) -> RequestBuilder {
        self.http.post(self.url(path)).bearer_auth(&self.token)
    }

    /// An authenticated PUT.
    pub fn put(&self, path: &str) -> RequestBuilder {
        self.http.put(self.url(path)).bearer_auth(&self.token)
    }

    /// An authenticated DELETE.
    pub fn delete(&self, path: &str) -> RequestBuilder {
        self.http.delete(self.url(path)).bearer_auth(&self.token)
    }

    /// Runs `sql` through `/v0/sql` and returns the `data` rows of its JSON answer.
    pub async fn rows(&self, sql: &str) -> Vec<Value> {
        let body = ok_json(
            self.get("/v0/sql")
                .query(&[("q", sql)])
                .send()
                .await
                .unwrap(),
        )
        .await;
        body["data"]
            .as_array()
            .unwrap_or_else(|| panic!("no data for {sql}: {body}"))
            .clone()
    }

    /// `SELECT count() FROM table`.
    pub async fn count(&self, table: &str) -> u64 {
        let rows = self
            .rows(&format!("SELECT count() AS n FROM {table}"))
            .await;
        rows[0]["n"].as_u64().unwrap()
    }

    /// Appends NDJSON through the Events API and waits for it; returns the reply.
    pub async fn events(&self, name: &str, ndjson: &str) -> Value {
        let response = self
            .post("/v0/events")
            .query(&[("name", name), ("wait", "true")])
            .body(ndjson.to_string())
            .send()
            .await
            .unwrap();
        ok_json(response).await
    }

    /// True while the server answers.
    pub async fn alive(&self) -> bool {
        matches!(self.http.get(self.url("/health")).send().await, Ok(r) if r.status() == StatusCode::OK)
    }
}

/// A multipart body with one file field, as the `tb` CLI and `curl -F csv=@file` send it.
pub fn file_form(field: &str, data: impl Into<Vec<u8>>) -> reqwest::multipart::Form {
    let part = reqwest::multipart::Part::bytes(data.into()).file_name(format!("data.{field}"));
    reqwest::multipart::Form::new().part(field.to_string(), part)
}

/// Gzip-compresses `data`.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

/// The names and types of a data source's columns as the API shows them.
pub fn column_types(data_source: &Value) -> Vec<(String, String)> {
    data_source["columns"]
        .as_array()
        .unwrap_or_else(|| panic!("no columns in {data_source}"))
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["type"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// `[("a", "Int64"), ...]` as owned pairs, to compare with [`column_types`].
pub fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(n, t)| (n.to_string(), t.to_string()))
        .collect()
}

//! A client of a running `roost local` with its workspace admin token: what the black-box suites
//! of newer APIs share.

use std::time::{Duration, Instant};

use reqwest::{Client, RequestBuilder};
use serde_json::Value;

use crate::http::ok_json;
use crate::{RoostLocal, Server};

/// A running server (`roost local` unless said otherwise), a client and the workspace admin token.
pub struct Api<S: Server = RoostLocal> {
    pub roost: S,
    pub http: Client,
    pub token: String,
}

impl Api {
    /// Starts `roost local` from `binary` (the test's `env!("CARGO_BIN_EXE_roost")`).
    pub async fn start(binary: &str) -> Api {
        let roost = RoostLocal::start(binary).await.expect("roost local starts");
        Api::over(roost)
    }
}

impl<S: Server> Api<S> {
    /// A client of an already running server.
    pub fn over(roost: S) -> Api<S> {
        let token = roost.tokens().workspace_admin.clone();
        assert!(
            !token.is_empty(),
            "GET /tokens gave no workspace admin token"
        );
        let http = Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .expect("an HTTP client");
        Api { roost, http, token }
    }

    pub fn url(&self, path: &str) -> String {
        self.roost.url(path)
    }

    pub fn get(&self, path: &str) -> RequestBuilder {
        self.http.get(self.url(path)).bearer_auth(&self.token)
    }

    pub fn post(&self, path: &str) -> RequestBuilder {
        self.http.post(self.url(path)).bearer_auth(&self.token)
    }

    pub fn put(&self, path: &str) -> RequestBuilder {
        self.http.put(self.url(path)).bearer_auth(&self.token)
    }

    pub fn delete(&self, path: &str) -> RequestBuilder {
        self.http.delete(self.url(path)).bearer_auth(&self.token)
    }

    /// Creates a data source from a schema and form fields (`engine_*`).
    pub async fn data_source(&self, name: &str, schema: &str, extra: &[(&str, &str)]) -> Value {
        let mut form = vec![("name", name), ("schema", schema)];
        form.extend_from_slice(extra);
        ok_json(
            self.post("/v0/datasources")
                .form(&form)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// Sends NDJSON rows to the Events API and waits until they are written.
    pub async fn events(&self, name: &str, rows: &str) -> Value {
        ok_json(
            self.post("/v0/events")
                .query(&[("name", name), ("wait", "true")])
                .body(rows.to_string())
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// The rows of a `/v0/sql` query (JSON format).
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
            .unwrap_or_else(|| panic!("no data in {body}"))
            .clone()
    }

    /// The single number a `/v0/sql` query answers (its first column of its first row).
    pub async fn number(&self, sql: &str) -> f64 {
        let rows = self.rows(sql).await;
        let row = rows.first().unwrap_or_else(|| panic!("no rows for {sql}"));
        let value = row
            .as_object()
            .and_then(|o| o.values().next())
            .unwrap_or_else(|| panic!("an empty row for {sql}"));
        value
            .as_f64()
            .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
            .unwrap_or_else(|| panic!("not a number for {sql}: {value}"))
    }

    /// `GET /v0/jobs/{id}`.
    pub async fn job(&self, id: &str) -> Value {
        ok_json(self.get(&format!("/v0/jobs/{id}")).send().await.unwrap()).await
    }

    /// Polls a job until it leaves waiting/working (or `timeout`), calling `seen` with each
    /// state. Returns the final state.
    pub async fn wait_job(
        &self,
        id: &str,
        timeout: Duration,
        mut seen: impl FnMut(&Value),
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let job = self.job(id).await;
            seen(&job);
            let status = job["status"].as_str().unwrap_or_default().to_string();
            if !matches!(status.as_str(), "waiting" | "working" | "cancelling") {
                return job;
            }
            assert!(
                Instant::now() < deadline,
                "job {id} still {status} after {timeout:?}: {job}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

//! Imports from URLs, replaces and `/v0/analyze`, black-box against a real `roost local` and a
//! file server of the test's own on 127.0.0.1: URL imports as jobs (CSV with progress, NDJSON
//! gzip, Parquet made by the engine, cancellation), the refusal of private addresses (at
//! request time and on redirects), replaces that readers never see half-done (with and
//! without a replace_condition, by URL and with the data in the request), and the Analyze API
//! for every format, sent raw, as multipart and by URL.

use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use roost_testkit::RoostLocal;
use roost_testkit::api::Api;
use roost_testkit::http::{error, json, ok_json};
use serde_json::{Value, json};

const ROOST: &str = env!("CARGO_BIN_EXE_roost");

/// A file the test server serves.
#[derive(Clone)]
struct Served {
    body: Bytes,
    content_type: &'static str,
    /// Sent with `Content-Encoding: gzip` (the body is already compressed).
    gzip_encoded: bool,
    /// Sent in pieces of this size with a pause between them, so an import takes a while.
    throttle: Option<(usize, Duration)>,
}

impl Served {
    fn plain(body: impl Into<Bytes>, content_type: &'static str) -> Served {
        Served {
            body: body.into(),
            content_type,
            gzip_encoded: false,
            throttle: None,
        }
    }

    fn throttled(mut self, piece: usize, pause: Duration) -> Served {
        self.throttle = Some((piece, pause));
        self
    }
}

type Files = Arc<Mutex<HashMap<String, Served>>>;

/// An HTTP file server on 127.0.0.1: the files added to it, `/redirect?to=URL` (302) and
/// `/loop` (redirects to itself).
struct FileServer {
    base: String,
    files: Files,
}

impl FileServer {
    async fn start() -> FileServer {
        let files: Files = Arc::default();
        let app = axum::Router::new()
            .route("/redirect", axum::routing::get(redirect))
            .route(
                "/loop",
                axum::routing::get(|| async { redirect_to("/loop") }),
            )
            .fallback(serve)
            .with_state(files.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FileServer { base, files }
    }

    fn add(&self, path: &str, served: Served) -> String {
        self.files.lock().unwrap().insert(path.to_string(), served);
        self.url(path)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

fn redirect_to(location: &str) -> Response {
    (
        StatusCode::FOUND,
        [(header::LOCATION, location.to_string())],
    )
        .into_response()
}

async fn redirect(Query(query): Query<HashMap<String, String>>) -> Response {
    redirect_to(query.get("to").map(String::as_str).unwrap_or("/"))
}

async fn serve(State(files): State<Files>, uri: Uri) -> Response {
    let Some(served) = files.lock().unwrap().get(uri.path()).cloned() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(served.content_type),
    );
    headers.insert(header::CONTENT_LENGTH, served.body.len().into());
    if served.gzip_encoded {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    let body = match served.throttle {
        None => Body::from(served.body),
        Some((piece, pause)) => {
            let pieces: Vec<Bytes> = (0..served.body.len())
                .step_by(piece)
                .map(|start| {
                    served
                        .body
                        .slice(start..(start + piece).min(served.body.len()))
                })
                .collect();
            Body::from_stream(futures::stream::iter(pieces).then(move |piece| async move {
                tokio::time::sleep(pause).await;
                Ok::<_, std::io::Error>(piece)
            }))
        }
    };
    (headers, body).into_response()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

/// A roost that may import from the test's server on 127.0.0.1 (and only that address).
async fn roost() -> Api {
    let roost = RoostLocal::start_with_env(ROOST, &[("ROOST_IMPORT_ALLOW_PRIVATE", "127.0.0.1")])
        .await
        .expect("roost local starts");
    Api::over(roost)
}

/// `rows` CSV rows with a header: `id`, a `name` that every 1000th row quotes with a comma and
/// a newline inside, an `amount`, and a `ts` in 2024.
fn csv_rows(rows: u64) -> String {
    let mut csv = String::with_capacity(rows as usize * 48);
    csv.push_str("id,name,amount,ts\n");
    for id in 0..rows {
        let name = if id % 1000 == 0 {
            format!("\"row {id}, quoted\nover two lines\"")
        } else {
            format!("row {id}")
        };
        csv.push_str(&format!(
            "{id},{name},{}.5,2024-{:02}-{:02} 10:00:00\n",
            id % 1000,
            id % 12 + 1,
            id % 28 + 1
        ));
    }
    csv
}

/// `POST /v0/datasources` with query parameters; the JSON answer.
async fn post_datasources(api: &Api, query: &[(&str, &str)]) -> (StatusCode, Value) {
    json(
        api.post("/v0/datasources")
            .query(query)
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// Starts an import and checks the answer's shape; the job id.
async fn start_import(api: &Api, query: &[(&str, &str)]) -> String {
    let (status, started) = post_datasources(api, query).await;
    assert_eq!(status, StatusCode::OK, "{started}");
    let id = started["job_id"].as_str().expect("a job id").to_string();
    assert_eq!(started["id"], json!(id), "{started}");
    assert_eq!(started["import_id"], json!(id), "{started}");
    assert_eq!(started["status"], "waiting", "{started}");
    assert_eq!(started["job"]["kind"], "import", "{started}");
    assert!(
        started["job_url"]
            .as_str()
            .is_some_and(|u| u.ends_with(&format!("/v0/jobs/{id}"))),
        "{started}"
    );
    let name = query.iter().find(|(k, _)| *k == "name").unwrap().1;
    assert_eq!(started["datasource"]["name"], name, "{started}");
    id
}

#[tokio::test]
async fn a_url_import_of_200k_csv_rows_creates_the_data_source_and_reports_progress() {
    let api = roost().await;
    let files = FileServer::start().await;
    let csv = csv_rows(200_000);
    let url = files.add(
        "/exports/rows.csv",
        Served::plain(csv.clone(), "text/csv").throttled(64 * 1024, Duration::from_millis(8)),
    );
    let id = start_import(&api, &[("mode", "create"), ("name", "rows"), ("url", &url)]).await;

    let mut progress = BTreeSet::new();
    let done = api
        .wait_job(&id, Duration::from_secs(300), |job| {
            if job["status"] == "working"
                && let Some(p) = job["progress_percentage"].as_f64()
            {
                progress.insert((p * 100.0) as i64);
            }
        })
        .await;
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["statistics"]["row_count"], json!(200_000), "{done}");
    assert_eq!(done["statistics"]["bytes"], json!(csv.len()), "{done}");
    assert_eq!(done["quarantine_rows"], json!(0), "{done}");
    assert_eq!(done["url"], json!(url));
    assert_eq!(done["progress_percentage"], json!(100.0));
    assert_eq!(done["datasource"]["name"], "rows");
    assert!(
        progress.iter().any(|p| *p > 0 && *p < 10_000),
        "no progress between 0 and 100 was seen while {} bytes streamed: {progress:?}",
        csv.len()
    );

    // The schema came from the header and the first rows; every chunk after the first got the
    // header again, and quoted newlines were never cut apart.
    let data_source = ok_json(api.get("/v0/datasources/rows").send().await.unwrap()).await;
    let columns: Vec<(&str, &str)> = data_source["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["type"].as_str().unwrap()))
        .collect();
    let names: Vec<&str> = columns.iter().map(|c| c.0).collect();
    assert_eq!(names, ["id", "name", "amount", "ts"], "{data_source}");
    assert!(columns[0].1.contains("Int"), "{columns:?}");
    assert_eq!(columns[3].1, "DateTime", "{columns:?}");
    assert_eq!(api.number("SELECT count() FROM rows").await, 200_000.0);
    assert_eq!(
        api.number("SELECT sum(id) FROM rows").await,
        (0..200_000u64).sum::<u64>() as f64
    );
    assert_eq!(
        api.rows("SELECT name FROM rows WHERE id = 7000").await,
        [json!({"name": "row 7000, quoted\nover two lines"})]
    );

    // Listed as Tinybird lists import jobs.
    let listed = ok_json(
        api.get("/v0/jobs")
            .query(&[("kind", "import")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(listed["jobs"][0]["id"], json!(id), "{listed}");
    assert_eq!(listed["jobs"][0]["status"], "done", "{listed}");
}

#[tokio::test]
async fn ndjson_imports_inflate_gzip_and_quarantine_rows_that_do_not_fit() {
    let api = roost().await;
    let files = FileServer::start().await;
    api.data_source(
        "events",
        "`id` UInt32 `json:$.id`, `user` String `json:$.user.name`, `tags` Array(String) `json:$.tags[:]`",
        &[],
    )
    .await;
    let mut ndjson = String::new();
    for id in 0..5000 {
        ndjson.push_str(&format!(
            "{{\"id\": {id}, \"user\": {{\"name\": \"u{}\"}}, \"tags\": [\"a\", \"t{id}\"]}}\n",
            id % 7
        ));
    }
    ndjson.push_str("{\"id\": \"not a number\", \"user\": {\"name\": \"bad\"}}\n");
    let compressed = gzip(ndjson.as_bytes());
    // A `.gz` path, and a body sent with Content-Encoding: both are inflated.
    let by_suffix = files.add(
        "/events.ndjson.gz",
        Served::plain(compressed.clone(), "application/gzip"),
    );
    let by_header = files.add(
        "/stream",
        Served {
            gzip_encoded: true,
            ..Served::plain(compressed, "application/x-ndjson")
        },
    );
    for (url, format) in [(&by_suffix, None), (&by_header, Some("ndjson"))] {
        let mut query = vec![
            ("mode", "append"),
            ("name", "events"),
            ("url", url.as_str()),
        ];
        query.extend(format.map(|f| ("format", f)));
        let id = start_import(&api, &query).await;
        let done = api.wait_job(&id, Duration::from_secs(120), |_| {}).await;
        assert_eq!(done["status"], "done", "{done}");
        assert_eq!(done["statistics"]["row_count"], json!(5000), "{done}");
        assert_eq!(done["statistics"]["bytes"], json!(ndjson.len()), "{done}");
        assert_eq!(done["quarantine_rows"], json!(1), "{done}");
    }
    assert_eq!(api.number("SELECT count() FROM events").await, 10_000.0);
    assert_eq!(
        api.number("SELECT count() FROM events WHERE user = 'u3' AND has(tags, 't3')")
            .await,
        2.0
    );
    assert_eq!(
        api.number("SELECT count() FROM events_quarantine").await,
        2.0
    );
}

#[tokio::test]
async fn a_running_import_is_cancelled_between_chunks() {
    let api = roost().await;
    let files = FileServer::start().await;
    api.data_source(
        "slow",
        "`id` UInt64, `name` String, `amount` Float64, `ts` DateTime",
        &[],
    )
    .await;
    let total = 600_000;
    let url = files.add(
        "/slow.csv",
        Served::plain(csv_rows(total), "text/csv").throttled(32 * 1024, Duration::from_millis(10)),
    );
    let id = start_import(&api, &[("mode", "append"), ("name", "slow"), ("url", &url)]).await;
    loop {
        let job = api.job(&id).await;
        assert!(
            job["status"] == "waiting" || job["status"] == "working",
            "the import ended before it could be cancelled: {job}"
        );
        if job["status"] == "working" && job["progress_percentage"].as_f64().unwrap_or(0.0) > 0.0 {
            assert_eq!(job["is_cancellable"], json!(true), "{job}");
            let cancelled = ok_json(
                api.post(&format!("/v0/jobs/{id}/cancel"))
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            assert_eq!(cancelled["status"], "cancelling", "{cancelled}");
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let finished = api.wait_job(&id, Duration::from_secs(60), |_| {}).await;
    assert_eq!(finished["status"], "cancelled", "{finished}");
    assert_eq!(finished["is_cancellable"], json!(false));
    let rows = api.number("SELECT count() FROM slow").await;
    assert!(rows < total as f64, "the whole file went in: {rows}");
}

#[tokio::test]
async fn private_addresses_are_refused_unless_allowed() {
    // A server started without ROOST_IMPORT_ALLOW_PRIVATE refuses even its own loopback.
    let strict = Api::start(ROOST).await;
    let files = FileServer::start().await;
    let url = files.add("/rows.csv", Served::plain(csv_rows(10), "text/csv"));
    strict
        .data_source(
            "target",
            "`id` UInt64, `name` String, `amount` Float64, `ts` DateTime",
            &[],
        )
        .await;
    let port = url.split(':').nth(2).unwrap().split('/').next().unwrap();
    for refused in [
        url.clone(),
        format!("http://[::1]:{port}/rows.csv"),
        format!("http://[::ffff:127.0.0.1]:{port}/rows.csv"),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        "http://10.1.2.3/file.csv".to_string(),
        "http://0.0.0.0:80/".to_string(),
        // Numeric forms of 127.0.0.1 that URL parsing normalizes.
        format!("http://2130706433:{port}/rows.csv"),
        format!("http://0x7f.1:{port}/rows.csv"),
    ] {
        let message = error(
            strict
                .post("/v0/datasources")
                .query(&[("mode", "append"), ("name", "target"), ("url", &refused)])
                .send()
                .await
                .unwrap(),
            400,
        )
        .await;
        assert!(
            message.contains("private or reserved address"),
            "{refused}: {message}"
        );
        let message = error(
            strict
                .post("/v0/analyze")
                .query(&[("url", &refused)])
                .send()
                .await
                .unwrap(),
            400,
        )
        .await;
        assert!(
            message.contains("private or reserved address"),
            "{refused}: {message}"
        );
    }
    for invalid in [
        "ftp://example.com/file.csv",
        "file:///etc/passwd",
        "not a url",
    ] {
        let message = error(
            strict
                .post("/v0/datasources")
                .query(&[("mode", "append"), ("name", "target"), ("url", invalid)])
                .send()
                .await
                .unwrap(),
            400,
        )
        .await;
        assert!(
            message.contains("URL") || message.contains("http"),
            "{invalid}: {message}"
        );
    }
    assert_eq!(strict.number("SELECT count() FROM target").await, 0.0);
    let jobs = ok_json(strict.get("/v0/jobs").send().await.unwrap()).await;
    assert_eq!(jobs["jobs"], json!([]), "a refused URL must start no job");

    // Allowing 127.0.0.1 allows that address only.
    let allowed = roost().await;
    let other_loopback = format!("http://127.0.0.2:{port}/rows.csv");
    let message = error(
        allowed
            .post("/v0/analyze")
            .query(&[("url", &other_loopback)])
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    assert!(message.contains("127.0.0.2"), "{message}");
    let analyzed = ok_json(
        allowed
            .post("/v0/analyze")
            .query(&[("url", &url)])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        analyzed["analysis"]["columns"][0]["name"], "id",
        "{analyzed}"
    );
}

#[tokio::test]
async fn redirects_are_followed_with_the_same_checks() {
    let api = roost().await;
    let files = FileServer::start().await;
    let csv = csv_rows(100);
    files.add("/rows.csv", Served::plain(csv, "text/csv"));
    api.data_source(
        "target",
        "`id` UInt64, `name` String, `amount` Float64, `ts` DateTime",
        &[],
    )
    .await;

    // A redirect within the allowed server is followed.
    let fine = files.url("/redirect?to=/rows.csv");
    let id = start_import(
        &api,
        &[("mode", "append"), ("name", "target"), ("url", &fine)],
    )
    .await;
    let done = api.wait_job(&id, Duration::from_secs(60), |_| {}).await;
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["statistics"]["row_count"], json!(100), "{done}");

    // The URL is fine when the import starts; where it leads is not, and nothing connects there.
    let to_metadata = files.url("/redirect?to=http://169.254.169.254/latest/meta-data/");
    let id = start_import(
        &api,
        &[
            ("mode", "append"),
            ("name", "target"),
            ("url", &to_metadata),
        ],
    )
    .await;
    let failed = api.wait_job(&id, Duration::from_secs(60), |_| {}).await;
    assert_eq!(failed["status"], "error", "{failed}");
    let reason = failed["error"].as_str().unwrap_or_default();
    assert!(
        reason.contains("169.254.169.254") && reason.contains("private or reserved address"),
        "{failed}"
    );
    let to_loopback = files.url("/redirect?to=http://127.0.0.3/rows.csv");
    let message = error(
        api.post("/v0/analyze")
            .query(&[("url", &to_loopback)])
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    assert!(message.contains("127.0.0.3"), "{message}");

    let looping = files.url("/loop");
    let id = start_import(
        &api,
        &[("mode", "append"), ("name", "target"), ("url", &looping)],
    )
    .await;
    let failed = api.wait_job(&id, Duration::from_secs(60), |_| {}).await;
    assert_eq!(failed["status"], "error", "{failed}");
    assert!(
        failed["error"]
            .as_str()
            .is_some_and(|e| e.contains("redirects more than 5 times")),
        "{failed}"
    );
    let missing = files.url("/missing.csv");
    let id = start_import(
        &api,
        &[("mode", "append"), ("name", "target"), ("url", &missing)],
    )
    .await;
    let failed = api.wait_job(&id, Duration::from_secs(60), |_| {}).await;
    assert_eq!(failed["error"], "The URL answered HTTP 404", "{failed}");
    assert_eq!(api.number("SELECT count() FROM target").await, 100.0);
}

/// Counts the rows of `table` over and over until stopped; every count seen.
fn watch_count(api: &Api, table: &str) -> (Arc<AtomicBool>, tokio::task::JoinHandle<Vec<u64>>) {
    let stop = Arc::new(AtomicBool::new(false));
    let (http, url, token) = (api.http.clone(), api.url("/v0/sql"), api.token.clone());
    let sql = format!("SELECT count() AS c FROM {table}");
    let stopping = stop.clone();
    let watcher = tokio::spawn(async move {
        let mut seen = Vec::new();
        while !stopping.load(Ordering::Relaxed) {
            let answer: Value = http
                .get(&url)
                .bearer_auth(&token)
                .query(&[("q", sql.as_str())])
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            seen.push(answer["data"][0]["c"].as_u64().expect("a count"));
        }
        seen
    });
    (stop, watcher)
}

/// A data source of 200k rows over four months of 2024, partitioned by month: `id` 0..,
/// `month` 1 to 4 (`id % 4 + 1`), `value` = `id`.
async fn four_months(api: &Api, name: &str) {
    api.data_source(
        name,
        "`id` UInt64, `ts` DateTime, `value` Int64",
        &[
            ("engine_partition_key", "toYYYYMM(ts)"),
            ("engine_sorting_key", "id"),
        ],
    )
    .await;
    let mut csv = String::new();
    for id in 0..200_000u64 {
        csv.push_str(&format!("{id},2024-{:02}-10 00:00:00,{id}\n", id % 4 + 1));
    }
    ok_json(
        api.post("/v0/datasources")
            .query(&[("name", name), ("mode", "append"), ("format", "csv")])
            .body(csv)
            .send()
            .await
            .unwrap(),
    )
    .await;
}

/// New rows for months 2 and 3: `id` from 1_000_000, `value` -1.
fn new_rows(rows: u64) -> String {
    (0..rows)
        .map(|i| {
            format!(
                "{},2024-{:02}-20 00:00:00,-1\n",
                1_000_000 + i,
                if i % 2 == 0 { 2 } else { 3 }
            )
        })
        .collect()
}

/// Checks a replace of month 2 by `new_rows(rows)`: months 1, 3 and 4 as before, month 2 only
/// the new rows of month 2 (the new rows of month 3 were dropped).
async fn assert_month_two_replaced(api: &Api, name: &str, rows: u64) {
    let by_month = api
        .rows(&format!(
            "SELECT toMonth(ts) AS m, count() AS c, min(value) AS low, max(value) AS high \
             FROM {name} GROUP BY m ORDER BY m"
        ))
        .await;
    assert_eq!(
        by_month,
        [
            json!({"m": 1, "c": 50_000, "low": 0, "high": 199_996}),
            json!({"m": 2, "c": rows / 2, "low": -1, "high": -1}),
            json!({"m": 3, "c": 50_000, "low": 2, "high": 199_998}),
            json!({"m": 4, "c": 50_000, "low": 3, "high": 199_999}),
        ]
    );
}

#[tokio::test]
async fn a_replace_condition_swaps_matching_rows_while_readers_see_whole_tables() {
    let api = roost().await;
    let files = FileServer::start().await;
    let before = 200_000u64;
    let condition = "toYYYYMM(ts) = 202402";

    // With the data in the request: answered once the rows are swapped in.
    four_months(&api, "by_body").await;
    let (stop, watcher) = watch_count(&api, "by_body");
    let replaced = ok_json(
        api.post("/v0/datasources")
            .query(&[
                ("name", "by_body"),
                ("mode", "replace"),
                ("format", "csv"),
                ("replace_condition", condition),
            ])
            .body(new_rows(20_000))
            .send()
            .await
            .unwrap(),
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    let seen = watcher.await.unwrap();
    assert_eq!(replaced["replace_condition"], condition, "{replaced}");
    assert_eq!(replaced["datasource"]["name"], "by_body", "{replaced}");
    assert_month_two_replaced(&api, "by_body", 20_000).await;
    let after = before - 50_000 + 10_000;
    assert!(
        seen.iter().all(|c| *c == before || *c == after),
        "a reader saw a table that was neither the old nor the new one: {:?}",
        seen.iter().collect::<BTreeSet<_>>()
    );

    // By URL: a job, the same outcome.
    four_months(&api, "by_url").await;
    let url = files.add(
        "/month2.csv",
        Served::plain(new_rows(20_000), "text/csv").throttled(64 * 1024, Duration::from_millis(5)),
    );
    let (stop, watcher) = watch_count(&api, "by_url");
    let id = start_import(
        &api,
        &[
            ("name", "by_url"),
            ("mode", "replace"),
            ("url", &url),
            ("replace_condition", condition),
        ],
    )
    .await;
    let done = api.wait_job(&id, Duration::from_secs(120), |_| {}).await;
    stop.store(true, Ordering::Relaxed);
    let seen = watcher.await.unwrap();
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["replace_condition"], condition, "{done}");
    assert_eq!(done["statistics"]["row_count"], json!(20_000), "{done}");
    assert_month_two_replaced(&api, "by_url", 20_000).await;
    assert!(seen.len() > 3, "the reader barely ran: {seen:?}");
    assert!(
        seen.iter().all(|c| *c == before || *c == after),
        "a reader saw a table that was neither the old nor the new one: {:?}",
        seen.iter().collect::<BTreeSet<_>>()
    );

    // A condition that is not valid SQL over the data source is refused before anything runs.
    for bad in ["no_such_column = 1", "1 = 1; DROP TABLE x"] {
        let (status, body) = post_datasources(
            &api,
            &[
                ("name", "by_url"),
                ("mode", "replace"),
                ("url", &url),
                ("replace_condition", bad),
            ],
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
    assert_month_two_replaced(&api, "by_url", 20_000).await;
}

#[tokio::test]
async fn a_full_replace_is_atomic_for_readers_by_url_and_with_a_file() {
    let api = roost().await;
    let files = FileServer::start().await;
    four_months(&api, "whole").await;
    let (stop, watcher) = watch_count(&api, "whole");
    let replaced = ok_json(
        api.post("/v0/datasources")
            .query(&[("name", "whole"), ("mode", "replace"), ("format", "csv")])
            .body(new_rows(30_000))
            .send()
            .await
            .unwrap(),
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    let seen = watcher.await.unwrap();
    assert_eq!(replaced["error"], json!(false), "{replaced}");
    assert_eq!(api.number("SELECT count() FROM whole").await, 30_000.0);
    assert_eq!(api.number("SELECT max(value) FROM whole").await, -1.0);
    assert!(
        seen.iter().all(|c| *c == 200_000 || *c == 30_000),
        "a reader saw an empty or partial table: {:?}",
        seen.iter().collect::<BTreeSet<_>>()
    );

    // By URL, with rows that do not fit: they go to quarantine, the good ones replace the table.
    let mut csv = new_rows(1000);
    csv.push_str("oops,not a date,x\n");
    let url = files.add("/replacement.csv", Served::plain(csv, "text/csv"));
    let (stop, watcher) = watch_count(&api, "whole");
    let id = start_import(
        &api,
        &[("name", "whole"), ("mode", "replace"), ("url", &url)],
    )
    .await;
    let done = api.wait_job(&id, Duration::from_secs(60), |_| {}).await;
    stop.store(true, Ordering::Relaxed);
    let seen = watcher.await.unwrap();
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["quarantine_rows"], json!(1), "{done}");
    assert_eq!(api.number("SELECT count() FROM whole").await, 1000.0);
    assert!(
        seen.iter().all(|c| *c == 30_000 || *c == 1000),
        "a reader saw an empty or partial table: {:?}",
        seen.iter().collect::<BTreeSet<_>>()
    );

    // An empty file replaces only when asked to: then the data source is emptied.
    let empty_file =
        || reqwest::multipart::Form::new().part("csv", reqwest::multipart::Part::bytes(Vec::new()));
    let replace = |extra: &'static [(&'static str, &'static str)]| {
        let mut query = vec![("name", "whole"), ("mode", "replace")];
        query.extend_from_slice(extra);
        api.post("/v0/datasources")
            .query(&query)
            .multipart(empty_file())
            .send()
    };
    error(replace(&[]).await.unwrap(), 400).await;
    assert_eq!(api.number("SELECT count() FROM whole").await, 1000.0);

    // A replace that fails (the URL is missing) leaves the data source as it was.
    let id = start_import(
        &api,
        &[
            ("name", "whole"),
            ("mode", "replace"),
            ("url", &files.url("/nothing.csv")),
        ],
    )
    .await;
    let failed = api.wait_job(&id, Duration::from_secs(60), |_| {}).await;
    assert_eq!(failed["status"], "error", "{failed}");
    assert_eq!(api.number("SELECT count() FROM whole").await, 1000.0);
    ok_json(
        replace(&[("replace_truncate_when_empty", "true")])
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(api.number("SELECT count() FROM whole").await, 0.0);
    // No staging table is left behind.
    let leftovers = ok_json(api.get("/v0/datasources").send().await.unwrap()).await;
    assert_eq!(
        leftovers["datasources"].as_array().unwrap().len(),
        1,
        "{leftovers}"
    );
}

/// A Parquet file the engine writes: rows of a data source with several types.
async fn parquet_file(api: &Api) -> Bytes {
    api.data_source(
        "source",
        "`id` UInt32 `json:$.id`, `name` String `json:$.name`, `score` Nullable(Float64) `json:$.score`, \
         `at` DateTime64(3) `json:$.at`, `tags` Array(String) `json:$.tags`",
        &[],
    )
    .await;
    let rows: String = (0..300)
        .map(|id| {
            let score = if id % 3 == 0 { "null".to_string() } else { format!("{id}.25") };
            format!(
                "{{\"id\": {id}, \"name\": \"n{id}\", \"score\": {score}, \"at\": \"2024-05-01 10:00:00.123\", \"tags\": [\"x{}\"]}}\n",
                id % 5
            )
        })
        .collect();
    api.events("source", &rows).await;
    let response = api
        .get("/v0/sql")
        .query(&[("q", "SELECT * FROM source ORDER BY id FORMAT Parquet")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let parquet = response.bytes().await.unwrap();
    assert!(parquet.starts_with(b"PAR1"), "not Parquet");
    parquet
}

#[tokio::test]
async fn parquet_files_analyze_and_create_data_sources_without_a_schema() {
    let api = roost().await;
    let files = FileServer::start().await;
    let parquet = parquet_file(&api).await;
    let url = files.add(
        "/data.parquet",
        Served::plain(parquet.clone(), "application/octet-stream"),
    );

    // Analyzed from the footer, sent as a multipart file, raw, and by URL: the same answer.
    let multipart = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(parquet.to_vec()).file_name("data.parquet"),
    );
    let by_file = ok_json(
        api.post("/v0/analyze")
            .multipart(multipart)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let raw = ok_json(
        api.post("/v0/analyze")
            .body(parquet.clone())
            .send()
            .await
            .unwrap(),
    )
    .await;
    let by_url = ok_json(
        api.post("/v0/analyze")
            .query(&[("url", &url)])
            .send()
            .await
            .unwrap(),
    )
    .await;
    for analyzed in [&raw, &by_url] {
        assert_eq!(analyzed["analysis"], by_file["analysis"], "{analyzed}");
    }
    let types: Vec<(&str, &str)> = by_file["analysis"]["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap(),
                c["recommended_type"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        types,
        [
            ("id", "UInt32"),
            ("name", "String"),
            ("score", "Nullable(Float64)"),
            ("at", "DateTime64(3)"),
            ("tags", "Array(String)"),
        ],
        "{by_file}"
    );
    let score = &by_file["analysis"]["columns"][2];
    assert!(
        (score["present_pct"].as_f64().unwrap() - 200.0 / 300.0).abs() < 1e-9,
        "{score}"
    );
    assert_eq!(by_file["preview"]["statistics"]["rows_read"], json!(300));
    assert_eq!(by_file["preview"]["rows"], json!(10));
    assert_eq!(by_file["preview"]["data"][1]["name"], "n1", "{by_file}");
    assert_eq!(
        by_file["preview"]["meta"][0],
        json!({"name": "id", "type": "UInt32"})
    );
    assert!(by_file.get("dialect").is_none());

    // Created from the file sent in the request, then from the URL, with no schema.
    let created = ok_json(
        api.post("/v0/datasources")
            .query(&[("name", "from_body"), ("format", "parquet")])
            .body(parquet.clone())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(created["datasource"]["name"], "from_body", "{created}");
    let id = start_import(
        &api,
        &[("name", "from_url"), ("mode", "create"), ("url", &url)],
    )
    .await;
    let done = api.wait_job(&id, Duration::from_secs(60), |_| {}).await;
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["statistics"]["row_count"], json!(300), "{done}");
    let expected = api
        .rows("SELECT id, name, score, toString(at) AS at, tags FROM source ORDER BY id")
        .await;
    for table in ["from_body", "from_url"] {
        let rows = api
            .rows(&format!(
                "SELECT id, name, score, toString(at) AS at, tags FROM {table} ORDER BY id"
            ))
            .await;
        assert_eq!(rows, expected, "{table}");
    }
}

#[tokio::test]
async fn analyze_answers_tinybirds_shape_for_ndjson_and_csv() {
    let api = roost().await;
    let files = FileServer::start().await;
    let ndjson = "{\"id\": 1, \"user\": {\"name\": \"a\"}, \"tags\": [1, 2]}\n\
                  {\"id\": 2, \"user\": {\"name\": \"b\"}}\n\
                  {\"id\": 3, \"user\": {}, \"tags\": []}\n\
                  {\"id\": 4, \"user\": {\"name\": \"d\"}, \"tags\": [3]}\n";
    let raw = ok_json(api.post("/v0/analyze").body(ndjson).send().await.unwrap()).await;
    let columns = raw["analysis"]["columns"].as_array().unwrap();
    let column = |name: &str| {
        columns
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no column {name}: {raw}"))
    };
    assert_eq!(column("id")["path"], "$.id");
    assert_eq!(column("id")["present_pct"], json!(1.0));
    assert_eq!(column("user_name")["path"], "$.user.name");
    assert_eq!(column("user_name")["present_pct"], json!(0.75));
    assert_eq!(column("tags")["path"], "$.tags[:]");
    assert!(
        column("tags")["recommended_type"]
            .as_str()
            .unwrap()
            .starts_with("Array(")
    );
    let schema = raw["analysis"]["schema"].as_str().unwrap();
    assert!(schema.contains("`json:$.user.name`"), "{schema}");
    assert_eq!(raw["preview"]["rows"], json!(4));
    assert_eq!(raw["preview"]["data"][0]["user_name"], "a", "{raw}");
    assert_eq!(raw["preview"]["data"][0]["tags"], json!([1, 2]), "{raw}");
    assert_eq!(raw["preview"]["statistics"]["rows_read"], json!(4));
    assert_eq!(
        raw["preview"]["statistics"]["bytes_read"],
        json!(ndjson.len())
    );
    assert!(raw["preview"]["statistics"]["elapsed"].as_f64().is_some());
    assert!(raw.get("dialect").is_none());

    // The same file gzip-compressed at a URL, and as a multipart `ndjson` part.
    let url = files.add(
        "/sample.ndjson.gz",
        Served::plain(gzip(ndjson.as_bytes()), "application/gzip"),
    );
    let by_url = ok_json(
        api.post("/v0/analyze")
            .query(&[("url", &url)])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(by_url["analysis"], raw["analysis"]);
    let form = reqwest::multipart::Form::new().part(
        "ndjson",
        reqwest::multipart::Part::bytes(ndjson.as_bytes().to_vec()),
    );
    let by_part = ok_json(
        api.post("/v0/analyze")
            .multipart(form)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(by_part["analysis"], raw["analysis"]);

    // CSV: `;`-delimited without a header, sent as a multipart `file`.
    let csv =
        "1;alpha;2024-01-01 00:00:00\r\n2;beta;2024-01-02 00:00:00\r\n3;;2024-01-03 00:00:00\r\n";
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(csv.as_bytes().to_vec()).file_name("data.csv"),
    );
    let analyzed = ok_json(
        api.post("/v0/analyze")
            .multipart(form)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        analyzed["dialect"],
        json!({"delimiter": ";", "has_header": false, "newline": "\r\n", "escapechar": null}),
        "{analyzed}"
    );
    let types: Vec<&str> = analyzed["analysis"]["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["recommended_type"].as_str().unwrap())
        .collect();
    assert_eq!(types.len(), 3, "{analyzed}");
    assert!(types[0].contains("Int"), "{types:?}");
    assert_eq!(types[2], "DateTime", "{types:?}");
    assert_eq!(
        analyzed["analysis"]["columns"][1]["present_pct"]
            .as_f64()
            .unwrap(),
        2.0 / 3.0
    );
    assert_eq!(analyzed["analysis"]["columns"][0]["path"], Value::Null);
    assert_eq!(analyzed["preview"]["rows"], json!(3));

    // A header, by URL: only the start of a large file is read, cut at a whole row.
    let url = files.add("/big.csv", Served::plain(csv_rows(300_000), "text/csv"));
    let by_url = ok_json(
        api.post("/v0/analyze")
            .query(&[("url", &url)])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(by_url["dialect"]["has_header"], json!(true), "{by_url}");
    assert_eq!(by_url["dialect"]["delimiter"], ",");
    let names: Vec<&str> = by_url["analysis"]["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["id", "name", "amount", "ts"]);
    assert!(
        by_url["preview"]["statistics"]["bytes_read"]
            .as_u64()
            .unwrap()
            <= 5 << 20,
        "{by_url}"
    );

    // Nothing to analyze, and a token that may not create data sources.
    error(api.post("/v0/analyze").send().await.unwrap(), 400).await;
    api.data_source("readable", "`a` String", &[]).await;
    let reader = ok_json(
        api.post("/v0/tokens")
            .query(&[("name", "reader"), ("scope", "DATASOURCES:READ:readable")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    let token = reader["token"].as_str().unwrap();
    error(
        api.http
            .post(api.url("/v0/analyze"))
            .bearer_auth(token)
            .body(ndjson)
            .send()
            .await
            .unwrap(),
        403,
    )
    .await;
}

#[tokio::test]
async fn materialized_views_keep_working_after_a_replace_but_are_not_repopulated() {
    let api = roost().await;
    api.data_source("sales", "`user` String, `amount` Float64", &[])
        .await;
    ok_json(
        api.post("/v0/pipes")
            .json(&json!({
                "name": "sales_by_user",
                "nodes": [{
                    "name": "agg",
                    "type": "materialized",
                    "datasource": "by_user",
                    "sql": "SELECT user, sum(amount) AS total FROM sales GROUP BY user",
                }],
            }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let append = |csv: &'static str| {
        api.post("/v0/datasources")
            .query(&[("name", "sales"), ("mode", "append"), ("format", "csv")])
            .body(csv)
            .send()
    };
    ok_json(append("u1,10\nu2,20\n").await.unwrap()).await;
    let totals =
        || api.rows("SELECT user, sum(total) AS t FROM by_user GROUP BY user ORDER BY user");
    assert_eq!(
        totals().await,
        [
            json!({"user": "u1", "t": 10}),
            json!({"user": "u2", "t": 20})
        ]
    );

    ok_json(
        api.post("/v0/datasources")
            .query(&[("name", "sales"), ("mode", "replace"), ("format", "csv")])
            .body("u1,100\n")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        api.rows("SELECT user, amount FROM sales").await,
        [json!({"user": "u1", "amount": 100})]
    );
    // The staged rows never passed through the view: its target keeps what it had.
    assert_eq!(
        totals().await,
        [
            json!({"user": "u1", "t": 10}),
            json!({"user": "u2", "t": 20})
        ]
    );
    // The view follows the data source's name across the swap: later rows still reach it.
    ok_json(append("u3,5\n").await.unwrap()).await;
    assert_eq!(
        totals().await,
        [
            json!({"user": "u1", "t": 10}),
            json!({"user": "u2", "t": 20}),
            json!({"user": "u3", "t": 5})
        ]
    );
}

#[tokio::test]
async fn an_interrupted_replace_runs_again_from_scratch_and_an_interrupted_append_fails() {
    let api = roost().await;
    let files = FileServer::start().await;
    let schema = "`id` UInt64, `name` String, `amount` Float64, `ts` DateTime";
    api.data_source("replaced", schema, &[]).await;
    api.data_source("appended", schema, &[]).await;
    ok_json(
        api.post("/v0/datasources")
            .query(&[("name", "replaced"), ("mode", "append"), ("format", "csv")])
            .body(csv_rows(1000))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let total = 300_000;
    let url = files.add(
        "/slow.csv",
        Served::plain(csv_rows(total), "text/csv").throttled(32 * 1024, Duration::from_millis(10)),
    );
    let replace = start_import(
        &api,
        &[("name", "replaced"), ("mode", "replace"), ("url", &url)],
    )
    .await;
    let append = start_import(
        &api,
        &[("name", "appended"), ("mode", "append"), ("url", &url)],
    )
    .await;
    // Both have staged or appended a first chunk when the server stops.
    for id in [&replace, &append] {
        loop {
            let job = api.job(id).await;
            assert!(
                job["status"] == "waiting" || job["status"] == "working",
                "{job}"
            );
            if job["progress_percentage"].as_f64().unwrap_or(0.0) > 0.0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let Api { roost, .. } = api;
    let api = Api::over(roost.restart().await.expect("roost restarts"));

    let replaced = api
        .wait_job(&replace, Duration::from_secs(120), |_| {})
        .await;
    assert_eq!(replaced["status"], "done", "{replaced}");
    // Run again from the start: the rows staged by the first run were dropped, not added.
    assert_eq!(
        api.number("SELECT count() FROM replaced").await,
        total as f64
    );
    assert_eq!(
        api.number("SELECT uniqExact(id) FROM replaced").await,
        total as f64
    );
    let appended = api.wait_job(&append, Duration::from_secs(60), |_| {}).await;
    assert_eq!(appended["status"], "error", "{appended}");
    assert!(
        appended["error"]
            .as_str()
            .is_some_and(|e| e.contains("cannot be resumed safely")),
        "{appended}"
    );
}

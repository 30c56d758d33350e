//! Sink pipes and their connections, black-box against a real `roost local` writing to a real
//! S3 server (s3s over a directory, served by this test on a loopback port) and to a local
//! export directory. Files are read back from disk; Parquet through chDB.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use roost_engine::{Chdb, ChdbConfig, Engine};
use roost_testkit::api::Api;
use roost_testkit::http::{error, json, ok_json};
use serde_json::{Value, json};

const ROOST: &str = env!("CARGO_BIN_EXE_roost");
const ACCESS_KEY: &str = "AKIAROOSTSINKTEST";
const SECRET_KEY: &str = "roost-sink-secret-key-never-shown";
const BUCKET: &str = "exports";
const ROWS: u64 = 10_000;

/// An S3 server over a temporary directory: bucket `exports`, one access key.
struct S3Server {
    dir: tempfile::TempDir,
    endpoint: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl S3Server {
    async fn start() -> S3Server {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(BUCKET)).unwrap();
        let fs = s3s_fs::FileSystem::new(dir.path()).unwrap();
        let mut builder = s3s::service::S3ServiceBuilder::new(fs);
        builder.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        let service = builder.build();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let server = ConnBuilder::new(TokioExecutor::new());
            while let Ok((socket, _)) = listener.accept().await {
                let connection = server
                    .serve_connection(TokioIo::new(socket), service.clone())
                    .into_owned();
                tokio::spawn(async move {
                    let _ = connection.await;
                });
            }
        });
        S3Server {
            dir,
            endpoint,
            task,
        }
    }

    /// The bytes of `s3://exports/<key>`, as the server stored them.
    fn object(&self, key: &str) -> Vec<u8> {
        std::fs::read(self.dir.path().join(BUCKET).join(key))
            .unwrap_or_else(|e| panic!("no object {key}: {e}"))
    }
}

/// `events`: `ROWS` rows, `id` 0.., `country` one of 4, `amount` id / 10.
async fn events(api: &Api) {
    api.data_source(
        "events",
        "`id` UInt32 `json:$.id`, `country` String `json:$.country`, `amount` Float64 `json:$.amount`",
        &[("engine_sorting_key", "id")],
    )
    .await;
    let countries = ["ES", "FR", "DE", "IT"];
    let rows: Vec<String> = (0..ROWS)
        .map(|i| {
            format!(
                r#"{{"id":{i},"country":"{}","amount":{}}}"#,
                countries[(i % 4) as usize],
                i as f64 / 10.0
            )
        })
        .collect();
    api.events("events", &rows.join("\n")).await;
}

/// A pipe of one node reading `events` below `max_id` (a template parameter).
async fn export_pipe(api: &Api, name: &str) {
    ok_json(
        api.post("/v0/pipes")
            .json(&json!({
                "name": name,
                "nodes": [{"name": "rows", "sql": "%\nSELECT id, country, amount FROM events WHERE id < {{UInt32(max_id, 1000000)}} ORDER BY id"}],
            }))
            .send()
            .await
            .unwrap(),
    )
    .await;
}

async fn s3_connection(api: &Api, s3: &S3Server, name: &str) -> Value {
    ok_json(
        api.post("/v0/connectors")
            .form(&[
                ("service", "s3"),
                ("name", name),
                ("s3_access_key_id", ACCESS_KEY),
                ("s3_secret_access_key", SECRET_KEY),
                ("s3_region", "us-east-1"),
                ("s3_endpoint", s3.endpoint.as_str()),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn set_sink(api: &Api, pipe: &str, form: &[(&str, &str)]) -> Value {
    ok_json(
        api.post(&format!("/v0/pipes/{pipe}/nodes/rows/sink"))
            .form(form)
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// Runs the pipe's sink with `params` and waits for its job; panics unless it is done.
async fn run_sink(api: &Api, pipe: &str, params: &[(&str, &str)]) -> Value {
    let started = ok_json(
        api.post(&format!("/v0/pipes/{pipe}/sink"))
            .query(params)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(started["pipe_name"], pipe, "{started}");
    assert_eq!(started["job"]["kind"], "sink", "{started}");
    let id = started["job_id"].as_str().unwrap().to_string();
    let mut progress = Vec::new();
    let job = api
        .wait_job(&id, Duration::from_secs(120), |job| {
            progress.push(job["progress_percentage"].as_f64().unwrap_or(0.0))
        })
        .await;
    assert_eq!(job["status"], "done", "{job}");
    assert!(progress.windows(2).all(|w| w[0] <= w[1]), "{progress:?}");
    job
}

/// The one file a job wrote: its key in the bucket, and what the job reported.
fn only_file(job: &Value) -> (String, Value) {
    let files = job["files"].as_array().unwrap_or_else(|| panic!("{job}"));
    assert_eq!(files.len(), 1, "{job}");
    let path = files[0]["path"].as_str().unwrap();
    let key = path
        .strip_prefix(&format!("s3://{BUCKET}/"))
        .unwrap_or_else(|| panic!("not in the bucket: {path}"));
    (key.to_string(), files[0].clone())
}

fn gunzip(bytes: &[u8]) -> String {
    let mut text = String::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_string(&mut text)
        .expect("a gzip file");
    text
}

/// A chDB of this test process, to read Parquet files the way the engine reads them.
fn chdb() -> Chdb {
    let dir = std::env::temp_dir().join(format!("roost-sinks-chdb-{}", std::process::id()));
    Chdb::open(&ChdbConfig::new(dir)).expect("libchdb.so is installed (make setup)")
}

#[tokio::test]
async fn a_sink_exports_csv_gz_ndjson_and_parquet_to_an_s3_bucket() {
    let s3 = S3Server::start().await;
    let api = Api::start(ROOST).await;
    events(&api).await;
    let created = s3_connection(&api, &s3, "warehouse").await;
    assert_eq!(created["service"], "s3", "{created}");
    assert!(!created.to_string().contains(SECRET_KEY), "{created}");

    // CSV, gzip-compressed, every row.
    export_pipe(&api, "to_csv").await;
    let pipe = set_sink(
        &api,
        "to_csv",
        &[
            ("connection", "warehouse"),
            ("path", "s3://exports/csv"),
            ("file_template", "events_{date}"),
            ("format", "csv"),
            ("compression", "gz"),
        ],
    )
    .await;
    assert_eq!(pipe["type"], "sink", "{pipe}");
    assert_eq!(pipe["schedule"]["status"], "shutdown", "{pipe}");
    let sink_node = pipe["nodes"][0]["id"].clone();
    assert_eq!(pipe["sink_node"], sink_node, "{pipe}");
    let job = run_sink(&api, "to_csv", &[]).await;
    let (key, file) = only_file(&job);
    let today = chrono::Utc::now().format("%Y%m%d").to_string();
    assert_eq!(key, format!("csv/events_{today}.csv.gz"));
    let stored = s3.object(&key);
    assert_eq!(file["bytes"], stored.len() as u64, "{job}");
    assert_eq!(file["rows"], ROWS, "{job}");
    assert_eq!(job["rows"], ROWS, "{job}");
    let csv = gunzip(&stored);
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some(r#""id","country","amount""#));
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len() as u64, ROWS);
    assert_eq!(rows[0], r#"0,"ES",0"#);
    assert_eq!(rows[4321], r#"4321,"FR",432.1"#);
    let id_sum: u64 = rows
        .iter()
        .map(|r| r.split(',').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(id_sum, ROWS * (ROWS - 1) / 2);

    // NDJSON with a template parameter: only the rows below it; a second run writes a new file.
    export_pipe(&api, "to_ndjson").await;
    set_sink(
        &api,
        "to_ndjson",
        &[
            ("connection", "warehouse"),
            ("path", "s3://exports/ndjson/"),
            ("file_template", "part"),
            ("format", "ndjson"),
        ],
    )
    .await;
    let job = run_sink(&api, "to_ndjson", &[("max_id", "2500")]).await;
    let (key, file) = only_file(&job);
    assert_eq!(key, "ndjson/part.ndjson");
    assert_eq!(file["rows"], 2500, "{job}");
    let text = String::from_utf8(s3.object(&key)).unwrap();
    let rows: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2500);
    assert_eq!(rows[42], json!({"id": 42, "country": "DE", "amount": 4.2}));
    assert!(rows.iter().all(|r| r["id"].as_u64().unwrap() < 2500));
    let again = run_sink(&api, "to_ndjson", &[("max_id", "10")]).await;
    assert_eq!(only_file(&again).0, "ndjson/part_1.ndjson", "{again}");
    assert_eq!(
        s3.object("ndjson/part.ndjson"),
        text.as_bytes(),
        "the first file was kept"
    );

    // A result larger than an upload part goes up in several parts and arrives whole.
    ok_json(
        api.post("/v0/pipes")
            .json(&json!({
                "name": "big",
                "nodes": [{"name": "rows", "sql": "SELECT a.id AS id, b.id AS k FROM events AS a CROSS JOIN (SELECT id FROM events WHERE id < 100) AS b"}],
            }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    set_sink(
        &api,
        "big",
        &[
            ("connection", "warehouse"),
            ("path", "s3://exports/big"),
            ("file_template", "all"),
            ("format", "ndjson"),
        ],
    )
    .await;
    let job = run_sink(&api, "big", &[]).await;
    let (key, file) = only_file(&job);
    let stored = s3.object(&key);
    assert!(stored.len() > 16 * 1024 * 1024, "{} bytes", stored.len());
    assert_eq!(file["bytes"], stored.len() as u64, "{job}");
    assert_eq!(file["rows"], ROWS * 100, "{job}");
    let text = String::from_utf8(stored).unwrap();
    let mut pairs = 0u64;
    let mut k_sum = 0u64;
    for line in text.lines() {
        let row: Value = serde_json::from_str(line).unwrap();
        k_sum += row["k"].as_u64().unwrap();
        pairs += 1;
    }
    assert_eq!(pairs, ROWS * 100);
    assert_eq!(k_sum, ROWS * (99 * 100 / 2));

    // Parquet, written by the engine: read back by chDB.
    export_pipe(&api, "to_parquet").await;
    set_sink(
        &api,
        "to_parquet",
        &[
            ("connection", "warehouse"),
            ("path", "s3://exports"),
            ("file_template", "snapshot_{job_id}"),
            ("format", "parquet"),
            ("write_strategy", "truncate"),
        ],
    )
    .await;
    let job = run_sink(&api, "to_parquet", &[]).await;
    let (key, file) = only_file(&job);
    assert_eq!(
        key,
        format!("snapshot_{}.parquet", job["id"].as_str().unwrap())
    );
    let parquet = s3.object(&key);
    assert_eq!(file["bytes"], parquet.len() as u64);
    assert_eq!(&parquet[..4], b"PAR1");
    assert_eq!(&parquet[parquet.len() - 4..], b"PAR1");
    let path = s3.dir.path().join(BUCKET).join(&key);
    let engine = chdb();
    let answer = engine
        .query(
            &format!(
                "SELECT count(), sum(id), countIf(country = 'DE'), max(amount) FROM file({}, Parquet)",
                roost_types::quote_string(&path.display().to_string())
            ),
            "TSV",
        )
        .await
        .expect("chDB reads the Parquet file");
    assert_eq!(
        String::from_utf8_lossy(&answer.data).trim(),
        format!("{ROWS}\t{}\t{}\t999.9", ROWS * (ROWS - 1) / 2, ROWS / 4)
    );
}

/// The files under `dir`, relative to it.
fn files_under(dir: &Path) -> BTreeSet<String> {
    fn walk(root: &Path, dir: &Path, found: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, found);
            } else {
                found.insert(path.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    let mut found = BTreeSet::new();
    walk(dir, dir, &mut found);
    found
}

/// The sink jobs of `pipe`.
async fn sink_jobs(api: &Api, pipe: &str) -> Vec<Value> {
    let jobs = ok_json(
        api.get("/v0/jobs")
            .query(&[("kind", "sink")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    jobs["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["pipe_name"] == pipe)
        .cloned()
        .collect()
}

#[tokio::test]
async fn a_local_sink_splits_by_column_and_a_schedule_writes_once_per_tick() {
    let api = Api::start(ROOST).await;
    events(&api).await;
    let exports: PathBuf = api.roost.data_dir().join("exports");
    let created = ok_json(
        api.post("/v0/connectors")
            .form(&[("service", "local"), ("name", "disk"), ("root", "team")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(created["settings"]["root"], "team", "{created}");

    // One file per country, each with its rows.
    export_pipe(&api, "by_country").await;
    set_sink(
        &api,
        "by_country",
        &[
            ("connection", "disk"),
            ("path", "countries"),
            ("file_template", "{country}/rows_{date}"),
            ("format", "csv"),
        ],
    )
    .await;
    let job = run_sink(&api, "by_country", &[]).await;
    let files = job["files"].as_array().unwrap();
    assert_eq!(files.len(), 4, "{job}");
    let today = chrono::Utc::now().format("%Y%m%d").to_string();
    let directory = exports.join("team/countries");
    assert_eq!(
        files_under(&directory),
        ["DE", "ES", "FR", "IT"]
            .iter()
            .map(|c| format!("{c}/rows_{today}.csv"))
            .collect()
    );
    for file in files {
        assert_eq!(file["rows"], ROWS / 4, "{file}");
        let text = std::fs::read_to_string(file["path"].as_str().unwrap()).unwrap();
        let country = Path::new(file["path"].as_str().unwrap())
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .to_string();
        let rows: Vec<&str> = text.lines().skip(1).collect();
        assert_eq!(rows.len() as u64, ROWS / 4);
        assert!(
            rows.iter().all(|r| r.contains(&format!("\"{country}\""))),
            "{country}"
        );
    }

    // Pushed as `tb push` sends a sink node: every second, each run a new file.
    let pushed = ok_json(
        api.post("/v0/pipes")
            .json(&json!({
                "name": "ticks",
                "nodes": [{
                    "name": "rows", "type": "sink",
                    "sql": "SELECT id, country FROM events WHERE id < 100",
                    "export_connection_name": "disk",
                    "export_bucket_uri": "ticks",
                    "export_file_template": "tick_{datetime}",
                    "export_format": "ndjson",
                    "export_schedule": "* * * * * *",
                    "export_write_strategy": "new",
                }],
            }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(pushed["type"], "sink", "{pushed}");
    assert_eq!(pushed["schedule"]["cron"], "* * * * * *", "{pushed}");
    assert_eq!(pushed["schedule"]["status"], "running", "{pushed}");
    assert_eq!(pushed["sink_node"], pushed["nodes"][0]["id"], "{pushed}");
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let removed = api
        .delete("/v0/pipes/ticks/nodes/rows/sink")
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status(), 204);
    let observed = started.elapsed().as_secs_f64();
    let pipe = ok_json(api.get("/v0/pipes/ticks").send().await.unwrap()).await;
    assert_ne!(pipe["type"], "sink", "{pipe}");

    let deadline = Instant::now() + Duration::from_secs(60);
    let runs = loop {
        let runs = sink_jobs(&api, "ticks").await;
        if runs.iter().all(|j| j["status"] == "done") {
            break runs;
        }
        assert!(runs.iter().all(|j| j["status"] != "error"), "{runs:?}");
        assert!(Instant::now() < deadline, "runs did not finish: {runs:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let ticks: BTreeSet<&str> = runs
        .iter()
        .map(|j| j["scheduled_at"].as_str().unwrap())
        .collect();
    assert_eq!(ticks.len(), runs.len(), "a tick ran twice: {runs:?}");
    assert!(
        runs.len() >= 3 && runs.len() as f64 <= observed.ceil() + 1.0,
        "{} runs in {observed:.1} s",
        runs.len()
    );
    // Deleting a scheduled sink pipe stops its schedule.
    let pushed_again = api
        .post("/v0/pipes")
        .query(&[("force", "true")])
        .json(&json!({
            "name": "ticks",
            "nodes": [{
                "name": "rows", "type": "sink",
                "sql": "SELECT id FROM events WHERE id < 10",
                "export_connection_name": "disk", "export_bucket_uri": "ticks_again",
                "export_file_template": "tick_{datetime}", "export_schedule": "* * * * * *",
            }],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(ok_json(pushed_again).await["schedule"]["status"], "running");
    let deleted = api.delete("/v0/pipes/ticks").send().await.unwrap();
    assert_eq!(deleted.status(), 204);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after_delete = sink_jobs(&api, "ticks").await.len();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        sink_jobs(&api, "ticks").await.len(),
        after_delete,
        "the schedule outlived its pipe"
    );

    let written = files_under(&exports.join("team/ticks"));
    assert_eq!(written.len(), runs.len(), "{written:?}");
    for name in &written {
        assert!(
            name.starts_with("tick_") && name.ends_with(".ndjson"),
            "{name}"
        );
        let text = std::fs::read_to_string(exports.join("team/ticks").join(name)).unwrap();
        assert_eq!(text.lines().count(), 100, "{name}");
    }
}

#[tokio::test]
async fn sink_and_connection_mistakes_are_clear_errors_and_secrets_stay_hidden() {
    let s3 = S3Server::start().await;
    let api = Api::start(ROOST).await;
    events(&api).await;
    let created = s3_connection(&api, &s3, "warehouse").await;
    let id = created["id"].as_str().unwrap().to_string();

    // Secrets are never shown again, by id, by name or in the list.
    for path in [
        format!("/v0/connectors/{id}"),
        "/v0/connectors/warehouse".to_string(),
        "/v0/connectors".to_string(),
        "/v0/connectors?service=s3".to_string(),
    ] {
        let response = api.get(&path).send().await.unwrap();
        let text = response.text().await.unwrap();
        assert!(text.contains("warehouse"), "{path}: {text}");
        assert!(
            !text.contains(SECRET_KEY),
            "{path} shows the secret: {text}"
        );
    }
    let listed = ok_json(api.get("/v0/connectors").send().await.unwrap()).await;
    assert_eq!(
        listed["connectors"][0]["settings"]["s3_secret_access_key"],
        "********"
    );
    assert_eq!(
        listed["connectors"][0]["settings"]["s3_access_key_id"],
        ACCESS_KEY
    );
    let only_local = ok_json(
        api.get("/v0/connectors?service=local")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(only_local["connectors"], json!([]));

    // Connections: a duplicate name, a missing key, an unknown service, roots outside the export
    // root, and a token that may not create data sources.
    let duplicate = s3_connection_response(&api, &s3, "warehouse").await;
    assert_eq!(duplicate.0, 409, "{}", duplicate.1);
    let no_secret = api
        .post("/v0/connectors")
        .form(&[
            ("service", "s3"),
            ("name", "half"),
            ("s3_access_key_id", "AK"),
        ])
        .send()
        .await
        .unwrap();
    assert!(error(no_secret, 400).await.contains("s3_secret_access_key"));
    let unknown = api
        .post("/v0/connectors")
        .form(&[("service", "ftp"), ("name", "old")])
        .send()
        .await
        .unwrap();
    assert!(error(unknown, 400).await.contains("ftp"));
    for root in [
        "../outside".to_string(),
        "/etc".to_string(),
        format!("{}/../x", api.roost.data_dir().join("exports").display()),
    ] {
        let escaping = api
            .post("/v0/connectors")
            .form(&[
                ("service", "local"),
                ("name", "escape"),
                ("root", root.as_str()),
            ])
            .send()
            .await
            .unwrap();
        let message = error(escaping, 400).await;
        assert!(
            message.contains("root") || message.contains(".."),
            "{root}: {message}"
        );
    }
    let inside = format!("{}/nested", api.roost.data_dir().join("exports").display());
    let absolute = ok_json(
        api.post("/v0/connectors")
            .form(&[
                ("service", "local"),
                ("name", "disk"),
                ("root", inside.as_str()),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(absolute["settings"]["root"], "nested", "{absolute}");
    let reader = ok_json(
        api.post("/v0/tokens")
            .query(&[("name", "reader"), ("scope", "DATASOURCES:READ:events")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    let forbidden = api
        .http
        .get(api.url("/v0/connectors"))
        .bearer_auth(reader["token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    error(forbidden, 403).await;

    // Sinks: an unknown connection, a bad format, compression, template or path, a local path
    // leaving the root, and an endpoint pipe.
    export_pipe(&api, "to_s3").await;
    let base = [
        ("connection", "warehouse"),
        ("path", "s3://exports/x"),
        ("file_template", "f"),
    ];
    let attempt = |changes: Vec<(&'static str, &'static str)>| {
        let mut form: Vec<(&str, &str)> = base
            .iter()
            .filter(|(k, _)| !changes.iter().any(|(c, _)| c == k))
            .cloned()
            .collect();
        form.extend(changes);
        api.post("/v0/pipes/to_s3/nodes/rows/sink")
            .form(&form)
            .send()
    };
    let missing = attempt(vec![("connection", "nowhere")]).await.unwrap();
    assert!(error(missing, 404).await.contains("nowhere"));
    let bad_format = attempt(vec![("format", "xml")]).await.unwrap();
    assert!(error(bad_format, 400).await.contains("xml"));
    let bad_compression = attempt(vec![("compression", "zip")]).await.unwrap();
    assert!(error(bad_compression, 400).await.contains("zip"));
    let bad_template = attempt(vec![("file_template", "{date")]).await.unwrap();
    assert!(error(bad_template, 400).await.contains("file_template"));
    let bad_bucket = attempt(vec![("path", "gs://exports/x")]).await.unwrap();
    assert!(error(bad_bucket, 400).await.contains("s3://"));
    let bad_cron = attempt(vec![("schedule_cron", "every minute")])
        .await
        .unwrap();
    assert!(error(bad_cron, 400).await.contains("every minute"));
    let escaping = attempt(vec![("connection", "disk"), ("path", "../../etc")])
        .await
        .unwrap();
    assert!(error(escaping, 400).await.contains(".."));
    let not_sink = api.post("/v0/pipes/to_s3/sink").send().await.unwrap();
    assert!(error(not_sink, 400).await.contains("not a sink"));

    export_pipe(&api, "published").await;
    ok_json(
        api.post("/v0/pipes/published/nodes/rows/endpoint")
            .send()
            .await
            .unwrap(),
    )
    .await;
    let endpoint = api
        .post("/v0/pipes/published/nodes/rows/sink")
        .form(&base)
        .send()
        .await
        .unwrap();
    assert!(error(endpoint, 400).await.contains("API Endpoint"));

    // A used connection cannot go; once its sink is removed it can.
    set_sink(&api, "to_s3", &base).await;
    let linked = ok_json(api.get("/v0/connectors/warehouse").send().await.unwrap()).await;
    assert_eq!(linked["sinks"][0]["resource_name"], "to_s3", "{linked}");
    assert_eq!(
        linked["sinks"][0]["settings"]["bucket_path"], "s3://exports/x",
        "{linked}"
    );
    let used = api
        .delete(&format!("/v0/connectors/{id}"))
        .send()
        .await
        .unwrap();
    assert!(error(used, 409).await.contains("to_s3"));
    let removed = api
        .delete("/v0/pipes/to_s3/nodes/rows/sink")
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status(), 204);
    let deleted = api
        .delete(&format!("/v0/connectors/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    let gone = api.get("/v0/connectors/warehouse").send().await.unwrap();
    error(gone, 404).await;

    // A sink whose bucket refuses its keys fails its job with the reason, not silently.
    let wrong = ok_json(
        api.post("/v0/connectors")
            .form(&[
                ("service", "s3"),
                ("name", "wrong_keys"),
                ("s3_access_key_id", ACCESS_KEY),
                ("s3_secret_access_key", "not-the-secret"),
                ("s3_endpoint", s3.endpoint.as_str()),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(wrong["settings"]["s3_region"], "us-east-1");
    set_sink(
        &api,
        "to_s3",
        &[
            ("connection", "wrong_keys"),
            ("path", "s3://exports/denied"),
            ("file_template", "f"),
        ],
    )
    .await;
    let started = ok_json(api.post("/v0/pipes/to_s3/sink").send().await.unwrap()).await;
    let job = api
        .wait_job(
            started["job_id"].as_str().unwrap(),
            Duration::from_secs(120),
            |_| {},
        )
        .await;
    assert_eq!(job["status"], "error", "{job}");
    let reason = job["error"].as_str().unwrap_or_default();
    assert!(
        reason.contains("denied/f.csv") && reason.contains("403"),
        "{job}"
    );
    assert!(!job.to_string().contains("not-the-secret"), "{job}");
    assert!(!s3.dir.path().join(BUCKET).join("denied").exists());
}

async fn s3_connection_response(api: &Api, s3: &S3Server, name: &str) -> (u16, Value) {
    let response = api
        .post("/v0/connectors")
        .form(&[
            ("service", "s3"),
            ("name", name),
            ("s3_access_key_id", ACCESS_KEY),
            ("s3_secret_access_key", SECRET_KEY),
            ("s3_endpoint", s3.endpoint.as_str()),
        ])
        .send()
        .await
        .unwrap();
    let (status, body) = json(response).await;
    (status.as_u16(), body)
}

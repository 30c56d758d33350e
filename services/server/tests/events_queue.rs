//! The Events API's queue in distributed mode, against faults: every role its own `roost serve`
//! process over NATS (JetStream holds the accepted batches), on PostgreSQL and the ClickHouse
//! test cluster (Debian's 18.16, two shards).
//!
//! What must hold: every batch answered 2xx ends up in ClickHouse exactly once, whatever dies on
//! the way (the ingest process, the ClickHouse servers), and a batch delivered twice stores its
//! rows once. Each fault test prints `accepted`, `stored`, `lost` and `duplicated`.
//!
//! Skipped with a `SKIPPED:` line when the ClickHouse cluster cannot run here (set
//! ROOST_TEST_REQUIRE_CLICKHOUSE to fail instead). The ClickHouse test stops the shared servers,
//! so this binary runs in nextest's serial `clickhouse-cluster` group.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use roost_bus::{NatsBus, WorkQueue};
use roost_testkit::Server;
use roost_testkit::api::Api;
use roost_testkit::clickhouse::{ClickHouseCluster, cluster_or_skip};
use roost_testkit::cluster::{ROLES, RoostCluster};

const ROOST: &str = env!("CARGO_BIN_EXE_roost");

const SCHEMA: &str =
    "`id` Int64 `json:$.id`, `client` Int32 `json:$.client`, `payload` String `json:$.payload`";

/// Rows the fault tests send.
const TOTAL_ROWS: u64 = 200_000;
/// Rows per Events API request.
const BATCH_ROWS: u64 = 5_000;
/// Clients sending at once.
const CLIENTS: u64 = 4;

/// The environment every cluster of this suite runs with: no rate limit in the way of the
/// stream, short retry waits so a recovered ClickHouse is used soon.
const ENV: &[(&str, &str)] = &[
    ("ROOST_EVENTS_REQUESTS_PER_SECOND", "100000"),
    ("ROOST_EVENTS_BYTES_PER_SECOND", "1000000000"),
    ("ROOST_EVENTS_RETRY_BACKOFF_MAX_MS", "1000"),
    ("ROOST_EVENTS_ACK_WAIT_MS", "10000"),
];

fn ndjson(ids: std::ops::Range<u64>, client: u64) -> String {
    ids.map(|id| format!("{{\"id\":{id},\"client\":{client},\"payload\":\"event number {id}\"}}\n"))
        .collect()
}

/// One value psql reads from the cluster's catalog database.
fn catalog_value(roost: &RoostCluster, sql: &str) -> String {
    let output = Command::new("psql")
        .arg(roost.database_url())
        .args(["-qAtc", sql])
        .output()
        .expect("psql runs");
    let value = String::from_utf8_lossy(&output.stdout).trim().to_string();
    assert!(
        !value.is_empty(),
        "{sql}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    value
}

/// The ClickHouse table of data source `name` as `database`.`table` (the Distributed table, so
/// every shard counts).
fn table_of(roost: &RoostCluster, name: &str) -> String {
    let database = catalog_value(roost, "SELECT database_name FROM workspaces LIMIT 1");
    let table = catalog_value(
        roost,
        &format!("SELECT table_name FROM data_sources WHERE name = '{name}'"),
    );
    format!("`{database}`.`{table}`")
}

/// `(rows, distinct ids)` of `table`, asked of ClickHouse directly; `None` while ClickHouse
/// cannot answer.
async fn stored(clickhouse: &ClickHouseCluster, table: &str) -> Option<(u64, u64)> {
    let answer = reqwest::Client::new()
        .post(clickhouse.url())
        .body(format!("SELECT count(), uniqExact(id) FROM {table}"))
        .send()
        .await
        .ok()?;
    if !answer.status().is_success() {
        return None;
    }
    let text = answer.text().await.ok()?;
    let mut numbers = text.split_whitespace().map(|n| n.parse::<u64>().ok());
    Some((numbers.next()??, numbers.next()??))
}

/// Waits until `table` holds `expected` rows (or `timeout` passes) and returns what it holds
/// then.
async fn wait_for_rows(
    clickhouse: &ClickHouseCluster,
    table: &str,
    expected: u64,
    timeout: Duration,
) -> (u64, u64) {
    let deadline = Instant::now() + timeout;
    let mut last = (0, 0);
    loop {
        if let Some(counts) = stored(clickhouse, table).await {
            last = counts;
            if counts.0 >= expected {
                // A late duplicate would show up within a moment: look once more.
                tokio::time::sleep(Duration::from_secs(2)).await;
                return stored(clickhouse, table).await.unwrap_or(counts);
            }
        }
        if Instant::now() > deadline {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// What a stream of events achieved.
#[derive(Debug, Default)]
struct Streamed {
    /// Rows of requests answered 2xx.
    accepted: u64,
    /// Requests answered otherwise (each was tried again).
    refused: u64,
}

/// Sends [`TOTAL_ROWS`] rows to `name` from [`CLIENTS`] clients in batches of [`BATCH_ROWS`],
/// each client pausing `pause` between its requests (the gateway only stores batches, so an
/// unpaced stream is over long before ingest is done); a batch refused (503 while the queue
/// cannot store, a dropped connection) is sent again, so each row is accepted once. `progress`
/// counts accepted rows as they go.
async fn stream(
    base_url: String,
    token: String,
    name: &str,
    pause: Duration,
    progress: Arc<AtomicU64>,
) -> Streamed {
    stream_with(base_url, token, name, pause, false, progress).await
}

/// [`stream`], each request with `wait=true` when `wait`.
async fn stream_with(
    base_url: String,
    token: String,
    name: &str,
    pause: Duration,
    wait: bool,
    progress: Arc<AtomicU64>,
) -> Streamed {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let per_client = TOTAL_ROWS / CLIENTS;
    let mut tasks = Vec::new();
    for client in 0..CLIENTS {
        let (http, base_url, token, name, progress) = (
            http.clone(),
            base_url.clone(),
            token.clone(),
            name.to_string(),
            progress.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut streamed = Streamed::default();
            let first = client * per_client;
            let mut start = first;
            while start < first + per_client {
                let end = (start + BATCH_ROWS).min(first + per_client);
                let body = ndjson(start..end, client);
                let answer = http
                    .post(format!("{base_url}/v0/events"))
                    .bearer_auth(&token)
                    .query(&[("name", name.as_str()), ("wait", &wait.to_string())])
                    .body(body)
                    .send()
                    .await;
                match answer {
                    Ok(answer) if answer.status().is_success() => {
                        let body: serde_json::Value = answer.json().await.unwrap();
                        assert_eq!(body["successful_rows"], end - start, "{body}");
                        streamed.accepted += end - start;
                        progress.fetch_add(end - start, Ordering::Relaxed);
                        start = end;
                        tokio::time::sleep(pause).await;
                    }
                    Ok(answer) => {
                        let status = answer.status();
                        let text = answer.text().await.unwrap_or_default();
                        assert!(
                            status.is_server_error(),
                            "only a 5xx may refuse a batch: {status} {text}"
                        );
                        streamed.refused += 1;
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    Err(_) => {
                        streamed.refused += 1;
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
            streamed
        }));
    }
    let mut total = Streamed::default();
    for task in tasks {
        let streamed = task.await.expect("a client finishes");
        total.accepted += streamed.accepted;
        total.refused += streamed.refused;
    }
    total
}

/// Waits until `progress` reaches `rows`.
async fn until_accepted(progress: &AtomicU64, rows: u64) {
    while progress.load(Ordering::Relaxed) < rows {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The cluster's events queue, as the test reaches it: the stream is named as `roost serve`
/// names it, after the subject prefix.
fn events_bus(roost: &RoostCluster, nats: async_nats_client::Client) -> NatsBus {
    NatsBus::new(
        nats,
        roost_server::events_bus_options(&roost.subject_prefix),
    )
}

mod async_nats_client {
    pub use roost_rpc::async_nats::Client;

    pub async fn connect() -> Client {
        let url =
            std::env::var("ROOST_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
        roost_rpc::async_nats::connect(url)
            .await
            .expect("NATS answers")
    }
}

/// Removes the cluster's events stream from the shared NATS server.
async fn delete_events_stream(roost: &RoostCluster) {
    let bus = events_bus(roost, async_nats_client::connect().await);
    if let Err(error) = bus.delete_queue(roost_proto::events_queue::QUEUE).await {
        eprintln!("leaving the events stream: {error}");
    }
}

/// How often ingest retried a batch and skipped a part a redelivery found stored.
fn report_settlements(test: &str, logs: &str) {
    eprintln!(
        "{test}: inserts tried again: {}, parts found already stored on redelivery: {}",
        logs.matches("queued batch not stored; trying again")
            .count(),
        logs.matches("part of a redelivered batch already stored")
            .count()
    );
}

/// The end of a fault test: waits for the stream's rows, prints the figures, removes the queue's
/// stream, and asserts every accepted row is stored exactly once.
async fn every_accepted_row_is_stored_once(
    test: &str,
    api: &Api<RoostCluster>,
    clickhouse: &ClickHouseCluster,
    table: &str,
    streamed: &Streamed,
    started: Instant,
) {
    let counts = wait_for_rows(
        clickhouse,
        table,
        streamed.accepted,
        Duration::from_secs(180),
    )
    .await;
    eprintln!("{test}: all stored after {:?}", started.elapsed());
    report(test, streamed.accepted, counts, streamed.refused);
    report_settlements(test, &api.roost.logs());
    delete_events_stream(&api.roost).await;
    assert_eq!(streamed.accepted, TOTAL_ROWS);
    assert_eq!(
        counts,
        (streamed.accepted, streamed.accepted),
        "stored (rows, distinct ids) != accepted; logs:\n{}",
        api.roost.logs()
    );
}

fn report(test: &str, accepted: u64, (rows, distinct): (u64, u64), refused: u64) {
    let lost = accepted.saturating_sub(distinct);
    let duplicated = rows - distinct;
    eprintln!(
        "{test}: accepted={accepted} stored={rows} lost={lost} duplicated={duplicated} \
         (requests refused and sent again: {refused})"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_of_ingest_while_events_stream_in_loses_and_duplicates_nothing() {
    let test = "kill_9_of_ingest_while_events_stream_in_loses_and_duplicates_nothing";
    let Some(clickhouse) = cluster_or_skip(test) else {
        return;
    };
    let roost = RoostCluster::start_with(ROOST, clickhouse, ROLES, ENV)
        .await
        .expect("the cluster starts");
    let mut api = Api::over(roost);
    api.data_source("stream_kill", SCHEMA, &[]).await;
    let table = table_of(&api.roost, "stream_kill");

    let progress = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let streaming = tokio::spawn(stream(
        api.roost.base_url.clone(),
        api.token.clone(),
        "stream_kill",
        Duration::from_millis(50),
        progress.clone(),
    ));
    // kill -9 once a quarter is accepted and ingest is storing with a backlog behind it: some
    // batches are inserted, some mid-insert (taken, not acknowledged), the rest wait in the
    // queue; the gateway keeps accepting meanwhile.
    until_accepted(&progress, TOTAL_ROWS / 4).await;
    loop {
        let rows = stored(clickhouse, &table).await.unwrap_or_default().0;
        let accepted = progress.load(Ordering::Relaxed);
        let behind = rows > 0 && accepted.saturating_sub(rows) >= 2 * BATCH_ROWS;
        if behind || accepted >= TOTAL_ROWS * 3 / 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let ingest = api.roost.index_of("ingest").expect("an ingest process");
    api.roost.processes[ingest].kill();
    eprintln!(
        "{test}: ingest killed with {} rows accepted, {:?} stored",
        progress.load(Ordering::Relaxed),
        stored(clickhouse, &table).await
    );
    until_accepted(&progress, TOTAL_ROWS * 3 / 4).await;
    let restarted = api.roost.add("ingest").await.expect("ingest starts again");
    eprintln!(
        "{test}: ingest restarted (process {restarted}) with {} rows accepted",
        progress.load(Ordering::Relaxed)
    );
    let streamed = streaming.await.expect("the stream ends");
    let accept_time = started.elapsed();
    eprintln!(
        "{test}: {} rows accepted in {accept_time:?}",
        streamed.accepted
    );
    every_accepted_row_is_stored_once(test, &api, clickhouse, &table, &streamed, started).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn clickhouse_stopped_for_10_s_during_a_stream_loses_and_duplicates_nothing() {
    let test = "clickhouse_stopped_for_10_s_during_a_stream_loses_and_duplicates_nothing";
    let Some(clickhouse) = cluster_or_skip(test) else {
        return;
    };
    if !clickhouse.managed {
        println!("SKIPPED: {test}: the ClickHouse cluster is not the harness's to stop");
        return;
    }
    let roost = RoostCluster::start_with(ROOST, clickhouse, ROLES, ENV)
        .await
        .expect("the cluster starts");
    let api = Api::over(roost);
    api.data_source("stream_stop", SCHEMA, &[]).await;
    let table = table_of(&api.roost, "stream_stop");

    let progress = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let streaming = tokio::spawn(stream(
        api.roost.base_url.clone(),
        api.token.clone(),
        "stream_stop",
        Duration::from_secs(2),
        progress.clone(),
    ));
    until_accepted(&progress, TOTAL_ROWS / 4).await;
    let outage = tokio::task::spawn_blocking({
        let clickhouse = clickhouse.clone();
        move || {
            for server in 0..clickhouse.urls.len() {
                clickhouse.stop_server(server).expect("a server stops");
            }
            eprintln!("ClickHouse stopped");
            std::thread::sleep(Duration::from_secs(10));
            clickhouse.start().expect("ClickHouse starts again");
            eprintln!("ClickHouse started again");
        }
    });
    let streamed = streaming.await.expect("the stream ends");
    eprintln!(
        "{test}: {} rows accepted in {:?}",
        streamed.accepted,
        started.elapsed()
    );
    outage.await.expect("the outage ends");
    every_accepted_row_is_stored_once(test, &api, clickhouse, &table, &streamed, started).await;
}

/// A worker that inserted a batch and died before acknowledging it: the batch comes again, and
/// its rows must not be stored twice. The test plays that worker (ingest is not running yet):
/// it takes the batch from the queue, inserts its rows under the statement id the first part
/// of a batch gets (`<batch>-0`), and lets it go unacknowledged; then ingest starts and gets the
/// second delivery.
#[tokio::test(flavor = "multi_thread")]
async fn a_batch_delivered_twice_stores_its_rows_once() {
    let test = "a_batch_delivered_twice_stores_its_rows_once";
    let Some(clickhouse) = cluster_or_skip(test) else {
        return;
    };
    let without_ingest: Vec<&str> = ROLES
        .iter()
        .copied()
        .filter(|role| *role != "ingest")
        .collect();
    let roost = RoostCluster::start_with(ROOST, clickhouse, &without_ingest, ENV)
        .await
        .expect("the cluster starts");
    let mut api = Api::over(roost);
    api.data_source("redelivered", SCHEMA, &[]).await;
    let table = table_of(&api.roost, "redelivered");

    let rows = 1_000;
    let accepted = api
        .post("/v0/events")
        .query(&[("name", "redelivered")])
        .body(ndjson(0..rows, 7))
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status().as_u16(), 202, "stored, not yet inserted");

    let bus = events_bus(&api.roost, async_nats_client::connect().await);
    let mut consumer = bus
        .consumer(
            roost_proto::events_queue::QUEUE,
            roost_bus::ConsumerOptions {
                ack_wait: Duration::from_secs(10),
                max_deliveries: None,
            },
        )
        .await
        .expect("the events queue opens");
    let first = consumer
        .next(Duration::from_secs(10))
        .await
        .expect("the queue answers")
        .expect("the batch is queued");
    assert_eq!(first.deliveries(), 1);
    let statement_id = format!("{}-0", first.id());
    let inserted = reqwest::Client::new()
        .post(clickhouse.url())
        .query(&[
            ("query_id", statement_id.as_str()),
            ("log_queries", "1"),
            ("insert_distributed_sync", "1"),
            (
                "query",
                &format!("INSERT INTO {table} (id, client, payload) FORMAT JSONEachRow"),
            ),
        ])
        .body(ndjson(0..rows, 7))
        .send()
        .await
        .unwrap();
    assert!(
        inserted.status().is_success(),
        "{}",
        inserted.text().await.unwrap()
    );
    // The worker "dies" here: the delivery is handed back unacknowledged.
    first
        .retry_after(Duration::ZERO)
        .await
        .expect("the batch goes back");
    drop(consumer);

    api.roost.add("ingest").await.expect("ingest starts");
    // The redelivered batch is settled (acknowledged) once ingest decided about it.
    let deadline = Instant::now() + Duration::from_secs(60);
    while bus
        .pending(roost_proto::events_queue::QUEUE)
        .await
        .expect("the queue answers")
        > 0
    {
        assert!(
            Instant::now() < deadline,
            "the batch was not settled; logs:\n{}",
            api.roost.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let counts = stored(clickhouse, &table)
        .await
        .expect("ClickHouse answers");
    report(test, rows, counts, 0);
    let logs = api.roost.logs();
    delete_events_stream(&api.roost).await;
    assert_eq!(counts, (rows, rows), "logs:\n{logs}");
    assert!(
        logs.contains("already stored"),
        "ingest did not skip the stored part; logs:\n{logs}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn wait_true_answers_once_the_rows_are_queryable() {
    let test = "wait_true_answers_once_the_rows_are_queryable";
    let Some(clickhouse) = cluster_or_skip(test) else {
        return;
    };
    let roost = RoostCluster::start_with(ROOST, clickhouse, ROLES, ENV)
        .await
        .expect("the cluster starts");
    let api = Api::over(roost);
    api.data_source("waited", SCHEMA, &[]).await;
    for round in 0..5u64 {
        let body = api
            .events("waited", &ndjson(round * 1000..(round + 1) * 1000, 1))
            .await;
        assert_eq!(body["successful_rows"], 1000, "{body}");
        assert_eq!(body["quarantined_rows"], 0, "{body}");
        // Read at once, through the API: the rows are there when the answer comes.
        let rows = api.number("SELECT count() AS n FROM waited").await as u64;
        assert_eq!(rows, (round + 1) * 1000, "round {round}");
    }
    // A row that does not fit: the waited answer counts it as quarantined, as the direct path.
    let bad = api
        .events(
            "waited",
            "{\"id\":\"not a number\",\"client\":1,\"payload\":\"x\"}\n",
        )
        .await;
    assert_eq!(bad["quarantined_rows"], 1, "{bad}");
    assert_eq!(
        api.number("SELECT count() AS n FROM waited_quarantine")
            .await as u64,
        1
    );
    // A new data source is created from its first events (the direct path), then queued.
    let created = api.events("created_from_events", &ndjson(0..10, 1)).await;
    assert_eq!(created["successful_rows"], 10, "{created}");
    let queued = api.events("created_from_events", &ndjson(10..30, 1)).await;
    assert_eq!(queued["successful_rows"], 20, "{queued}");
    assert_eq!(
        api.number("SELECT count() AS n FROM created_from_events")
            .await as u64,
        30
    );
    // A body larger than one NATS message (max_payload, 1 MB by default) is inserted on the
    // direct path: accepted and stored, never refused.
    let large_body = ndjson(10_000..50_000, 2);
    assert!(large_body.len() > 1024 * 1024, "{} bytes", large_body.len());
    let large = api.events("waited", &large_body).await;
    assert_eq!(large["successful_rows"], 40_000, "{large}");
    assert_eq!(
        api.number("SELECT count() AS n FROM waited").await as u64,
        45_000
    );
    delete_events_stream(&api.roost).await;
    let _ = api.roost.url("/");
}

/// How fast the Events API takes [`TOTAL_ROWS`] rows (4 clients, batches of [`BATCH_ROWS`]):
/// `roost local` beside the distributed mode with the queue (answered when stored in JetStream,
/// and with `wait=true`) and without it. Not a test: run it with `--run-ignored only` and read
/// the `throughput:` lines.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "a measurement: run with --run-ignored only"]
async fn throughput_of_the_events_api_local_and_distributed() {
    let test = "throughput_of_the_events_api_local_and_distributed";
    let Some(clickhouse) = cluster_or_skip(test) else {
        return;
    };
    let local = roost_testkit::RoostLocal::start_with_env(ROOST, ENV)
        .await
        .expect("roost local starts");
    let api = Api::over(local);
    for wait in [false, true] {
        let name = format!("local_wait_{wait}");
        api.data_source(&name, SCHEMA, &[]).await;
        measure(&api, &name, "roost local", wait).await;
    }
    drop(api);

    let roost = RoostCluster::start_with(ROOST, clickhouse, ROLES, ENV)
        .await
        .expect("the cluster starts");
    let api = Api::over(roost);
    for wait in [false, true] {
        let name = format!("queued_wait_{wait}");
        api.data_source(&name, SCHEMA, &[]).await;
        measure(&api, &name, "distributed, queue", wait).await;
    }
    delete_events_stream(&api.roost).await;
    drop(api);

    let mut direct_env = ENV.to_vec();
    direct_env.push(("ROOST_EVENTS_QUEUE", "false"));
    let roost = RoostCluster::start_with(ROOST, clickhouse, ROLES, &direct_env)
        .await
        .expect("the cluster starts");
    let api = Api::over(roost);
    for wait in [false, true] {
        let name = format!("direct_wait_{wait}");
        api.data_source(&name, SCHEMA, &[]).await;
        measure(&api, &name, "distributed, no queue", wait).await;
    }
}

/// Streams [`TOTAL_ROWS`] rows into `name` and prints how long until all were answered and until
/// all were readable.
async fn measure<S: Server>(api: &Api<S>, name: &str, mode: &str, wait: bool) {
    let started = Instant::now();
    let streamed = stream_with(
        api.roost.url(""),
        api.token.clone(),
        name,
        Duration::ZERO,
        wait,
        Arc::new(AtomicU64::new(0)),
    )
    .await;
    let answered = started.elapsed();
    let sql = format!("SELECT count() AS n FROM {name}");
    while (api.number(&sql).await as u64) < streamed.accepted {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let readable = started.elapsed();
    let rate = |time: Duration| (streamed.accepted as f64 / time.as_secs_f64()).round();
    eprintln!(
        "throughput: {mode}, wait={wait}: {} rows answered in {:.2} s ({} rows/s), readable after \
         {:.2} s ({} rows/s)",
        streamed.accepted,
        answered.as_secs_f64(),
        rate(answered),
        readable.as_secs_f64(),
        rate(readable)
    );
}

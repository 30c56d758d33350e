//! Distributed mode, black-box: every role its own `roost serve` process calling the others over
//! NATS (and, in one test, over gRPC), on a fresh PostgreSQL database and the ClickHouse test
//! cluster (Debian's 18.16, two shards), driven through the gateway's HTTP API as the local
//! suites drive `roost local`.
//!
//! Skipped with a `SKIPPED:` line when the ClickHouse cluster cannot run here (set
//! ROOST_TEST_REQUIRE_CLICKHOUSE to fail instead).

use std::time::Duration;

use roost_testkit::api::Api;
use roost_testkit::clickhouse::{ClickHouseCluster, cluster_or_skip};
use roost_testkit::cluster::{RoostCluster, TWO_QUERY_REPLICAS, Transport};
use roost_testkit::http::{error, ok_json};
use serde_json::json;

const ROOST: &str = env!("CARGO_BIN_EXE_roost");

const SCHEMA: &str =
    "`id` Int32 `json:$.id`, `country` String `json:$.country`, `amount` Float64 `json:$.amount`";

/// An endpoint with a typed parameter.
const BY_COUNTRY: &str = r#"%
SELECT country, count() AS n, sum(amount) AS total FROM events
WHERE id >= {{ Int32(min_id, 0, description="Smallest id") }}
GROUP BY country ORDER BY country"#;

fn ndjson(ids: std::ops::RangeInclusive<i32>) -> String {
    ids.map(|id| {
        let country = if id % 2 == 0 { "ES" } else { "FR" };
        format!("{{\"id\":{id},\"country\":\"{country}\",\"amount\":{id}.5}}\n")
    })
    .collect()
}

/// Rows of the local table `name` on each ClickHouse server, asked directly.
async fn rows_per_shard(clickhouse: &ClickHouseCluster, name: &str) -> Vec<u64> {
    let http = reqwest::Client::new();
    let mut counts = Vec::new();
    for url in &clickhouse.urls {
        let database = http
            .post(url)
            .body(format!(
                "SELECT database FROM system.tables WHERE name = '{name}'"
            ))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let answer = http
            .post(url)
            .body(format!(
                "SELECT count() FROM `{}`.`{name}`",
                database.trim()
            ))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        counts.push(
            answer
                .trim()
                .parse()
                .unwrap_or_else(|_| panic!("{url}: {answer}")),
        );
    }
    counts
}

/// Publishes [`BY_COUNTRY`] as the endpoint `by_country`.
async fn publish_by_country(api: &Api<RoostCluster>) {
    ok_json(
        api.post("/v0/pipes")
            .json(&json!({
                "name": "by_country",
                "nodes": [{ "name": "by_country_node", "sql": BY_COUNTRY, "type": "endpoint" }],
            }))
            .send()
            .await
            .unwrap(),
    )
    .await;
}

async fn count(api: &Api<RoostCluster>) -> u64 {
    api.number("SELECT count() AS n FROM events").await as u64
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cluster_of_role_processes_serves_the_http_scenarios() {
    let Some(clickhouse) = cluster_or_skip("a_cluster_of_role_processes_serves_the_http_scenarios")
    else {
        return;
    };
    let cluster = RoostCluster::start(ROOST, clickhouse)
        .await
        .expect("the cluster starts");
    http_scenarios(cluster).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cluster_calling_over_grpc_serves_the_http_scenarios() {
    let Some(clickhouse) = cluster_or_skip("a_cluster_calling_over_grpc_serves_the_http_scenarios")
    else {
        return;
    };
    let cluster = RoostCluster::start_over(ROOST, clickhouse, Transport::Grpc)
        .await
        .expect("the cluster starts");
    // Every process serves gRPC, with the health service reporting its services.
    for process in &cluster.processes {
        let address = process.grpc.clone().expect("a gRPC address");
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
            .expect("an address")
            .connect()
            .await
            .unwrap_or_else(|error| panic!("{}: {error}", process.role));
        let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
        let service = match process.role.as_str() {
            "auth" => "roost.auth.v1.AuthService",
            "catalog" => "roost.catalog.v1.PipeCatalogService",
            "query" => "roost.query.v1.EndpointService",
            "ingest" => "roost.ingest.v1.IngestService",
            "jobs" => "roost.jobs.v1.JobsService",
            "scheduler" => "roost.scheduler.v1.SchedulerService",
            _ => "",
        };
        let answer = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.to_string(),
            })
            .await
            .unwrap_or_else(|error| panic!("{}: {error}", process.role))
            .into_inner();
        assert_eq!(
            answer.status(),
            tonic_health::pb::health_check_response::ServingStatus::Serving,
            "{} {service}",
            process.role
        );
    }
    for process in &cluster.processes {
        assert!(
            without_colors(&process.log()).contains("transport=grpc"),
            "{} does not call over gRPC:\n{}",
            process.role,
            process.log()
        );
    }
    http_scenarios(cluster).await;
}

/// `text` without the ANSI colour sequences of the processes' logs.
fn without_colors(text: &str) -> String {
    let mut plain = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // ESC [ ... m
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
}

/// The HTTP scenarios every cluster must serve, whatever its transport.
async fn http_scenarios(cluster: RoostCluster) {
    println!(
        "{} processes ready in {:?} (over {:?}, prefix {}, database {})",
        cluster.processes.len(),
        cluster.startup,
        cluster.transport,
        cluster.subject_prefix,
        cluster.database
    );
    let mut api = Api::over(cluster);

    // A data source, through gateway → catalog.
    let created = api.data_source("events", SCHEMA, &[]).await;
    assert_eq!(created["datasource"]["name"], "events", "{created}");

    // A materialized view, created on every server, counts what comes in from here on.
    ok_json(
        api.post("/v0/pipes")
            .json(&json!({
                "name": "counting",
                "nodes": [{"name": "counts", "type": "materialized", "datasource": "counts",
                           "sql": "SELECT country, count() AS n FROM events GROUP BY country"}],
            }))
            .send()
            .await
            .unwrap(),
    )
    .await;

    // Events with wait=true: gateway → ingest → ClickHouse; the rows are readable at once.
    let appended = api.events("events", &ndjson(1..=100)).await;
    assert_eq!(appended["successful_rows"], 100, "{appended}");
    assert_eq!(appended["quarantined_rows"], 0, "{appended}");
    assert_eq!(count(&api).await, 100);
    // A row that does not fit goes to the quarantine data source, also sharded.
    let bad = api
        .events(
            "events",
            "{\"id\":\"not a number\",\"country\":\"XX\",\"amount\":1}\n",
        )
        .await;
    assert_eq!(bad["quarantined_rows"], 1, "{bad}");
    assert_eq!(
        api.number("SELECT count() AS n FROM events_quarantine")
            .await as u64,
        1
    );

    // A CSV file appended through the Data Sources API.
    let csv: String = std::iter::once("id,country,amount\n".to_string())
        .chain((101..=150).map(|id| format!("{id},DE,{id}.25\n")))
        .collect();
    let csv_answer = ok_json(
        api.post("/v0/datasources?name=events&mode=append&format=csv")
            .body(csv)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(csv_answer["error"], false, "{csv_answer}");
    assert_eq!(csv_answer["quarantine_rows"], 0, "{csv_answer}");
    assert_eq!(count(&api).await, 150);

    // The rows are spread over the shards' local tables, behind the Distributed table the data
    // source names; the statistics add up every shard's parts.
    let id = created["datasource"]["id"]
        .as_str()
        .expect("an id")
        .to_string();
    let per_shard = rows_per_shard(&api.roost.clickhouse, &format!("{id}_local")).await;
    assert_eq!(per_shard.iter().sum::<u64>(), 150, "{per_shard:?}");
    assert!(per_shard.iter().all(|&rows| rows > 0), "{per_shard:?}");
    let described = ok_json(api.get("/v0/datasources/events").send().await.unwrap()).await;
    assert_eq!(described["statistics"]["row_count"], 150, "{described}");

    assert_eq!(
        api.number("SELECT sum(n) AS n FROM counts").await as u64,
        150,
        "the view saw every inserted row once"
    );

    // /v0/sql: gateway → query, which resolves the data source through the catalog.
    let rows = api
        .rows("SELECT country, count() AS n FROM events GROUP BY country ORDER BY country")
        .await;
    assert_eq!(
        rows,
        vec![
            json!({"country": "DE", "n": 50}),
            json!({"country": "ES", "n": 50}),
            json!({"country": "FR", "n": 50}),
        ]
    );

    // A pipe published as an endpoint with a typed parameter.
    publish_by_country(&api).await;
    let endpoint = ok_json(
        api.get("/v0/pipes/by_country.json?min_id=91")
            .send()
            .await
            .unwrap(),
    )
    .await;
    let by_country: Vec<(String, u64)> = endpoint["data"]
        .as_array()
        .unwrap_or_else(|| panic!("no data in {endpoint}"))
        .iter()
        .map(|row| {
            (
                row["country"].as_str().unwrap().to_string(),
                row["n"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        by_country,
        vec![("DE".into(), 50), ("ES".into(), 5), ("FR".into(), 5)]
    );
    let refused = error(
        api.get("/v0/pipes/by_country.json?min_id=many")
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    assert!(refused.contains("min_id"), "{refused}");

    // Tokens: one that may read the endpoint reads it, and may not append or query the table.
    let token = ok_json(
        api.post("/v0/tokens")
            .query(&[("name", "reader"), ("scope", "PIPES:READ:by_country")])
            .send()
            .await
            .unwrap(),
    )
    .await["token"]
        .as_str()
        .expect("a token")
        .to_string();
    let as_reader = |request: reqwest::RequestBuilder| request.bearer_auth(&token);
    let read = ok_json(
        as_reader(api.http.get(api.url("/v0/pipes/by_country.json")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(read["rows"], 3, "{read}");
    error(
        as_reader(api.http.post(api.url("/v0/events?name=events")))
            .body(ndjson(1..=1))
            .send()
            .await
            .unwrap(),
        403,
    )
    .await;
    error(
        as_reader(api.http.get(api.url("/v0/sql")))
            .query(&[("q", "SELECT count() FROM events")])
            .send()
            .await
            .unwrap(),
        403,
    )
    .await;

    // A copy pipe every second, with two scheduler processes: the one holding the NATS lease
    // turns each tick into one job, which the jobs process runs.
    api.roost
        .add("scheduler")
        .await
        .expect("a second scheduler starts");
    api.data_source(
        "snapshots",
        "`country` String, `n` UInt64",
        &[("engine_sorting_key", "country")],
    )
    .await;
    ok_json(
        api.post("/v0/pipes")
            .json(&json!({
                "name": "snapshot",
                "nodes": [{"name": "copy_counts", "type": "copy", "target_datasource": "snapshots",
                           "copy_schedule": "* * * * * *", "mode": "append",
                           "sql": "SELECT country, count() AS n FROM events GROUP BY country"}],
            }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    ok_json(
        api.post("/v0/pipes/snapshot/copy/pause")
            .send()
            .await
            .unwrap(),
    )
    .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let runs = loop {
        let jobs = ok_json(api.get("/v0/jobs?kind=copy").send().await.unwrap()).await;
        let runs: Vec<serde_json::Value> = jobs["jobs"].as_array().cloned().unwrap_or_default();
        assert!(
            runs.iter().all(|job| job["status"] != "error"),
            "a copy failed: {runs:?}"
        );
        if runs.iter().all(|job| job["status"] == "done") {
            break runs;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "copies did not finish: {runs:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let ticks: std::collections::BTreeSet<&str> = runs
        .iter()
        .map(|job| job["scheduled_at"].as_str().unwrap_or_default())
        .collect();
    println!("{} scheduled copies ran in about 4 s", runs.len());
    assert!(runs.len() >= 2, "{runs:?}");
    assert_eq!(ticks.len(), runs.len(), "a tick ran twice: {runs:?}");
    assert_eq!(
        api.number("SELECT count() AS n FROM snapshots").await as usize,
        3 * runs.len()
    );

    // A delete job: gateway → jobs (PostgreSQL) → the worker process → ClickHouse.
    let started = ok_json(
        api.post("/v0/datasources/events/delete")
            .form(&[("delete_condition", "id <= 10")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    let job_id = started["job_id"].as_str().expect("a job id").to_string();
    let job = api
        .wait_job(&job_id, Duration::from_secs(120), |_| {})
        .await;
    assert_eq!(job["status"], "done", "{job}");
    assert_eq!(count(&api).await, 140);
    let per_shard = rows_per_shard(&api.roost.clickhouse, &format!("{id}_local")).await;
    assert_eq!(per_shard.iter().sum::<u64>(), 140, "{per_shard:?}");

    // Truncate empties every shard; delete drops the tables everywhere.
    let truncated = api
        .post("/v0/datasources/events/truncate")
        .send()
        .await
        .unwrap();
    assert!(truncated.status().is_success(), "{}", truncated.status());
    assert_eq!(count(&api).await, 0);
    let deleted = api
        .delete("/v0/datasources/events?force=true")
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success(), "{}", deleted.status());
    for url in &api.roost.clickhouse.urls {
        let left = reqwest::Client::new()
            .post(url)
            .body(format!(
                "SELECT count() FROM system.tables WHERE name LIKE '{id}%'"
            ))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(left.trim(), "0", "{url} still has tables of {id}");
    }
}

/// The endpoint's answer, or the status it failed with.
async fn by_country(api: &Api<RoostCluster>) -> Result<Vec<serde_json::Value>, u16> {
    let response = api
        .get("/v0/pipes/by_country.json?min_id=0")
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    if status != 200 {
        return Err(status);
    }
    let body: serde_json::Value = response.json().await.unwrap();
    Ok(body["data"].as_array().cloned().unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_query_replica_takes_over_when_the_first_is_killed() {
    let Some(clickhouse) =
        cluster_or_skip("a_second_query_replica_takes_over_when_the_first_is_killed")
    else {
        return;
    };
    let cluster = RoostCluster::start_with(ROOST, clickhouse, TWO_QUERY_REPLICAS, &[])
        .await
        .expect("the cluster starts");
    let api = Api::over(cluster);
    api.data_source("events", SCHEMA, &[]).await;
    // The same batch twice is twice the rows: replicated tables must not drop it as a repeat.
    api.events("events", &ndjson(1..=40)).await;
    api.events("events", &ndjson(1..=40)).await;
    assert_eq!(count(&api).await, 80);
    publish_by_country(&api).await;
    let expected = by_country(&api).await.expect("the endpoint answers");
    assert_eq!(expected.len(), 2, "{expected:?}");

    // kill -9 of one replica: the queue group has one member left, which takes every call.
    let mut api = api;
    let first = api.roost.index_of("query").expect("a query process");
    api.roost.processes[first].kill();
    for call in 0..20 {
        assert_eq!(
            by_country(&api).await,
            Ok(expected.clone()),
            "call {call} after the first replica died; logs:\n{}",
            api.roost.logs()
        );
    }

    // With no replica left the endpoint fails (the calls really went to the query processes)...
    let second = first
        + 1
        + api.roost.processes[first + 1..]
            .iter()
            .position(|p| p.role == "query")
            .expect("a second query process");
    api.roost.processes[second].kill();
    let failed = by_country(&api)
        .await
        .expect_err("no query replica is left");
    assert!(failed >= 500, "{failed}");

    // ...and a replica started afterwards serves at once.
    api.roost.add("query").await.expect("a new replica starts");
    assert_eq!(by_country(&api).await, Ok(expected));
}

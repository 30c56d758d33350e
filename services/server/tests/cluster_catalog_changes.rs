//! Distributed mode's caches of catalog reads, black-box: query replicas and the gateway keep what
//! the catalog lists until a catalog change fact tells them otherwise, so every call after a
//! change must see it, on every replica, over both transports. These scenarios fail when the
//! replicas ignore the facts: they would serve the catalog as it was for up to 10 s.
//!
//! Skipped with a `SKIPPED:` line when the ClickHouse cluster cannot run here (set
//! ROOST_TEST_REQUIRE_CLICKHOUSE to fail instead).

use std::time::{Duration, Instant};

use roost_testkit::api::Api;
use roost_testkit::clickhouse::{ClickHouseCluster, cluster_or_skip};
use roost_testkit::cluster::{RoostCluster, TWO_QUERY_REPLICAS, Transport};
use roost_testkit::free_port;
use roost_testkit::http::ok_json;
use serde_json::{Value, json};

const ROOST: &str = env!("CARGO_BIN_EXE_roost");

/// Calls through each gateway after a change: over NATS each call goes to either replica, so a
/// few calls reach both with near certainty.
const CALLS_PER_CHECK: usize = 4;

/// A cluster with two query replicas, and the gateways whose calls reach both of them: over
/// NATS one gateway (the queue group spreads its calls), over gRPC one gateway per replica (a
/// gateway calls the one address it is given).
async fn two_query_replicas(
    transport: Transport,
    clickhouse: &ClickHouseCluster,
) -> (Api<RoostCluster>, Vec<String>) {
    let mut cluster =
        RoostCluster::start_with_transport(ROOST, clickhouse, TWO_QUERY_REPLICAS, &[], transport)
            .await
            .expect("the cluster starts");
    let mut gateways = vec![cluster.base_url.clone()];
    if transport == Transport::Grpc {
        let second_replica = cluster
            .processes
            .iter()
            .filter(|process| process.role == "query")
            .nth(1)
            .and_then(|process| process.grpc.clone())
            .expect("a second query replica serving gRPC");
        let port = free_port().expect("a free port").to_string();
        cluster
            .add_with(
                "gateway",
                &[
                    ("ROOST_HTTP_PORT", &port),
                    ("ROOST_GRPC_SERVICES_QUERY", &second_replica),
                    ("ROOST_GRPC_SERVICES_ENDPOINT", &second_replica),
                ],
            )
            .await
            .expect("a second gateway starts");
        gateways.push(format!("http://127.0.0.1:{port}"));
    }
    (Api::over(cluster), gateways)
}

/// What a call answered: the rows, or the status and error of a failure.
#[derive(Debug, PartialEq)]
enum Answer {
    Rows(Vec<Value>),
    Failed(u16, String),
}

async fn answer(response: reqwest::Response) -> Answer {
    let status = response.status().as_u16();
    let body: Value = response.json().await.expect("a JSON answer");
    if status == 200 {
        Answer::Rows(body["data"].as_array().cloned().unwrap_or_default())
    } else {
        Answer::Failed(status, body["error"].as_str().unwrap_or_default().into())
    }
}

/// Calls `path` through every gateway [`CALLS_PER_CHECK`] times and asserts each answer.
async fn assert_every_call(
    api: &Api<RoostCluster>,
    gateways: &[String],
    path: &str,
    query: &[(&str, &str)],
    what: &str,
    expected: impl Fn(&Answer) -> bool,
) {
    for gateway in gateways {
        for call in 0..CALLS_PER_CHECK {
            let response = api
                .http
                .get(format!("{gateway}{path}"))
                .query(query)
                .bearer_auth(&api.token)
                .send()
                .await
                .expect("the gateway answers");
            let answer = answer(response).await;
            assert!(
                expected(&answer),
                "{what}: call {call} through {gateway} answered {answer:?}"
            );
        }
    }
}

fn round_is(round: usize) -> impl Fn(&Answer) -> bool {
    move |answer| *answer == Answer::Rows(vec![json!({ "round": round })])
}

async fn create_pipe(api: &Api<RoostCluster>, round: usize) {
    ok_json(
        api.post("/v0/pipes")
            .json(&json!({
                "name": "changing",
                "nodes": [{ "name": "answer", "sql": format!("SELECT {round} AS round"),
                            "type": "endpoint" }],
            }))
            .send()
            .await
            .unwrap(),
    )
    .await;
}

/// An endpoint changed 20 times, then dropped and created again 10 times: every call after
/// each change answers the new one, on every replica.
async fn endpoint_changes_reach_every_replica(api: &Api<RoostCluster>, gateways: &[String]) {
    let endpoint = "/v0/pipes/changing.json";
    create_pipe(api, 0).await;
    assert_every_call(api, gateways, endpoint, &[], "created", round_is(0)).await;
    for round in 1..=20 {
        ok_json(
            api.put("/v0/pipes/changing/nodes/answer")
                .body(format!("SELECT {round} AS round"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        let what = format!("node changed, round {round}");
        assert_every_call(api, gateways, endpoint, &[], &what, round_is(round)).await;
    }
    for round in 21..=30 {
        let dropped = api.delete("/v0/pipes/changing").send().await.unwrap();
        assert!(dropped.status().is_success(), "{}", dropped.status());
        let what = format!("dropped, round {round}");
        assert_every_call(api, gateways, endpoint, &[], &what, |answer| {
            matches!(answer, Answer::Failed(404, _))
        })
        .await;
        create_pipe(api, round).await;
        let what = format!("created again, round {round}");
        assert_every_call(api, gateways, endpoint, &[], &what, round_is(round)).await;
    }
}

/// A data source deleted and created again with another schema, read through /v0/sql right
/// after each change: a replica still holding the old listing would read the old table, which
/// no longer exists.
async fn data_source_changes_reach_every_replica(api: &Api<RoostCluster>, gateways: &[String]) {
    for round in 1..=4 {
        let column = format!("v{round}");
        api.data_source("shifting", &format!("`{column}` Int32"), &[])
            .await;
        let query = [("q", "SELECT * FROM shifting FORMAT JSON")];
        for gateway in gateways {
            for call in 0..CALLS_PER_CHECK {
                let body = ok_json(
                    api.http
                        .get(format!("{gateway}/v0/sql"))
                        .query(&query)
                        .bearer_auth(&api.token)
                        .send()
                        .await
                        .unwrap(),
                )
                .await;
                assert_eq!(
                    body["meta"],
                    json!([{ "name": column, "type": "Int32" }]),
                    "round {round}, call {call} through {gateway}"
                );
            }
        }
        let deleted = api.delete("/v0/datasources/shifting").send().await.unwrap();
        assert!(deleted.status().is_success(), "{}", deleted.status());
        let what = format!("deleted, round {round}");
        assert_every_call(api, gateways, "/v0/sql", &query, &what, |answer| {
            matches!(answer, Answer::Failed(_, error) if error.contains("Resource 'shifting' not found"))
        })
        .await;
    }
}

async fn catalog_changes_reach_every_replica(transport: Transport, test: &str) {
    let Some(clickhouse) = cluster_or_skip(test) else {
        return;
    };
    let (api, gateways) = two_query_replicas(transport, clickhouse).await;
    let started = Instant::now();
    endpoint_changes_reach_every_replica(&api, &gateways).await;
    data_source_changes_reach_every_replica(&api, &gateways).await;
    println!(
        "{test}: every change seen at once in {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn catalog_changes_reach_every_replica_over_nats() {
    catalog_changes_reach_every_replica(
        Transport::Nats,
        "catalog_changes_reach_every_replica_over_nats",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn catalog_changes_reach_every_replica_over_grpc() {
    catalog_changes_reach_every_replica(
        Transport::Grpc,
        "catalog_changes_reach_every_replica_over_grpc",
    )
    .await;
}

/// The median of `calls` sequential calls made by `call`.
async fn median_latency<Call, Calling>(calls: usize, mut call: Call) -> Duration
where
    Call: FnMut() -> Calling,
    Calling: std::future::Future<Output = ()>,
{
    let mut latencies = Vec::with_capacity(calls);
    for _ in 0..calls {
        let started = Instant::now();
        call().await;
        latencies.push(started.elapsed());
    }
    latencies.sort();
    latencies[calls / 2]
}

/// The p50 latency of 200 sequential endpoint calls and 200 `SELECT 1` through /v0/sql, one
/// process per role, over NATS and over gRPC. Run it against any build of `roost` with
/// `ROOST_LATENCY_BIN=/path/to/roost cargo test -p roost-server --test cluster_catalog_changes
/// -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "a measurement, not a check"]
async fn catalog_read_latency() {
    let Some(clickhouse) = cluster_or_skip("catalog_read_latency") else {
        return;
    };
    let binary = std::env::var("ROOST_LATENCY_BIN").unwrap_or_else(|_| ROOST.to_string());
    for transport in [Transport::Nats, Transport::Grpc] {
        let cluster = RoostCluster::start_over(&binary, clickhouse, transport)
            .await
            .expect("the cluster starts");
        let api = Api::over(cluster);
        create_pipe(&api, 1).await;
        let endpoint = || async {
            let response = api.get("/v0/pipes/changing.json").send().await.unwrap();
            assert_eq!(response.status(), 200);
            response.bytes().await.unwrap();
        };
        let select_one = || async {
            let response = api
                .get("/v0/sql")
                .query(&[("q", "SELECT 1 FORMAT JSON")])
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            response.bytes().await.unwrap();
        };
        for _ in 0..10 {
            endpoint().await;
            select_one().await;
        }
        let endpoint_p50 = median_latency(200, endpoint).await;
        let sql_p50 = median_latency(200, select_one).await;
        println!(
            "{binary} over {transport:?}: endpoint p50 {endpoint_p50:?}, /v0/sql SELECT 1 p50 {sql_p50:?}"
        );
    }
}

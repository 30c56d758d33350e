//! Materialized views, populate jobs and copy pipes on a cron schedule, black-box against a real
//! `roost local`.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use roost_testkit::api::Api;
use roost_testkit::http::{error, ok_json};
use serde_json::{Value, json};

const ROOST: &str = env!("CARGO_BIN_EXE_roost");

async fn sales(api: &Api) {
    api.data_source(
        "sales",
        "`ts` DateTime `json:$.ts`, `user` String `json:$.user`, `amount` Float64 `json:$.amount`",
        &[("engine_sorting_key", "ts")],
    )
    .await;
}

fn sale_rows(from: usize, count: usize) -> String {
    (from..from + count)
        .map(|i| {
            format!(
                r#"{{"ts":"2026-01-01 00:00:00","user":"u{}","amount":{}}}"#,
                i % 7,
                i % 10
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `user, count, total` per user from the materialized target and from the source.
async fn totals(api: &Api) -> (Vec<Value>, Vec<Value>) {
    let merged = api
        .rows("SELECT user, sum(sales_count) AS c, sum(total) AS t FROM by_user GROUP BY user ORDER BY user")
        .await;
    let direct = api
        .rows("SELECT user, count() AS c, sum(amount) AS t FROM sales GROUP BY user ORDER BY user")
        .await;
    (merged, direct)
}

#[tokio::test]
async fn a_materialized_view_stays_exact_under_concurrent_inserts_and_populates_old_rows() {
    let api = Api::start(ROOST).await;
    sales(&api).await;
    // Rows from before the view exist: only populate brings them in.
    api.events("sales", &sale_rows(0, 500)).await;

    let pushed = ok_json(
        api.post("/v0/pipes")
            .query(&[("populate", "true")])
            .json(&json!({
                "name": "sales_by_user",
                "nodes": [{
                    "name": "agg",
                    "type": "materialized",
                    "datasource": "by_user",
                    "sql": "SELECT user, count() AS sales_count, sum(amount) AS total FROM sales GROUP BY user",
                }],
            }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(pushed["created_datasource"], json!(true), "{pushed}");
    assert_eq!(pushed["datasource"]["name"], "by_user", "{pushed}");
    assert_eq!(pushed["type"], "materialized", "{pushed}");
    assert_eq!(pushed["nodes"][0]["datasource"], "by_user", "{pushed}");
    let job_id = pushed["job"]["job_id"]
        .as_str()
        .expect("a populate job")
        .to_string();
    let populated = api.wait_job(&job_id, Duration::from_secs(60), |_| {}).await;
    assert_eq!(populated["status"], "done", "{populated}");
    assert_eq!(populated["kind"], "populateview");

    // The target was created from the node's output.
    let target = ok_json(api.get("/v0/datasources/by_user").send().await.unwrap()).await;
    assert!(target.to_string().contains("sales_count"), "{target}");

    // Four writers at once: every row reaches the view exactly once.
    let mut writers = Vec::new();
    for writer in 0..4 {
        let http = api.http.clone();
        let url = api.url("/v0/events?name=sales&wait=true");
        let token = api.token.clone();
        writers.push(tokio::spawn(async move {
            for batch in 0..10 {
                let rows = sale_rows(1000 + writer * 10_000 + batch * 100, 100);
                let answer = http
                    .post(&url)
                    .bearer_auth(&token)
                    .body(rows)
                    .send()
                    .await
                    .unwrap();
                assert!(
                    answer.status().is_success(),
                    "{}",
                    answer.text().await.unwrap()
                );
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    let (merged, direct) = totals(&api).await;
    assert_eq!(api.number("SELECT count() FROM sales").await, 4500.0);
    assert_eq!(merged, direct);
    assert_eq!(merged.len(), 7);

    // The target is used by the pipe: deleting it needs force, and a dry run names the pipe.
    let dry = ok_json(
        api.delete("/v0/datasources/by_user")
            .query(&[("dry_run", "true")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(dry.to_string().contains("sales_by_user"), "{dry}");
    error(
        api.delete("/v0/datasources/by_user").send().await.unwrap(),
        409,
    )
    .await;

    // Unlinking stops the view; the data stays.
    let unlinked = api
        .delete("/v0/pipes/sales_by_user/nodes/agg/materialization")
        .send()
        .await
        .unwrap();
    assert_eq!(unlinked.status().as_u16(), 204);
    api.events("sales", &sale_rows(90_000, 70)).await;
    let (merged, direct) = totals(&api).await;
    assert_ne!(merged, direct, "the view still writes after unlinking");
    assert_eq!(api.number("SELECT count() FROM sales").await, 4570.0);
}

#[tokio::test]
async fn a_view_of_aggregate_states_creates_an_aggregating_target_and_merges_exactly() {
    let api = Api::start(ROOST).await;
    sales(&api).await;
    let pushed = ok_json(
        api.post("/v0/pipes")
            .json(&json!({
                "name": "user_states",
                "nodes": [{
                    "name": "agg",
                    "type": "materialized",
                    "datasource": "per_minute",
                    "sql": "SELECT toStartOfMinute(ts) AS minute, uniqState(user) AS users, \
                            sumState(amount) AS total, quantilesState(0.5, 0.9)(amount) AS q \
                            FROM sales GROUP BY minute",
                }],
            }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(pushed["created_datasource"], json!(true), "{pushed}");
    let target = ok_json(api.get("/v0/datasources/per_minute").send().await.unwrap()).await;
    assert_eq!(
        target["engine"]["engine"], "AggregatingMergeTree",
        "{target}"
    );
    assert_eq!(target["engine"]["sorting_key"], "minute", "{target}");
    let types: Vec<&str> = target["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "DateTime",
            "AggregateFunction(uniq, String)",
            "AggregateFunction(sum, Float64)",
            "AggregateFunction(quantiles(0.5, 0.9), Float64)"
        ]
    );

    for batch in 0..5 {
        api.events("sales", &sale_rows(batch * 100, 100)).await;
    }
    let merged = api
        .rows("SELECT uniqMerge(users) AS u, sumMerge(total) AS t FROM per_minute")
        .await;
    let direct = api
        .rows("SELECT uniq(user) AS u, sum(amount) AS t FROM sales")
        .await;
    assert_eq!(merged, direct);
    assert_eq!(direct[0]["u"], json!(7), "{direct:?}");

    // Aggregate states come only from views: appending to the target directly is refused.
    let refused = api
        .post("/v0/events?name=per_minute&wait=true")
        .body(r#"{"minute":"2026-01-01 00:00:00","users":"x","total":"1","q":"2"}"#)
        .send()
        .await
        .unwrap();
    let status = refused.status().as_u16();
    let body = refused.text().await.unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("AggregateFunction"), "{body}");
}

#[tokio::test]
async fn a_forced_push_that_fails_puts_the_old_view_back() {
    let api = Api::start(ROOST).await;
    sales(&api).await;
    let view = |sql: &str, target: &str| {
        json!({
            "name": "sales_by_user",
            "nodes": [{"name": "agg", "type": "materialized", "datasource": target, "sql": sql}],
        })
    };
    let good = "SELECT user, count() AS sales_count, sum(amount) AS total FROM sales GROUP BY user";
    ok_json(
        api.post("/v0/pipes")
            .json(&view(good, "by_user"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    // The replacement cannot work (its output does not fit the target): the push fails...
    api.data_source("narrow", "`x` Int32", &[]).await;
    error(
        api.post("/v0/pipes")
            .query(&[("force", "true")])
            .json(&view("SELECT user, amount FROM sales", "narrow"))
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    // ... and the old pipe is back with its view: new rows still reach its target.
    let pipe = ok_json(api.get("/v0/pipes/sales_by_user").send().await.unwrap()).await;
    assert_eq!(pipe["nodes"][0]["sql"], good, "{pipe}");
    api.events("sales", &sale_rows(0, 70)).await;
    let (merged, direct) = totals(&api).await;
    assert_eq!(merged, direct);
    assert_eq!(merged.len(), 7);
}

#[tokio::test]
async fn dropping_a_pipe_drops_its_view_and_inserts_keep_working() {
    let api = Api::start(ROOST).await;
    sales(&api).await;
    ok_json(
        api.post("/v0/pipes")
            .json(&json!({
                "name": "mv",
                "nodes": [
                    {"name": "filtered", "sql": "SELECT user, amount FROM sales WHERE amount > 2"},
                    {"name": "agg", "type": "materialized", "datasource": "by_user",
                     "sql": "SELECT user, count() AS sales_count, sum(amount) AS total FROM filtered GROUP BY user"},
                ],
            }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    api.events("sales", &sale_rows(0, 100)).await;
    // The node reads an earlier node: the view sees only what that node keeps.
    assert_eq!(
        api.number("SELECT sum(sales_count) FROM by_user").await,
        70.0
    );
    let deleted = api.delete("/v0/pipes/mv").send().await.unwrap();
    assert!(deleted.status().is_success());
    api.events("sales", &sale_rows(100, 100)).await;
    assert_eq!(api.number("SELECT count() FROM sales").await, 200.0);
    assert_eq!(
        api.number("SELECT sum(sales_count) FROM by_user").await,
        70.0
    );
    // Force-deleting a view's target unlinks the view first, so the source keeps taking rows.
    ok_json(
        api.post("/v0/pipes")
            .json(&json!({
                "name": "mv2",
                "nodes": [{"name": "agg", "type": "materialized", "datasource": "by_user",
                           "sql": "SELECT user, count() AS sales_count, sum(amount) AS total FROM sales GROUP BY user"}],
            }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let gone = api
        .delete("/v0/datasources/by_user")
        .query(&[("force", "true")])
        .send()
        .await
        .unwrap();
    assert!(gone.status().is_success(), "{}", gone.text().await.unwrap());
    api.events("sales", &sale_rows(200, 10)).await;
    assert_eq!(api.number("SELECT count() FROM sales").await, 210.0);
    let pipe = ok_json(api.get("/v0/pipes/mv2").send().await.unwrap()).await;
    assert_eq!(pipe["nodes"][0]["type"], "standard", "{pipe}");
}

#[tokio::test]
async fn materialized_nodes_that_cannot_work_are_refused_and_leave_nothing_behind() {
    let api = Api::start(ROOST).await;
    sales(&api).await;
    error(
        api.post("/v0/pipes")
            .json(&json!({
                "name": "no_target",
                "nodes": [{"name": "agg", "type": "materialized", "sql": "SELECT user FROM sales"}],
            }))
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    // An existing target whose columns do not fit the node's output.
    api.data_source("narrow", "`x` Int32", &[]).await;
    error(
        api.post("/v0/pipes")
            .json(&json!({
                "name": "misfit",
                "nodes": [{"name": "agg", "type": "materialized", "datasource": "narrow",
                           "sql": "SELECT user, amount FROM sales"}],
            }))
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    for pipe in ["no_target", "misfit"] {
        error(
            api.get(&format!("/v0/pipes/{pipe}")).send().await.unwrap(),
            404,
        )
        .await;
    }
    api.events("sales", &sale_rows(0, 10)).await;
    assert_eq!(api.number("SELECT count() FROM narrow").await, 0.0);
}

/// The `scheduled_at` of every copy job of `pipe`.
async fn copy_runs(api: &Api, pipe: &str) -> Vec<(String, Value)> {
    let jobs = ok_json(
        api.get("/v0/jobs")
            .query(&[("kind", "copy")])
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
        .map(|j| {
            (
                j["scheduled_at"].as_str().unwrap_or_default().to_string(),
                j.clone(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_copy_pipe_every_second_runs_once_per_tick_and_on_demand() {
    let api = Api::start(ROOST).await;
    sales(&api).await;
    api.events("sales", &sale_rows(0, 70)).await;
    api.data_source(
        "snapshots",
        "`user` String, `total` Float64",
        &[("engine_sorting_key", "user")],
    )
    .await;
    let pushed = ok_json(
        api.post("/v0/pipes")
            .json(&json!({
                "name": "snapshot",
                "nodes": [{"name": "copy_totals", "type": "copy", "target_datasource": "snapshots",
                           "copy_schedule": "* * * * * *", "mode": "append",
                           "sql": "SELECT user, sum(amount) AS total FROM sales GROUP BY user"}],
            }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(pushed["type"], "copy", "{pushed}");
    assert_eq!(pushed["schedule"]["cron"], "* * * * * *", "{pushed}");
    assert_eq!(pushed["schedule"]["status"], "running", "{pushed}");
    let target_id =
        ok_json(api.get("/v0/datasources/snapshots").send().await.unwrap()).await["id"].clone();
    assert_eq!(pushed["copy_target_datasource"], target_id);

    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let paused = ok_json(
        api.post("/v0/pipes/snapshot/copy/pause")
            .send()
            .await
            .unwrap(),
    )
    .await;
    let observed = started.elapsed().as_secs_f64();
    assert_eq!(paused["schedule"]["status"], "paused", "{paused}");

    let runs = copy_runs(&api, "snapshot").await;
    let ticks: BTreeSet<&String> = runs.iter().map(|(tick, _)| tick).collect();
    assert_eq!(ticks.len(), runs.len(), "a tick ran twice: {runs:?}");
    assert!(
        runs.len() >= 8 && runs.len() as f64 <= observed.ceil() + 1.0,
        "{} runs in {observed:.1} s",
        runs.len()
    );
    // Every run finishes; the target holds one snapshot of 7 users per run.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let runs = copy_runs(&api, "snapshot").await;
        if runs.iter().all(|(_, j)| j["status"] == "done") {
            let rows = api.number("SELECT count() FROM snapshots").await;
            assert_eq!(rows, 7.0 * runs.len() as f64);
            break;
        }
        assert!(
            runs.iter().all(|(_, j)| j["status"] != "error"),
            "a copy failed: {runs:?}"
        );
        assert!(Instant::now() < deadline, "copies did not finish: {runs:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Paused: no more runs.
    let before = copy_runs(&api, "snapshot").await.len();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(copy_runs(&api, "snapshot").await.len(), before);

    // On demand, replacing the target with the result of the template's parameters.
    ok_json(
        api.put("/v0/pipes/snapshot/nodes/copy_totals/copy")
            .form(&[("mode", "replace"), ("schedule_cron", "None")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    let started = ok_json(api.post("/v0/pipes/snapshot/copy").send().await.unwrap()).await;
    let id = started["job_id"].as_str().unwrap().to_string();
    let done = api.wait_job(&id, Duration::from_secs(60), |_| {}).await;
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["mode"], "replace");
    assert_eq!(api.number("SELECT count() FROM snapshots").await, 7.0);
    let pipe = ok_json(api.get("/v0/pipes/snapshot").send().await.unwrap()).await;
    assert_eq!(pipe["schedule"]["status"], "shutdown", "{pipe}");
}

#[tokio::test]
async fn copy_pipes_with_bad_settings_are_refused() {
    let api = Api::start(ROOST).await;
    sales(&api).await;
    api.data_source("snapshots", "`user` String", &[]).await;
    for (node, status) in [
        (
            json!({"name": "c", "type": "copy", "sql": "SELECT user FROM sales"}),
            400,
        ),
        (
            json!({"name": "c", "type": "copy", "target_datasource": "missing", "sql": "SELECT user FROM sales"}),
            404,
        ),
        (
            json!({"name": "c", "type": "copy", "target_datasource": "snapshots", "copy_schedule": "every minute", "sql": "SELECT user FROM sales"}),
            400,
        ),
        (
            json!({"name": "c", "type": "copy", "target_datasource": "snapshots", "mode": "merge", "sql": "SELECT user FROM sales"}),
            400,
        ),
    ] {
        error(
            api.post("/v0/pipes")
                .json(&json!({"name": "bad_copy", "nodes": [node]}))
                .send()
                .await
                .unwrap(),
            status,
        )
        .await;
        error(api.get("/v0/pipes/bad_copy").send().await.unwrap(), 404).await;
    }
    error(api.post("/v0/pipes/nope/copy").send().await.unwrap(), 404).await;
}

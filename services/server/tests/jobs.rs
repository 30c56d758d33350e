//! Jobs, black-box against a real `roost local`: delete jobs with progress, dry runs and
//! cancellation; the Jobs API (list, filters, one, cancel, errors); environment variables and
//! their use in templates.

use std::collections::BTreeSet;
use std::time::Duration;

use roost_testkit::api::Api;
use roost_testkit::http::{error, json, ok_json};
use serde_json::{Value, json};

const ROOST: &str = env!("CARGO_BIN_EXE_roost");

/// `rows` rows over `months` monthly partitions: `id` 0.., `ts` in month `id % months`.
fn csv_rows(rows: usize, months: usize) -> String {
    let mut csv = String::with_capacity(rows * 40);
    csv.push_str("id,ts,value\n");
    for id in 0..rows {
        let month = id % months;
        let (year, month) = (2024 + month / 12, month % 12 + 1);
        csv.push_str(&format!(
            "{id},{year}-{month:02}-15 10:00:00,{}\n",
            id % 100
        ));
    }
    csv
}

async fn partitioned(api: &Api, name: &str, rows: usize, months: usize) {
    api.data_source(
        name,
        "`id` UInt64, `ts` DateTime, `value` Int32",
        &[
            ("engine_partition_key", "toYYYYMM(ts)"),
            ("engine_sorting_key", "id"),
        ],
    )
    .await;
    let answer = ok_json(
        api.post("/v0/datasources")
            .query(&[("name", name), ("mode", "append"), ("format", "csv")])
            .body(csv_rows(rows, months))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        api.number(&format!("SELECT count() FROM {name}")).await,
        rows as f64,
        "{answer}"
    );
}

/// `POST /v0/datasources/{name}/delete`: the answer and its job id.
async fn start_delete(api: &Api, name: &str, condition: &str) -> (Value, String) {
    let started = ok_json(
        api.post(&format!("/v0/datasources/{name}/delete"))
            .form(&[("delete_condition", condition)])
            .send()
            .await
            .unwrap(),
    )
    .await;
    let id = started["job_id"].as_str().expect("a job id").to_string();
    (started, id)
}

#[tokio::test]
async fn a_delete_job_on_a_million_rows_reports_progress_and_deletes_exactly_the_matching_rows() {
    let api = Api::start(ROOST).await;
    partitioned(&api, "big", 1_000_000, 12).await;

    let dry = ok_json(
        api.post("/v0/datasources/big/delete")
            .form(&[("delete_condition", "id % 4 = 0"), ("dry_run", "true")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(dry["rows_to_be_deleted"], json!(250_000), "{dry}");
    assert_eq!(api.number("SELECT count() FROM big").await, 1_000_000.0);

    let (started, id) = start_delete(&api, "big", "id % 4 = 0").await;
    assert_eq!(started["delete_id"], json!(id));
    assert!(
        started["job_url"]
            .as_str()
            .is_some_and(|u| u.ends_with(&format!("/v0/jobs/{id}"))),
        "{started}"
    );
    assert_eq!(started["job"]["kind"], "delete_data");
    assert_eq!(started["job"]["datasource"]["name"], "big");

    let mut progress = BTreeSet::new();
    let done = api
        .wait_job(&id, Duration::from_secs(300), |job| {
            if let Some(p) = job["progress_percentage"].as_f64() {
                progress.insert((p * 100.0) as i64);
            }
        })
        .await;
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["rows_affected"], json!(250_000), "{done}");
    assert_eq!(done["delete_condition"], "id % 4 = 0");
    assert_eq!(done["progress_percentage"], json!(100.0));
    assert!(
        progress.iter().any(|p| *p > 0 && *p < 10_000),
        "no progress between 0 and 100 was seen over 12 parts: {progress:?}"
    );
    assert_eq!(api.number("SELECT count() FROM big").await, 750_000.0);
    assert_eq!(api.number("SELECT countIf(id % 4 = 0) FROM big").await, 0.0);

    // The job is listed, and filters narrow the list.
    let listed = ok_json(api.get("/v0/jobs").send().await.unwrap()).await;
    assert!(
        listed["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|j| j["id"] == json!(id) && j["status"] == "done"),
        "{listed}"
    );
    let none = ok_json(
        api.get("/v0/jobs")
            .query(&[("kind", "copy")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(none["jobs"], json!([]));
    let by_status = ok_json(
        api.get("/v0/jobs")
            .query(&[("status", "done"), ("kind", "delete_data")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        by_status["jobs"].as_array().unwrap().len(),
        1,
        "{by_status}"
    );

    // A finished job cannot be cancelled.
    error(
        api.post(&format!("/v0/jobs/{id}/cancel"))
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
}

#[tokio::test]
async fn a_running_delete_is_cancelled_and_its_mutation_killed() {
    let api = Api::start(ROOST).await;
    partitioned(&api, "many", 240_000, 48).await;
    let (_, id) = start_delete(&api, "many", "value < 50").await;
    loop {
        let job = api.job(&id).await;
        if job["status"] == "working" && job["progress_percentage"].as_f64().unwrap_or(0.0) > 0.0 {
            let (status, answer) = json(
                api.post(&format!("/v0/jobs/{id}/cancel"))
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            if status == 200 {
                assert!(
                    matches!(answer["status"].as_str(), Some("cancelling" | "cancelled")),
                    "{answer}"
                );
                break;
            }
            // It finished between the two calls: nothing left to cancel.
            panic!("the job could not be cancelled while working: {answer}");
        }
        assert!(
            job["status"] == "waiting" || job["status"] == "working",
            "the job ended before it could be cancelled: {job}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let finished = api.wait_job(&id, Duration::from_secs(120), |_| {}).await;
    assert_eq!(finished["status"], "cancelled", "{finished}");
    assert!(finished["progress_percentage"].as_f64().unwrap() < 100.0);
    // Some partitions kept their rows: the rest of the delete never ran.
    assert!(api.number("SELECT count() FROM many").await > 0.0);
}

#[tokio::test]
async fn delete_requests_are_checked_before_any_job_exists() {
    let api = Api::start(ROOST).await;
    partitioned(&api, "small", 100, 2).await;
    let cases: &[(&[(&str, &str)], u16)] = &[
        (&[], 400),
        (&[("delete_condition", "")], 400),
        (&[("delete_condition", "no_such_column = 1")], 400),
        (
            &[("delete_condition", "id IN (SELECT 1 FROM system.tables)")],
            400,
        ),
        (&[("delete_condition", "1; DROP TABLE small")], 400),
        (&[("delete_condition", "id = 1 FORMAT JSON")], 400),
    ];
    for (form, status) in cases {
        let message = error(
            api.post("/v0/datasources/small/delete")
                .form(form)
                .send()
                .await
                .unwrap(),
            *status,
        )
        .await;
        assert!(!message.is_empty(), "{form:?}");
    }
    error(
        api.post("/v0/datasources/missing/delete")
            .form(&[("delete_condition", "1")])
            .send()
            .await
            .unwrap(),
        404,
    )
    .await;
    let jobs = ok_json(api.get("/v0/jobs").send().await.unwrap()).await;
    assert_eq!(
        jobs["jobs"],
        json!([]),
        "a refused request left a job: {jobs}"
    );
    assert_eq!(api.number("SELECT count() FROM small").await, 100.0);
    error(api.get("/v0/jobs/nope").send().await.unwrap(), 404).await;
    error(api.post("/v0/jobs/nope/cancel").send().await.unwrap(), 404).await;
    error(
        api.http
            .get(api.url("/v0/jobs"))
            .bearer_auth("bad-token")
            .send()
            .await
            .unwrap(),
        403,
    )
    .await;
}

#[tokio::test]
async fn environment_variables_are_write_only_and_feed_templates() {
    let api = Api::start(ROOST).await;
    let created = ok_json(
        api.post("/v0/variables")
            .form(&[("name", "greeting"), ("value", "it's secret")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(created["name"], "greeting");
    assert_eq!(created["type"], "secret");
    assert!(created.get("value").is_none(), "{created}");
    error(
        api.post("/v0/variables")
            .form(&[("name", "greeting"), ("value", "again")])
            .send()
            .await
            .unwrap(),
        409,
    )
    .await;
    error(
        api.post("/v0/variables")
            .form(&[("name", "bad name!"), ("value", "x")])
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    // JSON bodies work too, and /v0/env_vars is the same API.
    ok_json(
        api.post("/v0/env_vars")
            .json(&json!({"name": "region", "value": "eu"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let listed = ok_json(api.get("/v0/variables").send().await.unwrap()).await;
    let names: Vec<&str> = listed["variables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["greeting", "region"]);
    assert!(!listed.to_string().contains("it's secret"), "{listed}");
    let one = ok_json(api.get("/v0/variables/greeting").send().await.unwrap()).await;
    assert_eq!(one["name"], "greeting");
    assert!(!one.to_string().contains("it's secret"), "{one}");

    // Templates read them; the value reaches the SQL as an escaped literal.
    ok_json(
        api.post("/v0/pipes")
            .json(&json!({
                "name": "greet",
                "nodes": [{"name": "n", "type": "endpoint",
                           "sql": "%\nSELECT {{tb_secret('greeting')}} AS g, {{tb_var('region')}} AS r"}],
            }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let data = ok_json(api.get("/v0/pipes/greet.json").send().await.unwrap()).await;
    assert_eq!(
        data["data"],
        json!([{"g": "it's secret", "r": "eu"}]),
        "{data}"
    );

    ok_json(
        api.put("/v0/variables/greeting")
            .form(&[("value", "changed")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    let data = ok_json(api.get("/v0/pipes/greet.json").send().await.unwrap()).await;
    assert_eq!(data["data"][0]["g"], "changed", "{data}");
    error(
        api.put("/v0/variables/missing")
            .form(&[("value", "x")])
            .send()
            .await
            .unwrap(),
        404,
    )
    .await;
    ok_json(api.delete("/v0/variables/greeting").send().await.unwrap()).await;
    error(
        api.delete("/v0/variables/greeting").send().await.unwrap(),
        404,
    )
    .await;
    // A template reading a missing variable fails with a clear error, not an empty value.
    let (status, body) = json(api.get("/v0/pipes/greet.json").send().await.unwrap()).await;
    assert_eq!(status.as_u16(), 400, "{body}");

    // Only admin tokens manage variables.
    let token = ok_json(
        api.post("/v0/tokens")
            .query(&[("name", "reader"), ("scope", "PIPES:READ:greet")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    let reader = token["token"].as_str().unwrap();
    error(
        api.http
            .get(api.url("/v0/variables"))
            .bearer_auth(reader)
            .send()
            .await
            .unwrap(),
        403,
    )
    .await;
}

#[tokio::test]
async fn jobs_of_one_workspace_are_invisible_to_another() {
    let api = Api::start(ROOST).await;
    partitioned(&api, "mine", 1000, 2).await;
    let (_, id) = start_delete(&api, "mine", "id < 10").await;
    api.wait_job(&id, Duration::from_secs(60), |_| {}).await;
    let other: Value = ok_json(
        api.http
            .post(api.url("/v1/workspaces"))
            .bearer_auth(&api.roost.tokens.user)
            .query(&[("name", "other_ws")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    let other_token = other["token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token in {other}"))
        .to_string();
    let listed = ok_json(
        api.http
            .get(api.url("/v0/jobs"))
            .bearer_auth(&other_token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(listed["jobs"], json!([]), "{listed}");
    error(
        api.http
            .get(api.url(&format!("/v0/jobs/{id}")))
            .bearer_auth(&other_token)
            .send()
            .await
            .unwrap(),
        404,
    )
    .await;
}

#[tokio::test]
async fn a_delete_interrupted_by_a_crash_runs_again_after_restart() {
    let api = Api::start(ROOST).await;
    partitioned(&api, "crashy", 240_000, 48).await;
    api.data_source("copied", "`id` UInt64, `value` Int32", &[])
        .await;
    let (_, delete_id) = start_delete(&api, "crashy", "value < 50").await;
    loop {
        let job = api.job(&delete_id).await;
        if job["status"] == "working" && job["progress_percentage"].as_f64().unwrap_or(0.0) > 0.0 {
            break;
        }
        assert!(
            job["status"] == "waiting" || job["status"] == "working",
            "the job ended before the crash: {job}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // kill -9 half-way through, then start again on the same data.
    let Api { roost, .. } = api;
    let api = Api::over(roost.restart().await.expect("roost local starts again"));

    // A delete is safe to run again: it finishes, and exactly the matching rows are gone.
    let finished = api
        .wait_job(&delete_id, Duration::from_secs(120), |_| {})
        .await;
    assert_eq!(finished["status"], "done", "{finished}");
    assert_eq!(
        api.number("SELECT count() FROM crashy WHERE value < 50")
            .await,
        0.0
    );
    assert_eq!(api.number("SELECT count() FROM crashy").await, 120_000.0);
    // Nothing is left working.
    let listed = ok_json(api.get("/v0/jobs").send().await.unwrap()).await;
    let still_working: Vec<&Value> = listed["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|job| job["status"] == "working" || job["status"] == "waiting")
        .collect();
    assert!(still_working.is_empty(), "{still_working:?}");
}

//! `POST /v0/events?name=ds`: NDJSON in, the data source created from the first events, 202 or
//! (with `wait=true`) 200 with the row counts, gzip bodies, and the 10 MB limit.

use serde_json::json;

use crate::{Api, error, gzip, json, ok_json};

#[tokio::test]
async fn events_create_then_append_with_or_without_wait() {
    let api = Api::start().await;

    // The first event creates the data source, with a column per leaf and its jsonpath.
    let first =
        r#"{"ts":"2024-05-01 10:00:00","user":{"id":7,"name":"ana"},"action":"click","value":1.5}"#;
    let response = api
        .post("/v0/events?name=clicks")
        .body(first)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let (_, body) = json(response).await;
    assert_eq!(body, json!({"successful_rows": 1, "quarantined_rows": 0}));
    let ds = ok_json(api.get("/v0/datasources/clicks").send().await.unwrap()).await;
    let columns: Vec<(String, String)> = ds["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["jsonpath"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    for (name, path) in [
        ("ts", "$.ts"),
        ("user_id", "$.user.id"),
        ("user_name", "$.user.name"),
        ("action", "$.action"),
        ("value", "$.value"),
    ] {
        assert!(
            columns.contains(&(name.to_string(), path.to_string())),
            "{name} {path} in {columns:?}"
        );
    }

    // Later events append; wait=true answers 200 once the rows are stored.
    let more = "{\"ts\":\"2024-05-01 10:00:01\",\"user\":{\"id\":8,\"name\":\"bo\"},\"action\":\"view\",\"value\":2}\n\
                {\"ts\":\"2024-05-01 10:00:02\",\"user\":{\"id\":9,\"name\":\"cy\"},\"action\":\"view\",\"value\":3}\n";
    let response = api
        .post("/v0/events?name=clicks&wait=true")
        .body(more)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        json(response).await.1,
        json!({"successful_rows": 2, "quarantined_rows": 0})
    );
    assert_eq!(api.count("clicks").await, 3);

    // gzip, announced by Content-Encoding.
    let compressed = gzip(b"{\"ts\":\"2024-05-01 10:00:03\",\"user\":{\"id\":10,\"name\":\"di\"},\"action\":\"buy\",\"value\":4}\n");
    let response = api
        .post("/v0/events?name=clicks&wait=true")
        .header("Content-Encoding", "gzip")
        .body(compressed)
        .send()
        .await
        .unwrap();
    assert_eq!(
        json(response).await.1,
        json!({"successful_rows": 1, "quarantined_rows": 0})
    );

    // curl -d sends application/x-www-form-urlencoded: the body is still NDJSON.
    let response = api
        .post("/v0/events?name=clicks&wait=true")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("{\"ts\":\"2024-05-01 10:00:04\",\"user\":{\"id\":11,\"name\":\"ed\"},\"action\":\"a=b&c\",\"value\":5}")
        .send()
        .await
        .unwrap();
    assert_eq!(
        json(response).await.1,
        json!({"successful_rows": 1, "quarantined_rows": 0})
    );
    assert_eq!(
        api.rows("SELECT action FROM clicks WHERE user_id = 11")
            .await,
        vec![json!({"action": "a=b&c"})]
    );

    // Without wait the rows are accepted (202) and, in local mode, already readable.
    let response = api.post("/v0/events?name=clicks").body("{\"ts\":\"2024-05-01 10:00:05\",\"user\":{\"id\":12,\"name\":\"fi\"},\"action\":\"x\",\"value\":6}\n").send().await.unwrap();
    assert_eq!(response.status(), 202);
    assert_eq!(api.count("clicks").await, 6);
    let rows = api
        .rows("SELECT user_name, value FROM clicks ORDER BY ts LIMIT 2")
        .await;
    assert_eq!(
        rows,
        vec![
            json!({"user_name": "ana", "value": 1.5}),
            json!({"user_name": "bo", "value": 2})
        ]
    );

    // Extra fields are ignored; a missing value of a column with no DEFAULT sends the row to quarantine.
    let reply = api.events("clicks", "{\"ts\":\"2024-05-01 10:00:06\",\"user\":{\"id\":13,\"name\":\"gu\"},\"action\":\"y\",\"value\":7,\"extra\":{\"deep\":1}}\n").await;
    assert_eq!(reply, json!({"successful_rows": 1, "quarantined_rows": 0}));
    let reply = api
        .events(
            "clicks",
            "{\"ts\":\"2024-05-01 10:00:07\",\"user\":{\"id\":14}}\n",
        )
        .await;
    assert_eq!(reply, json!({"successful_rows": 0, "quarantined_rows": 1}));
    assert_eq!(api.count("clicks").await, 7);

    // What the Events API refuses.
    error(
        api.post("/v0/events")
            .body("{\"a\":1}")
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    error(
        api.post("/v0/events?name=clicks&format=csv")
            .body("a,b\n")
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    error(
        api.post("/v0/events?name=bad%20name")
            .body("{\"a\":1}")
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    error(
        api.post("/v0/events?name=clicks")
            .header("Content-Encoding", "gzip")
            .body("not gzip")
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
}

#[tokio::test]
async fn events_over_ten_megabytes_are_refused_with_413() {
    let api = Api::start().await;
    api.events("big", "{\"a\":1}\n").await;
    let line = "{\"a\":123456789}\n";
    let body = line.repeat(11 * 1024 * 1024 / line.len());
    assert!(body.len() > 10 * 1024 * 1024);

    let message = error(
        api.post("/v0/events?name=big")
            .body(body.clone())
            .send()
            .await
            .unwrap(),
        413,
    )
    .await;
    assert!(!message.is_empty());
    // Small once compressed, too large once inflated.
    let compressed = gzip(body.as_bytes());
    assert!(compressed.len() < 1024 * 1024);
    error(
        api.post("/v0/events?name=big")
            .header("Content-Encoding", "gzip")
            .body(compressed)
            .send()
            .await
            .unwrap(),
        413,
    )
    .await;
    // Nothing of either was stored; a body under the limit is fine.
    assert_eq!(api.count("big").await, 1);
    let under = line.repeat(9 * 1024 * 1024 / line.len());
    let reply = api.events("big", &under).await;
    assert_eq!(
        reply["successful_rows"].as_u64().unwrap() as usize,
        under.len() / line.len()
    );
}

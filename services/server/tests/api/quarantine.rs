//! Rows that do not fit the schema go to `<name>_quarantine` with the reason and the raw values;
//! the good rows of the same request are all stored.

use serde_json::{Value, json};

use crate::{Api, file_form, ok_json};

const SCHEMA: &str =
    "`id` Int64 `json:$.id`, `name` String `json:$.name`, `price` Float64 `json:$.price`";

fn ids(rows: &[Value]) -> Vec<i64> {
    rows.iter().map(|r| r["id"].as_i64().unwrap()).collect()
}

#[tokio::test]
async fn bad_rows_go_to_quarantine_and_no_good_row_is_lost() {
    let api = Api::start().await;
    ok_json(
        api.post("/v0/datasources")
            .form(&[("name", "sales"), ("schema", SCHEMA)])
            .send()
            .await
            .unwrap(),
    )
    .await;

    // NDJSON: a wrong type, a missing required field's type mismatch, a line that is not JSON.
    let ndjson = [
        r#"{"id":1,"name":"a","price":1.5}"#,
        r#"{"id":"notanumber","name":"b","price":2}"#,
        r#"{"id":2,"name":"c","price":"cheap"}"#,
        r#"not json at all"#,
        r#"{"id":3,"name":"d","price":4}"#,
    ]
    .join("\n");
    let reply = ok_json(
        api.post("/v0/datasources?name=sales&mode=append&format=ndjson")
            .multipart(file_form("ndjson", ndjson))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(reply["quarantine_rows"], json!(3), "{reply}");
    assert_eq!(
        reply["blocks"][0]["process_return"][0]["lines"],
        json!(2),
        "{reply}"
    );
    let message = reply["error"]
        .as_str()
        .unwrap_or_else(|| panic!("error should describe the quarantine: {reply}"));
    assert!(message.contains("quarantine"), "{message}");
    assert_eq!(
        ids(&api.rows("SELECT id FROM sales ORDER BY id").await),
        [1, 3]
    );

    let quarantined = api
        .rows("SELECT c__error_column, c__error, id, name, price FROM sales_quarantine ORDER BY id")
        .await;
    assert_eq!(quarantined.len(), 3, "{quarantined:?}");
    let by_raw_id = |raw: &str| {
        quarantined
            .iter()
            .find(|r| r["id"] == raw)
            .unwrap_or_else(|| panic!("no quarantined row with id {raw}: {quarantined:?}"))
    };
    let wrong_id = by_raw_id("notanumber");
    assert_eq!(wrong_id["c__error_column"], json!(["id"]));
    assert!(
        wrong_id["c__error"][0]
            .as_str()
            .unwrap()
            .contains("notanumber"),
        "{wrong_id}"
    );
    assert_eq!(wrong_id["name"], "b");
    let wrong_price = by_raw_id("2");
    assert_eq!(wrong_price["c__error_column"], json!(["price"]));
    assert_eq!(wrong_price["price"], "cheap");
    let not_json = quarantined
        .iter()
        .find(|r| r["c__error_column"] == json!([]))
        .expect("the line that is not JSON");
    assert_eq!(
        not_json["c__error"].as_array().unwrap().len(),
        1,
        "{not_json}"
    );

    // CSV: the same in one file.
    let csv = "10,e,1.0\nx,f,1.0\n11,g,zz\n12,h,3\n13,\"quoted, comma\",4.5\n";
    let reply = ok_json(
        api.post("/v0/datasources?name=sales&mode=append&format=csv")
            .multipart(file_form("csv", csv))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(reply["quarantine_rows"], json!(2), "{reply}");
    assert_eq!(
        reply["blocks"][0]["process_return"][0]["lines"],
        json!(3),
        "{reply}"
    );
    assert_eq!(
        ids(&api.rows("SELECT id FROM sales ORDER BY id").await),
        [1, 3, 10, 12, 13]
    );
    assert_eq!(
        api.rows("SELECT name FROM sales WHERE id = 13").await,
        vec![json!({"name": "quoted, comma"})]
    );
    let quarantined = api.rows("SELECT c__error_column, id, price FROM sales_quarantine WHERE id IN ('x', '11') ORDER BY id").await;
    assert_eq!(
        quarantined,
        vec![
            json!({"c__error_column": ["price"], "id": "11", "price": "zz"}),
            json!({"c__error_column": ["id"], "id": "x", "price": "1.0"})
        ]
    );

    // The Events API reports the split.
    let reply = api
        .events(
            "sales",
            "{\"id\":20,\"name\":\"i\",\"price\":1}\n{\"id\":[1],\"name\":\"j\",\"price\":1}\n",
        )
        .await;
    assert_eq!(reply, json!({"successful_rows": 1, "quarantined_rows": 1}));
    assert_eq!(api.count("sales").await, 6);
    assert_eq!(api.count("sales_quarantine").await, 6);
}

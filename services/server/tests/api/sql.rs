//! `/v0/sql`: the ways a query arrives, the output formats with their content types, Tinybird's
//! JSON shape, and the queries that are refused.

use serde_json::{Value, json};

use crate::{Api, content_type, error, ok_json};

/// Ten rows: n from 0 to 9, big = n * 10^15 + 1 (beyond 2^53), a DateTime.
async fn numbers(api: &Api) {
    let ndjson: String = (0..10u64)
        .map(|n| {
            format!(
                "{{\"n\":{n},\"big\":{},\"ts\":\"2024-01-01 00:00:0{n}\",\"s\":\"v{n}\"}}\n",
                n * 1_000_000_000_000_000 + 1
            )
        })
        .collect();
    ok_json(
        api.post("/v0/datasources")
            .form(&[("name", "nums"), ("schema", "`n` UInt8 `json:$.n`, `big` Int64 `json:$.big`, `ts` DateTime `json:$.ts`, `s` String `json:$.s`"), ("engine_sorting_key", "n")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        api.events("nums", &ndjson).await["successful_rows"],
        json!(10)
    );
}

#[tokio::test]
async fn sql_request_styles_formats_and_json_shape() {
    let api = Api::start().await;
    numbers(&api).await;
    let query = "SELECT n, big, s FROM nums WHERE n >= 2 ORDER BY n LIMIT 3";

    // Tinybird's JSON: meta, data, rows, rows_before_limit_at_least, statistics.
    let body = ok_json(
        api.get("/v0/sql")
            .query(&[("q", query)])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        body["meta"],
        json!([{"name": "n", "type": "UInt8"}, {"name": "big", "type": "Int64"}, {"name": "s", "type": "String"}])
    );
    assert_eq!(
        body["data"],
        json!([
            {"n": 2, "big": 2_000_000_000_000_001u64, "s": "v2"},
            {"n": 3, "big": 3_000_000_000_000_001u64, "s": "v3"},
            {"n": 4, "big": 4_000_000_000_000_001u64, "s": "v4"},
        ])
    );
    assert!(
        body["data"][0]["big"].is_u64(),
        "64-bit integers are JSON numbers: {body}"
    );
    assert_eq!(body["rows"], json!(3));
    assert_eq!(body["rows_before_limit_at_least"], json!(8));
    let statistics = &body["statistics"];
    assert!(
        statistics["elapsed"].as_f64().unwrap() >= 0.0,
        "{statistics}"
    );
    assert!(
        statistics["rows_read"].as_u64().unwrap() >= 3,
        "{statistics}"
    );
    assert!(
        statistics["bytes_read"].as_u64().unwrap() > 0,
        "{statistics}"
    );

    // The same query sent every way Tinybird accepts it.
    let expected = body["data"].clone();
    let styles = [
        api.post("/v0/sql").body(query).send().await.unwrap(),
        api.post("/v0/sql")
            .header("Content-Type", "text/plain")
            .body(query)
            .send()
            .await
            .unwrap(),
        // `curl -d 'SELECT ...'` labels the raw SQL as a form.
        api.post("/v0/sql")
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(query)
            .send()
            .await
            .unwrap(),
        api.post("/v0/sql")
            .form(&[("q", query)])
            .send()
            .await
            .unwrap(),
        api.post("/v0/sql")
            .json(&json!({ "q": query }))
            .send()
            .await
            .unwrap(),
        api.http
            .get(api.url("/v0/sql"))
            .query(&[("q", query), ("token", api.token.as_str())])
            .send()
            .await
            .unwrap(),
    ];
    for response in styles {
        assert_eq!(ok_json(response).await["data"], expected);
    }

    // Output formats, by FORMAT in the query or by ?format=, each with its content type.
    let two = "SELECT n, s FROM nums ORDER BY n LIMIT 2";
    let cases: [(&str, &str, &str); 8] = [
        (
            "JSONEachRow",
            "application/x-ndjson",
            "{\"n\":0,\"s\":\"v0\"}\n{\"n\":1,\"s\":\"v1\"}\n",
        ),
        (
            "NDJSON",
            "application/x-ndjson",
            "{\"n\":0,\"s\":\"v0\"}\n{\"n\":1,\"s\":\"v1\"}\n",
        ),
        ("CSV", "text/csv", "0,\"v0\"\n1,\"v1\"\n"),
        (
            "CSVWithNames",
            "text/csv",
            "\"n\",\"s\"\n0,\"v0\"\n1,\"v1\"\n",
        ),
        ("TSV", "text/tab-separated-values", "0\tv0\n1\tv1\n"),
        (
            "TSVWithNames",
            "text/tab-separated-values",
            "n\ts\n0\tv0\n1\tv1\n",
        ),
        ("JSONCompact", "application/json", ""),
        ("JSON", "application/json", ""),
    ];
    for (format, kind, text) in cases {
        for response in [
            api.get("/v0/sql")
                .query(&[("q", format!("{two} FORMAT {format}"))])
                .send()
                .await
                .unwrap(),
            api.get("/v0/sql")
                .query(&[("q", two), ("format", format)])
                .send()
                .await
                .unwrap(),
        ] {
            assert_eq!(response.status(), 200, "{format}");
            assert!(
                content_type(&response).starts_with(kind),
                "{format}: {}",
                content_type(&response)
            );
            let body = response.text().await.unwrap();
            if text.is_empty() {
                let parsed: Value = serde_json::from_str(&body).unwrap();
                assert_eq!(parsed["rows"], json!(2), "{format}");
            } else {
                assert_eq!(body, text, "{format}");
            }
        }
    }
    let response = api
        .get("/v0/sql")
        .query(&[("q", format!("{two} FORMAT Parquet"))])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(content_type(&response), "application/octet-stream");
    assert!(response.bytes().await.unwrap().starts_with(b"PAR1"));

    // A FORMAT in the query wins over ?format=; an unknown format is a 400.
    let response = api
        .get("/v0/sql")
        .query(&[
            ("q", format!("{two} FORMAT CSV")),
            ("format", "JSON".to_string()),
        ])
        .send()
        .await
        .unwrap();
    assert!(content_type(&response).starts_with("text/csv"));
    error(
        api.get("/v0/sql")
            .query(&[("q", two), ("format", "XML")])
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    error(
        api.get("/v0/sql")
            .query(&[("q", format!("{two} FORMAT Template"))])
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;

    // Quarantine tables are readable by name; subqueries, CTEs, joins and IN read data sources.
    let body = ok_json(
        api.get("/v0/sql")
            .query(&[("q", "SELECT count() AS c FROM nums_quarantine")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(body["data"], json!([{"c": 0}]));
    let joined = "WITH top AS (SELECT n FROM nums WHERE n > 7) \
                  SELECT a.n AS n, b.s AS s FROM nums AS a JOIN (SELECT n, s FROM nums) AS b ON a.n = b.n \
                  WHERE a.n IN (SELECT n FROM top) ORDER BY n";
    assert_eq!(
        api.rows(joined).await,
        vec![json!({"n": 8, "s": "v8"}), json!({"n": 9, "s": "v9"})]
    );
}

#[tokio::test]
async fn sql_refuses_what_is_not_a_read_of_the_workspace() {
    let api = Api::start().await;
    numbers(&api).await;
    let refused = [
        ("INSERT INTO nums (n) VALUES (1)", "SELECT"),
        ("DROP TABLE nums", "SELECT"),
        ("ALTER TABLE nums DELETE WHERE 1", "SELECT"),
        ("TRUNCATE TABLE nums", "SELECT"),
        ("CREATE TABLE t (a Int8) ENGINE = Memory", "SELECT"),
        ("SYSTEM SHUTDOWN", "SELECT"),
        ("SET max_threads = 1", "SELECT"),
        ("SELECT * FROM system.tables", "system"),
        ("SELECT name FROM system.databases", "system"),
        ("SELECT * FROM other_db.t", "other_db"),
        ("SELECT * FROM default.nums", "default"),
        ("SELECT * FROM file('/etc/passwd', 'LineAsString')", "file"),
        (
            "SELECT * FROM url('http://127.0.0.1:1/', 'LineAsString')",
            "url",
        ),
        ("SELECT * FROM remote('127.0.0.1', system.one)", "remote"),
        ("SELECT * FROM s3('http://127.0.0.1:1/x.csv')", "s3"),
        ("SELECT 1; SELECT 2", "Multiple statements"),
        ("SELECT 1; DROP TABLE nums", "Multiple statements"),
        ("SELECT * FROM nums_missing", "nums_missing"),
        ("SELECT * FROM nums INTO OUTFILE '/tmp/x'", "OUTFILE"),
        ("SELECT * FROM nums SETTINGS readonly = 0", "readonly"),
    ];
    for (sql, fragment) in refused {
        let message = error(
            api.get("/v0/sql")
                .query(&[("q", sql)])
                .send()
                .await
                .unwrap(),
            400,
        )
        .await;
        assert!(message.contains(fragment), "{sql}: {message}");
    }
    // Syntax errors and unknown columns or functions are 400s too, as JSON.
    for sql in [
        "SELEC 1",
        "SELECT (1",
        "SELECT 'unterminated",
        "SELECT nope FROM nums",
        "SELECT no_such_function(1)",
        "SELECT FROM WHERE",
    ] {
        let message = error(
            api.get("/v0/sql")
                .query(&[("q", sql)])
                .send()
                .await
                .unwrap(),
            400,
        )
        .await;
        assert!(!message.is_empty(), "{sql}");
    }
    // An engine error names the data source as the user wrote it, not the table behind it.
    let message = error(
        api.get("/v0/sql")
            .query(&[("q", "SELECT nope FROM nums")])
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    let table_id = ok_json(api.get("/v0/datasources/nums").send().await.unwrap()).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let workspace_id = ok_json(api.get("/v0/workspace").send().await.unwrap()).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        !message.contains(&table_id) && !message.contains(&workspace_id),
        "{message}"
    );
    assert!(message.contains("nums"), "{message}");
    // No query at all.
    error(api.get("/v0/sql").send().await.unwrap(), 400).await;
    error(
        api.post("/v0/sql")
            .json(&json!({"sql": "SELECT 1"}))
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    // Nothing changed.
    assert_eq!(api.count("nums").await, 10);
}

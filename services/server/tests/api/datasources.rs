//! `/v0/datasources`: create from a schema or from data, append, replace, list, get, rename,
//! truncate, alter, delete, and the errors of each.

use serde_json::{Value, json};

use crate::{Api, column_types, error, file_form, ok_json, pairs};

const EVENTS_SCHEMA: &str = "`ts` DateTime `json:$.ts`, `user` String `json:$.user.name` DEFAULT 'anon', `n` Int64 `json:$.n`";

/// The form the `tb` CLI sends to create a data source from a `.datasource` file.
fn cli_create_form(name: &str) -> Vec<(&'static str, String)> {
    vec![
        ("name", name.to_string()),
        ("schema", EVENTS_SCHEMA.to_string()),
        ("engine", "MergeTree".to_string()),
        ("engine_sorting_key", "ts, user".to_string()),
        ("engine_partition_key", "toYYYYMM(ts)".to_string()),
        ("engine_ttl", "ts + INTERVAL 30 YEAR".to_string()),
    ]
}

fn column<'a>(data_source: &'a Value, name: &str) -> &'a Value {
    data_source["columns"]
        .as_array()
        .and_then(|columns| columns.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no column {name} in {data_source}"))
}

#[tokio::test]
async fn create_with_a_schema_get_list_and_refuse_bad_definitions() {
    let api = Api::start().await;

    // The tb CLI: a form body with the schema (jsonpaths, DEFAULT) and the engine settings.
    let created = ok_json(
        api.post("/v0/datasources")
            .form(&cli_create_form("events"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(created["error"], json!(false), "{created}");
    let ds = &created["datasource"];
    assert_eq!(ds["name"], "events");
    let id = ds["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("t_"), "{id}");
    assert_eq!(
        column_types(ds),
        pairs(&[("ts", "DateTime"), ("user", "String"), ("n", "Int64")])
    );
    assert_eq!(column(ds, "user")["jsonpath"], "$.user.name");
    assert_eq!(column(ds, "ts")["jsonpath"], "$.ts");
    assert!(
        column(ds, "user")["default_value"]
            .as_str()
            .unwrap()
            .contains("'anon'"),
        "{ds}"
    );
    assert_eq!(column(ds, "n")["default_value"], Value::Null);
    assert_eq!(column(ds, "n")["nullable"], json!(false));
    assert_eq!(ds["engine"]["engine"], "MergeTree");
    assert_eq!(ds["engine"]["sorting_key"], "ts, user");
    assert_eq!(ds["engine"]["partition_key"], "toYYYYMM(ts)");
    assert_eq!(ds["engine"]["ttl"], "ts + INTERVAL 30 YEAR");
    assert_eq!(ds["statistics"]["row_count"], json!(0));

    // The jsonpaths and the DEFAULT apply to what arrives.
    let appended = api.events("events", "{\"ts\":\"2024-01-01 00:00:00\",\"user\":{\"name\":\"ana\"},\"n\":1}\n{\"ts\":\"2024-01-02 00:00:00\",\"n\":2}\n").await;
    assert_eq!(
        appended,
        json!({"successful_rows": 2, "quarantined_rows": 0})
    );
    let rows = api.rows("SELECT user, n FROM events ORDER BY n").await;
    assert_eq!(
        rows,
        vec![
            json!({"user": "ana", "n": 1}),
            json!({"user": "anon", "n": 2})
        ]
    );

    // The same parameters in the query string, no body.
    let response = api
        .post("/v0/datasources")
        .query(&[
            ("name", "from_query"),
            ("schema", "a Int32, b String"),
            ("engine_sorting_key", "a"),
        ])
        .send()
        .await
        .unwrap();
    let created = ok_json(response).await;
    assert_eq!(
        column_types(&created["datasource"]),
        pairs(&[("a", "Int32"), ("b", "String")])
    );
    assert_eq!(created["datasource"]["engine"]["sorting_key"], "a");

    // Get by name and by id; the list has both with their statistics.
    let by_name = ok_json(api.get("/v0/datasources/events").send().await.unwrap()).await;
    assert_eq!(by_name["id"], id.as_str());
    assert_eq!(by_name["statistics"]["row_count"], json!(2));
    let by_id = ok_json(
        api.get(&format!("/v0/datasources/{id}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(by_id["name"], "events");
    let listed = ok_json(api.get("/v0/datasources").send().await.unwrap()).await;
    let names: Vec<&str> = listed["datasources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{listed}");
    assert!(
        names.contains(&"events") && names.contains(&"from_query"),
        "{names:?}"
    );
    let events = listed["datasources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "events")
        .unwrap();
    assert_eq!(events["statistics"]["row_count"], json!(2));

    // A second create of the same name: 409, and the first one is untouched.
    let message = error(
        api.post("/v0/datasources")
            .form(&cli_create_form("events"))
            .send()
            .await
            .unwrap(),
        409,
    )
    .await;
    assert!(message.contains("events"), "{message}");
    assert_eq!(api.count("events").await, 2);

    // Unknown data sources: 404 everywhere.
    for response in [
        api.get("/v0/datasources/nope").send().await.unwrap(),
        api.get("/v0/datasources/t_00000000000000000000000000000000")
            .send()
            .await
            .unwrap(),
        api.put("/v0/datasources/nope?name=other")
            .send()
            .await
            .unwrap(),
        api.delete("/v0/datasources/nope").send().await.unwrap(),
        api.post("/v0/datasources/nope/truncate")
            .send()
            .await
            .unwrap(),
        api.post("/v0/datasources/nope/alter")
            .form(&[("description", "x")])
            .send()
            .await
            .unwrap(),
    ] {
        let message = error(response, 404).await;
        assert!(message.contains("not found"), "{message}");
    }

    // Invalid schemas, types, engines, names: 400, and nothing is created.
    let invalid: Vec<Vec<(&str, &str)>> = vec![
        vec![("name", "bad_type"), ("schema", "a Int3")],
        vec![("name", "bad_type2"), ("schema", "a Strin")],
        vec![("name", "bad_syntax"), ("schema", "a Int32 b String")],
        vec![("name", "bad_syntax2"), ("schema", "(a Int32")],
        vec![("name", "bad_empty"), ("schema", "")],
        vec![
            ("name", "bad_engine"),
            ("schema", "a Int32"),
            ("engine", "Log"),
        ],
        vec![
            ("name", "bad_engine2"),
            ("schema", "a Int32"),
            ("engine", "File(CSV, '/etc/passwd')"),
        ],
        vec![
            ("name", "bad_collapsing"),
            ("schema", "a Int32"),
            ("engine", "CollapsingMergeTree"),
        ],
        vec![
            ("name", "bad_key"),
            ("schema", "a Int32"),
            ("engine_sorting_key", "missing_column"),
        ],
        // A DEFAULT runs on every insert: it may not read server files, URLs or other tables.
        vec![
            ("name", "bad_default"),
            ("schema", "a Int32, d String DEFAULT file('/etc/hostname')"),
        ],
        vec![
            ("name", "bad_default2"),
            (
                "schema",
                "a Int32, d String DEFAULT url('http://127.0.0.1:1/')",
            ),
        ],
        vec![
            ("name", "bad_default3"),
            ("schema", "a Int32, d String DEFAULT (SELECT 1)"),
        ],
        vec![("name", "1starts_with_digit"), ("schema", "a Int32")],
        vec![("name", "has space"), ("schema", "a Int32")],
        vec![("name", "semi;colon"), ("schema", "a Int32")],
        vec![("name", "x_quarantine"), ("schema", "a Int32")],
        vec![("schema", "a Int32")],
    ];
    for form in &invalid {
        let response = api.post("/v0/datasources").form(form).send().await.unwrap();
        error(response, 400).await;
    }

    // Engine settings go into DDL: anything but one expression is refused, never run.
    let injections = [
        ("engine_sorting_key", "a); DROP TABLE x; --"),
        ("engine_sorting_key", "a) SETTINGS storage_policy = 'x"),
        ("engine_sorting_key", "(SELECT 1)"),
        ("engine_sorting_key", "a /* comment */"),
        ("engine_partition_key", "a; DROP DATABASE default"),
        ("engine_partition_key", "a) ENGINE = Log --"),
        ("engine_ttl", "now() -- "),
        ("engine_ttl", "toDate(a) + 1; SELECT 1"),
        ("engine_settings", "index_granularity = 1; DROP TABLE x"),
        ("engine_primary_key", "a)) PARTITION BY (a"),
    ];
    for (setting, value) in injections {
        let form = [
            ("name", "injected"),
            ("schema", "a Int32, d Date"),
            (setting, value),
        ];
        let message = error(
            api.post("/v0/datasources")
                .form(&form)
                .send()
                .await
                .unwrap(),
            400,
        )
        .await;
        assert!(!message.is_empty(), "{setting}={value}");
    }
    let listed = ok_json(api.get("/v0/datasources").send().await.unwrap()).await;
    assert_eq!(
        listed["datasources"].as_array().unwrap().len(),
        2,
        "only the two good ones: {listed}"
    );
    assert_eq!(api.count("events").await, 2);
}

#[tokio::test]
async fn create_from_data_guesses_the_schema() {
    let api = Api::start().await;
    let csv =
        "id,name,price,ts\n1,apple,1.5,2024-01-01 00:00:00\n2,pear,2.25,2024-01-02 10:00:00\n";

    // CSV file in the multipart field `csv`, as `curl -F csv=@file`.
    let reply = ok_json(
        api.post("/v0/datasources?name=fruit")
            .multipart(file_form("csv", csv))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(reply["error"], json!(false), "{reply}");
    assert_eq!(reply["datasource"]["name"], "fruit");
    assert_eq!(reply["quarantine_rows"], json!(0));
    assert_eq!(
        reply["blocks"][0]["process_return"][0]["lines"],
        json!(2),
        "{reply}"
    );
    let types = column_types(&reply["datasource"]);
    let names: Vec<&str> = types.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["id", "name", "price", "ts"]);
    assert!(types[0].1.contains("Int"), "{types:?}");
    assert_eq!(types[1].1, "String");
    assert!(types[2].1.starts_with("Float"), "{types:?}");
    assert!(types[3].1.starts_with("DateTime"), "{types:?}");
    let rows = api
        .rows("SELECT id, name, price FROM fruit ORDER BY id")
        .await;
    assert_eq!(
        rows,
        vec![
            json!({"id": 1, "name": "apple", "price": 1.5}),
            json!({"id": 2, "name": "pear", "price": 2.25})
        ]
    );

    // NDJSON in the field `ndjson`: nested objects become columns with jsonpaths.
    let ndjson = "{\"id\":1,\"user\":{\"name\":\"a\",\"age\":30},\"tags\":[\"x\"],\"ok\":true}\n{\"id\":2,\"user\":{\"name\":\"b\",\"age\":40},\"tags\":[],\"ok\":false}\n";
    let reply = ok_json(
        api.post("/v0/datasources?name=people&format=ndjson")
            .multipart(file_form("ndjson", ndjson))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        reply["blocks"][0]["process_return"][0]["lines"],
        json!(2),
        "{reply}"
    );
    let ds = &reply["datasource"];
    assert_eq!(column(ds, "user_name")["jsonpath"], "$.user.name");
    assert_eq!(column(ds, "user_name")["type"], "String");
    assert!(
        column(ds, "user_age")["type"]
            .as_str()
            .unwrap()
            .contains("Int"),
        "{ds}"
    );
    assert_eq!(column(ds, "id")["jsonpath"], "$.id");
    assert!(
        column(ds, "tags")["type"]
            .as_str()
            .unwrap()
            .starts_with("Array("),
        "{ds}"
    );
    let rows = api
        .rows("SELECT user_name, user_age FROM people ORDER BY id")
        .await;
    assert_eq!(
        rows,
        vec![
            json!({"user_name": "a", "user_age": 30}),
            json!({"user_name": "b", "user_age": 40})
        ]
    );

    // The raw body with format=.
    let reply = ok_json(
        api.post("/v0/datasources?name=raw_csv&format=csv")
            .header("Content-Type", "text/csv")
            .body(csv)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        reply["blocks"][0]["process_return"][0]["lines"],
        json!(2),
        "{reply}"
    );
    let reply = ok_json(
        api.post("/v0/datasources?name=raw_ndjson&format=ndjson")
            .body(ndjson)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        reply["blocks"][0]["process_return"][0]["lines"],
        json!(2),
        "{reply}"
    );
    assert_eq!(api.count("raw_ndjson").await, 2);

    // type_guessing=false: every column is a String.
    let reply = ok_json(
        api.post("/v0/datasources?name=strings&type_guessing=false")
            .multipart(file_form("csv", csv))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        column_types(&reply["datasource"]),
        pairs(&[
            ("id", "String"),
            ("name", "String"),
            ("price", "String"),
            ("ts", "String")
        ])
    );
    assert_eq!(
        api.rows("SELECT price FROM strings ORDER BY id").await,
        vec![json!({"price": "1.5"}), json!({"price": "2.25"})]
    );

    // dialect_delimiter=;
    let reply = ok_json(
        api.post("/v0/datasources?name=semicolons&dialect_delimiter=%3B")
            .multipart(file_form("csv", "a;b\n1;x,y\n2;z\n"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let names: Vec<String> = column_types(&reply["datasource"])
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(reply["blocks"][0]["process_return"][0]["lines"], json!(2));
    assert_eq!(
        api.rows("SELECT b FROM semicolons ORDER BY a").await,
        vec![json!({"b": "x,y"}), json!({"b": "z"})]
    );

    // Creating from data that has no rows to guess from is a 400, not an empty data source.
    error(
        api.post("/v0/datasources?name=nothing&format=ndjson")
            .body("\n\n")
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    error(
        api.get("/v0/datasources/nothing").send().await.unwrap(),
        404,
    )
    .await;
}

#[tokio::test]
async fn append_csv_ndjson_and_parquet_then_replace() {
    let api = Api::start().await;
    let schema =
        "`id` Int64 `json:$.id`, `name` String `json:$.name`, `price` Float64 `json:$.price`";
    ok_json(
        api.post("/v0/datasources")
            .form(&[("name", "products"), ("schema", schema)])
            .send()
            .await
            .unwrap(),
    )
    .await;

    // tb CLI append: name/mode/format in the query string, the file in a multipart field.
    let reply = ok_json(
        api.post("/v0/datasources?name=products&mode=append&format=csv")
            .multipart(file_form("csv", "1,apple,1.5\n2,pear,2.25\n"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(reply["error"], json!(false), "{reply}");
    assert_eq!(reply["datasource"]["name"], "products");
    assert_eq!(reply["quarantine_rows"], json!(0));
    assert_eq!(reply["blocks"][0]["process_return"][0]["lines"], json!(2));

    let reply = ok_json(
        api.post("/v0/datasources?name=products&mode=append&format=ndjson")
            .multipart(file_form("ndjson", "{\"id\":3,\"name\":\"fig\",\"price\":3}\n{\"id\":4,\"name\":\"kiwi\",\"price\":0.5}\n"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        reply["blocks"][0]["process_return"][0]["lines"],
        json!(2),
        "{reply}"
    );

    // A CSV with a header names its columns, in any order.
    let reply = ok_json(
        api.post("/v0/datasources?name=products&mode=append")
            .multipart(file_form("csv", "price,id,name\n9.5,5,plum\n"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        reply["blocks"][0]["process_return"][0]["lines"],
        json!(1),
        "{reply}"
    );
    assert_eq!(
        api.rows("SELECT name, price FROM products WHERE id = 5")
            .await,
        vec![json!({"name": "plum", "price": 9.5})]
    );

    // Parquet made by this same server.
    let parquet_sql = "SELECT toInt64(number + 100) AS id, concat('p', toString(number)) AS name, number / 4 AS price FROM numbers(5) FORMAT Parquet";
    let response = api
        .get("/v0/sql")
        .query(&[("q", parquet_sql)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let parquet = response.bytes().await.unwrap();
    assert!(parquet.starts_with(b"PAR1"), "not Parquet");
    let reply = ok_json(
        api.post("/v0/datasources?name=products&mode=append&format=parquet")
            .multipart(file_form("parquet", parquet.to_vec()))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        reply["blocks"][0]["process_return"][0]["lines"],
        json!(5),
        "{reply}"
    );
    assert_eq!(api.count("products").await, 10);
    let rows = api
        .rows("SELECT name, price FROM products WHERE id >= 100 ORDER BY id")
        .await;
    assert_eq!(rows[4], json!({"name": "p4", "price": 1}));

    // Appending nothing, or in an unknown mode or format, is a 400.
    error(
        api.post("/v0/datasources?name=products&mode=append&format=csv")
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    error(
        api.post("/v0/datasources?name=products&mode=upsert")
            .multipart(file_form("csv", "1,a,1\n"))
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    error(
        api.post("/v0/datasources?name=products&mode=append&format=xml")
            .body("<a/>")
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    // A replace without data is refused before anything is truncated.
    error(
        api.post("/v0/datasources?name=products&mode=replace&format=csv")
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    assert_eq!(api.count("products").await, 10);

    // Replace: the data source keeps its schema, the rows are exactly the new ones.
    let reply = ok_json(
        api.post("/v0/datasources?name=products&mode=replace&format=csv")
            .multipart(file_form("csv", "7,only,7.5\n"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        reply["blocks"][0]["process_return"][0]["lines"],
        json!(1),
        "{reply}"
    );
    assert_eq!(
        api.rows("SELECT * FROM products").await,
        vec![json!({"id": 7, "name": "only", "price": 7.5})]
    );

    // Append to a data source that does not exist yet creates it (Tinybird's append mode does).
    let reply = ok_json(
        api.post("/v0/datasources?name=appended_new&mode=append&format=ndjson")
            .multipart(file_form("ndjson", "{\"k\":\"v\",\"n\":1}\n"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(reply["datasource"]["name"], "appended_new", "{reply}");
    assert_eq!(
        api.rows("SELECT k, n FROM appended_new").await,
        vec![json!({"k": "v", "n": 1})]
    );
}

#[tokio::test]
async fn rename_alter_truncate_and_delete() {
    let api = Api::start().await;
    ok_json(
        api.post("/v0/datasources")
            .form(&[("name", "t1"), ("schema", "a Int32, b String")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    ok_json(
        api.post("/v0/datasources")
            .form(&[("name", "other"), ("schema", "a Int32")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    ok_json(
        api.post("/v0/datasources?name=t1&mode=append")
            .multipart(file_form("csv", "1,x\n2,y\n"))
            .send()
            .await
            .unwrap(),
    )
    .await;

    // Rename keeps the id and the rows; the old name is gone.
    let id = ok_json(api.get("/v0/datasources/t1").send().await.unwrap()).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let renamed = ok_json(api.put("/v0/datasources/t1?name=t2").send().await.unwrap()).await;
    assert_eq!(renamed["name"], "t2");
    assert_eq!(renamed["id"], id.as_str());
    error(api.get("/v0/datasources/t1").send().await.unwrap(), 404).await;
    assert_eq!(api.count("t2").await, 2);
    error(
        api.get("/v0/sql")
            .query(&[("q", "SELECT * FROM t1")])
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    error(
        api.put("/v0/datasources/t2?name=other")
            .send()
            .await
            .unwrap(),
        409,
    )
    .await;
    error(
        api.put("/v0/datasources/t2")
            .query(&[("name", "bad name")])
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    error(
        api.put("/v0/datasources/t2")
            .query(&[("name", "t2_quarantine")])
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    assert_eq!(
        ok_json(
            api.get(&format!("/v0/datasources/{id}"))
                .send()
                .await
                .unwrap()
        )
        .await["name"],
        "t2"
    );

    // Alter with dry=true reports the operation and changes nothing.
    let new_schema = "a Int32, b String, c Nullable(String) `json:$.c`";
    let dry = ok_json(
        api.post("/v0/datasources/t2/alter")
            .form(&[("schema", new_schema), ("dry", "true")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    let operations = dry["operations"].as_array().unwrap();
    assert_eq!(operations.len(), 1, "{dry}");
    assert_eq!(
        operations[0], "ALTER TABLE `t2` ADD COLUMN `c` Nullable(String)",
        "operations name the data source, not the engine's table"
    );
    let now = ok_json(api.get("/v0/datasources/t2").send().await.unwrap()).await;
    assert_eq!(
        column_types(&now),
        pairs(&[("a", "Int32"), ("b", "String")])
    );

    // A failing alter (a TTL the engine refuses) leaves the data source as it was, and may be retried.
    error(
        api.post("/v0/datasources/t2/alter")
            .form(&[
                ("schema", new_schema),
                ("ttl", "toDate(now()) + INTERVAL 1 DAY"),
            ])
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;

    // The real alter: the old columns plus a new one, a description and a TTL.
    let altered = ok_json(
        api.post("/v0/datasources/t2/alter")
            .form(&[
                ("schema", new_schema),
                ("description", "with c"),
                (
                    "ttl",
                    "toDate('2024-01-01') + toIntervalDay(a) + INTERVAL 100 YEAR",
                ),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        column_types(&altered["datasource"]),
        pairs(&[("a", "Int32"), ("b", "String"), ("c", "Nullable(String)")])
    );
    let now = ok_json(api.get("/v0/datasources/t2").send().await.unwrap()).await;
    assert_eq!(now["description"], "with c");
    assert_eq!(column(&now, "c")["jsonpath"], "$.c");
    assert_eq!(column(&now, "c")["nullable"], json!(true));
    assert!(
        now["engine"]["ttl"].as_str().unwrap().contains("100 YEAR"),
        "{now}"
    );
    assert_eq!(
        api.rows("SELECT a, c FROM t2 ORDER BY a").await,
        vec![json!({"a": 1, "c": null}), json!({"a": 2, "c": null})]
    );
    api.events("t2", "{\"a\":3,\"b\":\"z\",\"c\":\"new\"}\n")
        .await;
    assert_eq!(
        api.rows("SELECT c FROM t2 WHERE a = 3").await,
        vec![json!({"c": "new"})]
    );

    // What alter cannot do is a 400.
    error(
        api.post("/v0/datasources/t2/alter")
            .form(&[("schema", "a Int64, b String, c Nullable(String)")])
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    error(
        api.post("/v0/datasources/t2/alter")
            .form(&[("schema", "a Int32, c Nullable(String)")])
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    error(
        api.post("/v0/datasources/t2/alter")
            .form(&[("schema", "a Int32, b String, c Nullable(String), d Strin")])
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    error(
        api.post("/v0/datasources/t2/alter")
            .form(&[("ttl", "a; DROP TABLE x")])
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    let injected = "a Int32, b String, c Nullable(String), d String DEFAULT file('/etc/hostname')";
    error(
        api.post("/v0/datasources/t2/alter")
            .form(&[("schema", injected)])
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    let injected =
        "a Int32, b String, c Nullable(String), d String DEFAULT concat('x', (SELECT 1))";
    error(
        api.post("/v0/datasources/t2/alter")
            .form(&[("schema", injected)])
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    let injected = "a Int32, b String, c Nullable(String), d String DEFAULT 'x'); DROP TABLE y; --";
    error(
        api.post("/v0/datasources/t2/alter")
            .form(&[("schema", injected)])
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    assert_eq!(
        column_types(&ok_json(api.get("/v0/datasources/t2").send().await.unwrap()).await).len(),
        3
    );

    // Truncate empties it and keeps it.
    let response = api
        .post("/v0/datasources/t2/truncate")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 205);
    assert_eq!(api.count("t2").await, 0);
    ok_json(api.get("/v0/datasources/t2").send().await.unwrap()).await;

    // Delete: dry_run reports the dependencies and keeps it; the real one answers 204.
    let dry = ok_json(
        api.delete("/v0/datasources/t2?dry_run=true")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(dry["dependent_pipes"], json!([]), "{dry}");
    ok_json(api.get("/v0/datasources/t2").send().await.unwrap()).await;
    let response = api.delete("/v0/datasources/t2").send().await.unwrap();
    assert_eq!(response.status(), 204);
    assert!(response.bytes().await.unwrap().is_empty());
    error(api.get("/v0/datasources/t2").send().await.unwrap(), 404).await;
    error(
        api.get(&format!("/v0/datasources/{id}"))
            .send()
            .await
            .unwrap(),
        404,
    )
    .await;
    error(
        api.get("/v0/sql")
            .query(&[("q", "SELECT * FROM t2")])
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    error(
        api.get("/v0/sql")
            .query(&[("q", "SELECT * FROM t2_quarantine")])
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    let listed = ok_json(api.get("/v0/datasources").send().await.unwrap()).await;
    assert_eq!(
        listed["datasources"].as_array().unwrap().len(),
        1,
        "{listed}"
    );

    // The name is free again.
    ok_json(
        api.post("/v0/datasources")
            .form(&[("name", "t2"), ("schema", "z String")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(api.count("t2").await, 0);
}

//! The Pipes API as Tinybird documents it, black-box against a real `roost local`: pipes created
//! the way `tb push` sends them (JSON) and the way the docs' `curl -d name=&sql=` does, listed,
//! read by name and id, renamed, replaced with `force`, deleted; nodes appended, changed and
//! removed; endpoints published and unpublished; and the endpoints themselves: formats, typed
//! template parameters and their errors, `q=` over the result, nodes reading nodes, pipes reading
//! pipes, cycles, explain and the OpenAPI description.

use std::time::Duration;

use reqwest::header::CONTENT_TYPE;
use reqwest::{Client, RequestBuilder, StatusCode};
use roost_testkit::RoostLocal;
use roost_testkit::http::{content_type, error, json, ok_json};
use serde_json::{Value, json};

/// A running server, a client and the workspace admin token.
struct Api {
    roost: RoostLocal,
    http: Client,
    token: String,
}

impl Api {
    async fn start() -> Api {
        let roost = RoostLocal::start(env!("CARGO_BIN_EXE_roost"))
            .await
            .expect("roost local starts");
        let token = roost.tokens.workspace_admin.clone();
        assert!(
            !token.is_empty(),
            "GET /tokens gave no workspace admin token"
        );
        let http = Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        Api { roost, http, token }
    }

    fn url(&self, path: &str) -> String {
        self.roost.url(path)
    }

    fn get(&self, path: &str) -> RequestBuilder {
        self.http.get(self.url(path)).bearer_auth(&self.token)
    }

    fn post(&self, path: &str) -> RequestBuilder {
        self.http.post(self.url(path)).bearer_auth(&self.token)
    }

    fn put(&self, path: &str) -> RequestBuilder {
        self.http.put(self.url(path)).bearer_auth(&self.token)
    }

    fn delete(&self, path: &str) -> RequestBuilder {
        self.http.delete(self.url(path)).bearer_auth(&self.token)
    }

    /// `POST /v0/pipes` with the JSON body `tb push` sends.
    async fn push(&self, pipe: &Value) -> Value {
        ok_json(self.post("/v0/pipes").json(pipe).send().await.unwrap()).await
    }

    /// The `data` of `GET /v0/pipes/<pipe>.json` with `params`.
    async fn endpoint(&self, pipe: &str, params: &[(&str, &str)]) -> Vec<Value> {
        let body = ok_json(
            self.get(&format!("/v0/pipes/{pipe}.json"))
                .query(params)
                .send()
                .await
                .unwrap(),
        )
        .await;
        body["data"]
            .as_array()
            .unwrap_or_else(|| panic!("no data in {body}"))
            .clone()
    }

    /// The `id` column of an endpoint's rows.
    async fn ids(&self, pipe: &str, params: &[(&str, &str)]) -> Vec<i64> {
        self.endpoint(pipe, params)
            .await
            .iter()
            .map(|row| {
                row["id"]
                    .as_i64()
                    .unwrap_or_else(|| panic!("no id in {row}"))
            })
            .collect()
    }
}

/// The `events` data source with five rows.
async fn events(api: &Api) {
    let schema = "`id` Int32 `json:$.id`, `country` String `json:$.country`, `ts` DateTime `json:$.ts`, \
                  `amount` Float64 `json:$.amount`, `active` UInt8 `json:$.active`";
    ok_json(
        api.post("/v0/datasources")
            .form(&[
                ("name", "events"),
                ("schema", schema),
                ("engine_sorting_key", "id"),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await;
    let rows = [
        r#"{"id":1,"country":"ES","ts":"2024-01-01 10:00:00","amount":10.5,"active":1}"#,
        r#"{"id":2,"country":"ES","ts":"2024-01-02 10:00:00","amount":20,"active":0}"#,
        r#"{"id":3,"country":"FR","ts":"2024-01-03 10:00:00","amount":30,"active":1}"#,
        r#"{"id":4,"country":"DE","ts":"2024-01-04 10:00:00","amount":40,"active":1}"#,
        r#"{"id":5,"country":"FR","ts":"2024-01-05 10:00:00","amount":50,"active":0}"#,
    ];
    let answer = ok_json(
        api.post("/v0/events")
            .query(&[("name", "events"), ("wait", "true")])
            .body(rows.join("\n"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(answer["successful_rows"], json!(5), "{answer}");
}

/// The parameter named `name` in a `params` list.
fn param<'a>(params: &'a Value, name: &str) -> &'a Value {
    params
        .as_array()
        .unwrap_or_else(|| panic!("params is not a list: {params}"))
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no parameter {name} in {params}"))
}

fn node_names(pipe: &Value) -> Vec<String> {
    pipe["nodes"]
        .as_array()
        .unwrap_or_else(|| panic!("no nodes in {pipe}"))
        .iter()
        .map(|n| n["name"].as_str().unwrap().to_string())
        .collect()
}

/// A searchable endpoint with one parameter of every kind the tests need.
const SEARCH: &str = r#"%
SELECT id, country, amount FROM events
WHERE 1
{% if defined(country) %} AND country = {{ String(country, description="Country code") }} {% end %}
AND id >= {{ Int32(min_id, 1, description="Smallest id") }}
{% if defined(ids) %} AND id IN {{ Array(ids, 'Int32') }} {% end %}
{% if defined(since) %} AND ts >= {{ DateTime(since) }} {% end %}
{% if Boolean(only_active, False) %} AND active = 1 {% end %}
ORDER BY id"#;

async fn search_pipe(api: &Api) -> Value {
    api.push(&json!({
        "name": "search",
        "description": "Events by country, id and date",
        "nodes": [{ "name": "search_node", "sql": SEARCH, "type": "endpoint", "description": "Filters" }],
    }))
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn pipes_are_created_listed_read_renamed_and_deleted() {
    let api = Api::start().await;
    events(&api).await;

    // What `tb push` sends: JSON with typed nodes.
    let created = api
        .push(&json!({
            "name": "sales",
            "description": "Sales per country",
            "nodes": [
                { "name": "paid", "sql": "SELECT * FROM events WHERE amount > 0", "type": "standard", "description": "Paid orders" },
                {
                    "name": "per_country",
                    "sql": "%\nSELECT country, sum(amount) AS total FROM paid\nWHERE country != {{ String(skip, 'XX', description=\"Country to leave out\") }}\nGROUP BY country ORDER BY country\nLIMIT {{ Int32(limit, 10, description=\"Rows\", required=False) }}",
                    "type": "endpoint",
                    "description": "Totals",
                },
            ],
        }))
        .await;
    assert_eq!(created["name"], "sales");
    assert_eq!(created["description"], "Sales per country");
    assert_eq!(node_names(&created), ["paid", "per_country"]);
    let nodes = created["nodes"].as_array().unwrap();
    assert_eq!(nodes[0]["type"], "standard", "{created}");
    assert_eq!(nodes[1]["type"], "endpoint", "{created}");
    assert_eq!(nodes[0]["description"], "Paid orders");
    assert_eq!(nodes[0]["sql"], "SELECT * FROM events WHERE amount > 0");
    assert_eq!(
        created["endpoint"], nodes[1]["id"],
        "the endpoint is the published node's id"
    );
    assert_eq!(created["type"], "endpoint");
    let id = created["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("t_"), "{id}");

    // The parameters, as Tinybird lists them: defaults keep their JSON type.
    let skip = param(&created["params"], "skip");
    assert_eq!(
        skip,
        &json!({"name": "skip", "type": "String", "default": "XX", "description": "Country to leave out", "required": false})
    );
    let limit = param(&created["params"], "limit");
    assert_eq!(
        limit,
        &json!({"name": "limit", "type": "Int32", "default": 10, "description": "Rows", "required": false})
    );
    assert_eq!(param(&nodes[1]["params"], "limit")["type"], "Int32");

    // Listed, and read by name and by id.
    let listed = ok_json(api.get("/v0/pipes").send().await.unwrap()).await;
    let names: Vec<&str> = listed["pipes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["sales"], "{listed}");
    assert_eq!(listed["pipes"][0]["id"], id.as_str());
    let by_name = ok_json(api.get("/v0/pipes/sales").send().await.unwrap()).await;
    let by_id = ok_json(api.get(&format!("/v0/pipes/{id}")).send().await.unwrap()).await;
    for pipe in [&by_name, &by_id] {
        assert_eq!(pipe["id"], id.as_str());
        assert_eq!(pipe["name"], "sales");
        assert_eq!(node_names(pipe), ["paid", "per_country"]);
        assert_eq!(pipe["endpoint"], nodes[1]["id"]);
        assert_eq!(pipe["nodes"][1]["type"], "endpoint");
        assert_eq!(param(&pipe["params"], "limit")["default"], json!(10));
    }
    assert_eq!(
        api.endpoint("sales", &[("skip", "FR")]).await,
        [
            json!({"country": "DE", "total": 40}),
            json!({"country": "ES", "total": 30.5})
        ]
    );

    // Renamed: the old name is gone, the endpoint answers under the new one.
    let renamed = ok_json(
        api.put("/v0/pipes/sales")
            .query(&[("name", "sales_v2"), ("description", "Renamed")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(renamed["name"], "sales_v2");
    assert_eq!(renamed["id"], id.as_str());
    assert_eq!(renamed["description"], "Renamed");
    error(api.get("/v0/pipes/sales").send().await.unwrap(), 404).await;
    error(api.get("/v0/pipes/sales.json").send().await.unwrap(), 404).await;
    assert_eq!(api.endpoint("sales_v2", &[("limit", "1")]).await.len(), 1);

    // Deleted: 204 with no body, then 404 everywhere.
    let deleted = api.delete("/v0/pipes/sales_v2").send().await.unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    error(api.get("/v0/pipes/sales_v2").send().await.unwrap(), 404).await;
    error(
        api.get(&format!("/v0/pipes/{id}")).send().await.unwrap(),
        404,
    )
    .await;
    error(
        api.get("/v0/pipes/sales_v2.json").send().await.unwrap(),
        404,
    )
    .await;
    error(api.delete("/v0/pipes/sales_v2").send().await.unwrap(), 404).await;
    let listed = ok_json(api.get("/v0/pipes").send().await.unwrap()).await;
    assert_eq!(listed["pipes"], json!([]));

    // The docs' way: `curl -d "name=events_per_day&sql=select * from app_events"`, and the same
    // parameters in the query string.
    let form = ok_json(
        api.post("/v0/pipes")
            .form(&[("name", "all_events"), ("sql", "select * from events")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(form["name"], "all_events");
    assert_eq!(node_names(&form), ["all_events_0"]);
    assert_eq!(form["nodes"][0]["sql"], "select * from events");
    let query = ok_json(
        api.post("/v0/pipes")
            .query(&[
                ("name", "by_query"),
                ("sql", "SELECT count() AS n FROM events"),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(node_names(&query), ["by_query_0"]);

    // Untyped nodes publish nothing: no endpoint, and its URL is a JSON 404.
    assert_eq!(form["endpoint"], Value::Null, "{form}");
    assert_eq!(form["nodes"][0]["type"], "standard");
    let message = error(
        api.get("/v0/pipes/all_events.json").send().await.unwrap(),
        404,
    )
    .await;
    assert!(message.contains("endpoint"), "{message}");
    error(
        api.get("/v0/pipes/all_events.csv").send().await.unwrap(),
        404,
    )
    .await;
    error(
        api.get("/v0/pipes/no_such_pipe.json").send().await.unwrap(),
        404,
    )
    .await;
    error(api.get("/v0/pipes/no_such_pipe").send().await.unwrap(), 404).await;

    // A pipe needs a name, and a valid one.
    error(
        api.post("/v0/pipes")
            .json(&json!({"nodes": []}))
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    error(
        api.post("/v0/pipes")
            .query(&[("name", "1bad name"), ("sql", "SELECT 1")])
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn names_conflict_unless_forced() {
    let api = Api::start().await;
    events(&api).await;
    let first = api
        .push(&json!({"name": "report", "nodes": [{"name": "n", "sql": "SELECT 1 AS v", "type": "endpoint"}]}))
        .await;

    // The same name again: 409, and the pipe is untouched.
    let again = json!({"name": "report", "nodes": [{"name": "n", "sql": "SELECT 2 AS v", "type": "endpoint"}]});
    error(
        api.post("/v0/pipes").json(&again).send().await.unwrap(),
        409,
    )
    .await;
    error(
        api.post("/v0/pipes")
            .query(&[("name", "report"), ("sql", "SELECT 3 AS v")])
            .send()
            .await
            .unwrap(),
        409,
    )
    .await;
    assert_eq!(api.endpoint("report", &[]).await, [json!({"v": 1})]);

    // A pipe may not take a data source's name, by creation or by rename.
    let message = error(
        api.post("/v0/pipes")
            .json(&json!({"name": "events", "nodes": [{"name": "n", "sql": "SELECT 1"}]}))
            .send()
            .await
            .unwrap(),
        409,
    )
    .await;
    assert!(message.contains("events"), "{message}");
    error(
        api.put("/v0/pipes/report")
            .query(&[("name", "events")])
            .send()
            .await
            .unwrap(),
        409,
    )
    .await;
    api.push(&json!({"name": "other", "nodes": [{"name": "n", "sql": "SELECT 1"}]}))
        .await;
    error(
        api.put("/v0/pipes/report")
            .query(&[("name", "other")])
            .send()
            .await
            .unwrap(),
        409,
    )
    .await;
    // The namespace is shared the other way round too: no data source takes a pipe's name.
    let message = error(
        api.post("/v0/datasources")
            .form(&[("name", "report"), ("schema", "`a` Int32")])
            .send()
            .await
            .unwrap(),
        409,
    )
    .await;
    assert!(message.contains("report"), "{message}");
    error(
        api.put("/v0/datasources/events")
            .query(&[("name", "report")])
            .send()
            .await
            .unwrap(),
        409,
    )
    .await;
    ok_json(api.get("/v0/datasources/events").send().await.unwrap()).await;

    // force=true replaces the pipe: same id, new nodes, new result.
    let replaced = ok_json(
        api.post("/v0/pipes")
            .query(&[("force", "true")])
            .json(&json!({"name": "report", "nodes": [
                {"name": "base", "sql": "SELECT 2 AS v"},
                {"name": "top", "sql": "SELECT v * 10 AS v FROM base", "type": "endpoint"},
            ]}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(replaced["id"], first["id"]);
    assert_eq!(node_names(&replaced), ["base", "top"]);
    assert_eq!(api.endpoint("report", &[]).await, [json!({"v": 20})]);
    // A forced push that fails (a template that cannot parse) leaves the pipe as it was.
    let broken = json!({"name": "report", "nodes": [{"name": "n", "sql": "%\nSELECT {{ Int32(v, 1) AS v", "type": "endpoint"}]});
    error(
        api.post("/v0/pipes")
            .query(&[("force", "true")])
            .json(&broken)
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    let kept = ok_json(api.get("/v0/pipes/report").send().await.unwrap()).await;
    assert_eq!(kept["id"], first["id"]);
    assert_eq!(node_names(&kept), ["base", "top"]);
    assert_eq!(api.endpoint("report", &[]).await, [json!({"v": 20})]);
    // A new pipe that fails is not created at all.
    let broken_new =
        json!({"name": "fresh", "nodes": [{"name": "n", "sql": "%\nSELECT {{ Int32(v, 1) AS v"}]});
    error(
        api.post("/v0/pipes")
            .json(&broken_new)
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    error(api.get("/v0/pipes/fresh").send().await.unwrap(), 404).await;
    // Forcing a data source's name is still a conflict.
    error(
        api.post("/v0/pipes")
            .query(&[("force", "true")])
            .json(&json!({"name": "events", "nodes": [{"name": "n", "sql": "SELECT 1"}]}))
            .send()
            .await
            .unwrap(),
        409,
    )
    .await;
    let data_source = ok_json(api.get("/v0/datasources/events").send().await.unwrap()).await;
    assert_eq!(data_source["name"], "events");
}

#[tokio::test(flavor = "multi_thread")]
async fn nodes_are_appended_changed_published_and_removed() {
    let api = Api::start().await;
    events(&api).await;
    ok_json(
        api.post("/v0/pipes")
            .query(&[("name", "daily"), ("sql", "SELECT * FROM events")])
            .send()
            .await
            .unwrap(),
    )
    .await;

    // Appending: the SQL is the raw body and `name` a parameter, as the docs' `curl -d` sends it
    // (a form content type) and as a plain body.
    let appended = ok_json(
        api.post("/v0/pipes/daily/nodes")
            .query(&[("name", "per_country"), ("description", "Totals")])
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body("SELECT country, sum(amount) AS total FROM daily_0 GROUP BY country ORDER BY country")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(appended["name"], "per_country");
    assert_eq!(appended["description"], "Totals");
    assert_eq!(
        appended["sql"],
        "SELECT country, sum(amount) AS total FROM daily_0 GROUP BY country ORDER BY country"
    );
    let unnamed = ok_json(
        api.post("/v0/pipes/daily/nodes")
            .body("SELECT count() AS n FROM per_country")
            .send()
            .await
            .unwrap(),
    )
    .await;
    let unnamed_name = unnamed["name"].as_str().unwrap().to_string();
    assert!(unnamed_name.starts_with("daily_"), "{unnamed}");
    let pipe = ok_json(api.get("/v0/pipes/daily").send().await.unwrap()).await;
    assert_eq!(
        node_names(&pipe),
        ["daily_0", "per_country", unnamed_name.as_str()]
    );
    // A node name is unique in its pipe, and a node needs SQL.
    let duplicate = api
        .post("/v0/pipes/daily/nodes")
        .query(&[("name", "per_country")])
        .body("SELECT 1")
        .send()
        .await
        .unwrap();
    let (status, _) = json(duplicate).await;
    assert!(status.is_client_error(), "{status}");
    error(
        api.post("/v0/pipes/daily/nodes")
            .query(&[("name", "empty")])
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    error(
        api.post("/v0/pipes/nope/nodes")
            .body("SELECT 1")
            .send()
            .await
            .unwrap(),
        404,
    )
    .await;

    // Nothing published yet.
    error(api.get("/v0/pipes/daily.json").send().await.unwrap(), 404).await;

    // Publishing a node makes it the endpoint; the node reads an earlier node.
    let published = ok_json(
        api.post("/v0/pipes/daily/nodes/per_country/endpoint")
            .send()
            .await
            .unwrap(),
    )
    .await;
    let per_country_id = published["nodes"][1]["id"].clone();
    assert_eq!(published["endpoint"], per_country_id, "{published}");
    assert_eq!(published["nodes"][1]["type"], "endpoint");
    assert_eq!(
        api.endpoint("daily", &[]).await,
        [
            json!({"country": "DE", "total": 40}),
            json!({"country": "ES", "total": 30.5}),
            json!({"country": "FR", "total": 80}),
        ]
    );
    // A wrong node id is a 400, as documented; a missing pipe a 404.
    error(
        api.post("/v0/pipes/daily/nodes/missing/endpoint")
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    error(
        api.post("/v0/pipes/nope/nodes/per_country/endpoint")
            .send()
            .await
            .unwrap(),
        404,
    )
    .await;

    // Changing the published node's SQL changes the endpoint.
    let changed = ok_json(
        api.put("/v0/pipes/daily/nodes/per_country")
            .body(
                "SELECT country, count() AS orders FROM daily_0 GROUP BY country ORDER BY country",
            )
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        changed["sql"],
        "SELECT country, count() AS orders FROM daily_0 GROUP BY country ORDER BY country"
    );
    assert_eq!(
        api.endpoint("daily", &[]).await[2],
        json!({"country": "FR", "orders": 2})
    );
    // Renaming and describing a node.
    let renamed = ok_json(
        api.put("/v0/pipes/daily/nodes/per_country")
            .query(&[("name", "orders_per_country"), ("description", "Orders")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(renamed["name"], "orders_per_country");
    assert_eq!(renamed["description"], "Orders");
    assert_eq!(renamed["id"], per_country_id);
    error(
        api.put("/v0/pipes/daily/nodes/missing")
            .body("SELECT 1")
            .send()
            .await
            .unwrap(),
        404,
    )
    .await;

    // Unpublishing: no endpoint any more.
    error(
        api.delete("/v0/pipes/daily/nodes/missing/endpoint")
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    let unpublished = ok_json(
        api.delete("/v0/pipes/daily/nodes/orders_per_country/endpoint")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(unpublished["endpoint"], Value::Null, "{unpublished}");
    assert!(
        unpublished["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["type"] != "endpoint")
    );
    error(api.get("/v0/pipes/daily.json").send().await.unwrap(), 404).await;

    // Removing nodes: 204, then gone; removing the published node unpublishes.
    let removed = api
        .delete(&format!("/v0/pipes/daily/nodes/{unnamed_name}"))
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status(), StatusCode::NO_CONTENT);
    error(
        api.delete(&format!("/v0/pipes/daily/nodes/{unnamed_name}"))
            .send()
            .await
            .unwrap(),
        404,
    )
    .await;
    ok_json(
        api.post("/v0/pipes/daily/nodes/orders_per_country/endpoint")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(api.endpoint("daily", &[]).await.len(), 3);
    let removed = api
        .delete("/v0/pipes/daily/nodes/orders_per_country")
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status(), StatusCode::NO_CONTENT);
    let pipe = ok_json(api.get("/v0/pipes/daily").send().await.unwrap()).await;
    assert_eq!(node_names(&pipe), ["daily_0"]);
    assert_eq!(pipe["endpoint"], Value::Null);
    error(api.get("/v0/pipes/daily.json").send().await.unwrap(), 404).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn endpoints_answer_in_every_format_with_typed_parameters() {
    let api = Api::start().await;
    events(&api).await;
    let pipe = search_pipe(&api).await;

    // The declared parameters, typed, with defaults and descriptions.
    let params = &pipe["params"];
    assert_eq!(
        param(params, "country"),
        &json!({"name": "country", "type": "String", "default": null, "description": "Country code", "required": false})
    );
    assert_eq!(param(params, "min_id")["type"], "Int32");
    assert_eq!(param(params, "min_id")["default"], json!(1));
    assert_eq!(param(params, "ids")["type"], "Array(Int32)");
    assert_eq!(param(params, "since")["type"], "DateTime");
    assert_eq!(param(params, "only_active")["type"], "Boolean");

    // JSON: the same shape as /v0/sql.
    let body = ok_json(api.get("/v0/pipes/search.json").send().await.unwrap()).await;
    assert_eq!(
        body["meta"],
        json!([{"name": "id", "type": "Int32"}, {"name": "country", "type": "String"}, {"name": "amount", "type": "Float64"}])
    );
    assert_eq!(body["rows"], json!(5));
    assert_eq!(
        body["data"][0],
        json!({"id": 1, "country": "ES", "amount": 10.5})
    );
    let statistics = &body["statistics"];
    assert!(
        statistics["elapsed"].as_f64().unwrap() >= 0.0,
        "{statistics}"
    );
    assert!(
        statistics["rows_read"].as_u64().unwrap() >= 5,
        "{statistics}"
    );
    assert!(
        statistics["bytes_read"].as_u64().unwrap() > 0,
        "{statistics}"
    );

    // CSV with a header, NDJSON, Parquet.
    let csv = api
        .get("/v0/pipes/search.csv")
        .query(&[("country", "FR")])
        .send()
        .await
        .unwrap();
    assert_eq!(csv.status(), StatusCode::OK);
    assert!(
        content_type(&csv).starts_with("text/csv"),
        "{}",
        content_type(&csv)
    );
    assert_eq!(
        csv.text().await.unwrap(),
        "\"id\",\"country\",\"amount\"\n3,\"FR\",30\n5,\"FR\",50\n"
    );
    let ndjson = api
        .get("/v0/pipes/search.ndjson")
        .query(&[("country", "FR")])
        .send()
        .await
        .unwrap();
    assert_eq!(ndjson.status(), StatusCode::OK);
    assert!(
        content_type(&ndjson).contains("ndjson"),
        "{}",
        content_type(&ndjson)
    );
    let lines: Vec<Value> = ndjson
        .text()
        .await
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(
        lines,
        [
            json!({"id": 3, "country": "FR", "amount": 30}),
            json!({"id": 5, "country": "FR", "amount": 50})
        ]
    );
    let parquet = api.get("/v0/pipes/search.parquet").send().await.unwrap();
    assert_eq!(parquet.status(), StatusCode::OK);
    let bytes = parquet.bytes().await.unwrap();
    assert!(
        bytes.starts_with(b"PAR1") && bytes.ends_with(b"PAR1"),
        "not Parquet: {} bytes",
        bytes.len()
    );

    // POST with form parameters.
    let posted = ok_json(
        api.post("/v0/pipes/search.json")
            .form(&[("country", "FR"), ("min_id", "4")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        posted["data"],
        json!([{"id": 5, "country": "FR", "amount": 50}])
    );

    // Typed parameters.
    assert_eq!(api.ids("search", &[("country", "ES")]).await, [1, 2]);
    assert_eq!(api.ids("search", &[("min_id", "3")]).await, [3, 4, 5]);
    assert_eq!(
        api.ids("search", &[("ids", "1"), ("ids", "4")]).await,
        [1, 4]
    );
    assert_eq!(api.ids("search", &[("ids", "2,5")]).await, [2, 5]);
    assert_eq!(
        api.ids("search", &[("since", "2024-01-03 00:00:00")]).await,
        [3, 4, 5]
    );
    assert_eq!(
        api.ids("search", &[("only_active", "true")]).await,
        [1, 3, 4]
    );
    assert_eq!(
        api.ids("search", &[("only_active", "false")]).await,
        [1, 2, 3, 4, 5]
    );
    assert_eq!(
        api.ids("search", &[("only_active", "1"), ("country", "FR")])
            .await,
        [3]
    );

    // A value that does not fit its type: 400 naming the parameter.
    for (name, value) in [
        ("min_id", "abc"),
        ("min_id", "99999999999"),
        ("ids", "1,x"),
        ("since", "yesterday"),
    ] {
        let message = error(
            api.get("/v0/pipes/search.json")
                .query(&[(name, value)])
                .send()
                .await
                .unwrap(),
            400,
        )
        .await;
        assert!(message.contains(name), "{name}={value}: {message}");
    }
    let message = error(
        api.get("/v0/pipes/search.json")
            .query(&[("ids", "1"), ("ids", "two")])
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    assert!(message.contains("ids"), "{message}");

    // A required parameter that is missing: 400 naming it.
    api.push(&json!({"name": "by_country", "nodes": [{
        "name": "n",
        "sql": "%\nSELECT id FROM events WHERE country = {{ String(country, required=True) }} ORDER BY id",
        "type": "endpoint",
    }]}))
    .await;
    let by_country = ok_json(api.get("/v0/pipes/by_country").send().await.unwrap()).await;
    assert_eq!(
        param(&by_country["params"], "country")["required"],
        json!(true)
    );
    let message = error(
        api.get("/v0/pipes/by_country.json").send().await.unwrap(),
        400,
    )
    .await;
    assert!(message.contains("country"), "{message}");
    assert_eq!(api.ids("by_country", &[("country", "DE")]).await, [4]);

    // q= runs SQL over the endpoint's result, named `_`.
    let counted = ok_json(
        api.get("/v0/pipes/search.json")
            .query(&[("q", "SELECT count() FROM _"), ("country", "ES")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(counted["data"], json!([{"count()": 2}]));
    let summed = ok_json(
        api.get("/v0/pipes/search.json")
            .query(&[(
                "q",
                "SELECT country, sum(amount) AS s FROM _ GROUP BY country ORDER BY s DESC LIMIT 1",
            )])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(summed["data"], json!([{"country": "FR", "s": 80}]));
    let csv = api
        .get("/v0/pipes/search.csv")
        .query(&[("q", "SELECT max(id) AS m FROM _")])
        .send()
        .await
        .unwrap();
    assert_eq!(csv.text().await.unwrap(), "\"m\"\n5\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn pipes_read_other_pipes_and_cycles_are_refused() {
    let api = Api::start().await;
    events(&api).await;
    search_pipe(&api).await;

    // A pipe reading another pipe's endpoint; the request's parameters reach the inner pipe.
    api.push(&json!({"name": "totals", "nodes": [
        {"name": "sum_node", "sql": "SELECT count() AS orders, sum(amount) AS total FROM search", "type": "endpoint"},
    ]}))
    .await;
    assert_eq!(
        api.endpoint("totals", &[]).await,
        [json!({"orders": 5, "total": 150.5})]
    );
    assert_eq!(
        api.endpoint("totals", &[("country", "ES")]).await,
        [json!({"orders": 2, "total": 30.5})]
    );
    assert_eq!(
        api.endpoint("totals", &[("ids", "3"), ("ids", "4")]).await,
        [json!({"orders": 2, "total": 70})]
    );
    // Bad parameters of the inner pipe are still the caller's 400.
    let message = error(
        api.get("/v0/pipes/totals.json")
            .query(&[("min_id", "x")])
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    assert!(message.contains("min_id"), "{message}");

    // Only published endpoints can be read: an unpublished pipe is refused.
    api.push(&json!({"name": "draft", "nodes": [{"name": "d", "sql": "SELECT 1 AS one"}]}))
        .await;
    api.push(&json!({"name": "reads_draft", "nodes": [{"name": "r", "sql": "SELECT * FROM draft", "type": "endpoint"}]}))
        .await;
    error(
        api.get("/v0/pipes/reads_draft.json").send().await.unwrap(),
        400,
    )
    .await;

    // Two pipes reading each other: a 400, quickly, not a hang.
    api.push(&json!({"name": "ping", "nodes": [{"name": "p", "sql": "SELECT * FROM pong", "type": "endpoint"}]}))
        .await;
    api.push(&json!({"name": "pong", "nodes": [{"name": "p", "sql": "SELECT * FROM ping", "type": "endpoint"}]}))
        .await;
    for pipe in ["ping", "pong"] {
        let started = std::time::Instant::now();
        let message = error(
            api.get(&format!("/v0/pipes/{pipe}.json"))
                .send()
                .await
                .unwrap(),
            400,
        )
        .await;
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{pipe} took {:?}",
            started.elapsed()
        );
        assert!(
            message.contains("ping") || message.contains("pong"),
            "{message}"
        );
    }
    // A pipe reading itself.
    api.push(&json!({"name": "selfish", "nodes": [{"name": "s", "sql": "SELECT * FROM selfish", "type": "endpoint"}]}))
        .await;
    error(api.get("/v0/pipes/selfish.json").send().await.unwrap(), 400).await;
    assert!(
        api.get("/v0/pipes/totals.json")
            .send()
            .await
            .unwrap()
            .status()
            .is_success()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn explain_and_openapi_describe_endpoints() {
    let api = Api::start().await;
    events(&api).await;
    search_pipe(&api).await;
    api.push(&json!({"name": "unpublished", "nodes": [{"name": "u", "sql": "%\nSELECT {{ Int32(hidden, 1) }} AS h"}]}))
        .await;

    // Explain: the SQL that runs, with the parameters in it, and ClickHouse's plan.
    let explained = ok_json(
        api.get("/v0/pipes/search/explain")
            .query(&[("country", "ES"), ("min_id", "2")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    let sql = explained["sql"]
        .as_str()
        .unwrap_or_else(|| panic!("no sql: {explained}"));
    assert!(sql.contains("'ES'") && sql.contains("events"), "{sql}");
    let table = ok_json(api.get("/v0/datasources/events").send().await.unwrap()).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        !sql.contains("w_") && !sql.contains(&table),
        "internal names leak: {sql}"
    );
    let plan = explained["plan"]
        .as_str()
        .unwrap_or_else(|| panic!("no plan: {explained}"));
    assert!(!plan.trim().is_empty(), "{explained}");
    error(
        api.get("/v0/pipes/search/explain")
            .query(&[("min_id", "x")])
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    error(api.get("/v0/pipes/nope/explain").send().await.unwrap(), 404).await;

    // OpenAPI 3: every published endpoint with its parameters.
    let spec = ok_json(api.get("/v0/pipes/openapi.json").send().await.unwrap()).await;
    assert!(
        spec["openapi"].as_str().unwrap().starts_with("3."),
        "{spec}"
    );
    assert!(
        spec["info"]["title"].is_string() && spec["info"]["version"].is_string(),
        "{spec}"
    );
    let paths = spec["paths"].as_object().unwrap();
    let operation = &paths
        .get("/pipes/search.json")
        .unwrap_or_else(|| panic!("no /pipes/search.json in {spec}"))["get"];
    assert!(operation["responses"]["200"].is_object(), "{operation}");
    let parameters = operation["parameters"].as_array().unwrap();
    let names: Vec<&str> = parameters
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for expected in ["country", "min_id", "ids", "since", "only_active"] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    for parameter in parameters {
        assert_eq!(parameter["in"], "query", "{parameter}");
        assert!(parameter["schema"].is_object(), "{parameter}");
    }
    let min_id = parameters.iter().find(|p| p["name"] == "min_id").unwrap();
    assert_eq!(min_id["schema"]["type"], "integer");
    assert_eq!(min_id["schema"]["default"], json!(1));
    assert_eq!(min_id["description"], "Smallest id");
    let ids = parameters.iter().find(|p| p["name"] == "ids").unwrap();
    assert_eq!(ids["schema"]["type"], "array");
    assert_eq!(ids["schema"]["items"]["type"], "integer");
    assert!(
        !paths.keys().any(|path| path.contains("unpublished")),
        "{spec}"
    );
}

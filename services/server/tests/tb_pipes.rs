//! Pipes with the released Tinybird CLI against a real `roost local`: `tb push` of .pipe files with
//! several templated nodes (one reading another pipe), `tb pipe data` with parameters and `--query`,
//! `tb pipe ls`, `tb pipe rm`, and the endpoint in every format over plain HTTP.

use roost_testkit::RoostLocal;
use roost_testkit::tb::{tb, tb_ok};

const DATASOURCE: &str = r#"SCHEMA >
    `timestamp` DateTime `json:$.timestamp`,
    `user_id` String `json:$.user.id`,
    `amount` Float64 `json:$.amount`,
    `country` LowCardinality(String) `json:$.country`

ENGINE "MergeTree"
ENGINE_SORTING_KEY "timestamp"
"#;

const TOP_USERS: &str = r#"DESCRIPTION >
    Users by amount, optionally for one country

NODE filtered
SQL >
    %
    SELECT user_id, amount
    FROM orders
    WHERE 1
    {% if defined(country) %} AND country = {{ String(country, description="Country code") }} {% end %}

NODE endpoint
SQL >
    %
    SELECT user_id, sum(amount) AS total
    FROM filtered
    GROUP BY user_id
    ORDER BY total DESC, user_id
    LIMIT {{ Int32(limit, 10, description="Rows to return") }}
"#;

const BEST_USER: &str = r#"NODE best
SQL >
    SELECT user_id FROM top_users ORDER BY total DESC LIMIT 1
"#;

#[tokio::test(flavor = "multi_thread")]
async fn pipes_work_with_the_tb_cli_and_over_http() {
    let roost = RoostLocal::start(env!("CARGO_BIN_EXE_roost"))
        .await
        .unwrap();
    let project = tempfile::tempdir().unwrap();
    let dir = project.path();
    std::fs::create_dir_all(dir.join("datasources")).unwrap();
    std::fs::create_dir_all(dir.join("pipes")).unwrap();
    std::fs::write(dir.join("datasources/orders.datasource"), DATASOURCE).unwrap();
    std::fs::write(dir.join("pipes/top_users.pipe"), TOP_USERS).unwrap();
    std::fs::write(dir.join("pipes/best_user.pipe"), BEST_USER).unwrap();
    let rows = [
        ("u1", 10.0, "ES"),
        ("u1", 5.0, "ES"),
        ("u2", 30.0, "FR"),
        ("u3", 1.0, "ES"),
    ];
    let ndjson: String = rows
        .iter()
        .map(|(user, amount, country)| {
            format!("{{\"timestamp\":\"2026-01-01 00:00:00\",\"user\":{{\"id\":\"{user}\"}},\"amount\":{amount},\"country\":\"{country}\"}}\n")
        })
        .collect();
    std::fs::write(dir.join("orders.ndjson"), ndjson).unwrap();

    tb_ok(
        dir,
        &[
            "auth",
            "--host",
            &roost.base_url,
            "--token",
            &roost.tokens.workspace_admin,
        ],
    );
    tb_ok(dir, &["push", "datasources/orders.datasource"]);
    tb_ok(dir, &["datasource", "append", "orders", "orders.ndjson"]);
    let pushed = tb_ok(dir, &["push", "pipes/top_users.pipe"]);
    assert!(pushed.contains("'top_users' created"), "{pushed}");
    let pushed = tb_ok(dir, &["push", "pipes/best_user.pipe"]);
    assert!(pushed.contains("'best_user' created"), "{pushed}");

    let all = tb_ok(dir, &["pipe", "data", "top_users", "--format", "csv"]);
    assert!(
        all.contains("\"user_id\",\"total\"\n\"u2\",30\n\"u1\",15\n\"u3\",1"),
        "{all}"
    );
    let spain = tb_ok(
        dir,
        &[
            "pipe",
            "data",
            "top_users",
            "--country",
            "ES",
            "--limit",
            "1",
            "--format",
            "csv",
        ],
    );
    assert!(
        spain.contains("\"u1\",15") && !spain.contains("u2") && !spain.contains("u3"),
        "{spain}"
    );
    let counted = tb_ok(
        dir,
        &[
            "pipe",
            "data",
            "top_users",
            "--query",
            "SELECT count() AS c FROM _",
            "--format",
            "json",
        ],
    );
    assert!(counted.contains("\"c\": 3"), "{counted}");
    let best = tb_ok(dir, &["pipe", "data", "best_user", "--format", "csv"]);
    assert!(best.contains("\"u2\""), "{best}");
    let (ok, bad) = tb(dir, &["pipe", "data", "top_users", "--limit", "many"]);
    assert!(
        !ok && bad.contains("limit"),
        "a bad value names its parameter: {bad}"
    );

    let listed = tb_ok(dir, &["pipe", "ls"]);
    assert!(
        listed.contains("top_users") && listed.contains("best_user"),
        "{listed}"
    );

    let client = reqwest::Client::new();
    let token = &roost.tokens.workspace_admin;
    let get = |format: &str, query: &str| {
        let request = client
            .get(roost.url(&format!("/v0/pipes/top_users.{format}?{query}")))
            .bearer_auth(token);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status();
            let kind = response.headers()[reqwest::header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .to_string();
            (status, kind, response.bytes().await.unwrap())
        }
    };
    let (status, kind, body) = get("json", "country=FR").await;
    assert_eq!((status.as_u16(), kind.as_str()), (200, "application/json"));
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["data"][0]["user_id"], "u2");
    assert_eq!(json["data"][0]["total"].as_f64(), Some(30.0));
    assert_eq!(json["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(json["rows"], 1);
    let (status, kind, body) = get("ndjson", "limit=2").await;
    assert_eq!(
        (status.as_u16(), kind.as_str()),
        (200, "application/x-ndjson")
    );
    assert_eq!(std::str::from_utf8(&body).unwrap().lines().count(), 2);
    let (status, kind, body) = get("csv", "limit=1").await;
    assert_eq!(
        (status.as_u16(), kind.as_str()),
        (200, "text/csv; charset=utf-8")
    );
    assert_eq!(
        std::str::from_utf8(&body).unwrap(),
        "\"user_id\",\"total\"\n\"u2\",30\n"
    );
    let (status, _, body) = get("parquet", "").await;
    assert_eq!(status.as_u16(), 200);
    assert!(body.starts_with(b"PAR1"));

    let removed = tb_ok(dir, &["pipe", "rm", "best_user", "--yes"]);
    assert!(removed.contains("deleted"), "{removed}");
    let listed = tb_ok(dir, &["pipe", "ls"]);
    assert!(
        !listed.contains("best_user") && listed.contains("top_users"),
        "{listed}"
    );
}

//! The TypeScript SDK (`@tinybirdco/sdk`, as released on npm, installed by `make clients`) against
//! a real `roost local`: it ingests one event and a batch through the Events API, reads an endpoint
//! pipe created over HTTP first, runs SQL, and gets its typed error for a missing pipe. The script
//! is `tests/clients/ts_sdk.mjs`.

use roost_testkit::RoostLocal;
use roost_testkit::http::ok_json;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::Command;

/// Where `make clients` installs the clients: `ROOST_CLIENTS_DIR`, else `~/.cache/roost/clients`.
fn clients_dir() -> PathBuf {
    std::env::var_os("ROOST_CLIENTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/roost/clients")
        })
}

/// The `events` data source and the `totals` endpoint (sum of amount for one country).
async fn project(roost: &RoostLocal, token: &str) {
    let http = reqwest::Client::new();
    ok_json(
        http.post(roost.url("/v0/datasources"))
            .bearer_auth(token)
            .form(&[
                ("name", "events"),
                (
                    "schema",
                    "`country` String `json:$.country`, `amount` Int32 `json:$.amount`",
                ),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await;
    ok_json(
        http.post(roost.url("/v0/pipes"))
            .bearer_auth(token)
            .json(&json!({
                "name": "totals",
                "nodes": [{
                    "name": "totals_node",
                    "type": "endpoint",
                    "sql": "%\nSELECT country, sum(amount) AS total, count() AS n FROM events\nWHERE country = {{ String(country, 'ES') }}\nGROUP BY country",
                }],
            }))
            .send()
            .await
            .unwrap(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn typescript_sdk_ingests_and_queries() {
    let modules = clients_dir().join("node/node_modules");
    assert!(
        modules.join("@tinybirdco/sdk").is_dir(),
        "@tinybirdco/sdk is not installed in {}: run `make clients`",
        modules.display()
    );
    let roost = RoostLocal::start(env!("CARGO_BIN_EXE_roost"))
        .await
        .unwrap();
    let token = roost.tokens.workspace_admin.clone();
    project(&roost, &token).await;

    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/clients/ts_sdk.mjs");
    let output = Command::new("node")
        .arg(&script)
        .env("TB_HOST", &roost.base_url)
        .env("TB_TOKEN", &token)
        .env("ROOST_NODE_MODULES", &modules)
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "ts_sdk.mjs failed:\n{stdout}\n{stderr}\nroost log:\n{}",
        roost.log()
    );
    let seen: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("ts_sdk.mjs printed no JSON ({e}):\n{stdout}\n{stderr}"));

    assert_eq!(
        seen["ingest_one"],
        json!({ "successful_rows": 1, "quarantined_rows": 0 }),
        "{seen}"
    );
    assert_eq!(
        seen["ingest_batch"],
        json!({ "successful_rows": 50, "quarantined_rows": 0 }),
        "{seen}"
    );
    // 5 + (0 + 1 + ... + 49) over 51 rows.
    assert_eq!(
        seen["endpoint_data"],
        json!([{ "country": "IT", "total": 1230, "n": 51 }]),
        "{seen}"
    );
    assert_eq!(seen["endpoint_rows"], json!(1), "{seen}");
    assert_eq!(seen["sql_count"], json!(51), "{seen}");
    assert_eq!(
        seen["missing"],
        json!({ "name": "TinybirdApiError", "status": 404 }),
        "{seen}"
    );
}

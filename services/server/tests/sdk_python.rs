//! The Tinybird Python SDK (`tinybird-python-sdk`) and verdin, as released (installed by
//! `make clients`), against a real `roost local`: both append events and call an endpoint pipe
//! created over HTTP first. The script is `tests/clients/python_sdk.py`.

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
async fn python_sdk_and_verdin_append_and_call_an_endpoint() {
    let python = clients_dir().join("python-sdks/bin/python");
    assert!(
        python.is_file(),
        "the Python SDKs are not installed at {}: run `make clients`",
        python.display()
    );
    let roost = RoostLocal::start(env!("CARGO_BIN_EXE_roost"))
        .await
        .unwrap();
    let token = roost.tokens.workspace_admin.clone();
    project(&roost, &token).await;

    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/clients/python_sdk.py");
    let output = Command::new(&python)
        .arg(&script)
        .env("TB_HOST", &roost.base_url)
        .env("TB_TOKEN", &token)
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "python_sdk.py failed:\n{stdout}\n{stderr}\nroost log:\n{}",
        roost.log()
    );
    let seen: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("python_sdk.py printed no JSON ({e}):\n{stdout}\n{stderr}"));

    // tinybird-python-sdk: 100 ES rows (0..99) and one FR row through its buffer.
    assert_eq!(seen["sdk_es_total"], json!(4950), "{seen}");
    // verdin: two FR rows with wait=true, then the endpoint sees all three FR rows.
    assert_eq!(seen["verdin_successful_rows"], json!(2), "{seen}");
    assert_eq!(seen["verdin_quarantined_rows"], json!(0), "{seen}");
    assert_eq!(
        seen["verdin_fr_rows"],
        json!([{ "country": "FR", "total": 37, "n": 3 }]),
        "{seen}"
    );
    assert_eq!(
        seen["verdin_fr_meta"],
        json!([["country", "String"], ["total", "Int64"], ["n", "UInt64"]]),
        "{seen}"
    );
    assert_eq!(seen["verdin_sql_count"], json!(103), "{seen}");
}

//! mockingbird (`@tinybirdco/mockingbird` as released on npm, installed by `make clients`; it has
//! no CLI package, so `tests/clients/mockingbird.mjs` drives its `TinybirdGenerator`) streams 10,000
//! events at 1,000 per second to the Events API of a real `roost local`; every one must land.

use roost_testkit::RoostLocal;
use roost_testkit::http::ok_json;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

/// Where `make clients` installs the clients: `ROOST_CLIENTS_DIR`, else `~/.cache/roost/clients`.
fn clients_dir() -> PathBuf {
    std::env::var_os("ROOST_CLIENTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/roost/clients")
        })
}

#[tokio::test(flavor = "multi_thread")]
async fn mockingbird_streams_ten_thousand_events() {
    let modules = clients_dir().join("node/node_modules");
    assert!(
        modules.join("@tinybirdco/mockingbird").is_dir(),
        "@tinybirdco/mockingbird is not installed in {}: run `make clients`",
        modules.display()
    );
    let roost = RoostLocal::start(env!("CARGO_BIN_EXE_roost"))
        .await
        .unwrap();
    let token = roost.tokens.workspace_admin.clone();
    let http = reqwest::Client::new();
    ok_json(
        http.post(roost.url("/v0/datasources"))
            .bearer_auth(&token)
            .form(&[
                ("name", "mock_events"),
                ("schema", "`id` String `json:$.id`, `n` Int32 `json:$.n`"),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await;

    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/clients/mockingbird.mjs");
    let started = Instant::now();
    let output = Command::new("node")
        .arg(&script)
        .env("TB_HOST", &roost.base_url)
        .env("TB_TOKEN", &token)
        .env("ROOST_NODE_MODULES", &modules)
        .env("EVENTS", "10000")
        .env("EPS", "1000")
        .output()
        .expect("node runs");
    let elapsed = started.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "mockingbird.mjs failed:\n{stdout}\n{stderr}\nroost log:\n{}",
        roost.log()
    );
    assert!(stdout.contains("\"sent\":10000"), "{stdout}\n{stderr}");
    // 50 batches of 200, 200 ms apart: about ten seconds, not a burst.
    assert!(
        elapsed.as_secs_f64() > 9.0,
        "10k events at 1,000/s took only {elapsed:?}"
    );

    // mockingbird logs and drops failed requests, so the count is the proof.
    let counted = ok_json(
        http.get(roost.url("/v0/sql"))
            .bearer_auth(&token)
            .query(&[(
                "q",
                "SELECT count() AS c, uniqExact(id) AS ids FROM mock_events FORMAT JSON",
            )])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(counted["data"][0]["c"], 10000, "{counted}");
    assert_eq!(counted["data"][0]["ids"], 10000, "{counted}");
}

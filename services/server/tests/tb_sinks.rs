//! Sink pipes with the released Tinybird CLI against a real `roost local`: a `.pipe` with
//! `TYPE sink` and `EXPORT_*` settings pushed with `tb push`, listed by `tb connection ls`, run by
//! `tb pipe sink run --wait` with a parameter, writing to a local export directory.

use roost_testkit::RoostLocal;
use roost_testkit::http::ok_json;
use roost_testkit::tb::tb_ok;

const EVENTS: &str = r#"SCHEMA >
    `id` UInt32 `json:$.id`,
    `country` String `json:$.country`

ENGINE "MergeTree"
ENGINE_SORTING_KEY "id"
"#;

const EXPORT: &str = r#"NODE rows
SQL >
    %
    SELECT id, country FROM events WHERE id < {{ UInt32(max_id, 1000) }} ORDER BY id

TYPE sink
EXPORT_SERVICE s3
EXPORT_CONNECTION_NAME disk
EXPORT_BUCKET_URI daily
EXPORT_FILE_TEMPLATE events_{job_id}
EXPORT_FORMAT csv
EXPORT_COMPRESSION none
EXPORT_SCHEDULE @on-demand
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_sink_pipe_is_pushed_and_run_with_the_tb_cli() {
    let roost = RoostLocal::start(env!("CARGO_BIN_EXE_roost"))
        .await
        .unwrap();
    let http = reqwest::Client::new();
    ok_json(
        http.post(roost.url("/v0/connectors"))
            .bearer_auth(&roost.tokens.workspace_admin)
            .form(&[("service", "local"), ("name", "disk")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    let project = tempfile::tempdir().unwrap();
    let dir = project.path();
    std::fs::write(dir.join("events.datasource"), EVENTS).unwrap();
    std::fs::write(dir.join("export.pipe"), EXPORT).unwrap();
    let rows: String = (0..50)
        .map(|i| format!("{{\"id\":{i},\"country\":\"c{}\"}}\n", i % 3))
        .collect();
    std::fs::write(dir.join("events.ndjson"), rows).unwrap();
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
    tb_ok(dir, &["push", "events.datasource"]);
    tb_ok(dir, &["datasource", "append", "events", "events.ndjson"]);
    let pushed = tb_ok(dir, &["push", "export.pipe"]);
    assert!(pushed.contains("'export' created"), "{pushed}");
    let listed = tb_ok(dir, &["connection", "ls"]);
    assert!(listed.contains("disk"), "{listed}");

    let ran = tb_ok(
        dir,
        &[
            "pipe",
            "sink",
            "run",
            "export",
            "--wait",
            "--yes",
            "--param",
            "max_id=20",
        ],
    );
    assert!(!ran.to_lowercase().contains("error"), "{ran}");
    let exported = roost.data_dir().join("exports/daily");
    let files: Vec<_> = std::fs::read_dir(&exported)
        .unwrap_or_else(|e| panic!("{}: {e}\n{ran}", exported.display()))
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let name = files[0].file_name().unwrap().to_string_lossy().to_string();
    assert!(
        name.starts_with("events_") && name.ends_with(".csv"),
        "{name}"
    );
    let csv = std::fs::read_to_string(&files[0]).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], r#""id","country""#);
    assert_eq!(lines.len(), 21, "{csv}");
    assert_eq!(lines[20], r#"19,"c1""#);

    // `tb pipe rm` removes the sink pipe, and with it the connection's last user.
    tb_ok(dir, &["pipe", "rm", "export", "--yes"]);
    let deleted = http
        .delete(roost.url("/v0/connectors/disk"))
        .bearer_auth(&roost.tokens.workspace_admin)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
}

//! The ClickHouse-over-HTTP engine against a real cluster: two clickhouse-server shards and a
//! ZooKeeper started by `scripts/clickhouse-up.sh` (Debian's 18.16 here). Each test works in its own
//! database, created ON CLUSTER. Tests that stop a server or ZooKeeper take the lock exclusively so
//! no other test of this binary runs meanwhile. Without a cluster every test prints `SKIPPED: ...`
//! (set ROOST_TEST_REQUIRE_CLICKHOUSE=1 to fail instead).

use std::collections::HashSet;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use roost_engine::{
    ClickHouse, ClickHouseConfig, Engine, EngineError, ErrorClass, InsertBlock, InsertRetry,
    ServerVersion, on_cluster,
};
use roost_testkit::clickhouse::{ClickHouseCluster, cluster_or_skip};
use serde_json::Value;
use tokio::sync::RwLock;

/// Shared by ordinary tests, exclusive for tests that take servers away.
static SERVERS: LazyLock<RwLock<()>> = LazyLock::new(|| RwLock::new(()));

/// Makes ZooKeeper paths unique per run, so a table dropped by an earlier run never collides.
static RUN: LazyLock<String> = LazyLock::new(|| {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{}_{nanos}", std::process::id())
});

fn config(cluster: &ClickHouseCluster) -> ClickHouseConfig {
    let mut config = ClickHouseConfig::new(cluster.url());
    config.urls = cluster.urls.clone();
    config.cluster = Some(cluster.cluster.clone());
    // ON CLUSTER DDL waits this long for a missing server (180 s by default): a test that failed
    // to bring one back then fails the next ones in a minute, not in three.
    config.settings = vec![("distributed_ddl_task_timeout".into(), "60".into())];
    config
}

/// Starts whatever a test stopped when it ends, panicking or not, so the next tests find the
/// whole cluster.
struct RestartOnDrop(&'static ClickHouseCluster);

impl Drop for RestartOnDrop {
    fn drop(&mut self) {
        if let Err(error) = self.0.start() {
            eprintln!("could not restart the cluster: {error:#}");
        }
    }
}

fn engine(cluster: &ClickHouseCluster) -> ClickHouse {
    ClickHouse::new(&config(cluster)).expect("valid configuration")
}

/// An engine on one server only (`index` 0 is the first shard).
fn engine_on(cluster: &ClickHouseCluster, index: usize) -> ClickHouse {
    let mut config = config(cluster);
    config.urls = vec![cluster.urls[index].clone()];
    ClickHouse::new(&config).expect("valid configuration")
}

async fn version(engine: &ClickHouse) -> ServerVersion {
    let text = engine.server_version().await.expect("SELECT version()");
    ServerVersion::parse(&text).unwrap_or_else(|| panic!("not a version: {text}"))
}

async fn text(engine: &ClickHouse, sql: &str) -> String {
    let answer = engine
        .query(sql, "TabSeparated")
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    String::from_utf8(answer.data.to_vec())
        .expect("UTF-8")
        .trim_end()
        .to_string()
}

async fn count(engine: &ClickHouse, sql: &str) -> u64 {
    let answer = text(engine, sql).await;
    answer
        .parse()
        .unwrap_or_else(|_| panic!("{sql}: not a count: {answer}"))
}

/// A fresh database on every shard.
async fn fresh_database(engine: &ClickHouse, name: &str) {
    recreate_database(engine, name, &on_cluster(engine.cluster())).await;
}

async fn drop_database(engine: &ClickHouse, name: &str) {
    drop_database_on(engine, name, &on_cluster(engine.cluster())).await;
}

/// A fresh database on the server `engine` sends to, even when it names a cluster.
async fn fresh_local_database(engine: &ClickHouse, name: &str) {
    recreate_database(engine, name, "").await;
}

async fn drop_local_database(engine: &ClickHouse, name: &str) {
    drop_database_on(engine, name, "").await;
}

/// Drops and creates `name` with the ` ON CLUSTER` clause `on` (empty for one server).
async fn recreate_database(engine: &ClickHouse, name: &str, on: &str) {
    drop_database_on(engine, name, on).await;
    engine
        .execute(&format!("CREATE DATABASE {name}{on}"))
        .await
        .unwrap();
}

async fn drop_database_on(engine: &ClickHouse, name: &str, on: &str) {
    engine
        .execute(&format!("DROP DATABASE IF EXISTS {name}{on}"))
        .await
        .unwrap();
}

/// `db.name_local` (ReplicatedMergeTree on every shard) and `db.name` (Distributed over them),
/// with columns `id UInt32, s String`.
async fn sharded_table(engine: &ClickHouse, database: &str, name: &str) {
    let cluster_name = engine.cluster().expect("a cluster");
    let cluster = on_cluster(Some(cluster_name));
    let run = &*RUN;
    engine
        .execute(&format!(
            "CREATE TABLE {database}.{name}_local{cluster} (id UInt32, s String) \
             ENGINE = ReplicatedMergeTree('/clickhouse/tables/{{shard}}/{database}_{run}/{name}', '{{replica}}') \
             ORDER BY id"
        ))
        .await
        .unwrap();
    engine
        .execute(&format!(
            "CREATE TABLE {database}.{name}{cluster} AS {database}.{name}_local \
             ENGINE = Distributed({cluster_name}, {database}, {name}_local, rand())"
        ))
        .await
        .unwrap();
}

fn insert<'a>(
    table: &'a str,
    format: &'a str,
    data: impl Into<Bytes>,
    settings: &'a str,
) -> InsertBlock<'a> {
    InsertBlock {
        table,
        columns: "id, s",
        format,
        data: data.into(),
        settings,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn queries_answer_in_the_requested_format_with_statistics() {
    let Some(cluster) = cluster_or_skip("queries_answer_in_the_requested_format_with_statistics")
    else {
        return;
    };
    let _shared = SERVERS.read().await;
    let engine = engine(cluster);
    let server = version(&engine).await;
    println!("server version {server}");

    let json = engine
        .query(
            "SELECT number, toString(number) AS s FROM system.numbers LIMIT 3",
            "JSON",
        )
        .await
        .unwrap();
    let body: Value = serde_json::from_slice(&json.data).unwrap();
    assert_eq!(body["meta"][0]["name"], "number");
    assert_eq!(body["meta"][0]["type"], "UInt64");
    assert_eq!(body["meta"][1]["type"], "String");
    // 64-bit integers are quoted in ClickHouse's JSON, as in Tinybird's.
    assert_eq!(body["data"][2]["number"], "2");
    assert_eq!(body["data"][2]["s"], "2");
    assert_eq!(body["rows"], 3);
    assert_eq!(body["rows_before_limit_at_least"], 3);
    let statistics = &body["statistics"];
    assert!(statistics["elapsed"].as_f64().is_some());
    assert_eq!(statistics["rows_read"], 3);
    assert_eq!(statistics["bytes_read"], 24);
    // The engine's own statistics agree with what the answer says.
    assert_eq!(json.rows_read, 3);
    assert_eq!(json.bytes_read, 24);
    assert_eq!(json.elapsed, statistics["elapsed"].as_f64().unwrap());

    let tsv = engine
        .query("SELECT 1 AS a, 'x\ty' AS b", "TabSeparatedWithNames")
        .await
        .unwrap();
    assert_eq!(&tsv.data[..], b"a\tb\n1\tx\\ty\n");
    assert!(tsv.elapsed > 0.0);
    let csv = engine
        .query("SELECT 1 AS a, 'x' AS b;", "CSVWithNames")
        .await
        .unwrap();
    assert_eq!(
        &csv.data[..],
        b"\"a\",\"b\"\n1,\"x\"\n",
        "a trailing ';' is fine"
    );
    let ndjson = engine
        .query("SELECT number AS n FROM numbers(2)", "JSONEachRow")
        .await
        .unwrap();
    assert_eq!(&ndjson.data[..], b"{\"n\":\"0\"}\n{\"n\":\"1\"}\n");
    // A FORMAT clause in the statement wins over the requested format, as in chDB.
    let own = engine.query("SELECT 7 FORMAT CSV", "JSON").await.unwrap();
    assert_eq!(&own.data[..], b"7\n");

    let big = engine
        .query("SELECT count() FROM numbers(1000000)", "TabSeparated")
        .await
        .unwrap();
    assert_eq!(&big.data[..], b"1000000\n");
    if server.at_least(19, 0) {
        assert!(big.rows_read >= 1_000_000, "rows_read = {}", big.rows_read);
    } else {
        // 18.16 sends no X-ClickHouse-Summary: only JSON answers carry statistics.
        println!(
            "SKIPPED: rows_read of a TabSeparated answer: {server} sends no X-ClickHouse-Summary header"
        );
        assert_eq!(big.rows_read, 0);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failure_after_the_first_rows_is_an_error_not_a_truncated_answer() {
    let Some(cluster) =
        cluster_or_skip("a_failure_after_the_first_rows_is_an_error_not_a_truncated_answer")
    else {
        return;
    };
    let _shared = SERVERS.read().await;
    let engine = engine(cluster);
    // Without wait_end_of_query the server would have streamed ~900k rows with status 200 and
    // put the exception at the end of the data.
    let error = engine
        .query(
            "SELECT number, throwIf(number = 900000) FROM numbers(1000000)",
            "TabSeparated",
        )
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(395), "{error}");
    assert_eq!(error.class(), ErrorClass::BadRequest);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_streamed_result_comes_in_pieces_equal_to_the_whole_and_failures_stay_errors() {
    use futures::StreamExt;
    let Some(cluster) = cluster_or_skip(
        "a_streamed_result_comes_in_pieces_equal_to_the_whole_and_failures_stay_errors",
    ) else {
        return;
    };
    let _shared = SERVERS.read().await;
    let engine = engine(cluster);
    let sql = "SELECT number, toString(number * 7) FROM numbers(500000)";
    let whole = engine.query(sql, "TabSeparated").await.unwrap().data;
    let mut stream = engine.query_stream(sql, "TabSeparated").await.unwrap();
    let (mut pieces, mut streamed) = (0, Vec::new());
    while let Some(piece) = stream.next().await {
        streamed.extend_from_slice(&piece.unwrap());
        pieces += 1;
    }
    assert_eq!(streamed, whole.to_vec());
    assert!(
        pieces > 1,
        "a {} byte answer came in one piece",
        whole.len()
    );
    // The statement finishes before the first byte: a late failure is an error, never data.
    let failed = engine
        .query_stream(
            "SELECT number, throwIf(number = 400000) FROM numbers(500000)",
            "TabSeparated",
        )
        .await;
    let error = failed.err().expect("a failure, not a stream");
    assert_eq!(error.code(), Some(395), "{error}");
}

#[tokio::test(flavor = "multi_thread")]
async fn ddl_on_cluster_creates_replicated_shards_behind_a_distributed_table() {
    let Some(cluster) =
        cluster_or_skip("ddl_on_cluster_creates_replicated_shards_behind_a_distributed_table")
    else {
        return;
    };
    let _shared = SERVERS.read().await;
    let engine = engine(cluster);
    let database = "roost_it_ddl";
    fresh_database(&engine, database).await;
    sharded_table(&engine, database, "events").await;

    // Both servers got the tables, each its own replica of its own shard.
    for index in 0..cluster.urls.len() {
        let server = engine_on(cluster, index);
        assert_eq!(
            text(
                &server,
                &format!(
                    "SELECT name FROM system.tables WHERE database = '{database}' ORDER BY name"
                )
            )
            .await,
            "events\nevents_local"
        );
        let zookeeper_path = text(
            &server,
            &format!("SELECT zookeeper_path FROM system.replicas WHERE database = '{database}'"),
        )
        .await;
        assert!(
            zookeeper_path.starts_with(&format!("/clickhouse/tables/0{}/", index + 1)),
            "{zookeeper_path}"
        );
    }

    // Rows inserted through the Distributed table spread over both shards.
    let rows: String = (0..1000)
        .map(|id| format!("{{\"id\":{id},\"s\":\"r{id}\"}}\n"))
        .collect();
    engine
        .insert(insert(
            &format!("{database}.events"),
            "JSONEachRow",
            rows,
            "insert_distributed_sync = 1",
        ))
        .await
        .unwrap();
    assert_eq!(
        count(&engine, &format!("SELECT count() FROM {database}.events")).await,
        1000
    );
    let mut per_shard = Vec::new();
    for index in 0..cluster.urls.len() {
        per_shard.push(
            count(
                &engine_on(cluster, index),
                &format!("SELECT count() FROM {database}.events_local"),
            )
            .await,
        );
    }
    println!("rows per shard: {per_shard:?}");
    assert_eq!(per_shard.iter().sum::<u64>(), 1000);
    assert!(per_shard.iter().all(|rows| *rows > 0), "{per_shard:?}");

    // Schema changes reach every shard too.
    engine
        .execute(&format!(
            "ALTER TABLE {database}.events_local{} ADD COLUMN extra UInt8 DEFAULT 7",
            on_cluster(engine.cluster())
        ))
        .await
        .unwrap();
    for index in 0..cluster.urls.len() {
        assert_eq!(
            text(
                &engine_on(cluster, index),
                &format!("SELECT DISTINCT extra FROM {database}.events_local")
            )
            .await,
            "7"
        );
    }
    drop_database(&engine, database).await;
}

/// One input format: its name and how it encodes the rows `(id, s)`.
struct Format {
    name: &'static str,
    encode: fn(&[(u32, String)]) -> Vec<u8>,
}

fn tab_escaped(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('\t', "\\t")
        .replace('\n', "\\n")
}

fn var_uint(out: &mut Vec<u8>, mut value: u64) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn binary_string(out: &mut Vec<u8>, text: &str) {
    var_uint(out, text.len() as u64);
    out.extend_from_slice(text.as_bytes());
}

fn formats() -> Vec<Format> {
    vec![
        Format {
            name: "RowBinary",
            encode: |rows| {
                let mut out = Vec::new();
                for (id, s) in rows {
                    out.extend_from_slice(&id.to_le_bytes());
                    binary_string(&mut out, s);
                }
                out
            },
        },
        Format {
            name: "Native",
            encode: |rows| {
                let mut out = Vec::new();
                var_uint(&mut out, 2);
                var_uint(&mut out, rows.len() as u64);
                binary_string(&mut out, "id");
                binary_string(&mut out, "UInt32");
                for (id, _) in rows {
                    out.extend_from_slice(&id.to_le_bytes());
                }
                binary_string(&mut out, "s");
                binary_string(&mut out, "String");
                for (_, s) in rows {
                    binary_string(&mut out, s);
                }
                out
            },
        },
        Format {
            name: "JSONEachRow",
            encode: |rows| {
                rows.iter()
                    .map(|(id, s)| format!("{}\n", serde_json::json!({"id": id, "s": s})))
                    .collect::<String>()
                    .into_bytes()
            },
        },
        Format {
            name: "CSV",
            encode: |rows| {
                rows.iter()
                    .map(|(id, s)| format!("{id},\"{}\"\n", s.replace('"', "\"\"")))
                    .collect::<String>()
                    .into_bytes()
            },
        },
        Format {
            name: "CSVWithNames",
            encode: |rows| {
                let mut out = String::from("id,s\n");
                for (id, s) in rows {
                    out.push_str(&format!("{id},\"{}\"\n", s.replace('"', "\"\"")));
                }
                out.into_bytes()
            },
        },
        Format {
            name: "TabSeparated",
            encode: |rows| {
                rows.iter()
                    .map(|(id, s)| format!("{id}\t{}\n", tab_escaped(s)))
                    .collect::<String>()
                    .into_bytes()
            },
        },
        Format {
            name: "TSVWithNames",
            encode: |rows| {
                let mut out = String::from("id\ts\n");
                for (id, s) in rows {
                    out.push_str(&format!("{id}\t{}\n", tab_escaped(s)));
                }
                out.into_bytes()
            },
        },
        Format {
            name: "TSVWithNamesAndTypes",
            encode: |rows| {
                let mut out = String::from("id\ts\nUInt32\tString\n");
                for (id, s) in rows {
                    out.push_str(&format!("{id}\t{}\n", tab_escaped(s)));
                }
                out.into_bytes()
            },
        },
        Format {
            name: "TSKV",
            encode: |rows| {
                rows.iter()
                    .map(|(id, s)| format!("id={id}\ts={}\n", tab_escaped(s).replace('=', "\\=")))
                    .collect::<String>()
                    .into_bytes()
            },
        },
        Format {
            name: "Values",
            encode: |rows| {
                rows.iter()
                    .map(|(id, s)| {
                        format!("({id},'{}')", s.replace('\\', "\\\\").replace('\'', "\\'"))
                    })
                    .collect::<Vec<_>>()
                    .join(",")
                    .into_bytes()
            },
        },
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn inserts_in_every_input_format_the_server_knows() {
    let Some(cluster) = cluster_or_skip("inserts_in_every_input_format_the_server_knows") else {
        return;
    };
    let _shared = SERVERS.read().await;
    let engine = engine(cluster);
    let server = version(&engine).await;
    let database = "roost_it_formats";
    fresh_database(&engine, database).await;
    sharded_table(&engine, database, "events").await;
    let table = format!("{database}.events");

    let mut accepted = Vec::new();
    for (index, format) in formats().iter().enumerate() {
        // Strings with every character a text format must escape.
        let base = index as u32 * 10_000;
        let rows: Vec<(u32, String)> = (0..500)
            .map(|i| (base + i, format!("{}\t'\"\\,=\n{i} é", format.name)))
            .collect();
        let expected_length: u64 = rows.iter().map(|(_, s)| s.len() as u64).sum();
        engine
            .insert(insert(
                &table,
                format.name,
                (format.encode)(&rows),
                "insert_distributed_sync = 1",
            ))
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", format.name));
        let read_back = text(
            &engine,
            &format!(
                "SELECT count(), sum(length(s)), countIf(s = concat('{}', '\\t\\'\"\\\\,=\\n', toString(id - {base}), ' é')) \
                 FROM {table} WHERE id >= {base} AND id < {base} + 10000",
                format.name
            ),
        )
        .await;
        assert_eq!(
            read_back,
            format!("500\t{expected_length}\t500"),
            "{}",
            format.name
        );
        accepted.push(format.name);
    }
    println!("{server} accepted: {}", accepted.join(", "));

    // Formats newer servers have. On a server that lacks one, the error must be a plain
    // BadRequest (UNKNOWN_FORMAT) that is not retried.
    let newer = [
        ("RowBinaryWithDefaults", 19, 16),
        ("JSONCompactEachRow", 19, 16),
        ("RowBinaryWithNamesAndTypes", 19, 11),
        ("CustomSeparated", 19, 17),
        ("Parquet", 19, 11),
        ("Arrow", 20, 5),
    ];
    for (name, major, minor) in newer {
        if server.at_least(major, minor) {
            println!("SKIPPED: {name}: no encoder for it in this test on {server}");
            continue;
        }
        let started = Instant::now();
        let error = engine
            .insert(insert(&table, name, Bytes::from_static(b"\x01"), ""))
            .await
            .unwrap_err();
        assert_eq!(error.code(), Some(73), "{name}: {error}");
        assert_eq!(error.class(), ErrorClass::BadRequest);
        assert!(!error.may_retry(true));
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "{name} was retried"
        );
        println!(
            "SKIPPED: {name} input: {server} does not know the format ({})",
            error.user_message()
        );
    }
    drop_database(&engine, database).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn insert_settings_travel_as_url_parameters() {
    let Some(cluster) = cluster_or_skip("insert_settings_travel_as_url_parameters") else {
        return;
    };
    let _shared = SERVERS.read().await;
    let engine = engine_on(cluster, 0);
    let database = "roost_it_settings";
    fresh_local_database(&engine, database).await;
    engine
        .execute(&format!(
            "CREATE TABLE {database}.t (id UInt32, s String) ENGINE = MergeTree ORDER BY id"
        ))
        .await
        .unwrap();
    let table = format!("{database}.t");
    let rows = "{\"id\":1,\"s\":\"a\",\"unknown\":1}\n{\"id\":2,\"s\":\"b\",\"unknown\":2}\n";
    let error = engine
        .insert(insert(&table, "JSONEachRow", rows, ""))
        .await
        .unwrap_err();
    assert_eq!(error.class(), ErrorClass::BadRequest, "{error}");
    engine
        .insert(insert(
            &table,
            "JSONEachRow",
            rows,
            "input_format_skip_unknown_fields = 1",
        ))
        .await
        .unwrap();
    // A string setting and a bad row tolerated by another setting.
    engine
        .insert(insert(
            &table,
            "CSV",
            "3,\"c\"\nnot-a-number,\"d\"\n4,\"e\"\n",
            "input_format_allow_errors_num = 1, format_csv_delimiter = ','",
        ))
        .await
        .unwrap();
    assert_eq!(
        text(
            &engine,
            &format!("SELECT groupArray(s) FROM (SELECT s FROM {table} ORDER BY id)")
        )
        .await,
        "['a','b','c','e']"
    );
    // Session settings from the configuration reach every statement.
    let mut limited = config(cluster);
    limited.urls.truncate(1);
    limited.settings = vec![
        ("max_result_rows".into(), "1".into()),
        ("result_overflow_mode".into(), "throw".into()),
    ];
    let limited = ClickHouse::new(&limited).unwrap();
    let error = limited
        .query(&format!("SELECT * FROM {table}"), "JSON")
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(396), "TOO_MANY_ROWS_OR_BYTES: {error}");
    drop_local_database(&engine, database).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_are_classified_and_bad_statements_never_retried() {
    let Some(cluster) = cluster_or_skip("errors_are_classified_and_bad_statements_never_retried")
    else {
        return;
    };
    let _shared = SERVERS.read().await;
    // Long waits between retries: a failure that comes back fast was not retried.
    let mut slow_retries = config(cluster);
    slow_retries.retries = 5;
    slow_retries.retry_backoff = Duration::from_secs(1);
    let engine = ClickHouse::new(&slow_retries).unwrap();

    let started = Instant::now();
    let syntax = engine.query("SELEC 1", "JSON").await.unwrap_err();
    assert_eq!(syntax.code(), Some(62), "{syntax}");
    assert_eq!(syntax.class(), ErrorClass::BadRequest);
    assert!(
        syntax.user_message().starts_with("Syntax error"),
        "{}",
        syntax.user_message()
    );
    assert!(!syntax.user_message().contains("e.what()"));

    let no_table = engine
        .query("SELECT * FROM system.no_such_table", "JSON")
        .await
        .unwrap_err();
    assert_eq!(no_table.code(), Some(60), "{no_table}");
    assert_eq!(no_table.class(), ErrorClass::NotFound);
    let no_database = engine
        .query("SELECT * FROM no_such_db.t", "JSON")
        .await
        .unwrap_err();
    assert_eq!(no_database.code(), Some(81), "{no_database}");
    assert_eq!(no_database.class(), ErrorClass::NotFound);
    let exists = engine
        .execute("CREATE TABLE system.one (dummy UInt8) ENGINE = Memory")
        .await
        .unwrap_err();
    assert_eq!(exists.class(), ErrorClass::Conflict, "{exists}");
    let bad_data = engine
        .insert(insert("system.one", "TabSeparated", "x\n", ""))
        .await
        .unwrap_err();
    assert_eq!(bad_data.class(), ErrorClass::BadRequest, "{bad_data}");
    let bad_format = engine.query("SELECT 1", "JSON; DROP").await.unwrap_err();
    assert!(matches!(bad_format, EngineError::Invalid(_)));
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "a bad statement was retried: {:?}",
        started.elapsed()
    );

    // Credentials: the right password works, a wrong one is our fault (Internal), not retried.
    let mut user = config(cluster);
    user.user = "roost".into();
    user.password = "roost".into();
    assert_eq!(
        text(&ClickHouse::new(&user).unwrap(), "SELECT 1").await,
        "1"
    );
    user.password = "wrong".into();
    user.retries = 5;
    user.retry_backoff = Duration::from_secs(1);
    let started = Instant::now();
    let denied = ClickHouse::new(&user)
        .unwrap()
        .query("SELECT 1", "JSON")
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Some(193), "{denied}");
    assert_eq!(denied.class(), ErrorClass::Internal);
    assert!(!denied.to_string().contains("wrong"));
    assert!(started.elapsed() < Duration::from_millis(900));
}

#[tokio::test(flavor = "multi_thread")]
async fn transient_server_errors_are_retried_for_reads_and_admission_refusals_for_everything() {
    let Some(cluster) = cluster_or_skip(
        "transient_server_errors_are_retried_for_reads_and_admission_refusals_for_everything",
    ) else {
        return;
    };
    let _shared = SERVERS.read().await;
    // The user `roost` may run one statement at a time: a second one is refused at admission
    // (TOO_MANY_SIMULTANEOUS_QUERIES), before it runs, so even a non-idempotent one may be retried.
    let mut one_at_a_time = config(cluster);
    one_at_a_time.urls.truncate(1);
    one_at_a_time.user = "roost".into();
    one_at_a_time.password = "roost".into();
    one_at_a_time.settings = vec![("max_concurrent_queries_for_user".into(), "1".into())];
    let mut no_retries = one_at_a_time.clone();
    no_retries.retries = 0;
    one_at_a_time.retries = 20;
    one_at_a_time.retry_backoff = Duration::from_millis(100);
    one_at_a_time.retry_backoff_max = Duration::from_millis(300);
    let engine = Arc::new(ClickHouse::new(&one_at_a_time).unwrap());
    let no_retries = ClickHouse::new(&no_retries).unwrap();

    let setup = engine_on(cluster, 0);
    setup
        .execute("DROP DATABASE IF EXISTS roost_it_admission")
        .await
        .unwrap();
    setup
        .execute("CREATE DATABASE roost_it_admission")
        .await
        .unwrap();
    let sleeper = {
        let engine = engine.clone();
        tokio::spawn(async move { engine.query("SELECT sleep(1.5)", "TabSeparated").await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let refused = no_retries
        .query("SELECT 2", "TabSeparated")
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Some(202), "{refused}");
    assert_eq!(refused.class(), ErrorClass::Transient);
    assert!(
        refused.may_retry(false),
        "refused at admission: it never started"
    );
    // A non-idempotent statement waits its turn through retries.
    let started = Instant::now();
    engine
        .execute("CREATE TABLE roost_it_admission.t (a UInt8) ENGINE = Memory")
        .await
        .unwrap();
    assert!(
        started.elapsed() > Duration::from_millis(500),
        "it should have waited for the sleeper"
    );
    sleeper.await.unwrap().unwrap();
    setup
        .execute("DROP DATABASE roost_it_admission")
        .await
        .unwrap();

    // A read over the user's total memory limit is transient: retried until the retries run out.
    let mut memory = config(cluster);
    memory.retries = 2;
    memory.retry_backoff = Duration::from_millis(400);
    memory.settings = vec![("max_memory_usage_for_user".into(), "1000000".into())];
    let memory = ClickHouse::new(&memory).unwrap();
    let started = Instant::now();
    let over = memory
        .query("SELECT groupArray(number) FROM numbers(1000000)", "Null")
        .await
        .unwrap_err();
    assert_eq!(over.code(), Some(241), "{over}");
    assert!(over.may_retry(true));
    // Two waits, each at least half its nominal 400 and 800 ms.
    assert!(
        started.elapsed() >= Duration::from_millis(600),
        "not retried: {:?}",
        started.elapsed()
    );
    // The same limit on the query itself fails the same way every time: not retried.
    let mut own_limit = config(cluster);
    own_limit.retries = 2;
    own_limit.retry_backoff = Duration::from_millis(400);
    own_limit
        .settings
        .push(("max_memory_usage".into(), "1000000".into()));
    let own_limit = ClickHouse::new(&own_limit).unwrap();
    let started = Instant::now();
    let own = own_limit
        .query("SELECT groupArray(number) FROM numbers(1000000)", "Null")
        .await
        .unwrap_err();
    assert!(own.to_string().contains("(for query)"), "{own}");
    assert!(!own.may_retry(true));
    assert!(started.elapsed() < Duration::from_millis(300));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_server_is_unavailable_then_recovers_when_restarted() {
    let Some(cluster) =
        cluster_or_skip("a_stopped_server_is_unavailable_then_recovers_when_restarted")
    else {
        return;
    };
    if !cluster.managed {
        println!(
            "SKIPPED: a_stopped_server_is_unavailable_then_recovers_when_restarted: the cluster was given by ROOST_TEST_CLICKHOUSE_URL(S), the harness cannot stop its servers"
        );
        return;
    }
    let _exclusive = SERVERS.write().await;
    let database = "roost_it_restart";
    let cluster_engine = engine(cluster);
    fresh_database(&cluster_engine, database).await;
    sharded_table(&cluster_engine, database, "events").await;
    let table = format!("{database}.events_local");
    let second = {
        let mut config = config(cluster);
        config.urls = vec![cluster.urls[1].clone()];
        config.retries = 0;
        config
    };
    let second_engine = ClickHouse::new(&second).unwrap();
    second_engine
        .insert(insert(&table, "TabSeparated", "1\tbefore\n", ""))
        .await
        .unwrap();

    let _restart = RestartOnDrop(cluster);
    let stop = Instant::now();
    tokio::task::spawn_blocking(|| cluster.stop_server(1))
        .await
        .unwrap()
        .unwrap();
    println!("stopping shard 2 took {:?}", stop.elapsed());

    // Nothing listens: Unavailable, transient, and safe to repeat even for an insert.
    let down = second_engine.query("SELECT 1", "JSON").await.unwrap_err();
    assert!(matches!(down, EngineError::Unavailable(_)), "{down:?}");
    assert_eq!(down.class(), ErrorClass::Transient);
    assert!(down.may_retry(false));
    let insert_down = second_engine
        .insert(insert(&table, "TabSeparated", "2\tduring\n", ""))
        .await
        .unwrap_err();
    assert!(
        matches!(insert_down, EngineError::Unavailable(_)),
        "{insert_down:?}"
    );

    // With both URLs configured, the engine fails over to the server that answers.
    let mut failover = config(cluster);
    failover.urls = vec![cluster.urls[1].clone(), cluster.urls[0].clone()];
    let failover = ClickHouse::new(&failover).unwrap();
    assert_eq!(
        text(
            &failover,
            "SELECT substitution FROM system.macros WHERE macro = 'shard'"
        )
        .await,
        "01"
    );

    // The insert is retried while the server comes back (connection refused: it never started).
    let mut patient = second.clone();
    patient.retries = 40;
    patient.retry_backoff = Duration::from_millis(200);
    patient.retry_backoff_max = Duration::from_millis(500);
    let patient = ClickHouse::new(&patient).unwrap();
    let restart = tokio::spawn(async {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let started = Instant::now();
        tokio::task::spawn_blocking(|| cluster.start())
            .await
            .unwrap()
            .unwrap();
        started.elapsed()
    });
    let started = Instant::now();
    patient
        .insert(insert(&table, "TabSeparated", "3\tafter\n", ""))
        .await
        .unwrap();
    let waited = started.elapsed();
    let restart_took = restart.await.unwrap();
    println!("shard 2 restarted in {restart_took:?}; the insert went through after {waited:?}");
    assert!(waited >= Duration::from_millis(1000), "{waited:?}");
    assert_eq!(
        text(
            &second_engine,
            &format!("SELECT groupArray(s) FROM (SELECT s FROM {table} ORDER BY id)")
        )
        .await,
        "['before','after']"
    );
    drop_database(&cluster_engine, database).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lost_zookeeper_makes_replicated_inserts_transient_and_deduplicated_ones_are_retried() {
    let Some(cluster) = cluster_or_skip(
        "a_lost_zookeeper_makes_replicated_inserts_transient_and_deduplicated_ones_are_retried",
    ) else {
        return;
    };
    if !cluster.managed {
        println!(
            "SKIPPED: a_lost_zookeeper_makes_replicated_inserts_transient_and_deduplicated_ones_are_retried: the cluster was given by ROOST_TEST_CLICKHOUSE_URL(S), the harness cannot stop ZooKeeper"
        );
        return;
    }
    let _exclusive = SERVERS.write().await;
    let database = "roost_it_zookeeper";
    let cluster_engine = engine(cluster);
    fresh_database(&cluster_engine, database).await;
    sharded_table(&cluster_engine, database, "events").await;
    let table = format!("{database}.events_local");
    let first = engine_on(cluster, 0);
    first
        .insert(insert(&table, "TabSeparated", "1\tbefore\n", ""))
        .await
        .unwrap();

    let _restart = RestartOnDrop(cluster);
    tokio::task::spawn_blocking(|| cluster.stop_zookeeper())
        .await
        .unwrap()
        .unwrap();

    // The default policy does not repeat an insert that may have reached the table.
    let read_only = first
        .insert(insert(&table, "TabSeparated", "2\tduring\n", ""))
        .await
        .unwrap_err();
    assert!(
        // TABLE_IS_READ_ONLY, NO_ZOOKEEPER or KEEPER_EXCEPTION, depending on how far the
        // server got in noticing ZooKeeper is gone.
        matches!(read_only.code(), Some(242) | Some(225) | Some(999)),
        "{read_only}"
    );
    assert_eq!(read_only.class(), ErrorClass::Transient);
    assert!(!read_only.may_retry(false));

    // A caller whose target deduplicates opts in, and the insert waits out ZooKeeper's return.
    let mut deduplicated = config(cluster);
    deduplicated.urls.truncate(1);
    deduplicated.insert_retry = InsertRetry::Deduplicated;
    deduplicated.retries = 60;
    deduplicated.retry_backoff = Duration::from_millis(250);
    deduplicated.retry_backoff_max = Duration::from_millis(500);
    let deduplicated = ClickHouse::new(&deduplicated).unwrap();
    let restart = tokio::spawn(async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        tokio::task::spawn_blocking(|| cluster.start())
            .await
            .unwrap()
            .unwrap();
    });
    let started = Instant::now();
    deduplicated
        .insert(insert(&table, "TabSeparated", "3\tafter\n", ""))
        .await
        .unwrap();
    restart.await.unwrap();
    println!(
        "the replicated insert went through {:?} after ZooKeeper was stopped and restarted",
        started.elapsed()
    );
    assert_eq!(
        text(
            &first,
            &format!("SELECT groupArray(s) FROM (SELECT s FROM {table} ORDER BY id)")
        )
        .await,
        "['before','after']"
    );
    drop_database(&cluster_engine, database).await;
}

/// The TCP connections (socket inodes) this process holds to `port` on loopback, LISTEN aside.
fn connections_to(port: u16) -> HashSet<String> {
    let mut ours = HashSet::new();
    if let Ok(entries) = std::fs::read_dir("/proc/self/fd") {
        for entry in entries.flatten() {
            if let Ok(target) = std::fs::read_link(entry.path()) {
                let target = target.to_string_lossy().into_owned();
                if let Some(inode) = target
                    .strip_prefix("socket:[")
                    .and_then(|t| t.strip_suffix(']'))
                {
                    ours.insert(inode.to_string());
                }
            }
        }
    }
    let remote = format!(":{port:04X}");
    ["/proc/self/net/tcp", "/proc/self/net/tcp6"]
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .flat_map(|table| {
            table
                .lines()
                .skip(1)
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // local, remote, state (0A = LISTEN), ..., inode at 9.
            (fields.len() > 9
                && fields[2].ends_with(&remote)
                && fields[3] != "0A"
                && ours.contains(fields[9]))
            .then(|| fields[9].to_string())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_drop_waits_for_the_data_in_words_the_server_knows() {
    let Some(cluster) = cluster_or_skip("a_drop_waits_for_the_data_in_words_the_server_knows")
    else {
        return;
    };
    let _shared = SERVERS.read().await;
    let engine = engine_on(cluster, 0);
    let sync = engine.drop_sync_clause().await.unwrap();
    let expected = if version(&engine).await.at_least(20, 10) {
        " SYNC"
    } else {
        ""
    };
    assert_eq!(sync, expected);
    let database = "roost_test_drop_sync";
    fresh_local_database(&engine, database).await;
    engine
        .execute(&format!(
            "CREATE TABLE {database}.t (id UInt32) ENGINE = MergeTree ORDER BY id"
        ))
        .await
        .unwrap();
    engine
        .execute(&format!("DROP TABLE IF EXISTS {database}.t{sync}"))
        .await
        .unwrap();
    let tables = format!("SELECT count() FROM system.tables WHERE database = '{database}'");
    assert_eq!(count(&engine, &tables).await, 0);
    drop_local_database(&engine, database).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn many_parallel_queries_share_a_bounded_pool_and_leak_no_connection() {
    let Some(cluster) =
        cluster_or_skip("many_parallel_queries_share_a_bounded_pool_and_leak_no_connection")
    else {
        return;
    };
    // Exclusive, so the connections counted are this test's alone.
    let _exclusive = SERVERS.write().await;
    let port: u16 = cluster.urls[0]
        .rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .unwrap();
    let mut config = config(cluster);
    config.urls.truncate(1);
    config.pool_size = 4;
    let engine = Arc::new(ClickHouse::new(&config).unwrap());
    assert!(connections_to(port).is_empty());

    let started = Instant::now();
    let queries = 400;
    let mut tasks = Vec::new();
    for i in 0..queries {
        let engine = engine.clone();
        tasks.push(tokio::spawn(async move {
            let answer = engine
                .query(
                    &format!("SELECT {i} + sum(number) FROM numbers(1000)"),
                    "TabSeparated",
                )
                .await
                .unwrap();
            assert_eq!(
                String::from_utf8_lossy(&answer.data).trim(),
                (i + 499_500).to_string()
            );
        }));
    }
    let mut peak = 0;
    let mut seen = HashSet::new();
    while tasks.iter().any(|task| !task.is_finished()) {
        let open = connections_to(port);
        peak = peak.max(open.len());
        seen.extend(open);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = started.elapsed();
    println!(
        "{queries} queries over a pool of 4 in {elapsed:?} ({:.0} queries/s); at most {peak} connections open at once, {} seen in all",
        queries as f64 / elapsed.as_secs_f64(),
        seen.len()
    );
    // At most 4 requests are in flight; a connection that just finished may still be on its way
    // back to the pool when the next request starts, so a few more can be open for a moment.
    assert!(peak <= 8, "{peak} connections for a pool of 4");
    // Keep-alive: the connections are reused, not opened per query.
    assert!(
        seen.len() <= 40,
        "{} connections for {queries} queries",
        seen.len()
    );
    // At most the pool's size stays idle, and the idle ones close after the idle timeout.
    assert!(connections_to(port).len() <= 4);
    tokio::time::sleep(config.pool_idle_timeout).await;
    assert!(
        all_closed_within(port, Duration::from_secs(5)).await,
        "idle connections outlived the idle timeout"
    );

    // Failed statements give their connection back too.
    for _ in 0..50 {
        engine.query("SELEC 1", "JSON").await.unwrap_err();
    }
    assert!(connections_to(port).len() <= 4);
    drop(engine);
    assert!(
        all_closed_within(port, Duration::from_secs(5)).await,
        "dropping the engine closes its connections"
    );
}

/// Whether this process's connections to `port` are all gone by `deadline`: the pool closes them
/// from background tasks, which a loaded machine may run late.
async fn all_closed_within(port: u16, deadline: Duration) -> bool {
    let started = Instant::now();
    while !connections_to(port).is_empty() {
        if started.elapsed() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}

#[tokio::test(flavor = "multi_thread")]
async fn insert_throughput_row_binary_against_json_each_row() {
    let Some(cluster) = cluster_or_skip("insert_throughput_row_binary_against_json_each_row")
    else {
        return;
    };
    // Exclusive, so the timings are not shared with other tests.
    let _exclusive = SERVERS.write().await;
    let engine = engine(cluster);
    let database = "roost_it_throughput";
    fresh_database(&engine, database).await;
    sharded_table(&engine, database, "events").await;
    let rows: Vec<(u32, String)> = (0..100_000)
        .map(|i| (i, format!("event-{i}-{}", "x".repeat(i as usize % 40))))
        .collect();
    let by_name = formats();
    for (name, target, settings) in [
        ("RowBinary", "events_local", ""),
        ("JSONEachRow", "events_local", ""),
        ("RowBinary", "events", "insert_distributed_sync = 1"),
        ("JSONEachRow", "events", "insert_distributed_sync = 1"),
    ] {
        let format = by_name.iter().find(|f| f.name == name).unwrap();
        let data = Bytes::from((format.encode)(&rows));
        let mut best = Duration::MAX;
        // The best of three rounds: the machine is shared and the first round warms up.
        for _ in 0..3 {
            engine
                .execute(&format!(
                    "TRUNCATE TABLE {database}.events_local{}",
                    on_cluster(engine.cluster())
                ))
                .await
                .unwrap();
            let started = Instant::now();
            engine
                .insert(insert(
                    &format!("{database}.{target}"),
                    name,
                    data.clone(),
                    settings,
                ))
                .await
                .unwrap();
            best = best.min(started.elapsed());
            assert_eq!(
                count(&engine, &format!("SELECT count() FROM {database}.events")).await,
                100_000
            );
        }
        println!(
            "100k rows {name} into {target}: {} bytes in {best:?} ({:.0} rows/s, {:.1} MB/s)",
            data.len(),
            100_000.0 / best.as_secs_f64(),
            data.len() as f64 / 1e6 / best.as_secs_f64()
        );
    }
    drop_database(&engine, database).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connection_the_server_closed_while_idle_is_not_reused() {
    let Some(cluster) = cluster_or_skip("a_connection_the_server_closed_while_idle_is_not_reused")
    else {
        return;
    };
    let _shared = SERVERS.read().await;
    // The pool keeps connections far longer than the server's keep_alive_timeout (3 s), so the
    // next statement finds one the server has closed in the meantime. An insert is never
    // repeated after it may have been sent, so it only succeeds if the dead connection is not used.
    let mut config = config(cluster);
    config.urls.truncate(1);
    config.pool_idle_timeout = Duration::from_secs(60);
    config.retries = 0;
    let engine = ClickHouse::new(&config).unwrap();
    let database = "roost_it_keep_alive";
    fresh_local_database(&engine, database).await;
    engine
        .execute(&format!(
            "CREATE TABLE {database}.t (id UInt32, s String) ENGINE = MergeTree ORDER BY id"
        ))
        .await
        .unwrap();
    for round in 0..2u32 {
        tokio::time::sleep(Duration::from_millis(3500)).await;
        engine
            .insert(insert(
                &format!("{database}.t"),
                "TabSeparated",
                format!("{round}\tr\n"),
                "",
            ))
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e:?}"));
    }
    assert_eq!(
        count(&engine, &format!("SELECT count() FROM {database}.t")).await,
        2
    );
    drop_local_database(&engine, database).await;
}

/// What a queue consumer relies on to insert a redelivered batch once: an identified insert is
/// found by its id on whichever server ran it, and a statement never run or refused is not.
#[tokio::test(flavor = "multi_thread")]
async fn identified_inserts_are_found_in_the_query_log_of_the_server_that_ran_them() {
    let Some(cluster) = cluster_or_skip(
        "identified_inserts_are_found_in_the_query_log_of_the_server_that_ran_them",
    ) else {
        return;
    };
    let _shared = SERVERS.read().await;
    let engine = engine(cluster);
    let database = "roost_it_identified";
    fresh_database(&engine, database).await;
    sharded_table(&engine, database, "t").await;
    let table = format!("{database}.t");
    let run = RUN.replace('_', "-");
    let first = format!("batch-{run}-0");
    let second = format!("batch-{run}-1");
    let never = format!("batch-{run}-never");
    let refused = format!("batch-{run}-bad");

    assert!(!engine.statement_landed(&first).await.unwrap());
    engine
        .insert_identified(
            insert(
                &table,
                "TabSeparated",
                "1\ta\n2\tb\n",
                "insert_distributed_sync = 1",
            ),
            &first,
        )
        .await
        .unwrap();
    assert!(engine.statement_landed(&first).await.unwrap());
    // The second server ran this one: it is found there.
    engine_on(cluster, 1)
        .insert_identified(
            insert(
                &table,
                "TabSeparated",
                "3\tc\n",
                "insert_distributed_sync = 1",
            ),
            &second,
        )
        .await
        .unwrap();
    assert!(engine.statement_landed(&second).await.unwrap());
    assert!(!engine.statement_landed(&never).await.unwrap());
    let error = engine
        .insert_identified(insert(&table, "TabSeparated", "x\ty\n", ""), &refused)
        .await
        .unwrap_err();
    assert_eq!(error.class(), ErrorClass::BadRequest, "{error}");
    assert!(!engine.statement_landed(&refused).await.unwrap());
    assert_eq!(
        count(&engine, &format!("SELECT count() FROM {table}")).await,
        3
    );
    // Ids go into SQL strings: anything but letters, digits, '-' and '_' is refused.
    assert!(matches!(
        engine.statement_landed("x' OR 1 = 1 --").await,
        Err(EngineError::Invalid(_))
    ));
    drop_database(&engine, database).await;
}

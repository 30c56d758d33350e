//! The chDB engine against the real library. One process may hold one data path, so every test
//! here opens the same temporary directory and works in its own database.

use std::sync::{Arc, OnceLock};

use roost_engine::{Chdb, ChdbConfig, Engine, InsertBlock};

fn engine() -> Arc<Chdb> {
    static ENGINE: OnceLock<Arc<Chdb>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let dir =
                std::env::temp_dir().join(format!("roost-engine-test-{}", std::process::id()));
            Arc::new(
                Chdb::open(&ChdbConfig::new(dir)).expect("libchdb.so is installed (make setup)"),
            )
        })
        .clone()
}

async fn fresh_database(engine: &Chdb, name: &str) {
    engine
        .execute(&format!("DROP DATABASE IF EXISTS {name}"))
        .await
        .unwrap();
    engine
        .execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn query_answers_in_the_requested_format() {
    let engine = engine();
    let csv = engine
        .query("SELECT 1 AS a, 'x' AS b", "CSVWithNames")
        .await
        .unwrap();
    assert_eq!(
        std::str::from_utf8(&csv.data).unwrap(),
        "\"a\",\"b\"\n1,\"x\"\n"
    );
    let json = engine
        .query("SELECT number FROM numbers(3)", "JSON")
        .await
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&json.data).unwrap();
    assert_eq!(body["rows"], 3);
    assert_eq!(body["meta"][0]["name"], "number");
    assert!(json.rows_read >= 3, "rows_read = {}", json.rows_read);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sync_drop_removes_the_table_at_once() {
    let engine = engine();
    let sync = engine.drop_sync_clause().await.unwrap();
    assert_eq!(sync, " SYNC");
    fresh_database(&engine, "drop_sync").await;
    engine
        .execute("CREATE TABLE drop_sync.t (id UInt32) ENGINE = MergeTree ORDER BY id")
        .await
        .unwrap();
    engine
        .execute(&format!("DROP TABLE IF EXISTS drop_sync.t{sync}"))
        .await
        .unwrap();
    // An Atomic database keeps a table dropped without SYNC until the delay passes.
    let dropped = engine
        .query(
            "SELECT count() FROM system.dropped_tables WHERE database = 'drop_sync'",
            "TabSeparated",
        )
        .await
        .unwrap();
    assert_eq!(std::str::from_utf8(&dropped.data).unwrap().trim(), "0");
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_carry_clickhouse_codes() {
    let engine = engine();
    let error = engine
        .query("SELECT * FROM no_such_db.no_such_table", "JSON")
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(81), "{error}");
    let error = engine.query("SELEC 1", "JSON").await.unwrap_err();
    assert_eq!(error.code(), Some(62), "{error}");
    assert_eq!(error.class(), roost_engine::ErrorClass::BadRequest);
}

#[tokio::test(flavor = "multi_thread")]
async fn reports_its_version_and_no_cluster() {
    let engine = engine();
    let version = engine.server_version().await.unwrap();
    let parsed = roost_engine::ServerVersion::parse(&version)
        .unwrap_or_else(|| panic!("not a version: {version}"));
    assert!(parsed.at_least(24, 1), "{version}");
    assert_eq!(engine.cluster(), None);
    assert_eq!(roost_engine::on_cluster(engine.cluster()), "");
}

#[tokio::test(flavor = "multi_thread")]
async fn row_binary_insert_is_binary_safe() {
    let engine = engine();
    fresh_database(&engine, "insert_test").await;
    engine
        .execute("CREATE TABLE insert_test.t (id UInt32, s String) ENGINE = MergeTree ORDER BY id")
        .await
        .unwrap();
    let mut rows = Vec::new();
    for id in 0u32..1000 {
        rows.extend_from_slice(&id.to_le_bytes());
        let text = format!("row\0{id}");
        rows.push(text.len() as u8);
        rows.extend_from_slice(text.as_bytes());
    }
    let summary = engine
        .insert(InsertBlock {
            table: "insert_test.t",
            columns: "id, s",
            format: "RowBinary",
            data: rows.into(),
            settings: "",
        })
        .await
        .unwrap();
    assert_eq!(summary.rows_written, 1000);
    let answer = engine
        .query(
            "SELECT count(), sum(id), max(length(s)) FROM insert_test.t",
            "CSV",
        )
        .await
        .unwrap();
    assert_eq!(
        std::str::from_utf8(&answer.data).unwrap(),
        "1000,499500,7\n"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_insert_data_is_refused_and_nothing_is_written() {
    let engine = engine();
    fresh_database(&engine, "bad_insert").await;
    engine
        .execute("CREATE TABLE bad_insert.t (id UInt32) ENGINE = MergeTree ORDER BY id")
        .await
        .unwrap();
    let error = engine
        .insert(InsertBlock {
            table: "bad_insert.t",
            columns: "",
            format: "JSONEachRow",
            data: "{\"id\": \"nope\"}\n".into(),
            settings: "",
        })
        .await
        .unwrap_err();
    assert_eq!(
        error.class(),
        roost_engine::ErrorClass::BadRequest,
        "{error}"
    );
    let answer = engine
        .query("SELECT count() FROM bad_insert.t", "CSV")
        .await
        .unwrap();
    assert_eq!(&answer.data[..], b"0\n");
}

/// Readers and writers on several connections at once: the pool must neither error nor lose rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_readers_and_writers() {
    let engine = engine();
    fresh_database(&engine, "concurrency").await;
    engine
        .execute("CREATE TABLE concurrency.t (w UInt8, n UInt64) ENGINE = MergeTree ORDER BY n")
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for writer in 0u8..4 {
        let engine = engine.clone();
        tasks.push(tokio::spawn(async move {
            for batch in 0..10u64 {
                let data: String = (0..500)
                    .map(|i| format!("{{\"w\":{writer},\"n\":{}}}\n", batch * 500 + i))
                    .collect();
                engine
                    .insert(InsertBlock {
                        table: "concurrency.t",
                        columns: "",
                        format: "JSONEachRow",
                        data: data.into(),
                        settings: "",
                    })
                    .await
                    .unwrap();
            }
        }));
    }
    for _ in 0..8 {
        let engine = engine.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..20 {
                engine
                    .query("SELECT w, count() FROM concurrency.t GROUP BY w", "JSON")
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let answer = engine
        .query("SELECT count(), uniqExact(w) FROM concurrency.t", "CSV")
        .await
        .unwrap();
    assert_eq!(std::str::from_utf8(&answer.data).unwrap(), "20000,4\n");
}

/// The engine ends the process before chDB's static destructors run (they crashed processes on
/// their way out): the exit status and what was printed must still come through.
#[test]
fn a_process_with_the_engine_exits_with_its_own_status() {
    const CHILD: &str = "ROOST_TEST_EXIT_CHILD";
    if std::env::var_os(CHILD).is_some() {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async { engine().query("SELECT 1", "TSV").await.unwrap() });
        print!("printed before exit");
        std::process::exit(3);
    }
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "a_process_with_the_engine_exits_with_its_own_status",
            "--exact",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(3), "{output:?}");
    assert!(stdout.contains("printed before exit"), "{stdout}");
}

/// Merges yield the CPU to inserts and queries: chDB's merge threads run at a lower priority.
#[tokio::test(flavor = "multi_thread")]
async fn merge_threads_run_at_a_lower_priority() {
    let engine = engine();
    fresh_database(&engine, "niced").await;
    engine
        .execute("CREATE TABLE niced.t (a UInt64) ENGINE = MergeTree ORDER BY a")
        .await
        .unwrap();
    // Parts to merge, so chDB starts its merge threads.
    for part in 0..6 {
        engine
            .execute(&format!(
                "INSERT INTO niced.t SELECT number FROM numbers({}, 1000)",
                part * 1000
            ))
            .await
            .unwrap();
    }
    let lowered = |values: &[i32]| {
        !values.is_empty()
            && values
                .iter()
                .all(|&nice| nice == roost_engine::DEFAULT_MERGE_THREAD_NICE)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let merge_threads = || thread_nice_values(|name| name.starts_with("MergeMutate"));
    let mut nice_values = merge_threads();
    while !lowered(&nice_values) && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        nice_values = merge_threads();
    }
    assert!(!nice_values.is_empty(), "chDB started no merge threads");
    assert!(
        lowered(&nice_values),
        "merge threads' nice values: {nice_values:?}"
    );
    // Every thread of this process that is not a merge thread keeps the usual priority.
    let others = thread_nice_values(|name| !name.starts_with("MergeMutate"));
    assert!(
        others.iter().all(|&nice| nice <= 0),
        "other threads' nice values: {others:?}"
    );
}

/// The nice values of this process's threads whose name passes `wanted`.
fn thread_nice_values(wanted: impl Fn(&str) -> bool) -> Vec<i32> {
    let tasks = std::fs::read_dir("/proc/self/task").unwrap();
    tasks
        .flatten()
        .filter(|task| {
            std::fs::read_to_string(task.path().join("comm")).is_ok_and(|name| wanted(name.trim()))
        })
        .filter_map(|task| {
            let stat = std::fs::read_to_string(task.path().join("stat")).ok()?;
            // Fields after the command name (in parentheses); the nice value is the 19th field.
            stat[stat.rfind(')')? + 2..]
                .split(' ')
                .nth(16)?
                .parse()
                .ok()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_data_path_in_one_process_is_refused() {
    let _ = engine();
    let other = std::env::temp_dir().join(format!("roost-engine-other-{}", std::process::id()));
    let error = Chdb::open(&ChdbConfig::new(other)).unwrap_err();
    assert!(error.to_string().contains("already open"), "{error}");
}

/// A query that fails after writing part of its answer must not leave that output for the next
/// statement on the same connection, which may serve another workspace.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_querys_partial_output_never_reaches_the_next_caller() {
    let shared = engine();
    let mut config = ChdbConfig::new(
        std::env::temp_dir().join(format!("roost-engine-test-{}", std::process::id())),
    );
    config.connections = 1;
    let single = Chdb::open(&config).expect("a second pool on the same path");
    let _ = shared;
    let failing = "SELECT number, throwIf(number = 50000, 'boom') FROM numbers(100000) SETTINGS max_block_size = 1000";
    let error = single.query(failing, "JSONEachRow").await.unwrap_err();
    assert!(error.to_string().contains("boom"), "{error}");
    let next = single.query("SELECT 'next'", "TSVRaw").await.unwrap();
    assert!(
        next.data[..] == b"next\n"[..],
        "{} bytes of the failed query's output leaked into the next answer",
        next.data.len()
    );
}

/// A streamed result comes block by block and equals the whole answer; a reader that stops early,
/// a statement that fails before its first block and one that fails half-way all leave the
/// connection clean for the next caller.
#[tokio::test(flavor = "multi_thread")]
async fn a_streamed_result_comes_block_by_block_and_leaves_its_connection_clean() {
    use futures::StreamExt;
    let shared = engine();
    let mut config = ChdbConfig::new(
        std::env::temp_dir().join(format!("roost-engine-test-{}", std::process::id())),
    );
    config.connections = 1;
    let single = Chdb::open(&config).expect("a second pool on the same path");
    let _ = shared;
    let sql =
        "SELECT number, toString(number * 7) FROM numbers(200000) SETTINGS max_block_size = 10000";
    let whole = single.query(sql, "TSV").await.unwrap().data;
    let mut stream = single.query_stream(sql, "TSV").await.unwrap();
    let (mut blocks, mut streamed) = (0, Vec::new());
    while let Some(block) = stream.next().await {
        streamed.extend_from_slice(&block.unwrap());
        blocks += 1;
    }
    assert_eq!(streamed, whole.to_vec());
    assert!(blocks > 1, "{} bytes came in one block", whole.len());

    let next = |expected: &'static str| {
        let single = &single;
        async move {
            let answer = single
                .query(&format!("SELECT '{expected}'"), "TSVRaw")
                .await
                .unwrap();
            assert_eq!(
                String::from_utf8_lossy(&answer.data),
                format!("{expected}\n"),
                "another statement's output reached this answer"
            );
        }
    };
    let mut stopped = single.query_stream(sql, "TSV").await.unwrap();
    assert!(!stopped.next().await.unwrap().unwrap().is_empty());
    drop(stopped);
    next("after a reader stopped").await;

    let error = single
        .query_stream("SELECT * FROM no_such_database.no_such_table", "TSV")
        .await
        .err()
        .expect("an unknown table fails the call");
    assert!(error.to_string().contains("no_such"), "{error}");
    next("after a failed start").await;

    let failing = "SELECT number, throwIf(number = 150000, 'boom') FROM numbers(200000) SETTINGS max_block_size = 10000";
    let failure = match single.query_stream(failing, "TSV").await {
        Err(error) => error,
        Ok(mut blocks) => loop {
            match blocks.next().await {
                Some(Ok(_)) => continue,
                Some(Err(error)) => break error,
                None => panic!("a failing statement streamed to its end"),
            }
        },
    };
    assert!(failure.to_string().contains("boom"), "{failure}");
    next("after a failure half-way").await;
}

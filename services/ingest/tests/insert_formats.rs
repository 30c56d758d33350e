//! What the engine spends taking the same rows in each input format: chDB's own JSONEachRow parser,
//! the decoder's RowBinaryWithDefaults and Native. A measurement, run with
//! `cargo test --release -p roost-ingest --test insert_formats -- --ignored --nocapture`.

mod common;

use std::time::Instant;

use bytes::Bytes;
use common::{create_table, unmerged_merge_tree};
use roost_engine::{Chdb, Engine, InsertBlock};
use roost_ingest::decode::{decode_ndjson, insert_column_list};
use roost_types::parse_schema;

const SCHEMA: &str = "`ts` DateTime64(3) `json:$.ts`, `event_id` UInt64 `json:$.event_id`, \
    `user_id` UInt64 `json:$.user_id`, `session_id` String `json:$.session_id`, \
    `country` String `json:$.country`, `event` String `json:$.event`, \
    `device_os` String `json:$.device.os`, `device_version` String `json:$.device.version`, \
    `amount` Float64 `json:$.amount`, `quantity` Int32 `json:$.quantity`, \
    `tags` Array(String) `json:$.tags[:]`";

const RAW_COLUMNS: &str = "`ts` DateTime64(3), `event_id` UInt64, `user_id` UInt64, \
    `session_id` String, `country` String, `event` String, `device.os` String, \
    `device.version` String, `amount` Float64, `quantity` Int32, `tags` Array(String)";

const ROWS: usize = 10_000;
const INSERTS: usize = 20;

fn body(batch: usize) -> String {
    const COUNTRIES: [&str; 4] = ["ES", "FR", "DE", "US"];
    const EVENTS: [&str; 3] = ["view", "click", "purchase"];
    const TAGS: [&str; 3] = ["\"new\"", "\"promo\"", "\"vip\""];
    (0..ROWS)
        .map(|j| {
            let i = batch * ROWS + j;
            format!(
                "{{\"ts\":\"2024-01-01 00:{:02}:{:02}.{:03}\",\"event_id\":{i},\"user_id\":{},\
                 \"session_id\":\"{:016x}\",\"country\":\"{}\",\"event\":\"{}\",\
                 \"device\":{{\"os\":\"linux\",\"version\":\"{}.{}\"}},\"amount\":{}.{:02},\
                 \"quantity\":{},\"tags\":[{}]}}\n",
                i / 60 % 60,
                i % 60,
                i % 1000,
                i * 7 % 100_000,
                (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                COUNTRIES[i % 4],
                EVENTS[i % 3],
                i % 15,
                i % 10,
                i % 1000,
                i % 100,
                i % 10,
                TAGS[..i % 4].join(",")
            )
        })
        .collect()
}

/// CPU seconds (user + system, every thread) this process has used so far.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // The fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

/// Wall and CPU seconds of inserting `blocks`.
async fn time_inserts(
    engine: &Chdb,
    table: &str,
    columns: &str,
    format: &str,
    settings: &str,
    blocks: &[Bytes],
) -> (f64, f64) {
    let cpu = cpu_seconds();
    let started = Instant::now();
    for block in blocks {
        engine
            .insert(InsertBlock {
                table,
                columns,
                format,
                data: block.clone(),
                settings,
            })
            .await
            .unwrap();
    }
    (started.elapsed().as_secs_f64(), cpu_seconds() - cpu)
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "a measurement, not a check"]
async fn engine_cost_per_input_format() {
    let engine = common::engine("formats");
    let engine: &Chdb = &engine;
    engine
        .execute("CREATE DATABASE IF NOT EXISTS f")
        .await
        .unwrap();
    let columns = parse_schema(SCHEMA).unwrap();
    for table in ["rb", "native", "null_rb", "null_native"] {
        let engine_clause = if table.starts_with("null") {
            "Null"
        } else {
            "MergeTree ORDER BY ts"
        };
        create_table(engine, &format!("f.{table}"), &columns, engine_clause).await;
    }
    for (table, engine_clause) in [("json", "MergeTree ORDER BY ts"), ("null_json", "Null")] {
        engine
            .execute(&format!(
                "CREATE TABLE f.{table} ({RAW_COLUMNS}) ENGINE = {engine_clause}"
            ))
            .await
            .unwrap();
    }
    let bodies: Vec<Bytes> = (0..INSERTS).map(|i| Bytes::from(body(i))).collect();
    let cpu = cpu_seconds();
    let started = Instant::now();
    let row_binary: Vec<Bytes> = bodies
        .iter()
        .map(|b| Bytes::from(decode_ndjson(&columns, b).unwrap().data))
        .collect();
    let decode_seconds = (started.elapsed().as_secs_f64(), cpu_seconds() - cpu);
    let list = insert_column_list(&columns);
    let rows = (ROWS * INSERTS) as f64;
    let report = |what: &str, (wall, cpu): (f64, f64)| {
        println!(
            "{what:<40} wall {wall:6.3} s {:6.0} ns/row   cpu {cpu:6.3} s {:6.0} ns/row",
            wall * 1e9 / rows,
            cpu * 1e9 / rows
        );
    };
    report("decode_ndjson (Rust)", decode_seconds);
    let json_settings = "input_format_import_nested_json = 1";
    for (prefix, label) in [("null_", "Null engine"), ("", "MergeTree")] {
        let seconds = time_inserts(
            engine,
            &format!("f.{prefix}json"),
            "",
            "JSONEachRow",
            json_settings,
            &bodies,
        )
        .await;
        report(&format!("JSONEachRow -> {label}"), seconds);
        let seconds = time_inserts(
            engine,
            &format!("f.{prefix}rb"),
            &list,
            "RowBinaryWithDefaults",
            "",
            &row_binary,
        )
        .await;
        report(&format!("RowBinaryWithDefaults -> {label}"), seconds);
    }
    // Native blocks as ClickHouse writes them, 10k rows each.
    let mut native = Vec::new();
    for i in 0..INSERTS {
        let answer = engine
            .query(
                &format!(
                    "SELECT * FROM f.rb WHERE event_id >= {} AND event_id < {}",
                    i * ROWS,
                    (i + 1) * ROWS
                ),
                "Native",
            )
            .await
            .unwrap();
        native.push(answer.data);
    }
    for (prefix, label) in [("null_", "Null engine"), ("", "MergeTree")] {
        let seconds = time_inserts(
            engine,
            &format!("f.{prefix}native"),
            &list,
            "Native",
            "",
            &native,
        )
        .await;
        report(&format!("Native -> {label}"), seconds);
    }
    // Fewer, larger inserts of the same rows: Native blocks back to back form one stream.
    for per_insert in [1, 2, 4] {
        engine.execute("TRUNCATE TABLE f.native").await.unwrap();
        let merged: Vec<Bytes> = native
            .chunks(per_insert)
            .map(|blocks| Bytes::from(blocks.concat()))
            .collect();
        let seconds = time_inserts(engine, "f.native", &list, "Native", "", &merged).await;
        report(
            &format!(
                "Native -> MergeTree, {}k rows/insert",
                per_insert * ROWS / 1000
            ),
            seconds,
        );
    }
    // The same with merges off: what an insert itself costs, without the merges its part causes.
    create_table(engine, "f.unmerged", &columns, &unmerged_merge_tree("ts")).await;
    let decoded_native: Vec<Bytes> = bodies
        .iter()
        .map(|b| {
            let batch = roost_ingest::decode::decode_ndjson_as(
                &columns,
                b,
                roost_ingest::decode::BlockFormat::Native,
            )
            .unwrap();
            Bytes::from(batch.data)
        })
        .collect();
    for (label, blocks) in [
        ("engine's Native", &native),
        ("decoder's Native", &decoded_native),
        ("engine's Native", &native),
        ("decoder's Native", &decoded_native),
    ] {
        let seconds = time_inserts(engine, "f.unmerged", &list, "Native", "", blocks).await;
        report(&format!("{label} -> unmerged, 10k rows/insert"), seconds);
    }
    for per_insert in [1, 4, 1, 4] {
        let merged: Vec<Bytes> = native
            .chunks(per_insert)
            .map(|blocks| Bytes::from(blocks.concat()))
            .collect();
        let seconds = time_inserts(engine, "f.unmerged", &list, "Native", "", &merged).await;
        report(
            &format!(
                "Native -> unmerged, {}k rows/insert",
                per_insert * ROWS / 1000
            ),
            seconds,
        );
    }
    // The fixed cost of one insert: one-row blocks.
    let one_row: Vec<Bytes> = (0..INSERTS)
        .map(|i| {
            Bytes::from(
                decode_ndjson(&columns, body(i).lines().next().unwrap().as_bytes())
                    .unwrap()
                    .data,
            )
        })
        .collect();
    for (prefix, label) in [("null_", "Null engine"), ("", "MergeTree")] {
        let (wall, cpu) = time_inserts(
            engine,
            &format!("f.{prefix}rb"),
            &list,
            "RowBinaryWithDefaults",
            "",
            &one_row,
        )
        .await;
        println!(
            "one-row insert -> {label:<23} wall {:6.2} ms/insert            cpu {:6.2} ms/insert",
            wall * 1e3 / INSERTS as f64,
            cpu * 1e3 / INSERTS as f64
        );
    }
}

/// Four concurrent writers of 10k-row Native blocks, as `make bench` sends them: straight to the
/// engine, or through [`InsertQueues`] with one or two inserts per table at a time.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a measurement, not a check"]
async fn coalescing_under_concurrent_writers() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use roost_ingest::coalesce::InsertQueues;
    use roost_ingest::decode::{BlockFormat, decode_ndjson_as};

    let engine = common::engine("formats");
    engine
        .execute("CREATE DATABASE IF NOT EXISTS c")
        .await
        .unwrap();
    let columns = parse_schema(SCHEMA).unwrap();
    let list = insert_column_list(&columns);
    let blocks: Arc<Vec<Bytes>> = Arc::new(
        (0..50)
            .map(|i| {
                let batch =
                    decode_ndjson_as(&columns, body(i).as_bytes(), BlockFormat::Native).unwrap();
                Bytes::from(batch.data)
            })
            .collect(),
    );
    let bodies: Arc<Vec<Bytes>> = Arc::new((0..50).map(|i| Bytes::from(body(i))).collect());
    let rows = (50 * ROWS) as f64;
    // turns 0: straight to the engine; 1, 2: through the queues; 11: decoding each body first,
    // then through the queues with one turn, as the ingest service does.
    for (round, turns) in [99usize, 1, 11, 99, 1, 11].into_iter().enumerate() {
        let table = format!("c.t{round}");
        create_table(&engine, &table, &columns, "MergeTree ORDER BY ts").await;
        let queues = Arc::new(InsertQueues::new(engine.clone(), turns.clamp(1, 2)));
        let next = Arc::new(AtomicUsize::new(0));
        let cpu = cpu_seconds();
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let (engine, queues, blocks, next, table, list) = (
                engine.clone(),
                queues.clone(),
                blocks.clone(),
                next.clone(),
                table.clone(),
                list.clone(),
            );
            let (bodies, columns) = (bodies.clone(), columns.clone());
            tasks.push(tokio::spawn(async move {
                while let Some(block) = blocks.get(next.fetch_add(1, Ordering::Relaxed)) {
                    if turns == 99 {
                        let body = bodies[block.len() % bodies.len()].clone();
                        let columns = columns.clone();
                        tokio::task::spawn_blocking(move || {
                            decode_ndjson_as(&columns, &body, BlockFormat::Native).unwrap()
                        })
                        .await
                        .unwrap();
                    } else if turns == 11 {
                        let incoming = queues.announce(&table);
                        let body = bodies[block.len() % bodies.len()].clone();
                        let columns = columns.clone();
                        let decoded = tokio::task::spawn_blocking(move || {
                            decode_ndjson_as(&columns, &body, BlockFormat::Native).unwrap()
                        })
                        .await
                        .unwrap();
                        incoming
                            .insert(&list, "Native", Bytes::from(decoded.data))
                            .await
                            .unwrap();
                    } else if turns == 0 {
                        engine
                            .insert(InsertBlock {
                                table: &table,
                                columns: &list,
                                format: "Native",
                                data: block.clone(),
                                settings: "",
                            })
                            .await
                            .unwrap();
                    } else {
                        queues
                            .insert(&table, &list, "Native", block.clone())
                            .await
                            .unwrap();
                    }
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        let (wall, cpu) = (started.elapsed().as_secs_f64(), cpu_seconds() - cpu);
        let parts = engine
            .query(
                &format!(
                    "SELECT count() FROM system.parts WHERE database = 'c' AND table = 't{round}' AND level = 0"
                ),
                "TSV",
            )
            .await
            .unwrap();
        println!(
            "{:<28} wall {wall:6.3} s {:6.0} ns/row   cpu {cpu:6.3} s {:6.0} ns/row   {} inserts",
            if turns == 0 {
                "direct".to_owned()
            } else {
                format!("coalesced, {turns} turn(s)")
            },
            wall * 1e9 / rows,
            cpu * 1e9 / rows,
            String::from_utf8_lossy(&parts.data).trim()
        );
    }
}

/// A joint insert of four 10k-row batches (what the ingest service's queue sends under `make
/// bench`), its Native blocks laid end to end or merged into one block, one insert at a time.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "a measurement, not a check"]
async fn joint_insert_as_one_block_or_several() {
    use roost_ingest::decode::{BlockFormat, decode_ndjson_as, merge_native_blocks};

    let engine = common::engine("formats");
    engine
        .execute("CREATE DATABASE IF NOT EXISTS j")
        .await
        .unwrap();
    let columns = parse_schema(SCHEMA).unwrap();
    let list = insert_column_list(&columns);
    let blocks: Vec<Vec<u8>> = (0..96)
        .map(|i| {
            decode_ndjson_as(&columns, body(i).as_bytes(), BlockFormat::Native)
                .unwrap()
                .data
        })
        .collect();
    let rows = (blocks.len() * ROWS) as f64;
    for (round, merged) in [false, true].repeat(4).into_iter().enumerate() {
        let table = format!("j.t{round}");
        create_table(&engine, &table, &columns, &unmerged_merge_tree("ts")).await;
        let cpu = cpu_seconds();
        let started = Instant::now();
        let mut joining = std::time::Duration::ZERO;
        for group in blocks.chunks(4) {
            let joined = Instant::now();
            let data = if merged {
                merge_native_blocks(group.iter().map(Vec::as_slice)).unwrap()
            } else {
                group.concat()
            };
            joining += joined.elapsed();
            engine
                .insert(InsertBlock {
                    table: &table,
                    columns: &list,
                    format: "Native",
                    data: Bytes::from(data),
                    settings: "",
                })
                .await
                .unwrap();
        }
        let (wall, cpu) = (started.elapsed().as_secs_f64(), cpu_seconds() - cpu);
        println!(
            "{:<22} wall {wall:6.3} s {:5.0} ns/row   cpu {cpu:6.3} s {:5.0} ns/row   \
             joining {:3.0} ns/row",
            if merged {
                "merged into one block"
            } else {
                "blocks end to end"
            },
            wall * 1e9 / rows,
            cpu * 1e9 / rows,
            joining.as_secs_f64() * 1e9 / rows,
        );
    }
}

/// The decoder alone on the bench's kind of rows, for instruction counts:
/// `valgrind --tool=callgrind --toggle-collect='roost_ingest::decode::ndjson::decode_ndjson_as*'`
/// on this test binary with `--ignored decoder_alone`.
#[test]
#[ignore = "a measurement, not a check"]
fn decoder_alone() {
    let columns = parse_schema(SCHEMA).unwrap();
    let bodies: Vec<String> = (0..4).map(body).collect();
    let started = Instant::now();
    let mut rows = 0;
    for body in &bodies {
        let batch = roost_ingest::decode::decode_ndjson_as(
            &columns,
            body.as_bytes(),
            roost_ingest::decode::BlockFormat::Native,
        )
        .unwrap();
        assert!(batch.quarantined.is_empty());
        rows += batch.rows;
    }
    println!(
        "decoded {rows} rows in {:.1} ns/row",
        started.elapsed().as_secs_f64() * 1e9 / rows as f64
    );
}

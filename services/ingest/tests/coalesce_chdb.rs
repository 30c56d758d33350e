//! Coalesced inserts against real ClickHouse (chDB): concurrent batches for one table become fewer
//! inserts, every caller's rows are stored when its call returns, and a bad batch fails alone.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::{fresh_table, unmerged_merge_tree};
use roost_engine::{Chdb, Engine};
use roost_ingest::coalesce::InsertQueues;
use roost_ingest::decode::{BlockFormat, decode_ndjson_as, insert_column_list};
use roost_types::{Column, parse_schema};

const SCHEMA: &str =
    "id UInt32 `json:$.id`, name String `json:$.name`, tags Array(String) `json:$.tags`";

/// A fresh table in `database` that never merges: the tests count the parts inserts made.
async fn create_table(engine: &Chdb, database: &str, columns: &[Column]) -> String {
    fresh_table(engine, database, columns, &unmerged_merge_tree("id")).await
}

fn block(columns: &[Column], ids: std::ops::Range<u32>) -> Bytes {
    let body: String = ids
        .map(|id| format!("{{\"id\":{id},\"name\":\"n{id}\",\"tags\":[\"a\",\"b{id}\"]}}\n"))
        .collect();
    let batch = decode_ndjson_as(columns, body.as_bytes(), BlockFormat::Native).unwrap();
    assert_eq!(batch.format, BlockFormat::Native);
    Bytes::from(batch.data)
}

async fn count(engine: &Chdb, sql: &str) -> u64 {
    let answer = engine.query(sql, "TSV").await.unwrap();
    String::from_utf8_lossy(&answer.data)
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_batches_share_inserts_and_all_rows_arrive() {
    let engine = common::engine("coalesce");
    let columns = parse_schema(SCHEMA).unwrap();
    let table = create_table(&engine, "coalesce_rows", &columns).await;
    let queues = Arc::new(InsertQueues::new(engine.clone(), 1));
    let list = insert_column_list(&columns);
    // Every batch is decoded before any is sent, so they arrive together (decoding between
    // spawns let each insert finish before the next batch came, now and then, under load).
    let batches: Vec<Bytes> = (0..16u32)
        .map(|i| block(&columns, i * 1000..(i + 1) * 1000))
        .collect();
    let mut tasks = Vec::new();
    for data in batches {
        let (queues, table, list) = (queues.clone(), table.clone(), list.clone());
        tasks.push(tokio::spawn(async move {
            queues.insert(&table, &list, "Native", data).await
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(
        count(&engine, &format!("SELECT count() FROM {table}")).await,
        16_000
    );
    assert_eq!(
        count(&engine, &format!("SELECT uniqExact(id) FROM {table}")).await,
        16_000
    );
    // Joint inserts merge the batches' blocks into one: every row keeps its own values.
    assert_eq!(
        count(
            &engine,
            &format!(
                "SELECT count() FROM {table} WHERE name = concat('n', toString(id)) \
                 AND tags = ['a', concat('b', toString(id))]"
            )
        )
        .await,
        16_000
    );
    let parts = count(
        &engine,
        "SELECT count() FROM system.parts WHERE database = 'coalesce_rows' AND table = 't' AND active",
    )
    .await;
    // One insert at a time: the first batch goes alone, those queued behind it go together.
    assert!(parts < 16, "{parts} parts for 16 batches");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bad_batch_fails_alone() {
    let engine = common::engine("coalesce");
    let columns = parse_schema(SCHEMA).unwrap();
    let table = create_table(&engine, "coalesce_errors", &columns).await;
    let queues = Arc::new(InsertQueues::new(engine.clone(), 1));
    let list = insert_column_list(&columns);
    // A large first batch keeps the turn busy while the others queue up behind it.
    let mut batches = vec![block(&columns, 0..50_000), block(&columns, 50_000..50_010)];
    batches.push(Bytes::from_static(b"\x03\x01not a native block"));
    batches.push(block(&columns, 60_000..60_010));
    let mut tasks = Vec::new();
    for data in batches {
        let (queues, table, list) = (queues.clone(), table.clone(), list.clone());
        tasks.push(tokio::spawn(async move {
            queues.insert(&table, &list, "Native", data).await
        }));
    }
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    assert!(results[0].is_ok(), "{:?}", results[0]);
    assert!(results[1].is_ok(), "{:?}", results[1]);
    assert!(results[2].is_err());
    assert!(results[3].is_ok(), "{:?}", results[3]);
    assert_eq!(
        count(&engine, &format!("SELECT count() FROM {table}")).await,
        50_020
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_turn_waits_for_announced_batches() {
    let engine = common::engine("coalesce");
    let columns = parse_schema(SCHEMA).unwrap();
    let table = create_table(&engine, "coalesce_gather", &columns).await;
    let queues = Arc::new(InsertQueues::new(engine.clone(), 1));
    let list = insert_column_list(&columns);
    // Announced, then withdrawn (a request whose body failed to decode): nobody waits for it.
    drop(queues.announce(&table));
    let first = queues.announce(&table);
    let second = queues.announce(&table);
    let first_data = block(&columns, 0..100);
    let second_data = block(&columns, 100..200);
    let (first_list, second_list) = (list.clone(), list.clone());
    let (first, second) = tokio::join!(
        async move { first.insert(&first_list, "Native", first_data).await },
        async move {
            // Still "decoding" when the first batch's turn starts.
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            second.insert(&second_list, "Native", second_data).await
        }
    );
    first.unwrap();
    second.unwrap();
    assert_eq!(
        count(&engine, &format!("SELECT count() FROM {table}")).await,
        200
    );
    let parts = count(
        &engine,
        "SELECT count() FROM system.parts WHERE database = 'coalesce_gather' AND table = 't' AND active",
    )
    .await;
    assert_eq!(
        parts, 1,
        "the second batch should have joined the first's insert"
    );
}

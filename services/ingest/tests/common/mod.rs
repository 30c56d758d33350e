//! What this crate's chDB test binaries share. One process may hold one chDB data path, so each
//! binary opens one temporary directory for all its tests, and each test uses its own database.

// Each test binary uses part of this.
#![allow(dead_code)]

use std::sync::{Arc, OnceLock};

use roost_engine::{Chdb, ChdbConfig, Engine};
use roost_types::Column;

/// This test binary's engine, opened on first use in a temporary directory named after `name`.
pub fn engine(name: &str) -> Arc<Chdb> {
    static ENGINE: OnceLock<Arc<Chdb>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let dir =
                std::env::temp_dir().join(format!("roost-ingest-{name}-{}", std::process::id()));
            Arc::new(
                Chdb::open(&ChdbConfig::new(dir)).expect("libchdb.so is installed (make setup)"),
            )
        })
        .clone()
}

/// A MergeTree sorted by `order_by` that never merges its parts: they stay as the inserts made
/// them, and no background merge lands on a later measurement.
pub fn unmerged_merge_tree(order_by: &str) -> String {
    format!("MergeTree ORDER BY {order_by} SETTINGS max_bytes_to_merge_at_max_space_in_pool = 1")
}

/// Creates `table` with `columns` and `engine_clause` (`MergeTree ORDER BY ts`, `Null`, ...).
pub async fn create_table(engine: &Chdb, table: &str, columns: &[Column], engine_clause: &str) {
    let ddl: Vec<String> = columns.iter().map(Column::ddl).collect();
    engine
        .execute(&format!(
            "CREATE TABLE {table} ({}) ENGINE = {engine_clause}",
            ddl.join(", ")
        ))
        .await
        .unwrap();
}

/// Creates `database` afresh with one table `t` of `columns` and `engine_clause`; its quoted name.
pub async fn fresh_table(
    engine: &Chdb,
    database: &str,
    columns: &[Column],
    engine_clause: &str,
) -> String {
    engine
        .execute(&format!("DROP DATABASE IF EXISTS {database}"))
        .await
        .unwrap();
    engine
        .execute(&format!("CREATE DATABASE {database}"))
        .await
        .unwrap();
    let table = format!("`{database}`.`t`");
    create_table(engine, &table, columns, engine_clause).await;
    table
}

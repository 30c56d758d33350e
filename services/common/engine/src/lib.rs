//! The storage engine seam: run a query and get its result in a ClickHouse output format, insert a
//! block of rows in a ClickHouse input format, run DDL.
//!
//! Two implementations share the [`Engine`] trait: [`Chdb`] embeds ClickHouse through chDB's
//! `libchdb.so` (loaded at run time, so building needs no library) and, in distributed mode,
//! [`ClickHouse`] talks to a ClickHouse server or cluster over HTTP. This crate owns no Tinybird
//! concept: callers pass fully qualified, already validated SQL and quoted identifiers.

mod chdb;
mod clickhouse;
mod error;
mod version;

pub use chdb::{Chdb, ChdbConfig, DEFAULT_MERGE_THREAD_NICE, LIBCHDB_ENV};
pub use clickhouse::{ClickHouse, ClickHouseConfig, InsertRetry};
pub use error::{EngineError, ErrorClass};
pub use version::ServerVersion;

use async_trait::async_trait;
use bytes::Bytes;

/// The outcome of a query: the whole answer in the requested format plus what ClickHouse counted.
#[derive(Debug, Clone, Default)]
pub struct QueryResult {
    /// The result, encoded in the format the caller asked for.
    pub data: Bytes,
    /// Seconds the engine spent on the statement.
    pub elapsed: f64,
    /// Rows the statement read.
    pub rows_read: u64,
    /// Bytes the statement read.
    pub bytes_read: u64,
}

/// A result as ordered chunks of its encoded bytes.
pub type ByteStream = futures::stream::BoxStream<'static, Result<Bytes, EngineError>>;

/// What an insert wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InsertSummary {
    /// Rows written, including rows cascaded into materialized views.
    pub rows_written: u64,
    /// Bytes written.
    pub bytes_written: u64,
}

/// A block of rows to insert.
#[derive(Debug, Clone)]
pub struct InsertBlock<'a> {
    /// Quoted, qualified target table, e.g. "`db`.`events`".
    pub table: &'a str,
    /// Quoted column names, e.g. "`a`, `b`"; empty for all columns in table order.
    pub columns: &'a str,
    /// ClickHouse input format of `data` (RowBinary, JSONEachRow, CSV, Parquet, ...).
    pub format: &'a str,
    /// The encoded rows.
    pub data: Bytes,
    /// `SETTINGS` clause body for the insert (e.g. "input_format_skip_unknown_fields = 1"), or empty.
    pub settings: &'a str,
}

/// A ClickHouse engine.
#[async_trait]
pub trait Engine: Send + Sync + 'static {
    /// Runs a statement that returns rows and answers it in `format` (a ClickHouse output format).
    async fn query(&self, sql: &str, format: &str) -> Result<QueryResult, EngineError>;
    /// Runs a statement that returns rows and answers it in `format` as ordered chunks, for
    /// callers that pass a large result on (sinks) rather than hold it. Engines that cannot
    /// stream answer the whole result as one chunk.
    async fn query_stream(&self, sql: &str, format: &str) -> Result<ByteStream, EngineError> {
        let answer = self.query(sql, format).await?;
        Ok(Box::pin(futures::stream::once(
            async move { Ok(answer.data) },
        )))
    }
    /// Runs a statement without a result (DDL, ALTER, TRUNCATE, INSERT ... SELECT).
    async fn execute(&self, sql: &str) -> Result<(), EngineError>;
    /// Inserts one block of encoded rows.
    async fn insert(&self, block: InsertBlock<'_>) -> Result<InsertSummary, EngineError>;
    /// A short name for logs and `/health` ("chdb", "clickhouse").
    fn kind(&self) -> &'static str;

    /// Inserts one block as the statement `statement_id` (a ClickHouse `query_id`), so that
    /// [`Engine::statement_landed`] can later tell whether it was stored. A queue consumer that
    /// may get the same batch twice uses it to insert each part at most once. Engines without
    /// statement ids (chDB, one process, nothing redelivered) insert as [`Engine::insert`].
    async fn insert_identified(
        &self,
        block: InsertBlock<'_>,
        statement_id: &str,
    ) -> Result<InsertSummary, EngineError> {
        let _ = statement_id;
        self.insert(block).await
    }

    /// Whether the statement `statement_id` finished successfully on any server. `Err` when it
    /// cannot be known now (a server unreachable, the statement still running): the caller must
    /// ask again later rather than guess.
    async fn statement_landed(&self, statement_id: &str) -> Result<bool, EngineError> {
        let _ = statement_id;
        Err(EngineError::Unsupported(
            "this engine keeps no log of statements",
        ))
    }

    /// The cluster that DDL must name (`ON CLUSTER`), when the engine is a cluster; render the
    /// clause with [`on_cluster`].
    fn cluster(&self) -> Option<&str> {
        None
    }

    /// What ends a `DROP TABLE` / `DROP VIEW` so that it returns once the data is gone: ` SYNC`
    /// where databases are Atomic by default (ClickHouse 20.10 and later, chDB), which would
    /// otherwise keep a dropped table's data on disk for minutes; nothing on older servers, whose
    /// Ordinary databases drop at once and whose parser refuses the word.
    async fn drop_sync_clause(&self) -> Result<&'static str, EngineError> {
        let version = self.server_version().await?;
        Ok(match ServerVersion::parse(&version) {
            Some(version) if !version.at_least(20, 10) => "",
            _ => " SYNC",
        })
    }

    /// The ClickHouse version behind the engine (`SELECT version()`), e.g. "18.16.1" or
    /// "26.7.3.1": callers decide from it what SQL and formats the server lacks (see
    /// [`ServerVersion`]).
    async fn server_version(&self) -> Result<String, EngineError> {
        let answer = self.query("SELECT version()", "TabSeparated").await?;
        Ok(String::from_utf8_lossy(&answer.data).trim().to_string())
    }
}

/// The ` ON CLUSTER `name`` clause for DDL on `cluster`, or an empty string for a single server.
/// Cluster names are checked when the engine is configured, so quoting them suffices.
pub fn on_cluster(cluster: Option<&str>) -> String {
    match cluster {
        Some(name) => format!(" ON CLUSTER `{name}`"),
        None => String::new(),
    }
}

/// On a cluster, a data source's rows live in a local table on every shard, named after the
/// Distributed table that reads and writes them with this suffix.
pub const LOCAL_TABLE_SUFFIX: &str = "_local";

/// The local table behind the Distributed table `table` (a qualified, quoted name such as
/// "`db`.`t`", or a plain one): "`db`.`t_local`". DDL that a Distributed table cannot run
/// (ALTER ... DELETE, TRUNCATE) goes there, `ON CLUSTER`.
pub fn local_table(table: &str) -> String {
    match table.strip_suffix('`') {
        Some(quoted) => format!("{quoted}{LOCAL_TABLE_SUFFIX}`"),
        None => format!("{table}{LOCAL_TABLE_SUFFIX}"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn local_tables_carry_the_suffix_inside_the_quotes() {
        assert_eq!(super::local_table("`db`.`t_1`"), "`db`.`t_1_local`");
        assert_eq!(super::local_table("db.t"), "db.t_local");
    }
}

//! Validation and table rewriting of user SQL (`/v0/sql` queries and pipe nodes).
//!
//! Users write ClickHouse SQL against the names of their Data Sources (and, later, pipe nodes);
//! every workspace is its own ClickHouse database and users never write database names. Before a
//! query runs we must make sure it is a single read-only `SELECT`, find every table it reads,
//! replace each with what the [`TableResolver`] says (a qualified table such as `` `d_ws1`.`events` ``
//! or a subquery), and refuse anything that could reach outside the workspace.
//!
//! # Approach: an exact lexer plus a structural scanner, not a parser
//!
//! ClickHouse's grammar is enormous and grows every release (lambdas, `-State`/`-Merge`
//! combinators, `x::Int32`, `COLUMNS('re') APPLY(f)`, `WITH FILL`, heredocs, ...). A parser of our
//! own would reject valid queries whenever it fell behind, and would still have to agree with
//! ClickHouse on every detail that matters for security. Instead:
//!
//! 1. [`lexer`] splits the text exactly where ClickHouse's lexer does: strings with backslash and
//!    doubled-quote escapes, `` `quoted` `` and `"quoted"` identifiers, `--`, `//`, `# ` and `/* */`
//!    comments, heredocs, ClickHouse's number rules (where `1e--5` is `1e-` then `-5`, not a
//!    comment). Anything whose reading could differ (nested comments, odd heredoc tags, backslashes
//!    in quoted identifiers, non-ASCII outside literals, `#x`, `\G`) is refused.
//! 2. [`scanner`] walks the tokens and only recognises the few places where a table can enter a
//!    query: after `FROM`, after any `JOIN` (but not `ARRAY JOIN`), after commas of a `FROM a, b`
//!    list, and on the right of `IN`. The rest of the expression syntax passes through untouched.
//!    Where a word is ambiguous, the scanner checks more rather than less, so the failure mode is a
//!    rejected valid query, never an unchecked table.
//!
//! # What is refused
//!
//! - Anything but one `SELECT` / `WITH ... SELECT` / parenthesized or set-operation combination of
//!   them (one trailing `;` is dropped); `EXPLAIN`/`SHOW`/`DESCRIBE` as subqueries; `INTO OUTFILE`.
//! - Database-qualified tables (`system.tables`, `default.t`), tables the resolver does not know,
//!   references by `UUID`, and `{name:Type}` query parameters.
//! - Table functions other than pure generators (`numbers`, `zeros`, `generate_series`, `values`,
//!   `generateRandom`), and the functions in [`policy::DENIED_FUNCTIONS`] anywhere in the query
//!   (`file`, `url`, `remote`, `joinGet`, `dictGet*`, `currentDatabase`, `getSetting`, `sleep`, ...).
//! - `SETTINGS` names outside [`policy::ALLOWED_SETTINGS`].
//!
//! A top-level `FORMAT name` is removed and reported separately so the caller decides the output
//! format. The returned SQL never ends with a comment or `;`, so the caller may append to it.
//! Names in `WITH name AS (SELECT ...)` are left as written where visible (same or enclosing level).
//!
//! Defence in depth still matters: the caller should run the rewritten SQL as a read-only user whose
//! current database is the workspace's own (in chDB/clickhouse-local, never the default overlay
//! database, which can read files by path) and with resource limits, since `numbers(1e12)` is legal.

mod lexer;
use roost_types::sql_policy as policy;
mod scanner;
#[cfg(test)]
mod tests;

/// Maps the table names users write to the SQL that reads them.
pub trait TableResolver {
    /// Replacement SQL text for the table `name` as the user wrote it (unquoted identifier), e.g.
    /// "`d_ws1`.`events`" or "(SELECT ...)"; None when no such data source exists.
    fn resolve(&self, name: &str) -> Option<String>;
}

/// A query that passed validation, ready to run.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidatedSql {
    /// The rewritten SQL: tables replaced, FORMAT clause removed, no trailing semicolon or comment.
    pub sql: String,
    /// The FORMAT name if the user wrote one.
    pub format: Option<String>,
    /// Distinct table names passed to the resolver, as written (unquoted), in order of appearance.
    pub tables: Vec<String>,
}

/// Why a query was refused; every message is meant to be shown to the user in a 400.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SqlError {
    /// The query has no tokens (only whitespace, comments or `;`).
    #[error("The query is empty")]
    Empty,
    /// The text does not tokenize (unterminated literal or comment, stray character) or its
    /// brackets do not balance.
    #[error("Syntax error: {0}")]
    Syntax(String),
    /// The statement is not a SELECT (INSERT, ALTER, SYSTEM, SET, EXPLAIN, ...).
    #[error("Only SELECT queries are supported")]
    NotSelect,
    /// More than one statement separated by `;`.
    #[error("Multiple statements are not allowed")]
    MultipleStatements,
    /// `{name:Type}` query parameter syntax outside a string.
    #[error("Query parameters such as {{name:Type}} are not supported")]
    QueryParameter,
    /// `INTO OUTFILE`.
    #[error("INTO OUTFILE is not allowed")]
    IntoOutfile,
    /// A table function other than the pure generators.
    #[error("Table function '{0}' is not allowed")]
    TableFunction(String),
    /// A database-qualified table name such as `system.tables`.
    #[error("Access to database '{0}' is not allowed")]
    ForbiddenDatabase(String),
    /// A table name the resolver does not know.
    #[error("Resource '{0}' not found")]
    UnknownTable(String),
    /// A call to a function that reaches outside the workspace or the query.
    #[error("Function '{0}' is not allowed")]
    ForbiddenFunction(String),
    /// A `SETTINGS` entry outside the allowlist.
    #[error("Setting '{0}' is not allowed")]
    ForbiddenSetting(String),
    /// Another construct refused for safety (e.g. a table reference by UUID); the text says which.
    #[error("{0}")]
    Forbidden(String),
}

/// Checks that `sql` is a single safe SELECT and rewrites its table references through `resolver`.
pub fn validate_and_rewrite(
    sql: &str,
    resolver: &dyn TableResolver,
) -> Result<ValidatedSql, SqlError> {
    scanner::run(sql, resolver)
}

//! Shared vocabulary of Roost: resource and column names, ClickHouse types, the Tinybird schema string
//! (columns, types, `json:$.path`, DEFAULT/MATERIALIZED, CODEC), jsonpaths, token scopes and type
//! guessing for NDJSON and CSV, and the settings of sink pipes.
//!
//! Pure logic: no I/O, no async, and no dependency on any other Roost crate, so every service can use
//! it and it can be tested on its own.

pub mod chtype;
pub mod guess;
pub mod jsonpath;
mod lex;
pub mod names;
pub mod quarantine;
pub mod schema;
pub mod scope;
pub mod sink;
pub mod sql_policy;

pub use chtype::{AggregateSignature, ChType, TypeError};
pub use guess::{guess_csv_columns, guess_json_columns, guess_text_type};
pub use jsonpath::{JsonPath, JsonPathError, Segment};
pub use names::{
    NameError, is_plain_identifier, quote_ident, quote_string, validate_column_name, validate_name,
};
pub use quarantine::quarantine_columns;
pub use schema::{Column, DefaultKind, SchemaError, format_schema, parse_schema, structure};
pub use scope::{Scope, ScopeError};

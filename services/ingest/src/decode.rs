//! Request bodies (NDJSON, CSV) to blocks the engine inserts, and rows that do not fit to quarantine
//! rows, as Tinybird does: good rows of a request are never lost because of bad ones.
//!
//! Design:
//! - Output is ClickHouse `RowBinaryWithDefaults` for the insertable columns (MATERIALIZED columns are
//!   skipped), written straight into one `Vec<u8>`: per row and column one flag byte (1 = use the
//!   column's DEFAULT, 0 = a value follows) and the value in plain RowBinary. Good rows are never turned
//!   back into JSON or text. When no column has a DEFAULT, NDJSON can be decoded into a `Native`
//!   block instead ([`BlockFormat`]): each column's values go to a buffer of their own and are laid
//!   out as Native columns at the end (`native`), which the engine reads far more cheaply.
//! - Each row is encoded column by column; when any column fails, the output is truncated back to
//!   the row's start and the row becomes a [`QuarantinedRow`] holding the raw text of every column
//!   and one error per failing column. Raw texts are only computed on that error path.
//! - NDJSON has two paths with one result (`ndjson`). The fast path scans a line once, validating
//!   it as serde_json would, records where each column's value is (jsonpaths compiled into a tree
//!   of keys) and encodes from there, never building a JSON value; the serde_json path parses the
//!   line into a `serde_json::Value` and walks the jsonpaths. Every line the fast path does not
//!   fully decode (invalid JSON, a value that does not fit, rare shapes) goes to the serde_json
//!   path, so quarantine rows come from one place and cost good rows nothing. Differential tests
//!   hold both paths to the same bytes. CSV goes through the `csv` crate; fields map to columns by
//!   position, or by name when the header names columns.
//! - Conversions live in `value` (JSON values and text share the scalar parsers), ClickHouse array/map/
//!   tuple text literals in `literal`, integer widths up to 256 bits in `rowbinary`.
//! - Absent values: a missing key, an empty CSV field or `\N` takes the column DEFAULT when there is
//!   one; JSON null is NULL for a Nullable column and the DEFAULT otherwise; with neither,
//!   Nullable columns get NULL, arrays and maps are empty, CSV strings are empty, anything else sends
//!   the row to quarantine.
//!
//! Where the time goes (the rows of `make bench`: 220 bytes, 11 columns, a nested object and a tag
//! array; instructions counted by callgrind on 20k rows with
//! `valgrind --tool=callgrind --toggle-collect='*decode_ndjson_as*'` over the ignored test
//! `bench_rows_throughput`):
//! - serde_json path (the decoder before the fast path): 27.7k instructions a row, most of them
//!   building and dropping the `Value` tree (maps, strings) and walking it per column.
//! - fast path into RowBinaryWithDefaults: 6.5k; into Native: 6.9k (the extra 0.4k lays out the
//!   columns). About 55% is the scan (strings 8 bytes at a time, keys matched in place against
//!   the key expected next), 25% encoding (strings, integers, floats and string arrays take
//!   shortcuts; the timestamp text parse is most of the rest), 5% UTF-8 validation of the line.
//! - In the ingest service the decoder is now about an eighth of Roost's CPU on the Events API;
//!   the engine storing the rows (and merging the parts it made) is the rest, which is why
//!   Native blocks and coalesced inserts (`crate::coalesce`) matter more than the decoder now.

mod delimited;
mod literal;
mod native;
mod ndjson;
mod quarantine;
mod rowbinary;
mod value;

use roost_types::{ChType, Column, quote_ident};

pub use delimited::{decode_csv, sample_csv, sniff_csv};
pub use ndjson::{decode_ndjson, decode_ndjson_as, sample_ndjson};
pub use quarantine::{encode_quarantine, quarantine_columns};

/// One row that did not fit, for the `<name>_quarantine` table.
#[derive(Debug, Clone, PartialEq)]
pub struct QuarantinedRow {
    /// Per insertable column, in order: the value as sent (a JSON string's content or the JSON text of
    /// any other value for NDJSON, the field for CSV); None when absent or JSON null. A line that is not
    /// JSON at all is kept whole in the first column.
    pub values: Vec<Option<String>>,
    /// The columns whose values did not fit, in column order.
    pub error_columns: Vec<String>,
    /// One message per error, e.g. `value 'abc' is not a valid Int32 for column 'id'`; errors about the
    /// whole row (invalid JSON, wrong field count) have no entry in `error_columns`.
    pub errors: Vec<String>,
}

/// The outcome of decoding one body.
#[derive(Debug, Default)]
pub struct DecodedBatch {
    /// Good rows encoded in `data`.
    pub rows: u64,
    /// The good rows for the insertable columns, in order (see [`insert_column_list`]), in `format`.
    pub data: Vec<u8>,
    /// How `data` is encoded.
    pub format: BlockFormat,
    /// Rows that did not fit, in input order.
    pub quarantined: Vec<QuarantinedRow>,
}

impl DecodedBatch {
    /// The same rows as one `Native` block, when they are `RowBinaryWithDefaults` rows that ask
    /// for no column's DEFAULT (else unchanged). Native costs the engine less to read, and servers
    /// before 19.x (Debian's 18.16) know no `RowBinaryWithDefaults` at all.
    pub fn into_native(mut self, columns: &[Column]) -> Result<DecodedBatch, DecodeError> {
        if self.format != BlockFormat::RowBinaryWithDefaults
            || self.rows == 0
            || BlockFormat::for_columns(columns) != BlockFormat::Native
        {
            return Ok(self);
        }
        let columns = checked_columns(columns)?;
        let mut values = vec![Vec::new(); columns.len()];
        if native::split_rows(&columns, &self.data, &mut values).is_err() {
            // A row asks for a default (a missing value): only RowBinaryWithDefaults says so.
            return Ok(self);
        }
        let mut data = Vec::with_capacity(self.data.len());
        native::write_block(&columns, &values, self.rows, &mut data).map_err(|_| {
            DecodeError::Internal("decoded values do not form a Native block".into())
        })?;
        self.data = data;
        self.format = BlockFormat::Native;
        Ok(self)
    }
}

/// The Native blocks of several batches for the same columns joined into one block, rows in
/// order; None when the blocks do not all declare the same columns and types (a schema changed
/// between them) or do not read as Native blocks.
pub fn merge_native_blocks<'a>(batches: impl IntoIterator<Item = &'a [u8]>) -> Option<Vec<u8>> {
    let mut merged = Vec::new();
    native::merge_blocks(batches, &mut merged).ok()?;
    Some(merged)
}

/// The ClickHouse input format of [`DecodedBatch::data`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BlockFormat {
    /// Row after row, a defaults flag before each value: what columns with a `DEFAULT` need.
    #[default]
    RowBinaryWithDefaults,
    /// One block, column after column: the engine takes it for a fraction of the cost of rows
    /// (it copies whole columns instead of reading value by value), but it cannot ask for a
    /// column's DEFAULT in one row.
    Native,
}

impl BlockFormat {
    /// The format's name in `INSERT ... FORMAT`.
    pub fn name(self) -> &'static str {
        match self {
            BlockFormat::RowBinaryWithDefaults => "RowBinaryWithDefaults",
            BlockFormat::Native => "Native",
        }
    }

    /// The cheapest format for inserting into `columns`: Native unless an insertable column has a
    /// `DEFAULT`, which only RowBinaryWithDefaults can apply to single values.
    pub fn for_columns(columns: &[Column]) -> BlockFormat {
        if insertable_columns(columns)
            .iter()
            .any(|c| c.default.is_some())
        {
            BlockFormat::RowBinaryWithDefaults
        } else {
            BlockFormat::Native
        }
    }
}

/// How a CSV body is delimited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvDialect {
    /// The field delimiter byte.
    pub delimiter: u8,
    /// Whether the first record is a header.
    pub has_header: bool,
}

impl Default for CsvDialect {
    fn default() -> Self {
        CsvDialect {
            delimiter: b',',
            has_header: false,
        }
    }
}

/// A body that cannot be decoded at all (as opposed to rows that go to quarantine).
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// A column whose type the encoder cannot write (ClickHouse `JSON`).
    #[error("unsupported type: {0}")]
    UnsupportedType(String),
    /// A body the CSV reader cannot read.
    #[error("invalid CSV: {0}")]
    Csv(String),
    /// Encoded values that do not read back: a bug in an encoder, never caused by the data.
    #[error("internal decoder error: {0}")]
    Internal(String),
}

/// The columns an insert carries values for: every column but the MATERIALIZED ones, in order.
pub fn insertable_columns(columns: &[Column]) -> Vec<&Column> {
    columns.iter().filter(|c| c.is_insertable()).collect()
}

/// The quoted insertable column names, `` `a`, `b` ``, in the order of [`DecodedBatch::data`]. Without
/// parentheses: it is what `roost_engine::InsertBlock::columns` takes (the engine adds them).
pub fn insert_column_list(columns: &[Column]) -> String {
    insertable_columns(columns)
        .iter()
        .map(|c| quote_ident(&c.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The insertable columns, refusing types the encoder cannot write.
fn checked_columns(columns: &[Column]) -> Result<Vec<&Column>, DecodeError> {
    let columns = insertable_columns(columns);
    if let Some(column) = columns.iter().find(|c| not_ingestible(&c.ty)) {
        return Err(DecodeError::UnsupportedType(format!(
            "column '{}' has type {}, which cannot be ingested yet",
            column.name, column.ty
        )));
    }
    Ok(columns)
}

/// JSON, and aggregate columns, which only materialized views fill.
fn not_ingestible(ty: &ChType) -> bool {
    match ty {
        ChType::Json | ChType::AggregateFunction(_) | ChType::SimpleAggregateFunction(_) => true,
        ChType::Array(inner) | ChType::Nullable(inner) | ChType::LowCardinality(inner) => {
            not_ingestible(inner)
        }
        ChType::Map(key, value) => not_ingestible(key) || not_ingestible(value),
        ChType::Tuple(elements) => elements.iter().any(|(_, ty)| not_ingestible(ty)),
        _ => false,
    }
}

/// Why a column has no value in a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Absence {
    /// The key (or CSV column) is not there.
    Missing,
    /// JSON null.
    Null,
    /// An empty CSV field or `\N`.
    Empty,
}

/// Writes what a column holds when the row has no value for it, with its defaults flag; the error
/// message when the column needs a value.
fn encode_absent(column: &Column, absence: Absence, out: &mut Vec<u8>) -> Result<(), String> {
    if column.default.is_some() && (absence != Absence::Null || !column.ty.is_nullable()) {
        out.push(1);
        return Ok(());
    }
    let start = out.len();
    out.push(0);
    encode_absent_value(column, absence, out).inspect_err(|_| out.truncate(start))
}

/// What a column without a DEFAULT holds when the row has no value for it, without the defaults
/// flag; the error message when the column needs a value.
fn encode_absent_value(column: &Column, absence: Absence, out: &mut Vec<u8>) -> Result<(), String> {
    if column.ty.is_nullable() {
        out.push(1);
        return Ok(());
    }
    match (column.ty.strip_low_cardinality(), absence) {
        // An empty array, map or string: a zero length.
        (ChType::Array(_) | ChType::Map(..), _) | (ChType::String, Absence::Empty) => {
            out.push(0);
            Ok(())
        }
        _ => Err(format!(
            "column '{}' is not nullable and the value is {}",
            column.name,
            match absence {
                Absence::Missing => "missing",
                Absence::Null => "null",
                Absence::Empty => "empty",
            }
        )),
    }
}

/// The quarantine message for a value that does not convert.
fn invalid_value(column: &Column, raw: &str, reason: &str) -> String {
    const MAX_SHOWN: usize = 200;
    let shown = if raw.len() > MAX_SHOWN {
        let mut end = MAX_SHOWN;
        while !raw.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &raw[..end])
    } else {
        raw.to_owned()
    };
    let mut message = format!(
        "value '{shown}' is not a valid {} for column '{}'",
        column.ty, column.name
    );
    if !reason.is_empty() {
        message.push_str(": ");
        message.push_str(reason);
    }
    message
}

/// Per-row error collection, reused across rows.
#[derive(Default)]
struct RowErrors {
    errors: Vec<(usize, String)>,
}

impl RowErrors {
    fn clear(&mut self) {
        self.errors.clear();
    }

    fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    fn record(&mut self, column_index: usize, result: Result<(), String>) {
        if let Err(message) = result {
            self.errors.push((column_index, message));
        }
    }

    /// The quarantine row for the errors collected, with the row's raw values.
    fn take(&mut self, columns: &[&Column], values: Vec<Option<String>>) -> QuarantinedRow {
        let error_columns = self
            .errors
            .iter()
            .map(|(i, _)| columns[*i].name.clone())
            .collect();
        let errors = self.errors.drain(..).map(|(_, message)| message).collect();
        QuarantinedRow {
            values,
            error_columns,
            errors,
        }
    }
}

/// A quarantine row for an error about a whole record: `raw` in the first column, nothing else.
fn whole_row_error(column_count: usize, raw: String, error: String) -> QuarantinedRow {
    let mut values = vec![None; column_count];
    if let Some(first) = values.first_mut() {
        *first = Some(raw);
    }
    QuarantinedRow {
        values,
        error_columns: Vec::new(),
        errors: vec![error],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use roost_types::{DefaultKind, parse_schema};

    #[test]
    fn csv_rows_become_the_native_block_ndjson_decodes_to_unless_a_default_is_asked_for() {
        let columns = parse_schema("a String, b Int32, c Nullable(Float64)").unwrap();
        let csv = decode_csv(&columns, b"x,1,1.5\ny,2,\n", &CsvDialect::default())
            .unwrap()
            .into_native(&columns)
            .unwrap();
        let ndjson = decode_ndjson_as(
            &columns,
            b"{\"a\":\"x\",\"b\":1,\"c\":1.5}\n{\"a\":\"y\",\"b\":2,\"c\":null}\n",
            BlockFormat::Native,
        )
        .unwrap();
        assert_eq!(csv.format, BlockFormat::Native);
        assert_eq!((csv.rows, &csv.data), (ndjson.rows, &ndjson.data));

        let with_default = parse_schema("a String, b Int32 DEFAULT 7").unwrap();
        let kept = decode_csv(&with_default, b"x,1\n", &CsvDialect::default())
            .unwrap()
            .into_native(&with_default)
            .unwrap();
        assert_eq!(kept.format, BlockFormat::RowBinaryWithDefaults);
    }

    #[test]
    fn merged_native_blocks_are_the_block_of_all_their_rows() {
        let columns = parse_schema(
            "id UInt32, s String, n Nullable(String), tags Array(Nullable(String)), \
             m Map(String, Array(UInt8)), t Tuple(a String, b Nullable(UInt8)), \
             l LowCardinality(String), nested Array(Array(String))",
        )
        .unwrap();
        let row = |id: usize| {
            format!(
                "{{\"id\":{id},\"s\":\"s{id}\",\"n\":{n},\"tags\":[\"x\",null,\"{id}\"],\
                 \"m\":{{\"k{id}\":[1,2],\"e\":[]}},\"t\":[\"a{id}\",{b}],\"l\":\"l{l}\",\
                 \"nested\":[[],[\"{id}\"]]}}\n",
                n = if id.is_multiple_of(2) {
                    "null".to_owned()
                } else {
                    format!("\"n{id}\"")
                },
                b = if id.is_multiple_of(3) {
                    "null".to_owned()
                } else {
                    id.to_string()
                },
                l = id % 4,
            )
        };
        let body = |ids: std::ops::Range<usize>| ids.map(row).collect::<String>();
        let block = |body: &str| {
            let batch = decode_ndjson_as(&columns, body.as_bytes(), BlockFormat::Native).unwrap();
            assert_eq!(
                (batch.format, batch.quarantined.len()),
                (BlockFormat::Native, 0)
            );
            batch.data
        };
        let whole = block(&body(0..10));
        let parts = [block(&body(0..3)), block(&body(3..4)), block(&body(4..10))];
        let merged = merge_native_blocks(parts.iter().map(Vec::as_slice)).unwrap();
        assert_eq!(merged, whole);
        // Two blocks already laid end to end in one batch merge too.
        let two = [parts[0].clone(), parts[1].clone()].concat();
        let merged = merge_native_blocks([two.as_slice(), &parts[2]]).unwrap();
        assert_eq!(merged, whole);
        assert_eq!(merge_native_blocks([]), Some(Vec::new()));

        // Different types for the same column names, or something that is no block: None.
        let other = parse_schema("id UInt64, s String").unwrap();
        let narrow = parse_schema("id UInt32, s String").unwrap();
        let ndjson = b"{\"id\":1,\"s\":\"a\"}\n";
        let wide = decode_ndjson_as(&other, ndjson, BlockFormat::Native).unwrap();
        let narrow = decode_ndjson_as(&narrow, ndjson, BlockFormat::Native).unwrap();
        assert_eq!(
            merge_native_blocks([&wide.data[..], &narrow.data[..]]),
            None
        );
        assert_eq!(merge_native_blocks([&whole[..whole.len() - 1]]), None);
        assert_eq!(merge_native_blocks([&b"\x03\x01not a block"[..]]), None);
    }

    #[test]
    fn insertable_columns_skip_materialized() {
        let columns =
            parse_schema("a String, `b c` Int32 MATERIALIZED 1, d Int32 DEFAULT 2").unwrap();
        let names: Vec<_> = insertable_columns(&columns)
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(names, ["a", "d"]);
        assert_eq!(insert_column_list(&columns), "`a`, `d`");
        assert_eq!(columns[1].default_kind, DefaultKind::Materialized);
    }

    #[test]
    fn json_columns_are_refused() {
        let columns = parse_schema("a String, j JSON").unwrap();
        let error = decode_ndjson(&columns, b"{}").unwrap_err();
        assert!(matches!(error, DecodeError::UnsupportedType(_)), "{error}");
        assert!(error.to_string().contains("'j'"), "{error}");
        let columns = parse_schema("a Array(JSON)").unwrap();
        assert!(decode_csv(&columns, b"", &CsvDialect::default()).is_err());
    }

    #[test]
    fn absent_values() {
        let bytes = |schema: &str, absence| {
            let columns = parse_schema(schema).unwrap();
            let mut out = Vec::new();
            encode_absent(&columns[0], absence, &mut out).map(|_| out)
        };
        assert_eq!(bytes("a Int32 DEFAULT 1", Absence::Missing).unwrap(), [1]);
        assert_eq!(bytes("a Int32 DEFAULT 1", Absence::Null).unwrap(), [1]);
        assert_eq!(
            bytes("a Nullable(Int32) DEFAULT 1", Absence::Missing).unwrap(),
            [1]
        );
        assert_eq!(
            bytes("a Nullable(Int32) DEFAULT 1", Absence::Null).unwrap(),
            [0, 1]
        );
        assert_eq!(
            bytes("a Nullable(Int32) DEFAULT 1", Absence::Empty).unwrap(),
            [1]
        );
        assert_eq!(
            bytes("a Nullable(Int32)", Absence::Missing).unwrap(),
            [0, 1]
        );
        assert_eq!(
            bytes("a LowCardinality(Nullable(String))", Absence::Null).unwrap(),
            [0, 1]
        );
        assert_eq!(bytes("a Array(Int32)", Absence::Null).unwrap(), [0, 0]);
        assert_eq!(
            bytes("a Map(String, Int32)", Absence::Missing).unwrap(),
            [0, 0]
        );
        assert_eq!(bytes("a String", Absence::Empty).unwrap(), [0, 0]);
        assert_eq!(
            bytes("a String", Absence::Missing).unwrap_err(),
            "column 'a' is not nullable and the value is missing"
        );
        assert_eq!(
            bytes("a Int32", Absence::Null).unwrap_err(),
            "column 'a' is not nullable and the value is null"
        );
        assert!(bytes("a Int32", Absence::Empty).is_err());
    }

    #[test]
    fn invalid_value_messages() {
        let column = Column::new("id", ChType::Int32);
        assert_eq!(
            invalid_value(&column, "abc", ""),
            "value 'abc' is not a valid Int32 for column 'id'"
        );
        assert_eq!(
            invalid_value(&column, "1e99", "out of range"),
            "value '1e99' is not a valid Int32 for column 'id': out of range"
        );
        let long = "é".repeat(300);
        assert!(invalid_value(&column, &long, "").contains("..."));
    }
}

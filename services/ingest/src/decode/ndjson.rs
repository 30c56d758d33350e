//! NDJSON bodies: one JSON object per line; blank lines are skipped and a trailing `\r` is dropped.
//!
//! Two paths decode a line, with the same result:
//! - the fast path ([`scan`], [`raw`]) reads the line once, notes where each column's value is and
//!   encodes it from there, never building a JSON value;
//! - the serde_json path parses the line into a `serde_json::Value` and walks the jsonpaths. It
//!   takes every line the fast path does not decode completely: invalid JSON, values that do not
//!   fit (so quarantine rows, their messages and raw texts come from one place), and the rare
//!   shapes the fast path leaves alone. Quarantine detection thus costs the good rows nothing.

#[cfg(test)]
mod differential;
mod plan;
mod raw;
mod scan;

use std::borrow::Cow;

use roost_types::{Column, JsonPath, Segment};
use serde_json::Value;

use self::plan::{Plan, Rest};
use self::raw::{Leaf, encode_raw, to_value};
use self::scan::{Bail, Raw, Scanner};
use super::native::{split_rows, write_block};
use super::value::encode_json;
use super::{
    Absence, BlockFormat, DecodeError, DecodedBatch, QuarantinedRow, RowErrors, checked_columns,
    encode_absent, encode_absent_value, invalid_value, whole_row_error,
};

/// Decodes an NDJSON body into `RowBinaryWithDefaults` for the insertable `columns`; lines that are not
/// JSON objects or whose values do not fit go to quarantine.
pub fn decode_ndjson(columns: &[Column], data: &[u8]) -> Result<DecodedBatch, DecodeError> {
    decode_ndjson_as(columns, data, BlockFormat::RowBinaryWithDefaults)
}

/// [`decode_ndjson`] into `format` when the columns allow it (see [`BlockFormat::for_columns`]),
/// else into `RowBinaryWithDefaults`; [`DecodedBatch::format`] says which.
pub fn decode_ndjson_as(
    columns: &[Column],
    data: &[u8],
    format: BlockFormat,
) -> Result<DecodedBatch, DecodeError> {
    let format = match format {
        BlockFormat::Native => BlockFormat::for_columns(columns),
        other => other,
    };
    let columns = checked_columns(columns)?;
    let plan = Plan::new(&columns);
    let accessors: Vec<Accessor<'_>> = columns.iter().map(|c| Accessor::new(c)).collect();
    let mut fast = FastRows {
        slots: vec![Raw::Missing; plan.slots()],
        hints: vec![0; plan.nodes()],
        leaves: columns.iter().map(|c| Leaf::of(&c.ty)).collect(),
        plan,
    };
    let mut sink = Sink::new(format, columns.len(), data.len() / 2);
    let mut batch = DecodedBatch::default();
    let mut errors = RowErrors::default();
    for line in lines(data) {
        sink.begin_row();
        if fast.encode(&columns, line, &mut sink).is_ok() {
            batch.rows += 1;
            continue;
        }
        sink.abandon_row();
        match sink.slow_row(&columns, |out| {
            decode_line(&columns, &accessors, line, out, &mut errors)
        })? {
            Ok(()) => batch.rows += 1,
            Err(quarantined) => batch.quarantined.push(quarantined),
        }
    }
    (batch.data, batch.format) = sink.finish(&columns, batch.rows)?;
    Ok(batch)
}

/// [`decode_ndjson`] with every line on the serde_json path: the reference the fast path is
/// compared with.
#[cfg(test)]
fn decode_ndjson_serde(columns: &[Column], data: &[u8]) -> Result<DecodedBatch, DecodeError> {
    let columns = checked_columns(columns)?;
    let accessors: Vec<Accessor<'_>> = columns.iter().map(|c| Accessor::new(c)).collect();
    let mut batch = DecodedBatch::default();
    let mut errors = RowErrors::default();
    for line in lines(data) {
        match decode_line(&columns, &accessors, line, &mut batch.data, &mut errors) {
            Ok(()) => batch.rows += 1,
            Err(quarantined) => batch.quarantined.push(quarantined),
        }
    }
    Ok(batch)
}

/// Parses up to `limit` NDJSON lines into values for type guessing, skipping lines that are not JSON.
pub fn sample_ndjson(data: &[u8], limit: usize) -> Vec<Value> {
    lines(data)
        .filter_map(|line| parse_line(line).ok())
        .take(limit)
        .collect()
}

/// Where good rows go while a body is decoded.
enum Sink {
    /// `RowBinaryWithDefaults`: one buffer, a defaults flag before every value.
    Rows { data: Vec<u8>, row_start: usize },
    /// RowBinary values without flags, one buffer per column, for a Native block.
    Columns {
        values: Vec<Vec<u8>>,
        row_starts: Vec<usize>,
        /// A row from the serde_json path, which writes `RowBinaryWithDefaults`.
        scratch: Vec<u8>,
    },
}

impl Sink {
    fn new(format: BlockFormat, columns: usize, capacity: usize) -> Sink {
        match format {
            BlockFormat::RowBinaryWithDefaults => Sink::Rows {
                data: Vec::with_capacity(capacity),
                row_start: 0,
            },
            BlockFormat::Native => Sink::Columns {
                values: (0..columns)
                    .map(|_| Vec::with_capacity(capacity / columns.max(1)))
                    .collect(),
                row_starts: vec![0; columns],
                scratch: Vec::new(),
            },
        }
    }

    #[inline]
    fn begin_row(&mut self) {
        match self {
            Sink::Rows { data, row_start } => *row_start = data.len(),
            Sink::Columns {
                values, row_starts, ..
            } => {
                for (start, column) in row_starts.iter_mut().zip(values) {
                    *start = column.len();
                }
            }
        }
    }

    /// Drops what the current row wrote.
    fn abandon_row(&mut self) {
        match self {
            Sink::Rows { data, row_start } => data.truncate(*row_start),
            Sink::Columns {
                values, row_starts, ..
            } => {
                for (start, column) in row_starts.iter().zip(values) {
                    column.truncate(*start);
                }
            }
        }
    }

    /// Column `index`'s buffer, and whether values there take a defaults flag.
    #[inline]
    fn column(&mut self, index: usize) -> (&mut Vec<u8>, bool) {
        match self {
            Sink::Rows { data, .. } => (data, true),
            Sink::Columns { values, .. } => (&mut values[index], false),
        }
    }

    /// Runs `decode` (the serde_json path, which writes one `RowBinaryWithDefaults` row and cuts
    /// it off again when the row goes to quarantine) and keeps its row.
    fn slow_row<T>(
        &mut self,
        columns: &[&Column],
        decode: impl FnOnce(&mut Vec<u8>) -> Result<(), T>,
    ) -> Result<Result<(), T>, DecodeError> {
        match self {
            Sink::Rows { data, .. } => Ok(decode(data)),
            Sink::Columns {
                values, scratch, ..
            } => {
                scratch.clear();
                if let Err(quarantined) = decode(scratch) {
                    return Ok(Err(quarantined));
                }
                split_rows(columns, scratch, values).map_err(|_| {
                    DecodeError::Internal("a decoded row does not split into its columns".into())
                })?;
                Ok(Ok(()))
            }
        }
    }

    fn finish(self, columns: &[&Column], rows: u64) -> Result<(Vec<u8>, BlockFormat), DecodeError> {
        match self {
            Sink::Rows { data, .. } => Ok((data, BlockFormat::RowBinaryWithDefaults)),
            Sink::Columns { values, .. } => {
                let mut data = Vec::new();
                if rows > 0 {
                    write_block(columns, &values, rows, &mut data).map_err(|_| {
                        DecodeError::Internal("decoded values do not form a Native block".into())
                    })?;
                }
                Ok((data, BlockFormat::Native))
            }
        }
    }
}

/// The fast path's state, reused across lines.
struct FastRows {
    plan: Plan,
    slots: Vec<Raw>,
    hints: Vec<usize>,
    /// Per column, the shortcut for its type.
    leaves: Vec<Leaf>,
}

impl FastRows {
    /// Encodes a line whose every column fits; any doubt bails, leaving a partial row in `sink`
    /// for the caller to cut off.
    fn encode(&mut self, columns: &[&Column], line: &[u8], sink: &mut Sink) -> Result<(), Bail> {
        // Non-ASCII bytes are only valid inside strings, so checking the whole line once covers
        // every string in it.
        let line = std::str::from_utf8(line).map_err(|_| Bail)?;
        Scanner::new(line, 0).scan_line(&self.plan, &mut self.slots, &mut self.hints)?;
        for (i, (column, source)) in columns.iter().zip(self.plan.sources()).enumerate() {
            let raw = self.slots[source.slot];
            let (out, flagged) = sink.column(i);
            let raw = match &source.rest {
                Rest::Whole => raw,
                Rest::ArrayOnly => match raw {
                    Raw::Array { .. } => raw,
                    _ => Raw::Missing,
                },
                Rest::Path(path) => {
                    let value = match raw {
                        Raw::Missing => None,
                        raw => Some(to_value(raw, line)?),
                    };
                    let found = value.as_ref().and_then(|v| path.extract(v));
                    encode_column(column, found.as_deref(), out, flagged).map_err(|_| Bail)?;
                    continue;
                }
            };
            if flagged {
                out.push(0);
                if self.leaves[i].encode(raw, line, out) {
                    continue;
                }
                out.pop();
            } else if self.leaves[i].encode(raw, line, out) {
                continue;
            }
            encode_slot(column, raw, line, out, flagged)?;
        }
        Ok(())
    }
}

/// One column of a row from the fast path, with its defaults flag when `flagged`.
#[inline]
fn encode_slot(
    column: &Column,
    raw: Raw,
    line: &str,
    out: &mut Vec<u8>,
    flagged: bool,
) -> Result<(), Bail> {
    match raw {
        Raw::Missing => absent(column, Absence::Missing, out, flagged).map_err(|_| Bail),
        Raw::Null => absent(column, Absence::Null, out, flagged).map_err(|_| Bail),
        raw => {
            if flagged {
                out.push(0);
            }
            encode_raw(&column.ty, raw, line, out).map_err(|_| Bail)
        }
    }
}

fn absent(
    column: &Column,
    absence: Absence,
    out: &mut Vec<u8>,
    flagged: bool,
) -> Result<(), String> {
    if flagged {
        encode_absent(column, absence, out)
    } else {
        encode_absent_value(column, absence, out)
    }
}

/// Decodes one line with serde_json into `out` (`RowBinaryWithDefaults`); the quarantine row when
/// it does not fit, with `out` as it was.
fn decode_line(
    columns: &[&Column],
    accessors: &[Accessor<'_>],
    line: &[u8],
    out: &mut Vec<u8>,
    errors: &mut RowErrors,
) -> Result<(), QuarantinedRow> {
    let row = match parse_line(line) {
        Ok(row @ Value::Object(_)) => row,
        Ok(_) => {
            let raw = String::from_utf8_lossy(line).into_owned();
            let error = "invalid JSON: the row is not an object".to_owned();
            return Err(whole_row_error(columns.len(), raw, error));
        }
        Err(error) => {
            let raw = String::from_utf8_lossy(line).into_owned();
            let error = format!("invalid JSON: {error}");
            return Err(whole_row_error(columns.len(), raw, error));
        }
    };
    let start = out.len();
    errors.clear();
    for (i, (column, accessor)) in columns.iter().zip(accessors).enumerate() {
        let value = accessor.get(&row);
        errors.record(i, encode_column(column, value.as_deref(), out, true));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        out.truncate(start);
        let values = accessors
            .iter()
            .map(|a| a.get(&row).as_deref().and_then(raw_text))
            .collect();
        Err(errors.take(columns, values))
    }
}

/// Where a column's value is in a row.
enum Accessor<'a> {
    /// A top-level key: the column name, or a one-step jsonpath.
    Key(&'a str),
    Path(&'a JsonPath),
}

impl<'a> Accessor<'a> {
    fn new(column: &'a Column) -> Accessor<'a> {
        match &column.jsonpath {
            None => Accessor::Key(&column.name),
            Some(path) => match path.segments() {
                [Segment::Key(key)] => Accessor::Key(key),
                _ => Accessor::Path(path),
            },
        }
    }

    fn get<'v>(&self, row: &'v Value) -> Option<Cow<'v, Value>> {
        match self {
            Accessor::Key(key) => row.as_object()?.get(*key).map(Cow::Borrowed),
            Accessor::Path(path) => path.extract(row),
        }
    }
}

/// One column of a row, with its defaults flag when `flagged`; the quarantine message on failure.
fn encode_column(
    column: &Column,
    value: Option<&Value>,
    out: &mut Vec<u8>,
    flagged: bool,
) -> Result<(), String> {
    match value {
        None => absent(column, Absence::Missing, out, flagged),
        Some(Value::Null) => absent(column, Absence::Null, out, flagged),
        Some(value) => {
            if flagged {
                out.push(0);
            }
            encode_json(&column.ty, value, out).map_err(|reason| {
                let raw = raw_text(value).unwrap_or_default();
                invalid_value(column, &raw, &reason)
            })
        }
    }
}

/// A value as the quarantine table shows it: a string's content, any other value's JSON text.
fn raw_text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// The non-blank lines of a body, without their line terminators or surrounding whitespace; a UTF-8
/// byte order mark at the start is dropped.
fn lines(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(data.strip_prefix(b"\xef\xbb\xbf").unwrap_or(data));
    std::iter::from_fn(move || {
        loop {
            let current = rest?;
            let line = match memchr::memchr(b'\n', current) {
                Some(end) => {
                    rest = Some(&current[end + 1..]);
                    &current[..end]
                }
                None => {
                    rest = None;
                    current
                }
            };
            let line = line.trim_ascii();
            if !line.is_empty() {
                return Some(line);
            }
        }
    })
}

/// Parses one line for the serde_json path.
fn parse_line(line: &[u8]) -> Result<Value, String> {
    serde_json::from_slice(line).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::super::QuarantinedRow;
    use super::*;
    use roost_types::parse_schema;

    fn columns(schema: &str) -> Vec<Column> {
        parse_schema(schema).unwrap()
    }

    fn decode(schema: &str, body: &str) -> DecodedBatch {
        decode_ndjson(&columns(schema), body.as_bytes()).unwrap()
    }

    #[test]
    fn encodes_rows_with_defaults_flags() {
        let batch = decode(
            "id UInt32, name String, score Nullable(Float64)",
            "{\"id\": 7, \"name\": \"ab\", \"score\": null}\n{\"id\": 8, \"name\": \"\", \"score\": 1.5}\n",
        );
        assert_eq!(batch.rows, 2);
        assert!(batch.quarantined.is_empty());
        let mut expected = vec![0, 7, 0, 0, 0, 0, 2, b'a', b'b', 0, 1];
        expected.extend_from_slice(&[0, 8, 0, 0, 0, 0, 0, 0, 0]);
        expected.extend_from_slice(&1.5f64.to_le_bytes());
        assert_eq!(batch.data, expected);
    }

    #[test]
    fn missing_null_and_default() {
        let schema =
            "a Int32 DEFAULT 5, b Nullable(String), c Array(UInt8), d Nullable(Int8) DEFAULT 1";
        let batch = decode(
            schema,
            "{}\n{\"a\": null, \"b\": null, \"c\": null, \"d\": null}\n",
        );
        assert_eq!(batch.rows, 2);
        assert_eq!(
            batch.data,
            [1, 0, 1, 0, 0, 1, /* row 2 */ 1, 0, 1, 0, 0, 0, 1]
        );

        let batch = decode(
            "a Int32, b String",
            "{\"b\": \"x\"}\n{\"a\": 1, \"b\": null}",
        );
        assert_eq!(batch.rows, 0);
        assert_eq!(
            batch.quarantined,
            vec![
                QuarantinedRow {
                    values: vec![None, Some("x".into())],
                    error_columns: vec!["a".into()],
                    errors: vec!["column 'a' is not nullable and the value is missing".into()],
                },
                QuarantinedRow {
                    values: vec![Some("1".into()), None],
                    error_columns: vec!["b".into()],
                    errors: vec!["column 'b' is not nullable and the value is null".into()],
                },
            ]
        );
    }

    #[test]
    fn good_rows_survive_bad_rows() {
        let schema = "id Int32, tags Array(String), when DateTime";
        let good = [
            r#"{"id": 1, "tags": ["a"], "when": "2024-01-15 10:11:12"}"#,
            r#"{"id": 2, "tags": [], "when": 1705313472}"#,
            r#"{"id": "3", "tags": ["b", "c"], "when": "2024-01-15T10:11:12Z"}"#,
        ];
        let bad = [
            r#"{"id": "abc", "tags": ["a"], "when": "2024-01-15 10:11:12"}"#,
            r#"{"id": 1, "tags": "nope", "when": "yesterday"}"#,
            r#"{"id": 1, "tags": [1, {"x": 1}], "when": 99999999999}"#,
            r#"{"id": 1, "#,
            r#"[1, 2]"#,
        ];
        let mixed = [
            bad[0], good[0], bad[1], bad[2], good[1], bad[3], bad[4], good[2],
        ]
        .join("\n");
        let batch = decode(schema, &mixed);
        let only_good = decode(schema, &good.join("\n"));
        assert_eq!(batch.rows, 3);
        assert_eq!(only_good.rows, 3);
        assert_eq!(batch.data, only_good.data);
        assert_eq!(batch.quarantined.len(), 5);

        let first = &batch.quarantined[0];
        assert_eq!(first.error_columns, ["id"]);
        assert_eq!(
            first.errors,
            ["value 'abc' is not a valid Int32 for column 'id'"]
        );
        assert_eq!(
            first.values,
            [
                Some("abc".to_owned()),
                Some("[\"a\"]".to_owned()),
                Some("2024-01-15 10:11:12".to_owned())
            ]
        );
        // Every failing column of a row is reported.
        assert_eq!(batch.quarantined[1].error_columns, ["tags", "when"]);
        // Numbers and objects become strings in a String array; the timestamp is out of range.
        assert_eq!(batch.quarantined[2].error_columns, ["when"]);
        let invalid = &batch.quarantined[3];
        assert!(invalid.error_columns.is_empty());
        assert!(
            invalid.errors[0].starts_with("invalid JSON: "),
            "{:?}",
            invalid.errors
        );
        assert_eq!(invalid.values, [Some("{\"id\": 1,".to_owned()), None, None]);
        assert_eq!(
            batch.quarantined[4].errors,
            ["invalid JSON: the row is not an object"]
        );
    }

    #[test]
    fn blank_lines_crlf_and_bom() {
        let schema = "a UInt8";
        let batch = decode(schema, "\u{feff}{\"a\":1}\r\n\r\n   \n{\"a\":2}\r\n\n");
        assert_eq!(batch.rows, 2);
        assert_eq!(batch.data, [0, 1, 0, 2]);
        assert!(batch.quarantined.is_empty());
        let batch = decode(schema, "");
        assert_eq!(batch.rows, 0);
        assert!(batch.data.is_empty());
    }

    #[test]
    fn nested_jsonpaths() {
        let schema = "user_id String `json:$.user.id`, first_tag String `json:$.tags[0]`, \
             names Array(String) `json:$.items[:].name`, all Array(UInt8) `json:$.nums[:]`, \
             `odd key` UInt8 `json:$['odd key']`, whole String `json:$`";
        let body = r#"{"user": {"id": "u1"}, "tags": ["t0", "t1"], "items": [{"name": "x"}, {"other": 1}, {"name": "y"}], "nums": [1, 2], "odd key": 3}"#;
        let batch = decode(schema, body);
        assert_eq!(batch.quarantined, vec![]);
        let mut expected = vec![0, 2, b'u', b'1', 0, 2, b't', b'0'];
        expected.extend_from_slice(&[0, 2, 1, b'x', 1, b'y', 0, 2, 1, 2, 0, 3, 0]);
        let whole = serde_json::from_str::<Value>(body).unwrap().to_string();
        super::super::rowbinary::write_bytes(&mut expected, whole.as_bytes());
        assert_eq!(batch.data, expected);

        // A missing nested key is missing; a missing array path is an empty array.
        let batch = decode(schema, r#"{"user": {}, "tags": [], "odd key": 1}"#);
        assert_eq!(batch.quarantined[0].error_columns, ["user_id", "first_tag"]);
    }

    #[test]
    fn wide_numbers() {
        let batch = decode(
            "a UInt64, b Float64",
            "{\"a\": 18446744073709551615, \"b\": 1e400}\n{\"a\": 1, \"b\": 123456789012345678901234567890}",
        );
        // 1e400 is not a finite double: serde_json refuses the line too.
        assert_eq!(batch.quarantined.len(), 1);
        assert_eq!(batch.rows, 1);
        let mut expected = vec![0, 1, 0, 0, 0, 0, 0, 0, 0, 0];
        expected.extend_from_slice(&123456789012345678901234567890f64.to_le_bytes());
        assert_eq!(batch.data, expected);
    }

    #[test]
    fn samples_skip_bad_lines() {
        let rows = sample_ndjson(b"{\"a\":1}\nnope\n\n{\"a\":2}\n{\"a\":3}", 2);
        assert_eq!(
            rows,
            [serde_json::json!({"a": 1}), serde_json::json!({"a": 2})]
        );
    }
}

#[cfg(test)]
mod throughput {
    use super::*;
    use roost_types::parse_schema;

    /// Rows per second for a typical event shape; run with
    /// `cargo test --release -p roost-ingest throughput -- --ignored --nocapture`.
    #[test]
    #[ignore = "a measurement, not a check"]
    fn ndjson_throughput() {
        let columns = parse_schema(
            "ts DateTime64(3) `json:$.ts`, id UInt64 `json:$.id`, user String `json:$.user.name`, \
             event LowCardinality(String) `json:$.event`, value Float64 `json:$.value`, \
             tags Array(String) `json:$.tags`, ok Nullable(UInt8) `json:$.ok`",
        )
        .unwrap();
        let body: String = (0..200_000)
            .map(|i| {
                format!(
                    "{{\"ts\":\"2024-01-15 10:11:12.{:03}\",\"id\":{i},\"user\":{{\"name\":\"user{}\"}},\"event\":\"click\",\"value\":{}.5,\"tags\":[\"a\",\"b\"],\"ok\":1}}\n",
                    i % 1000,
                    i % 97,
                    i % 13
                )
            })
            .collect();
        for (name, decode) in [
            ("fast path", decode_ndjson as fn(&[Column], &[u8]) -> _),
            ("serde_json path", decode_ndjson_serde),
        ] {
            let start = std::time::Instant::now();
            let batch = decode(&columns, body.as_bytes()).unwrap();
            let elapsed = start.elapsed();
            assert_eq!(batch.rows, 200_000);
            println!(
                "{name}: {} rows in {elapsed:?}: {:.0} rows/s, {:.0} MB/s",
                batch.rows,
                batch.rows as f64 / elapsed.as_secs_f64(),
                body.len() as f64 / elapsed.as_secs_f64() / 1e6
            );
        }
    }

    /// The rows of `make bench` (the same shape and schema: a timestamp, ids, strings, a nested
    /// object, numbers and a tag array). `ROOST_DECODE_ROWS` sets how many (default 200000) and
    /// `ROOST_DECODE_PATHS` which paths run (`fast` into RowBinaryWithDefaults, `native`, `serde`;
    /// default all), so that `valgrind --tool=callgrind --toggle-collect='*decode_ndjson_as*'`
    /// (or `'*decode_ndjson_serde*'`) can count one path alone.
    #[test]
    #[ignore = "a measurement, not a check"]
    fn bench_rows_throughput() {
        let rows: usize = std::env::var("ROOST_DECODE_ROWS")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(200_000);
        let paths =
            std::env::var("ROOST_DECODE_PATHS").unwrap_or_else(|_| "fast,native,serde".into());
        let columns = parse_schema(
            "`ts` DateTime64(3) `json:$.ts`, `event_id` UInt64 `json:$.event_id`, \
             `user_id` UInt64 `json:$.user_id`, `session_id` String `json:$.session_id`, \
             `country` String `json:$.country`, `event` String `json:$.event`, \
             `device_os` String `json:$.device.os`, `device_version` String `json:$.device.version`, \
             `amount` Float64 `json:$.amount`, `quantity` Int32 `json:$.quantity`, \
             `tags` Array(String) `json:$.tags[:]`",
        )
        .unwrap();
        const COUNTRIES: [&str; 8] = ["ES", "FR", "DE", "IT", "US", "GB", "BR", "JP"];
        const EVENTS: [&str; 6] = [
            "view",
            "click",
            "add_to_cart",
            "purchase",
            "search",
            "login",
        ];
        const TAGS: [&str; 4] = [
            "",
            "\"new\"",
            "\"promo\",\"vip\"",
            "\"a\",\"beta\",\"mobile\"",
        ];
        let body: String = (0..rows)
            .map(|i| {
                let h = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                format!(
                    "{{\"ts\":\"2024-01-{:02} {:02}:{:02}:{:02}.{:03}\",\"event_id\":{i},\"user_id\":{},\
                     \"session_id\":\"{h:016x}\",\"country\":\"{}\",\"event\":\"{}\",\
                     \"device\":{{\"os\":\"android\",\"version\":\"{}.{}\"}},\"amount\":{}.{:02},\
                     \"quantity\":{},\"tags\":[{}]}}\n",
                    1 + i / 86_400 % 28,
                    i / 3600 % 24,
                    i / 60 % 60,
                    i % 60,
                    h % 1000,
                    h % 100_000,
                    COUNTRIES[i % 8],
                    EVENTS[i % 6],
                    1 + h % 15,
                    h % 10,
                    h % 1000,
                    h % 100,
                    h % 10,
                    TAGS[i % 4]
                )
            })
            .collect();
        let native =
            |columns: &[Column], data: &[u8]| decode_ndjson_as(columns, data, BlockFormat::Native);
        for (name, decode) in [
            ("fast", decode_ndjson as fn(&[Column], &[u8]) -> _),
            ("native", native),
            ("serde", decode_ndjson_serde),
        ] {
            if !paths.split(',').any(|p| p == name) {
                continue;
            }
            let start = std::time::Instant::now();
            let batch = decode(&columns, body.as_bytes()).unwrap();
            let elapsed = start.elapsed();
            assert_eq!(batch.rows as usize, rows, "{:?}", batch.quarantined.first());
            println!(
                "{name}: {rows} rows ({} bytes each) in {elapsed:?}: {:.0} ns/row, {:.0} MB/s",
                body.len() / rows,
                elapsed.as_secs_f64() * 1e9 / rows as f64,
                body.len() as f64 / elapsed.as_secs_f64() / 1e6
            );
        }
    }
}

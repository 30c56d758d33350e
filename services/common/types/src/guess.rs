//! Column type guessing from sample rows, as Tinybird's analyze does for NDJSON and CSV.
//!
//! Each value is classified on its own and the classes are merged column by column; anything that does
//! not agree falls back to `String`, which accepts every value, so a guessed schema never rejects the
//! sample it came from.

use std::collections::HashMap;

use chrono::{NaiveDate, NaiveTime};
use serde_json::{Map, Value};

use crate::chtype::ChType;
use crate::jsonpath::{JsonPath, Segment};
use crate::schema::Column;

/// Guesses columns from NDJSON rows. Nested objects are flattened (`{"a": {"b": 1}}` gives `a_b` with
/// jsonpath `$.a.b`), arrays keep a `[:]` jsonpath, columns come in first-seen order, and a key missing
/// or null in some rows makes its column `Nullable` (arrays stay non-nullable). Rows that are not
/// objects are ignored.
pub fn guess_json_columns(rows: &[Value]) -> Vec<Column> {
    let mut collector = JsonCollector::default();
    let mut total = 0;
    for row in rows {
        if let Value::Object(object) = row {
            total += 1;
            collector.visit(&mut Vec::new(), object);
        }
    }
    let mut names = NameSet::default();
    let mut columns = Vec::new();
    for path in collector.paths {
        let (ty, array_path) = match (&path.guess, path.saw_object) {
            // Only ever an object (its members are columns) or an object and nulls.
            (Guess::Unknown, true) => continue,
            // Objects in some rows and scalars in others: keep the JSON text.
            (_, true) => (ChType::String, false),
            (guess, false) => {
                let ty = guess.to_type();
                let is_array = matches!(ty, ChType::Array(_));
                (ty, is_array)
            }
        };
        let ty = if path.present < total {
            ty.nullable()
        } else {
            ty
        };
        let raw_name = path
            .keys
            .iter()
            .map(|k| sanitize(k))
            .collect::<Vec<_>>()
            .join("_");
        let name = names.claim(&raw_name, columns.len());
        let mut segments: Vec<Segment> = path.keys.into_iter().map(Segment::Key).collect();
        if array_path {
            segments.push(Segment::All);
        }
        let mut column = Column::new(name, ty);
        column.jsonpath = Some(JsonPath::new(segments));
        columns.push(column);
    }
    columns
}

/// Guesses the type of a text column (CSV fields). Empty fields and `\N` are nulls and make the type
/// `Nullable`; no values at all gives `String`, only nulls `Nullable(String)`.
pub fn guess_text_type<'a>(values: impl IntoIterator<Item = &'a str>) -> ChType {
    let mut guess = Guess::Unknown;
    let mut nulls = false;
    for value in values {
        let value = value.trim();
        if value.is_empty() || value == "\\N" {
            nulls = true;
        } else {
            guess = guess.merge(classify_text(value));
        }
    }
    let ty = guess.to_type();
    if nulls { ty.nullable() } else { ty }
}

/// Guesses CSV columns. Names come from the header (non-identifier characters replaced by `_`, duplicates
/// suffixed `_1`, `_2`…) or are `column_00`, `column_01`… without one; fields missing from short rows
/// count as nulls.
pub fn guess_csv_columns(header: Option<&[String]>, rows: &[Vec<String>]) -> Vec<Column> {
    let width = rows
        .iter()
        .map(Vec::len)
        .chain(header.map(<[String]>::len))
        .max()
        .unwrap_or(0);
    let mut names = NameSet::default();
    (0..width)
        .map(|i| {
            let raw_name = header
                .and_then(|h| h.get(i))
                .map(|n| sanitize(n.trim()))
                .unwrap_or_default();
            let name = names.claim(&raw_name, i);
            let ty = guess_text_type(rows.iter().map(|row| row.get(i).map_or("", String::as_str)));
            Column::new(name, ty)
        })
        .collect()
}

/// What the values of a column seen so far have in common.
#[derive(Debug, Clone, PartialEq)]
enum Guess {
    /// No non-null value yet.
    Unknown,
    /// Integers; `negative` if any is below zero, `big` if any exceeds `i64::MAX`.
    Int {
        negative: bool,
        big: bool,
    },
    Float,
    Bool,
    /// Dates within `Date`'s range.
    Date,
    /// Dates needing `Date32`'s range.
    Date32,
    /// Date-times without fractional seconds within `DateTime`'s range.
    DateTime,
    /// Date-times with fractional seconds, or outside `DateTime`'s range.
    DateTime64,
    String,
    /// JSON objects (only inside arrays or next to scalars; otherwise they are flattened).
    Object,
    /// Arrays of the merged element guess; the flag is set when an element is null.
    Array(Box<Guess>, bool),
}

impl Guess {
    fn merge(self, other: Guess) -> Guess {
        use Guess::*;
        match (self, other) {
            (Unknown, x) | (x, Unknown) => x,
            (
                Int {
                    negative: n1,
                    big: b1,
                },
                Int {
                    negative: n2,
                    big: b2,
                },
            ) => Int {
                negative: n1 || n2,
                big: b1 || b2,
            },
            (Int { .. } | Float, Int { .. } | Float) => Float,
            (Bool, Bool) => Bool,
            (Date, Date) => Date,
            (Date | Date32, Date | Date32) => Date32,
            (DateTime, DateTime) => DateTime,
            (DateTime | DateTime64, DateTime | DateTime64) => DateTime64,
            (Object, Object) => Object,
            (Array(a, n1), Array(b, n2)) => Array(Box::new(a.merge(*b)), n1 || n2),
            _ => String,
        }
    }

    fn contains_object(&self) -> bool {
        match self {
            Guess::Object => true,
            Guess::Array(inner, _) => inner.contains_object(),
            _ => false,
        }
    }

    fn to_type(&self) -> ChType {
        match self {
            Guess::Unknown | Guess::String | Guess::Object => ChType::String,
            Guess::Int {
                negative: true,
                big: true,
            } => ChType::Int128,
            Guess::Int { big: true, .. } => ChType::UInt64,
            Guess::Int { .. } => ChType::Int64,
            Guess::Float => ChType::Float64,
            Guess::Bool => ChType::Bool,
            Guess::Date => ChType::Date,
            Guess::Date32 => ChType::Date32,
            Guess::DateTime => ChType::DateTime(None),
            Guess::DateTime64 => ChType::DateTime64(3, None),
            // Arrays of objects are kept as JSON text rather than guessing a tuple or map.
            Guess::Array(..) if self.contains_object() => ChType::String,
            Guess::Array(inner, nullable) => {
                let element = inner.to_type();
                let element = if *nullable {
                    element.nullable()
                } else {
                    element
                };
                ChType::Array(Box::new(element))
            }
        }
    }
}

fn classify_json(value: &Value) -> Guess {
    match value {
        Value::Null => Guess::Unknown,
        Value::Bool(_) => Guess::Bool,
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Guess::Int {
                negative: i < 0,
                big: false,
            },
            (None, Some(_)) => Guess::Int {
                negative: false,
                big: true,
            },
            _ => Guess::Float,
        },
        Value::String(s) => classify_temporal(s).unwrap_or(Guess::String),
        Value::Array(items) => {
            let nullable = items.iter().any(Value::is_null);
            let element = items
                .iter()
                .fold(Guess::Unknown, |acc, item| acc.merge(classify_json(item)));
            Guess::Array(Box::new(element), nullable)
        }
        Value::Object(_) => Guess::Object,
    }
}

fn classify_text(value: &str) -> Guess {
    if let Some(guess) = classify_number(value) {
        return guess;
    }
    if value.eq_ignore_ascii_case("true") || value.eq_ignore_ascii_case("false") {
        return Guess::Bool;
    }
    classify_temporal(value).unwrap_or(Guess::String)
}

fn classify_number(value: &str) -> Option<Guess> {
    let unsigned = value.strip_prefix(['-', '+']).unwrap_or(value);
    if !unsigned.is_empty() && unsigned.bytes().all(|b| b.is_ascii_digit()) {
        // Leading zeros (zip codes, ids) would be lost in a number.
        if unsigned.len() > 1 && unsigned.starts_with('0') {
            return None;
        }
        if let Ok(i) = value.parse::<i64>() {
            return Some(Guess::Int {
                negative: i < 0,
                big: false,
            });
        }
        if !value.starts_with('-') && value.parse::<u64>().is_ok() {
            return Some(Guess::Int {
                negative: false,
                big: true,
            });
        }
        // Too large for any integer guess; a float would round it.
        return None;
    }
    // Rust also parses `inf` and `NaN`; only plain decimal notation counts.
    let numeric_chars = value
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.' | b'e' | b'E'));
    let has_digit = value.bytes().any(|b| b.is_ascii_digit());
    (numeric_chars && has_digit && value.parse::<f64>().is_ok()).then_some(Guess::Float)
}

/// `YYYY-MM-DD`, or `YYYY-MM-DD hh:mm:ss` / `YYYY-MM-DDThh:mm:ss` with optional fractional seconds and an
/// optional `Z` or `±hh:mm` offset.
fn classify_temporal(value: &str) -> Option<Guess> {
    let date = value.get(..10)?;
    let bytes = date.as_bytes();
    if bytes[4] != b'-' || bytes[7] != b'-' {
        return None;
    }
    let year: i32 = digits(&date[..4])?;
    let date_ok =
        NaiveDate::from_ymd_opt(year, digits(&date[5..7])?, digits(&date[8..10])?).is_some();
    if !date_ok {
        return None;
    }
    let rest = &value[10..];
    if rest.is_empty() {
        return match year {
            1970..=2148 => Some(Guess::Date),
            1900..=2299 => Some(Guess::Date32),
            _ => None,
        };
    }
    let rest = rest.strip_prefix([' ', 'T'])?;
    let time = rest.get(..8)?;
    let tb = time.as_bytes();
    if tb[2] != b':' || tb[5] != b':' {
        return None;
    }
    NaiveTime::from_hms_opt(
        digits(&time[..2])?,
        digits(&time[3..5])?,
        digits(&time[6..8])?,
    )?;
    let mut rest = &rest[8..];
    let mut fractional = false;
    if let Some(after_dot) = rest.strip_prefix('.') {
        let len = after_dot.bytes().take_while(u8::is_ascii_digit).count();
        if len == 0 {
            return None;
        }
        fractional = true;
        rest = &after_dot[len..];
    }
    let offset_ok = match rest {
        "" | "Z" | "z" => true,
        _ => {
            let ob = rest.as_bytes();
            ob.len() == 6
                && matches!(ob[0], b'+' | b'-')
                && ob[3] == b':'
                && digits::<u32>(&rest[1..3]).is_some_and(|h| h < 24)
                && digits::<u32>(&rest[4..6]).is_some_and(|m| m < 60)
        }
    };
    if !offset_ok {
        return None;
    }
    match year {
        1970..=2105 if !fractional => Some(Guess::DateTime),
        1900..=2299 => Some(Guess::DateTime64),
        _ => None,
    }
}

/// Parses a field of ASCII digits only (no sign).
fn digits<T: std::str::FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Replaces every character outside `[A-Za-z0-9_]` with `_`.
fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Hands out unique column names.
#[derive(Default)]
struct NameSet {
    taken: std::collections::HashSet<String>,
}

impl NameSet {
    /// `wanted`, or `wanted_1`, `wanted_2`… if taken; `column_NN` (from `position`) when `wanted` is empty.
    fn claim(&mut self, wanted: &str, position: usize) -> String {
        let base = if wanted.is_empty() {
            format!("column_{position:02}")
        } else {
            wanted.to_owned()
        };
        let mut name = base.clone();
        let mut suffix = 1;
        while self.taken.contains(&name) {
            name = format!("{base}_{suffix}");
            suffix += 1;
        }
        self.taken.insert(name.clone());
        name
    }
}

/// Per-path state while walking NDJSON rows.
#[derive(Debug)]
struct PathStats {
    keys: Vec<String>,
    guess: Guess,
    /// Rows where the path holds a non-null value (objects included).
    present: usize,
    saw_object: bool,
}

#[derive(Default)]
struct JsonCollector {
    paths: Vec<PathStats>,
    index: HashMap<Vec<String>, usize>,
}

impl JsonCollector {
    fn visit(&mut self, prefix: &mut Vec<String>, object: &Map<String, Value>) {
        for (key, value) in object {
            prefix.push(key.clone());
            let slot = match self.index.get(prefix.as_slice()) {
                Some(&slot) => slot,
                None => {
                    self.index.insert(prefix.clone(), self.paths.len());
                    self.paths.push(PathStats {
                        keys: prefix.clone(),
                        guess: Guess::Unknown,
                        present: 0,
                        saw_object: false,
                    });
                    self.paths.len() - 1
                }
            };
            let stats = &mut self.paths[slot];
            match value {
                Value::Null => {}
                Value::Object(inner) => {
                    stats.present += 1;
                    stats.saw_object = true;
                    self.visit(prefix, inner);
                }
                other => {
                    stats.present += 1;
                    stats.guess = std::mem::replace(&mut stats.guess, Guess::Unknown)
                        .merge(classify_json(other));
                }
            }
            prefix.pop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// (name, type, jsonpath) triples for compact assertions.
    fn summary(columns: &[Column]) -> Vec<(String, String, String)> {
        columns
            .iter()
            .map(|c| {
                (
                    c.name.clone(),
                    c.ty.to_string(),
                    c.jsonpath
                        .as_ref()
                        .map(ToString::to_string)
                        .unwrap_or_default(),
                )
            })
            .collect()
    }

    fn triples(expected: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
        expected
            .iter()
            .map(|(a, b, c)| ((*a).to_owned(), (*b).to_owned(), (*c).to_owned()))
            .collect()
    }

    #[test]
    fn temporal_strings() {
        let cases = [
            ("2024-01-31", Some(Guess::Date)),
            ("1969-12-31", Some(Guess::Date32)),
            ("2200-01-01", Some(Guess::Date32)),
            ("1800-01-01", None),
            ("2024-02-30", None),
            ("2024-1-31", None),
            ("2024/01/31", None),
            ("2024-01-31 12:34:56", Some(Guess::DateTime)),
            ("2024-01-31T12:34:56", Some(Guess::DateTime)),
            ("2024-01-31T12:34:56Z", Some(Guess::DateTime)),
            ("2024-01-31T12:34:56+02:00", Some(Guess::DateTime)),
            ("2024-01-31T12:34:56-05:30", Some(Guess::DateTime)),
            ("2024-01-31 12:34:56.789", Some(Guess::DateTime64)),
            ("2024-01-31T12:34:56.123456Z", Some(Guess::DateTime64)),
            ("1950-06-01 00:00:00", Some(Guess::DateTime64)),
            ("2024-01-31 25:00:00", None),
            ("2024-01-31 12:34", None),
            ("2024-01-31 12:34:56.", None),
            ("2024-01-31 12:34:56 UTC", None),
            ("2024-01-31T12:34:56+0200", None),
            ("2024-01-31x", None),
            ("é024-01-31", None),
            ("", None),
        ];
        for (input, expected) in cases {
            assert_eq!(classify_temporal(input), expected, "{input}");
        }
    }

    #[test]
    fn text_types() {
        let cases: Vec<(Vec<&str>, &str)> = vec![
            (vec![], "String"),
            (vec!["1", "-2", "3"], "Int64"),
            (vec!["+5"], "Int64"),
            (vec!["1", "18446744073709551615"], "UInt64"),
            (vec!["-1", "18446744073709551615"], "Int128"),
            (vec!["99999999999999999999999"], "String"),
            (vec!["007"], "String"),
            (vec!["0", "10"], "Int64"),
            (vec!["1", "2.5"], "Float64"),
            (vec!["1e3", "-.5", "3."], "Float64"),
            (vec!["inf"], "String"),
            (vec!["NaN"], "String"),
            (vec!["1", "", "3"], "Nullable(Int64)"),
            (vec!["1", "\\N"], "Nullable(Int64)"),
            (vec!["", ""], "Nullable(String)"),
            (vec!["true", "FALSE", "True"], "Bool"),
            (vec!["true", "1"], "String"),
            (vec!["true", ""], "Nullable(Bool)"),
            (vec!["2024-01-01", "2024-12-31"], "Date"),
            (vec!["2024-01-01", "1960-01-01"], "Date32"),
            (
                vec!["2024-01-01 00:00:00", "2024-01-01T10:00:00Z"],
                "DateTime",
            ),
            (
                vec!["2024-01-01 00:00:00", "2024-01-01 00:00:00.5"],
                "DateTime64(3)",
            ),
            (vec!["2024-01-01", "2024-01-01 00:00:00"], "String"),
            (vec!["2024-01-01 00:00:00", ""], "Nullable(DateTime)"),
            (vec!["hello", "1"], "String"),
            (vec![" 12 ", "13"], "Int64"),
        ];
        for (values, expected) in cases {
            assert_eq!(
                guess_text_type(values.iter().copied()).to_string(),
                expected,
                "{values:?}"
            );
        }
    }

    #[test]
    fn csv_columns() {
        let header: Vec<String> = ["id", "first name", "id", "", "price €"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let rows = vec![
            vec![
                "1".into(),
                "Ann".into(),
                "x".into(),
                "2024-01-01".into(),
                "1.5".into(),
            ],
            vec!["2".into(), "".into(), "y".into(), "2024-01-02".into()],
        ];
        let columns = guess_csv_columns(Some(&header), &rows);
        assert_eq!(
            summary(&columns),
            triples(&[
                ("id", "Int64", ""),
                ("first_name", "Nullable(String)", ""),
                ("id_1", "String", ""),
                ("column_03", "Date", ""),
                ("price__", "Nullable(Float64)", ""),
            ])
        );
    }

    #[test]
    fn csv_without_header() {
        let rows = vec![
            vec!["a".to_owned(), "1".to_owned()],
            vec!["b".to_owned(), "2".to_owned(), "true".to_owned()],
        ];
        let columns = guess_csv_columns(None, &rows);
        assert_eq!(
            summary(&columns),
            triples(&[
                ("column_00", "String", ""),
                ("column_01", "Int64", ""),
                ("column_02", "Nullable(Bool)", "")
            ])
        );
        assert!(guess_csv_columns(None, &[]).is_empty());
        let header = vec!["a".to_owned()];
        assert_eq!(
            summary(&guess_csv_columns(Some(&header), &[])),
            triples(&[("a", "String", "")])
        );
    }

    #[test]
    fn json_scalars() {
        let rows = vec![
            json!({"i": 1, "f": 1.5, "mix": 1, "b": true, "s": "x", "ts": "2024-01-01 00:00:00", "d": "2024-01-01", "big": 1, "n": null}),
            json!({"i": -2, "f": 2, "mix": 2.5, "b": false, "s": "y", "ts": "2024-01-01T00:00:00.123Z", "d": "2024-01-02", "big": 18446744073709551615u64, "n": null}),
        ];
        let columns = guess_json_columns(&rows);
        assert_eq!(
            summary(&columns),
            triples(&[
                ("i", "Int64", "$.i"),
                ("f", "Float64", "$.f"),
                ("mix", "Float64", "$.mix"),
                ("b", "Bool", "$.b"),
                ("s", "String", "$.s"),
                ("ts", "DateTime64(3)", "$.ts"),
                ("d", "Date", "$.d"),
                ("big", "UInt64", "$.big"),
                ("n", "Nullable(String)", "$.n"),
            ])
        );
    }

    #[test]
    fn json_mixes_and_nulls() {
        let rows = vec![
            json!({"a": 1, "b": true, "c": "x", "d": 1, "e": [1]}),
            json!({"a": null, "b": 1, "c": 2}),
            json!({"a": 3, "b": false, "c": "z", "d": "2024-01-01"}),
        ];
        assert_eq!(
            summary(&guess_json_columns(&rows)),
            triples(&[
                ("a", "Nullable(Int64)", "$.a"),
                ("b", "String", "$.b"),
                ("c", "String", "$.c"),
                ("d", "Nullable(String)", "$.d"),
                ("e", "Array(Int64)", "$.e[:]"),
            ])
        );
    }

    #[test]
    fn json_nested_objects_and_arrays() {
        let rows = vec![
            json!({
                "user": {"id": "u1", "geo": {"country": "ES"}},
                "tags": ["a", "b"],
                "scores": [1, 2.5],
                "empty": [],
                "holes": [1, null],
                "matrix": [[1, 2], [3]],
                "items": [{"sku": "x"}],
                "meta": {}
            }),
            json!({"user": {"id": "u2"}, "tags": [], "extra key": 1}),
        ];
        assert_eq!(
            summary(&guess_json_columns(&rows)),
            triples(&[
                ("user_id", "String", "$.user.id"),
                ("user_geo_country", "Nullable(String)", "$.user.geo.country"),
                ("tags", "Array(String)", "$.tags[:]"),
                ("scores", "Array(Float64)", "$.scores[:]"),
                ("empty", "Array(String)", "$.empty[:]"),
                ("holes", "Array(Nullable(Int64))", "$.holes[:]"),
                ("matrix", "Array(Array(Int64))", "$.matrix[:]"),
                ("items", "Nullable(String)", "$.items"),
                ("extra_key", "Nullable(Int64)", "$['extra key']"),
            ])
        );
    }

    #[test]
    fn json_names_are_unique_and_paths_exact() {
        let rows = vec![json!({"a": {"b": 1}, "a_b": 2, "a.b": 3, "": 4, "x-y": {"z": "w"}})];
        let columns = guess_json_columns(&rows);
        assert_eq!(
            summary(&columns),
            triples(&[
                ("a_b", "Int64", "$.a.b"),
                ("a_b_1", "Int64", "$.a_b"),
                ("a_b_2", "Int64", "$['a.b']"),
                ("column_03", "Int64", "$['']"),
                ("x_y_z", "String", "$['x-y'].z"),
            ])
        );
        for column in &columns {
            let path = column.jsonpath.as_ref().unwrap();
            assert!(path.extract(&rows[0]).is_some(), "{path}");
        }
    }

    #[test]
    fn json_object_scalar_conflict_keeps_text() {
        let rows = vec![json!({"a": {"b": 1}}), json!({"a": 5})];
        assert_eq!(
            summary(&guess_json_columns(&rows)),
            triples(&[("a", "String", "$.a"), ("a_b", "Nullable(Int64)", "$.a.b")])
        );
    }

    #[test]
    fn json_ignores_non_objects_and_handles_empty_input() {
        assert!(guess_json_columns(&[]).is_empty());
        let rows = vec![json!([1, 2]), json!("x"), json!({"a": 1})];
        assert_eq!(
            summary(&guess_json_columns(&rows)),
            triples(&[("a", "Int64", "$.a")])
        );
    }

    #[test]
    fn json_preserves_document_order() {
        let rows: Vec<Value> = vec![serde_json::from_str(r#"{"z": 1, "a": 2, "m": 3}"#).unwrap()];
        let names: Vec<_> = guess_json_columns(&rows)
            .into_iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(names, ["z", "a", "m"]);
    }

    #[test]
    fn guessed_schemas_round_trip() {
        let rows = vec![json!({"a b": {"c": [1.5]}, "t": "2024-01-01 00:00:00", "n": null})];
        let columns = guess_json_columns(&rows);
        let schema = crate::schema::format_schema(&columns);
        assert_eq!(crate::schema::parse_schema(&schema).unwrap(), columns);
    }
}

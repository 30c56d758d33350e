//! Guessing a data source's schema from a sample of data, as the Analyze API and data sources
//! created from data need: columns and types, how often each column has a value, a preview
//! keyed by column name, and for CSV the dialect.

mod parquet;

use roost_proto::ingest::v1::DataFormat;
use roost_types::{ChType, Column, Segment, guess_csv_columns, guess_json_columns};
use serde_json::Value;

use crate::decode::{CsvDialect, sample_csv, sample_ndjson, sniff_csv};

/// Rows sampled to guess a schema.
const SAMPLE_ROWS: usize = 1000;
/// Rows shown in a preview.
const PREVIEW_ROWS: usize = 10;

/// Why data could not be analyzed.
#[derive(Debug, thiserror::Error)]
pub enum AnalyzeError {
    /// An option the caller gave is not valid.
    #[error("{0}")]
    InvalidOption(String),
    /// The data does not yield a schema.
    #[error("{0}")]
    Unusable(String),
}

/// What an analysis found.
#[derive(Debug)]
pub struct Analysis {
    pub columns: Vec<Column>,
    /// Per column: the share of sampled rows with a value, 0 to 1.
    pub present: Vec<f64>,
    /// Up to [`PREVIEW_ROWS`] rows keyed by column name.
    pub preview: Vec<Value>,
    /// CSV only.
    pub dialect: Option<CsvDialectFound>,
    pub sampled_rows: u64,
}

/// A CSV dialect as the Analyze API reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvDialectFound {
    pub dialect: CsvDialect,
    /// `\r\n` or `\n`.
    pub newline: &'static str,
}

/// The CSV options of a request: a one-character delimiter (empty: detect) and the header
/// (`true`, `false`, else detect).
pub fn csv_options(
    delimiter: &str,
    header: &str,
) -> Result<(Option<u8>, Option<bool>), AnalyzeError> {
    let delimiter = match delimiter.as_bytes() {
        [] => None,
        [byte] => Some(*byte),
        b"\\t" => Some(b'\t'),
        _ => {
            return Err(AnalyzeError::InvalidOption(
                "dialect_delimiter must be a single character".into(),
            ));
        }
    };
    let header = match header {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    };
    Ok((delimiter, header))
}

/// Analyzes a sample of data in `format`.
pub fn analyze(
    format: DataFormat,
    data: &[u8],
    type_guessing: bool,
    delimiter: &str,
    header: &str,
) -> Result<Analysis, AnalyzeError> {
    let mut analysis = match format {
        DataFormat::Csv => {
            let (delimiter, header) = csv_options(delimiter, header)?;
            analyze_csv(data, delimiter, header)
        }
        DataFormat::Parquet => parquet::analyze(data)?,
        DataFormat::Ndjson | DataFormat::Unspecified => analyze_ndjson(data),
    };
    if analysis.columns.is_empty() {
        return Err(AnalyzeError::Unusable(
            "Could not guess any column from the data: send at least one valid row or a schema"
                .into(),
        ));
    }
    if !type_guessing {
        for column in &mut analysis.columns {
            column.ty = ChType::String;
        }
    }
    Ok(analysis)
}

fn analyze_csv(data: &[u8], delimiter: Option<u8>, header: Option<bool>) -> Analysis {
    let dialect = sniff_csv(data, None, delimiter, header);
    let (names, rows) = sample_csv(data, &dialect, SAMPLE_ROWS);
    let columns = guess_csv_columns(names.as_deref(), &rows);
    fn field(row: &[String], i: usize) -> Option<&str> {
        row.get(i)
            .map(String::as_str)
            .filter(|text| !text.is_empty() && *text != "\\N")
    }
    let present = (0..columns.len())
        .map(|i| {
            share(
                rows.iter().filter(|row| field(row, i).is_some()).count(),
                rows.len(),
            )
        })
        .collect();
    let preview = rows
        .iter()
        .take(PREVIEW_ROWS)
        .map(|row| {
            Value::Object(
                columns
                    .iter()
                    .enumerate()
                    .map(|(i, column)| {
                        let value =
                            field(row, i).map_or(Value::Null, |text| typed(&column.ty, text));
                        (column.name.clone(), value)
                    })
                    .collect(),
            )
        })
        .collect();
    let first_line_end = memchr::memchr(b'\n', data);
    let newline = match first_line_end {
        Some(end) if end > 0 && data[end - 1] == b'\r' => "\r\n",
        _ => "\n",
    };
    Analysis {
        columns,
        present,
        preview,
        dialect: Some(CsvDialectFound { dialect, newline }),
        sampled_rows: rows.len() as u64,
    }
}

/// A CSV field as the JSON value a preview shows: numbers and booleans typed, the rest text.
fn typed(ty: &ChType, text: &str) -> Value {
    let number = || {
        text.trim()
            .parse::<f64>()
            .ok()
            .and_then(|n| serde_json::Number::from_f64(n).map(Value::Number))
    };
    match ty.unwrap_nullable().strip_low_cardinality() {
        ChType::Int8 | ChType::Int16 | ChType::Int32 | ChType::Int64 => text
            .trim()
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::from(text)),
        ChType::UInt8 | ChType::UInt16 | ChType::UInt32 | ChType::UInt64 => text
            .trim()
            .parse::<u64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::from(text)),
        ChType::Float32 | ChType::Float64 => number().unwrap_or_else(|| Value::from(text)),
        ChType::Bool => match text.trim().to_ascii_lowercase().as_str() {
            "true" | "1" => Value::Bool(true),
            "false" | "0" => Value::Bool(false),
            _ => Value::from(text),
        },
        _ => Value::from(text),
    }
}

fn analyze_ndjson(data: &[u8]) -> Analysis {
    let rows = sample_ndjson(data, SAMPLE_ROWS);
    let columns = guess_json_columns(&rows);
    let values = |column: &Column, row: &Value| {
        column
            .jsonpath
            .as_ref()
            .and_then(|path| at_path(row, path.segments()))
            .filter(|value| !value.is_null())
    };
    let present = columns
        .iter()
        .map(|column| {
            let found = rows
                .iter()
                .filter(|row| values(column, row).is_some())
                .count();
            share(found, rows.len())
        })
        .collect();
    let preview = rows
        .iter()
        .take(PREVIEW_ROWS)
        .map(|row| {
            Value::Object(
                columns
                    .iter()
                    .map(|column| {
                        (
                            column.name.clone(),
                            values(column, row).unwrap_or(Value::Null),
                        )
                    })
                    .collect(),
            )
        })
        .collect();
    Analysis {
        columns,
        present,
        preview,
        dialect: None,
        sampled_rows: rows.len() as u64,
    }
}

/// The value a jsonpath reads from a row: `[:]` gathers the rest of the path over an array's
/// elements.
fn at_path(value: &Value, path: &[Segment]) -> Option<Value> {
    let Some((first, rest)) = path.split_first() else {
        return Some(value.clone());
    };
    match first {
        Segment::Key(key) => at_path(value.get(key)?, rest),
        Segment::Index(index) => at_path(value.get(index)?, rest),
        Segment::All => Some(Value::Array(
            value
                .as_array()?
                .iter()
                .filter_map(|element| at_path(element, rest))
                .collect(),
        )),
    }
}

fn share(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ndjson_columns_know_how_often_they_are_there() {
        let data = b"{\"a\": 1, \"n\": {\"x\": \"s\"}, \"t\": [1, 2]}\n{\"a\": 2, \"t\": []}\n{\"a\": 3, \"n\": {\"x\": null}}\n";
        let analysis = analyze(DataFormat::Ndjson, data, true, "", "auto").unwrap();
        let by_name = |name: &str| {
            let i = analysis
                .columns
                .iter()
                .position(|c| c.name == name)
                .unwrap();
            (analysis.columns[i].ty.to_string(), analysis.present[i])
        };
        assert_eq!(by_name("a").1, 1.0);
        assert!((by_name("n_x").1 - 1.0 / 3.0).abs() < 1e-9);
        assert!((by_name("t").1 - 2.0 / 3.0).abs() < 1e-9);
        assert_eq!(analysis.sampled_rows, 3);
        assert_eq!(analysis.preview[0]["n_x"], "s");
        assert_eq!(analysis.preview[0]["t"], serde_json::json!([1, 2]));
        assert_eq!(analysis.preview[1]["n_x"], Value::Null);
        assert!(analysis.dialect.is_none());
    }

    #[test]
    fn csv_dialect_and_typed_preview() {
        let data = b"id;name;score\r\n1;ann;1.5\r\n2;;2\r\n";
        let analysis = analyze(DataFormat::Csv, data, true, "", "auto").unwrap();
        let dialect = analysis.dialect.clone().unwrap();
        assert_eq!(dialect.dialect.delimiter, b';');
        assert!(dialect.dialect.has_header);
        assert_eq!(dialect.newline, "\r\n");
        let names: Vec<&str> = analysis.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["id", "name", "score"]);
        assert_eq!(analysis.present, [1.0, 0.5, 1.0]);
        assert_eq!(analysis.preview[0]["id"], 1);
        assert_eq!(analysis.preview[0]["score"], 1.5);
        assert_eq!(analysis.preview[1]["name"], Value::Null);

        let headless = analyze(DataFormat::Csv, b"1,x\n2,y\n", true, "", "auto").unwrap();
        assert!(!headless.dialect.unwrap().dialect.has_header);
        assert_eq!(headless.sampled_rows, 2);
    }

    #[test]
    fn without_type_guessing_every_column_is_text() {
        let analysis = analyze(DataFormat::Csv, b"a,b\n1,2\n", false, "", "true").unwrap();
        assert!(analysis.columns.iter().all(|c| c.ty == ChType::String));
    }

    #[test]
    fn csv_options_parse() {
        assert_eq!(csv_options("", "auto").unwrap(), (None, None));
        assert_eq!(csv_options(";", "true").unwrap(), (Some(b';'), Some(true)));
        assert_eq!(
            csv_options("\\t", "false").unwrap(),
            (Some(b'\t'), Some(false))
        );
        assert!(csv_options(";;", "").is_err());
    }
}

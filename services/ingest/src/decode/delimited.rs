//! CSV bodies (any one-byte delimiter, `"` quotes doubled inside quoted fields, CRLF or LF), and
//! sniffing their delimiter and header.

use roost_types::{ChType, Column, guess_text_type};

use super::rowbinary::write_bytes;
use super::value::encode_text;
use super::{
    Absence, CsvDialect, DecodeError, DecodedBatch, RowErrors, checked_columns, encode_absent,
    insertable_columns, invalid_value, whole_row_error,
};

/// Delimiters tried when none is given, in order of preference on ties.
const DELIMITERS: [u8; 4] = [b',', b';', b'\t', b'|'];
/// How much of the body sniffing looks at.
const SNIFF_BYTES: usize = 64 * 1024;
/// How many records sniffing looks at.
const SNIFF_RECORDS: usize = 50;

/// Decodes a CSV body into `RowBinaryWithDefaults` for the insertable `columns`. Fields map to columns
/// by position, or by name when the dialect has a header whose fields all name columns (columns the
/// header lacks are missing). Records with the wrong number of fields and values that do not fit go to
/// quarantine.
pub fn decode_csv(
    columns: &[Column],
    data: &[u8],
    dialect: &CsvDialect,
) -> Result<DecodedBatch, DecodeError> {
    let columns = checked_columns(columns)?;
    let mut reader = reader(strip_bom(data), dialect.delimiter);
    let mut record = csv::ByteRecord::new();
    let mut mapping: Vec<Option<usize>> = (0..columns.len()).map(Some).collect();
    let mut expected_fields = columns.len();
    let has_header_record = dialect.has_header && read(&mut reader, &mut record)?;
    if let Some(by_name) = has_header_record
        .then(|| header_mapping(&columns, &record))
        .flatten()
    {
        mapping = by_name;
        expected_fields = record.len();
    }
    let mut batch = DecodedBatch {
        data: Vec::with_capacity(data.len() + data.len() / 2),
        ..DecodedBatch::default()
    };
    let mut errors = RowErrors::default();
    while read(&mut reader, &mut record)? {
        let raw_values = |record: &csv::ByteRecord| -> Vec<Option<String>> {
            mapping
                .iter()
                .map(|field| {
                    field
                        .and_then(|f| record.get(f))
                        .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
                })
                .collect()
        };
        if record.len() != expected_fields {
            let error = format!(
                "the row has {} fields but {} were expected",
                record.len(),
                expected_fields
            );
            let mut row = whole_row_error(columns.len(), String::new(), error);
            row.values = raw_values(&record);
            batch.quarantined.push(row);
            continue;
        }
        let start = batch.data.len();
        errors.clear();
        for (i, (column, field)) in columns.iter().zip(&mapping).enumerate() {
            let field = field.and_then(|f| record.get(f));
            errors.record(i, encode_column(column, field, &mut batch.data));
        }
        if errors.is_empty() {
            batch.rows += 1;
        } else {
            batch.data.truncate(start);
            batch
                .quarantined
                .push(errors.take(&columns, raw_values(&record)));
        }
    }
    Ok(batch)
}

/// The dialect of a CSV body. `delimiter` and `header` force those choices. Otherwise the delimiter is
/// the one among `,` `;` tab `|` that splits the first records into the same number of fields (more
/// than one, preferably as many as there are columns), and the first record is a header when its
/// fields name the columns, or when it has no typed-looking field while a later record has a typed
/// value (number, date, ...) in a position where the first record has text.
pub fn sniff_csv(
    data: &[u8],
    columns: Option<&[Column]>,
    delimiter: Option<u8>,
    header: Option<bool>,
) -> CsvDialect {
    let data = strip_bom(data);
    let (sample, truncated) = if data.len() > SNIFF_BYTES {
        (&data[..SNIFF_BYTES], true)
    } else {
        (data, false)
    };
    let columns = columns.map(insertable_columns);
    let delimiter = delimiter.unwrap_or_else(|| {
        let column_count = columns.as_ref().map(Vec::len);
        detect_delimiter(sample, truncated, column_count)
    });
    let has_header = header.unwrap_or_else(|| {
        let records = sample_records(sample, truncated, delimiter, SNIFF_RECORDS);
        detect_header(&records, columns.as_deref())
    });
    CsvDialect {
        delimiter,
        has_header,
    }
}

/// Up to `limit` records for type guessing, with the header (when the dialect has one) split out.
pub fn sample_csv(
    data: &[u8],
    dialect: &CsvDialect,
    limit: usize,
) -> (Option<Vec<String>>, Vec<Vec<String>>) {
    let extra = usize::from(dialect.has_header);
    let mut records = sample_records(
        strip_bom(data),
        false,
        dialect.delimiter,
        limit.saturating_add(extra),
    );
    let header = if dialect.has_header && !records.is_empty() {
        Some(records.remove(0))
    } else {
        None
    };
    (header, records)
}

fn reader(data: &[u8], delimiter: u8) -> csv::Reader<&[u8]> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .quote(b'"')
        .double_quote(true)
        .from_reader(data)
}

fn read(
    reader: &mut csv::Reader<&[u8]>,
    record: &mut csv::ByteRecord,
) -> Result<bool, DecodeError> {
    reader
        .read_byte_record(record)
        .map_err(|e| DecodeError::Csv(e.to_string()))
}

fn strip_bom(data: &[u8]) -> &[u8] {
    data.strip_prefix(b"\xef\xbb\xbf").unwrap_or(data)
}

/// One field with its defaults flag; the quarantine message on failure.
fn encode_column(column: &Column, field: Option<&[u8]>, out: &mut Vec<u8>) -> Result<(), String> {
    match field {
        None => encode_absent(column, Absence::Missing, out),
        Some(b"" | b"\\N") => encode_absent(column, Absence::Empty, out),
        Some(bytes) => {
            out.push(0);
            if matches!(column.ty.strip_low_cardinality(), ChType::String) {
                // Any bytes are a valid String; no need to look at them.
                write_bytes(out, bytes);
                return Ok(());
            }
            let text = String::from_utf8_lossy(bytes);
            encode_text(&column.ty, &text, out)
                .map_err(|reason| invalid_value(column, &text, &reason))
        }
    }
}

/// Column → field positions when every header field names a different column.
fn header_mapping(columns: &[&Column], header: &csv::ByteRecord) -> Option<Vec<Option<usize>>> {
    let mut mapping = vec![None; columns.len()];
    for (field_index, field) in header.iter().enumerate() {
        let name = std::str::from_utf8(field).ok()?.trim();
        let column = columns.iter().position(|c| c.name == name)?;
        if mapping[column].replace(field_index).is_some() {
            return None;
        }
    }
    Some(mapping)
}

/// The first `limit` records as text. When `truncated`, the body was cut at an arbitrary byte, so the
/// last record read up to the cut is dropped.
fn sample_records(data: &[u8], truncated: bool, delimiter: u8, limit: usize) -> Vec<Vec<String>> {
    let mut reader = reader(data, delimiter);
    let mut record = csv::ByteRecord::new();
    let mut records = Vec::new();
    let mut reached_end = false;
    while records.len() < limit {
        match reader.read_byte_record(&mut record) {
            Ok(true) => records.push(
                record
                    .iter()
                    .map(|f| String::from_utf8_lossy(f).into_owned())
                    .collect::<Vec<_>>(),
            ),
            Ok(false) | Err(_) => {
                reached_end = true;
                break;
            }
        }
    }
    if truncated && reached_end && records.len() > 1 {
        records.pop();
    }
    records
}

fn detect_delimiter(sample: &[u8], truncated: bool, column_count: Option<usize>) -> u8 {
    let mut best = (DELIMITERS[0], (false, false, 0, 0));
    for delimiter in DELIMITERS {
        let records = sample_records(sample, truncated, delimiter, SNIFF_RECORDS);
        let Some(first) = records.first().map(Vec::len) else {
            continue;
        };
        let agreeing = records.iter().filter(|r| r.len() == first).count();
        let score = (
            first > 1 && agreeing == records.len(),
            column_count == Some(first),
            agreeing * 1000 / records.len(),
            first,
        );
        if score > best.1 {
            best = (delimiter, score);
        }
    }
    best.0
}

fn detect_header(records: &[Vec<String>], columns: Option<&[&Column]>) -> bool {
    let Some(first) = records.first() else {
        return false;
    };
    if let Some(columns) = columns {
        let mut seen = vec![false; columns.len()];
        let names_columns = first.iter().all(|field| {
            columns
                .iter()
                .position(|c| c.name == field.trim())
                .is_some_and(|i| !std::mem::replace(&mut seen[i], true))
        });
        if names_columns && !first.is_empty() {
            return true;
        }
    }
    let rest = &records[1..];
    if rest.is_empty() {
        return false;
    }
    let is_text = |ty: &ChType| matches!(ty.unwrap_nullable(), ChType::String);
    if first
        .iter()
        .any(|field| field.trim().is_empty() || !is_text(&guess_text_type([field.as_str()])))
    {
        return false;
    }
    (0..first.len()).any(|position| {
        let later = rest
            .iter()
            .filter_map(|r| r.get(position).map(String::as_str));
        if let Some(column) = columns.and_then(|c| c.get(position)) {
            // The first field does not fit the column while the later ones do.
            let fits =
                |text: &str| encode_column(column, Some(text.as_bytes()), &mut Vec::new()).is_ok();
            if !is_text(column.ty.strip_low_cardinality()) && !fits(&first[position]) {
                let later: Vec<&str> = later.clone().filter(|t| !t.is_empty()).collect();
                if !later.is_empty() && later.iter().all(|t| fits(t)) {
                    return true;
                }
            }
        }
        !is_text(&guess_text_type(later))
    })
}

#[cfg(test)]
mod tests {
    use super::super::QuarantinedRow;
    use super::*;
    use roost_types::parse_schema;

    fn columns(schema: &str) -> Vec<Column> {
        parse_schema(schema).unwrap()
    }

    fn dialect(delimiter: u8, has_header: bool) -> CsvDialect {
        CsvDialect {
            delimiter,
            has_header,
        }
    }

    fn decode(schema: &str, body: &str, dialect: &CsvDialect) -> DecodedBatch {
        decode_csv(&columns(schema), body.as_bytes(), dialect).unwrap()
    }

    #[test]
    fn decodes_fields_by_position() {
        let batch = decode(
            "id UInt32, name String, score Nullable(Float32), day Date",
            "7,ab,,2024-01-15\r\n8,\"a,\"\"b\"\"\nc\",1.5,1970-01-02\r\n",
            &CsvDialect::default(),
        );
        assert_eq!(batch.quarantined, vec![]);
        assert_eq!(batch.rows, 2);
        let mut expected = vec![0, 7, 0, 0, 0, 0, 2, b'a', b'b', 0, 1, 0, 0x19, 0x4d];
        expected.extend_from_slice(&[0, 8, 0, 0, 0, 0, 7]);
        expected.extend_from_slice(b"a,\"b\"\nc");
        expected.extend_from_slice(&[0, 0]);
        expected.extend_from_slice(&1.5f32.to_le_bytes());
        expected.extend_from_slice(&[0, 1, 0]);
        assert_eq!(batch.data, expected);
    }

    #[test]
    fn empty_fields_defaults_and_nulls() {
        let batch = decode(
            "a Int32 DEFAULT 1, b String, c Nullable(Int8), d Array(Int8)",
            ",,\\N,\n",
            &CsvDialect::default(),
        );
        assert_eq!(batch.quarantined, vec![]);
        assert_eq!(batch.data, [1, 0, 0, 0, 1, 0, 0]);
        let batch = decode("a Int32", "\"\"\n", &CsvDialect::default());
        assert_eq!(batch.rows, 0);
        assert_eq!(
            batch.quarantined[0].errors,
            ["column 'a' is not nullable and the value is empty"]
        );
    }

    #[test]
    fn bad_records_go_to_quarantine() {
        let schema = "id Int32, tags Array(String)";
        let good = "1,\"['a','b']\"\n2,[]\n3,\"[\"\"x\"\"]\"\n";
        let mixed = "x,[]\n1,\"['a','b']\"\n2,[]\n1,[],extra\n1\n3,\"[\"\"x\"\"]\"\n4,['a'\n";
        let batch = decode(schema, mixed, &CsvDialect::default());
        let only_good = decode(schema, good, &CsvDialect::default());
        assert_eq!((batch.rows, only_good.rows), (3, 3));
        assert_eq!(batch.data, only_good.data);
        assert_eq!(
            batch.quarantined,
            vec![
                QuarantinedRow {
                    values: vec![Some("x".into()), Some("[]".into())],
                    error_columns: vec!["id".into()],
                    errors: vec!["value 'x' is not a valid Int32 for column 'id'".into()],
                },
                QuarantinedRow {
                    values: vec![Some("1".into()), Some("[]".into())],
                    error_columns: vec![],
                    errors: vec!["the row has 3 fields but 2 were expected".into()],
                },
                QuarantinedRow {
                    values: vec![Some("1".into()), None],
                    error_columns: vec![],
                    errors: vec!["the row has 1 fields but 2 were expected".into()],
                },
                QuarantinedRow {
                    values: vec![Some("4".into()), Some("['a'".into())],
                    error_columns: vec!["tags".into()],
                    errors: vec![
                        "value '['a'' is not a valid Array(String) for column 'tags': expected ',' or ']' at position 4"
                            .into()
                    ],
                },
            ]
        );
    }

    #[test]
    fn array_fields() {
        let batch = decode(
            "a Array(Int32), b Array(Nullable(String)), c Map(String, UInt8)",
            "\"[1, -2]\",\"['x', NULL]\",\"{'k': 1}\"\n",
            &CsvDialect::default(),
        );
        assert_eq!(batch.quarantined, vec![]);
        let mut expected = vec![0, 2, 1, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff];
        expected.extend_from_slice(&[0, 2, 0, 1, b'x', 1, 0, 1, 1, b'k', 1]);
        assert_eq!(batch.data, expected);
    }

    #[test]
    fn header_maps_by_name() {
        let schema = "a Int32, b String, c Nullable(Int32)";
        let batch = decode(schema, "b,a\nx,1\n", &dialect(b',', true));
        assert_eq!(batch.quarantined, vec![]);
        assert_eq!(batch.data, [0, 1, 0, 0, 0, 0, 1, b'x', 0, 1]);
        // A header that does not name the columns is skipped; fields go by position.
        let batch = decode(schema, "x,y,z\n1,a,2\n", &dialect(b',', true));
        assert_eq!(batch.rows, 1);
        assert_eq!(batch.data, [0, 1, 0, 0, 0, 0, 1, b'a', 0, 0, 2, 0, 0, 0]);
    }

    #[test]
    fn sniffs_delimiters() {
        let cases: [(&str, u8); 6] = [
            ("a,b,c\n1,2,3\n4,5,6\n", b','),
            ("a;b;c\n1;2,5;3\n4;5;6\n", b';'),
            ("a\tb\n1\t\"x,y\"\n", b'\t'),
            ("a|b|c\n1|2|3\n", b'|'),
            ("\"x;y\",1\n\"z;w\",2\n", b','),
            ("just one column\nanother\n", b','),
        ];
        for (body, expected) in cases {
            let found = sniff_csv(body.as_bytes(), None, None, None).delimiter;
            assert_eq!(found as char, expected as char, "{body:?}");
        }
        // The column count breaks ties between otherwise consistent delimiters.
        let schema = columns("a String, b String");
        let found = sniff_csv(b"x;y,z\nx;y,z\n", Some(&schema), None, None);
        assert_eq!(found.delimiter, b',');
        let schema = columns("a String, b String, c String");
        let found = sniff_csv(b"x;y,z;w\nx;y,z;w\n", Some(&schema), None, None);
        assert_eq!(found.delimiter, b';');
        // A forced delimiter wins.
        assert_eq!(sniff_csv(b"a,b\n", None, Some(b'|'), None).delimiter, b'|');
    }

    #[test]
    fn sniffs_headers() {
        let sniff = |body: &str, schema: Option<&str>| {
            let columns = schema.map(columns);
            sniff_csv(body.as_bytes(), columns.as_deref(), None, None).has_header
        };
        assert!(sniff("id,name\n1,a\n2,b\n", None));
        assert!(sniff("name;when\nx;2024-01-01\n", None));
        assert!(!sniff("1,a\n2,b\n", None));
        assert!(!sniff("a,b\nc,d\n", None));
        assert!(sniff("a,b\nc,d\n", Some("a String, b String")));
        assert!(sniff("b,a\nc,d\n", Some("a String, b String")));
        assert!(!sniff("a,x\nc,d\n", Some("a String, b String")));
        // The first record does not fit a typed column that the later ones fit.
        assert!(sniff("when,x\n2024-01-01,y\n", Some("d Date, x String")));
        assert!(!sniff("only,one\n", None));
        assert!(!sniff("", None));
        // Quoted fields with delimiters and newlines inside.
        let body = "\"id\",\"text\"\n1,\"a, b\nc\"\n2,\"d\"\n";
        assert_eq!(
            sniff_csv(body.as_bytes(), None, None, None),
            dialect(b',', true)
        );
        assert!(!sniff_csv(b"id,name\n1,a\n", None, None, Some(false)).has_header);
    }

    #[test]
    fn samples_split_the_header() {
        let (header, rows) = sample_csv(b"a;b\n1;2\n3;4\n5;6\n", &dialect(b';', true), 2);
        assert_eq!(header, Some(vec!["a".to_owned(), "b".to_owned()]));
        assert_eq!(rows, [["1", "2"], ["3", "4"]]);
        let (header, rows) = sample_csv(b"1,2\n", &CsvDialect::default(), 10);
        assert_eq!(header, None);
        assert_eq!(rows, [["1", "2"]]);
    }

    #[test]
    fn blank_lines_are_skipped() {
        let batch = decode("a UInt8", "1\n\n2\r\n\r\n", &CsvDialect::default());
        assert_eq!(batch.quarantined, vec![]);
        assert_eq!(batch.data, [0, 1, 0, 2]);
    }
}

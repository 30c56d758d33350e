//! Output formats a caller may ask for, with their HTTP content types. Anything else is refused:
//! some ClickHouse formats (Template, Protobuf, CapnProto) read files named by settings.

/// An allowed output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputFormat {
    /// The name ClickHouse knows.
    pub clickhouse: &'static str,
    /// The HTTP Content-Type of the answer.
    pub content_type: &'static str,
}

const FORMATS: &[(&str, &str, &str)] = &[
    ("json", "JSON", "application/json"),
    ("jsoncompact", "JSONCompact", "application/json"),
    ("jsonstrings", "JSONStrings", "application/json"),
    ("jsoneachrow", "JSONEachRow", "application/x-ndjson"),
    ("ndjson", "JSONEachRow", "application/x-ndjson"),
    ("jsonlines", "JSONEachRow", "application/x-ndjson"),
    (
        "jsoncompacteachrow",
        "JSONCompactEachRow",
        "application/x-ndjson",
    ),
    ("csv", "CSV", "text/csv; charset=utf-8"),
    ("csvwithnames", "CSVWithNames", "text/csv; charset=utf-8"),
    (
        "csvwithnamesandtypes",
        "CSVWithNamesAndTypes",
        "text/csv; charset=utf-8",
    ),
    ("tsv", "TSV", "text/tab-separated-values; charset=utf-8"),
    (
        "tabseparated",
        "TSV",
        "text/tab-separated-values; charset=utf-8",
    ),
    (
        "tsvwithnames",
        "TSVWithNames",
        "text/tab-separated-values; charset=utf-8",
    ),
    (
        "tabseparatedwithnames",
        "TSVWithNames",
        "text/tab-separated-values; charset=utf-8",
    ),
    (
        "tsvwithnamesandtypes",
        "TSVWithNamesAndTypes",
        "text/tab-separated-values; charset=utf-8",
    ),
    (
        "tsvraw",
        "TSVRaw",
        "text/tab-separated-values; charset=utf-8",
    ),
    ("parquet", "Parquet", "application/octet-stream"),
    ("arrow", "Arrow", "application/octet-stream"),
    ("arrowstream", "ArrowStream", "application/octet-stream"),
    ("rowbinary", "RowBinary", "application/octet-stream"),
    (
        "rowbinarywithnamesandtypes",
        "RowBinaryWithNamesAndTypes",
        "application/octet-stream",
    ),
    ("native", "Native", "application/octet-stream"),
    (
        "prettycompact",
        "PrettyCompact",
        "text/plain; charset=utf-8",
    ),
    ("pretty", "Pretty", "text/plain; charset=utf-8"),
    ("values", "Values", "text/plain; charset=utf-8"),
];

/// Looks a format up by name, case-insensitively.
pub fn output_format(name: &str) -> Option<OutputFormat> {
    let lowered = name.to_ascii_lowercase();
    FORMATS
        .iter()
        .find(|(key, _, _)| *key == lowered)
        .map(|(_, clickhouse, content_type)| OutputFormat {
            clickhouse,
            content_type,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_formats_and_aliases() {
        assert_eq!(
            output_format("JSON").unwrap().content_type,
            "application/json"
        );
        assert_eq!(output_format("ndjson").unwrap().clickhouse, "JSONEachRow");
        assert_eq!(
            output_format("CSVWithNames").unwrap().content_type,
            "text/csv; charset=utf-8"
        );
        assert_eq!(output_format("Parquet").unwrap().clickhouse, "Parquet");
        assert!(output_format("Template").is_none());
        assert!(output_format("Protobuf").is_none());
    }
}

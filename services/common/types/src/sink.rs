//! What a sink pipe's settings say: the output format and compression, the write strategy, the
//! bucket URI, relative paths under a local export root, and the file name template with its
//! partition columns. Parsed and checked here, where the gateway (to refuse bad settings with a
//! 400) and the jobs that write (to never trust what was stored) both find them.

use std::fmt;

/// The format of exported files; the engine writes the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkFormat {
    Csv,
    Ndjson,
    Parquet,
}

impl SinkFormat {
    /// `csv`, `ndjson` (or `json`/`jsonl`), `parquet`, any case; empty means CSV, Tinybird's default.
    pub fn parse(text: &str) -> Result<SinkFormat, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "" | "csv" => Ok(SinkFormat::Csv),
            "ndjson" | "json" | "jsonl" => Ok(SinkFormat::Ndjson),
            "parquet" => Ok(SinkFormat::Parquet),
            other => Err(format!(
                "Invalid format '{other}': use csv, ndjson or parquet"
            )),
        }
    }

    /// The ClickHouse output format that writes it.
    pub fn engine_format(self) -> &'static str {
        match self {
            SinkFormat::Csv => "CSVWithNames",
            SinkFormat::Ndjson => "JSONEachRow",
            SinkFormat::Parquet => "Parquet",
        }
    }

    /// The file extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            SinkFormat::Csv => "csv",
            SinkFormat::Ndjson => "ndjson",
            SinkFormat::Parquet => "parquet",
        }
    }
}

impl fmt::Display for SinkFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.extension())
    }
}

/// How exported files are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkCompression {
    None,
    Gzip,
}

impl SinkCompression {
    /// `none` (or empty), `gz`/`gzip`.
    pub fn parse(text: &str) -> Result<SinkCompression, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "" | "none" => Ok(SinkCompression::None),
            "gz" | "gzip" => Ok(SinkCompression::Gzip),
            other => Err(format!("Invalid compression '{other}': use none or gz")),
        }
    }

    /// The setting's canonical value.
    pub fn as_str(self) -> &'static str {
        match self {
            SinkCompression::None => "none",
            SinkCompression::Gzip => "gz",
        }
    }

    /// The suffix compressed files get, with its dot; empty when uncompressed.
    pub fn suffix(self) -> &'static str {
        match self {
            SinkCompression::None => "",
            SinkCompression::Gzip => ".gz",
        }
    }
}

/// What a run does when a file of the same name exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteStrategy {
    /// Writes a new file beside it, with a numbered suffix.
    New,
    /// Replaces it.
    Truncate,
}

impl WriteStrategy {
    /// `new` (or empty) or `truncate`.
    pub fn parse(text: &str) -> Result<WriteStrategy, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "" | "new" => Ok(WriteStrategy::New),
            "truncate" => Ok(WriteStrategy::Truncate),
            other => Err(format!(
                "Invalid write_strategy '{other}': use new or truncate"
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            WriteStrategy::New => "new",
            WriteStrategy::Truncate => "truncate",
        }
    }
}

/// A path below a root: segments without `..`, never absolute. Empty and `.` segments are
/// dropped; the result is the segments joined by `/` (empty for the root itself).
pub fn relative_path(text: &str) -> Result<String, String> {
    let text = text.trim();
    if text.starts_with('/') || text.starts_with('\\') {
        return Err(format!(
            "The path '{text}' must be relative to the export root"
        ));
    }
    let mut segments = Vec::new();
    for segment in text.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                return Err(format!(
                    "The path '{text}' must not leave the export root ('..')"
                ));
            }
            segment if segment.contains(['\\', '\0']) || segment.contains(':') => {
                return Err(format!(
                    "The path '{text}' has an invalid segment '{segment}'"
                ));
            }
            segment => segments.push(segment),
        }
    }
    Ok(segments.join("/"))
}

/// A local sink's path: relative to its connection's root, optionally written `local://path`.
pub fn local_path(text: &str) -> Result<String, String> {
    let text = text.trim();
    relative_path(text.strip_prefix("local://").unwrap_or(text))
}

/// `s3://bucket/prefix`: the bucket and the prefix (relative, maybe empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketUri {
    pub bucket: String,
    pub prefix: String,
}

impl BucketUri {
    pub fn parse(text: &str) -> Result<BucketUri, String> {
        let rest = text
            .trim()
            .strip_prefix("s3://")
            .ok_or_else(|| format!("Invalid path '{text}': use s3://bucket/prefix"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let valid_bucket = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !valid_bucket {
            return Err(format!("Invalid bucket name '{bucket}' in path '{text}'"));
        }
        Ok(BucketUri {
            bucket: bucket.to_string(),
            prefix: relative_path(prefix)?,
        })
    }
}

/// One piece of a file template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplatePart {
    Text(String),
    /// `{date}`: the run's date, `YYYYMMDD`.
    Date,
    /// `{datetime}`: `YYYYMMDDhhmmss`.
    DateTime,
    /// `{timestamp}`: Unix seconds.
    Timestamp,
    /// `{job_id}`.
    JobId,
    /// `{column}` or `{column, 'strftime format'}`: one file per distinct value.
    Column {
        name: String,
        format: Option<String>,
    },
}

/// A parsed `file_template`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileTemplate {
    pub parts: Vec<TemplatePart>,
}

/// What a run fills a template's non-column parts with.
#[derive(Debug, Clone)]
pub struct RunValues<'a> {
    pub at: chrono::DateTime<chrono::Utc>,
    pub job_id: &'a str,
}

impl FileTemplate {
    /// Parses a template; `{` and `}` delimit variables, and the literal text must be a valid
    /// relative path (it may name folders).
    pub fn parse(text: &str) -> Result<FileTemplate, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("The file_template is required".to_string());
        }
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(TemplatePart::Text(rest[..open].to_string()));
            }
            let close = rest[open..]
                .find('}')
                .map(|i| open + i)
                .ok_or_else(|| format!("Unclosed '{{' in file_template '{text}'"))?;
            parts.push(variable(&rest[open + 1..close], text)?);
            rest = &rest[close + 1..];
        }
        if rest.contains('}') {
            return Err(format!("Unexpected '}}' in file_template '{text}'"));
        }
        if !rest.is_empty() {
            parts.push(TemplatePart::Text(rest.to_string()));
        }
        let literal: String = parts
            .iter()
            .map(|p| match p {
                TemplatePart::Text(text) => text.as_str(),
                _ => "x",
            })
            .collect();
        if relative_path(&literal)?.is_empty() || literal.ends_with('/') {
            return Err(format!("The file_template '{text}' names no file"));
        }
        Ok(FileTemplate { parts })
    }

    /// The partition columns, in template order, each once: `(column, format)`.
    pub fn partitions(&self) -> Vec<(&str, Option<&str>)> {
        let mut found: Vec<(&str, Option<&str>)> = Vec::new();
        for part in &self.parts {
            if let TemplatePart::Column { name, format } = part {
                let key = (name.as_str(), format.as_deref());
                if !found.contains(&key) {
                    found.push(key);
                }
            }
        }
        found
    }

    /// The file name for a run and one partition's values (in [`FileTemplate::partitions`]
    /// order). Values are made safe as path segments.
    pub fn render(&self, run: &RunValues<'_>, partition: &[String]) -> String {
        let partitions = self.partitions();
        let mut name = String::new();
        for part in &self.parts {
            match part {
                TemplatePart::Text(text) => name.push_str(text),
                TemplatePart::Date => name.push_str(&run.at.format("%Y%m%d").to_string()),
                TemplatePart::DateTime => name.push_str(&run.at.format("%Y%m%d%H%M%S").to_string()),
                TemplatePart::Timestamp => name.push_str(&run.at.timestamp().to_string()),
                TemplatePart::JobId => name.push_str(run.job_id),
                TemplatePart::Column {
                    name: column,
                    format,
                } => {
                    let index = partitions
                        .iter()
                        .position(|p| *p == (column.as_str(), format.as_deref()));
                    let value = index.and_then(|i| partition.get(i)).map(String::as_str);
                    name.push_str(&path_safe(value.unwrap_or_default()));
                }
            }
        }
        name
    }
}

fn variable(body: &str, template: &str) -> Result<TemplatePart, String> {
    let (name, format) = match body.split_once(',') {
        Some((name, format)) => {
            let format = format.trim();
            let unquoted = format
                .strip_prefix('\'')
                .and_then(|f| f.strip_suffix('\''))
                .or_else(|| format.strip_prefix('"').and_then(|f| f.strip_suffix('"')))
                .ok_or_else(|| {
                    format!(
                        "The format in '{{{body}}}' of file_template '{template}' must be quoted"
                    )
                })?;
            if unquoted.is_empty() || unquoted.contains(['\'', '\\']) {
                return Err(format!(
                    "Invalid format in '{{{body}}}' of file_template '{template}'"
                ));
            }
            (name.trim(), Some(unquoted.to_string()))
        }
        None => (body.trim(), None),
    };
    let fixed = match (name, &format) {
        ("date", None) => Some(TemplatePart::Date),
        ("datetime", None) => Some(TemplatePart::DateTime),
        ("timestamp", None) => Some(TemplatePart::Timestamp),
        ("job_id", None) => Some(TemplatePart::JobId),
        _ => None,
    };
    if let Some(fixed) = fixed {
        return Ok(fixed);
    }
    let identifier = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !identifier {
        return Err(format!(
            "Invalid variable '{{{body}}}' in file_template '{template}': use date, datetime, timestamp, job_id or a column name"
        ));
    }
    Ok(TemplatePart::Column {
        name: name.to_string(),
        format,
    })
}

/// A partition value as one path segment: anything but letters, digits, `-`, `_`, `.` and `=`
/// becomes `_`, and a value that would read as `.` or `..` (or nothing) is `_`.
pub fn path_safe(value: &str) -> String {
    let safe: String = value
        .chars()
        .map(|c| match c {
            c if c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '=') => c,
            _ => '_',
        })
        .collect();
    match safe.as_str() {
        "" | "." | ".." => "_".to_string(),
        _ => safe,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn run() -> RunValues<'static> {
        RunValues {
            at: chrono::Utc.with_ymd_and_hms(2026, 3, 4, 5, 6, 7).unwrap(),
            job_id: "j1",
        }
    }

    #[test]
    fn formats_compressions_and_strategies_parse_as_tinybird_names_them() {
        assert_eq!(SinkFormat::parse("").unwrap(), SinkFormat::Csv);
        assert_eq!(
            SinkFormat::parse("NDJSON").unwrap().engine_format(),
            "JSONEachRow"
        );
        assert_eq!(SinkFormat::parse("parquet").unwrap().extension(), "parquet");
        assert!(SinkFormat::parse("xml").unwrap_err().contains("xml"));
        assert_eq!(SinkCompression::parse("gz").unwrap().suffix(), ".gz");
        assert_eq!(SinkCompression::parse("none").unwrap().suffix(), "");
        assert!(SinkCompression::parse("zip").is_err());
        assert_eq!(WriteStrategy::parse("").unwrap(), WriteStrategy::New);
        assert_eq!(
            WriteStrategy::parse("truncate").unwrap(),
            WriteStrategy::Truncate
        );
        assert!(WriteStrategy::parse("append").is_err());
    }

    #[test]
    fn relative_paths_never_leave_their_root() {
        assert_eq!(relative_path("a/./b//c/").unwrap(), "a/b/c");
        assert_eq!(relative_path("").unwrap(), "");
        assert!(relative_path("../x").is_err());
        assert!(relative_path("a/../../x").is_err());
        assert!(relative_path("/etc").is_err());
        assert!(relative_path("a\\..\\b").is_err());
        assert!(relative_path("c:/x").is_err());
        assert_eq!(local_path("local://daily/x").unwrap(), "daily/x");
        assert!(local_path("local://../x").is_err());
    }

    #[test]
    fn bucket_uris_split_into_bucket_and_prefix() {
        assert_eq!(
            BucketUri::parse("s3://my-bucket/exports/daily/").unwrap(),
            BucketUri {
                bucket: "my-bucket".into(),
                prefix: "exports/daily".into()
            }
        );
        assert_eq!(BucketUri::parse("s3://bkt").unwrap().prefix, "");
        assert!(BucketUri::parse("gs://bkt/x").is_err());
        assert!(BucketUri::parse("s3://Bad_Bucket/x").is_err());
        assert!(BucketUri::parse("s3://bkt/../x").is_err());
    }

    #[test]
    fn templates_render_run_values_and_partitions() {
        let template = FileTemplate::parse("daily/{date}_{job_id}_{country}").unwrap();
        assert_eq!(template.partitions(), [("country", None)]);
        assert_eq!(
            template.render(&run(), &["ES".to_string()]),
            "daily/20260304_j1_ES"
        );
        let times = FileTemplate::parse("{datetime}-{timestamp}").unwrap();
        assert!(times.partitions().is_empty());
        assert_eq!(times.render(&run(), &[]), "20260304050607-1772600767");
    }

    #[test]
    fn formatted_columns_are_their_own_partition() {
        let template = FileTemplate::parse("{ts, '%Y-%m'}/{user}_{ts, '%Y-%m'}").unwrap();
        assert_eq!(
            template.partitions(),
            [("ts", Some("%Y-%m")), ("user", None)]
        );
        assert_eq!(
            template.render(&run(), &["2026-03".into(), "u/1".into()]),
            "2026-03/u_1_2026-03"
        );
    }

    #[test]
    fn partition_values_cannot_climb_out() {
        let template = FileTemplate::parse("{user}").unwrap();
        assert_eq!(template.render(&run(), &["..".into()]), "_");
        assert_eq!(template.render(&run(), &["../../etc".into()]), ".._.._etc");
        assert_eq!(path_safe(""), "_");
    }

    #[test]
    fn bad_templates_are_refused_with_the_reason() {
        assert!(FileTemplate::parse("").is_err());
        assert!(
            FileTemplate::parse("{date")
                .unwrap_err()
                .contains("Unclosed")
        );
        assert!(FileTemplate::parse("a}b").is_err());
        assert!(FileTemplate::parse("../{date}").is_err());
        assert!(FileTemplate::parse("/abs/{date}").is_err());
        assert!(
            FileTemplate::parse("{ts, %Y}")
                .unwrap_err()
                .contains("quoted")
        );
        assert!(FileTemplate::parse("{bad name}").is_err());
        assert!(FileTemplate::parse("dir/").is_err());
    }
}

//! The file formats imports read, named as Tinybird names them, recognised from a name, a URL or
//! the data itself.

/// A file format the Data Sources and Analyze APIs take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    Csv,
    Ndjson,
    Parquet,
}

impl FileFormat {
    /// From a `format=` value or a multipart field name.
    pub fn from_name(name: &str) -> Option<FileFormat> {
        match name.trim().to_ascii_lowercase().as_str() {
            "csv" => Some(FileFormat::Csv),
            "ndjson" | "json" | "jsoneachrow" | "jsonl" => Some(FileFormat::Ndjson),
            "parquet" => Some(FileFormat::Parquet),
            _ => None,
        }
    }

    /// From the extension of a URL's path (`.csv`, `.ndjson.gz`, ...), ignoring the query.
    pub fn from_url(url: &str) -> Option<FileFormat> {
        let path = url
            .split(['?', '#'])
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        let path = path.strip_suffix(".gz").unwrap_or(&path);
        let extension = path.rsplit_once('.')?.1;
        if extension.contains('/') {
            return None;
        }
        FileFormat::from_name(extension)
    }

    /// From the data: Parquet's magic, a JSON object, else CSV.
    pub fn sniff(data: &[u8]) -> FileFormat {
        let data = data.strip_prefix(b"\xef\xbb\xbf").unwrap_or(data);
        if data.starts_with(b"PAR1") {
            FileFormat::Parquet
        } else if data.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') {
            FileFormat::Ndjson
        } else {
            FileFormat::Csv
        }
    }

    /// The name Tinybird uses.
    pub fn name(self) -> &'static str {
        match self {
            FileFormat::Csv => "csv",
            FileFormat::Ndjson => "ndjson",
            FileFormat::Parquet => "parquet",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_come_from_names_urls_and_data() {
        assert_eq!(FileFormat::from_name("NDJSON"), Some(FileFormat::Ndjson));
        assert_eq!(FileFormat::from_name("xml"), None);
        assert_eq!(
            FileFormat::from_url("https://x.io/a/events.ndjson.gz?sig=1"),
            Some(FileFormat::Ndjson)
        );
        assert_eq!(
            FileFormat::from_url("http://x.io/data.CSV"),
            Some(FileFormat::Csv)
        );
        assert_eq!(
            FileFormat::from_url("http://x.io/f.parquet#x"),
            Some(FileFormat::Parquet)
        );
        assert_eq!(FileFormat::from_url("http://x.io/download"), None);
        assert_eq!(FileFormat::from_url("http://x.csv/download"), None);
        assert_eq!(FileFormat::sniff(b"PAR1\x15\x04"), FileFormat::Parquet);
        assert_eq!(FileFormat::sniff(b"\n  {\"a\": 1}"), FileFormat::Ndjson);
        assert_eq!(FileFormat::sniff(b"a,b\n1,2"), FileFormat::Csv);
    }
}

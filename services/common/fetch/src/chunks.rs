//! Cutting a stream of rows into chunks of about a given size that end at row boundaries, so
//! each chunk can be decoded on its own: NDJSON at line ends, CSV at line ends outside quoted
//! fields (a quoted field may hold newlines).

use bytes::{Bytes, BytesMut};

/// The formats whose rows can be cut apart; Parquet can only be read whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowFormat {
    /// Comma-separated values, with this delimiter when known. While it is not, any of `,` `;`
    /// tab `|` separates fields (only to tell where a quoted field may open).
    Csv(Option<u8>),
    /// One JSON object per line.
    Ndjson,
}

/// The delimiters CSV sniffing chooses from.
const CSV_DELIMITERS: [u8; 4] = [b',', b';', b'\t', b'|'];

/// Where a CSV scanner is within a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CsvState {
    /// At the start of a field: a quote here opens a quoted field.
    FieldStart,
    /// Inside an unquoted field: quotes are plain text.
    Unquoted,
    /// Inside a quoted field: newlines and delimiters are text.
    Quoted,
    /// Just after a quote inside a quoted field: another quote is an escaped one, anything else
    /// closed the field.
    QuotedQuote,
}

/// Finds row boundaries (the offsets just past a row's newline) in bytes fed in order.
#[derive(Debug, Clone)]
struct Scanner {
    format: RowFormat,
    state: CsvState,
}

impl Scanner {
    fn new(format: RowFormat) -> Self {
        Scanner {
            format,
            state: CsvState::FieldStart,
        }
    }

    fn is_delimiter(&self, byte: u8) -> bool {
        match self.format {
            RowFormat::Csv(Some(delimiter)) => byte == delimiter,
            _ => CSV_DELIMITERS.contains(&byte),
        }
    }

    /// The first boundary in `data[from..]` at or past `at_least`, scanning (and keeping the
    /// state of) every byte up to it; None once all of `data[from..]` was scanned without one.
    fn next_boundary(&mut self, data: &[u8], from: usize, at_least: usize) -> Option<usize> {
        if self.format == RowFormat::Ndjson {
            // JSON text holds no raw newline, so every newline ends a row; nothing before
            // `at_least` needs looking at.
            let start = from.max(at_least.saturating_sub(1));
            return memchr::memchr(b'\n', data.get(start..)?).map(|i| start + i + 1);
        }
        for (offset, &byte) in data[from..].iter().enumerate() {
            let boundary = self.step(byte);
            let end = from + offset + 1;
            if boundary && end >= at_least {
                return Some(end);
            }
        }
        None
    }

    /// Advances over one CSV byte; true when it ended a row.
    fn step(&mut self, byte: u8) -> bool {
        use CsvState::*;
        let (state, boundary) = match (self.state, byte) {
            (Quoted, b'"') => (QuotedQuote, false),
            (Quoted, _) => (Quoted, false),
            (QuotedQuote, b'"') => (Quoted, false),
            (FieldStart, b'"') => (Quoted, false),
            (_, b'\n') => (FieldStart, true),
            (_, byte) if self.is_delimiter(byte) => (FieldStart, false),
            _ => (Unquoted, false),
        };
        self.state = state;
        boundary
    }
}

/// Gathers bytes as they arrive and hands out chunks of at least `target` bytes that end at a
/// row boundary (a row longer than that makes a longer chunk).
#[derive(Debug)]
pub struct RowChunker {
    scanner: Scanner,
    target: usize,
    buffer: BytesMut,
    /// How much of `buffer` the scanner has seen.
    scanned: usize,
}

impl RowChunker {
    /// A chunker of rows in `format` into chunks of about `target` bytes.
    pub fn new(format: RowFormat, target: usize) -> Self {
        RowChunker {
            scanner: Scanner::new(format),
            target: target.max(1),
            buffer: BytesMut::new(),
            scanned: 0,
        }
    }

    /// Bytes held that are not part of a chunk handed out yet.
    pub fn pending(&self) -> usize {
        self.buffer.len()
    }

    /// Adds the next bytes; returns the chunks they completed, in order.
    pub fn push(&mut self, data: &[u8]) -> Vec<Bytes> {
        self.buffer.extend_from_slice(data);
        let mut chunks = Vec::new();
        loop {
            match self
                .scanner
                .next_boundary(&self.buffer, self.scanned, self.target)
            {
                Some(end) => {
                    chunks.push(self.buffer.split_to(end).freeze());
                    self.scanned = 0;
                }
                None => {
                    self.scanned = self.buffer.len();
                    return chunks;
                }
            }
        }
    }

    /// The rows left when the input ended (the last may lack its newline); None when only
    /// whitespace is left.
    pub fn finish(self) -> Option<Bytes> {
        let rest = self.buffer.freeze();
        (!rest.iter().all(u8::is_ascii_whitespace)).then_some(rest)
    }
}

/// The length of the complete rows at the start of `data` (all of it when it ends with a row
/// boundary); 0 when not even one row is complete. For reading a prefix of a file.
pub fn complete_rows(format: RowFormat, data: &[u8]) -> usize {
    let mut scanner = Scanner::new(format);
    let mut last = 0;
    while let Some(end) = scanner.next_boundary(data, last, 0) {
        last = end;
    }
    last
}

/// The first row of `data` with its newline (a CSV header), or None when no row ends in it.
pub fn first_row(format: RowFormat, data: &[u8]) -> Option<&[u8]> {
    Scanner::new(format)
        .next_boundary(data, 0, 0)
        .map(|end| &data[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cut(format: RowFormat, target: usize, pieces: &[&[u8]]) -> Vec<String> {
        let mut chunker = RowChunker::new(format, target);
        let mut chunks: Vec<Bytes> = pieces.iter().flat_map(|p| chunker.push(p)).collect();
        chunks.extend(chunker.finish());
        chunks
            .iter()
            .map(|c| String::from_utf8(c.to_vec()).unwrap())
            .collect()
    }

    #[test]
    fn ndjson_is_cut_at_the_first_line_end_past_the_target() {
        let data: &[u8] = b"{\"a\":1}\n{\"a\":22}\n{\"a\":333}\n{\"a\":4}";
        assert_eq!(
            cut(RowFormat::Ndjson, 10, &[data]),
            ["{\"a\":1}\n{\"a\":22}\n", "{\"a\":333}\n", "{\"a\":4}"]
        );
        assert_eq!(
            cut(RowFormat::Ndjson, 1, &[data]),
            ["{\"a\":1}\n", "{\"a\":22}\n", "{\"a\":333}\n", "{\"a\":4}"]
        );
        assert_eq!(
            cut(RowFormat::Ndjson, 1000, &[data]),
            [String::from_utf8(data.to_vec()).unwrap()]
        );
    }

    #[test]
    fn chunks_do_not_depend_on_how_the_bytes_arrive() {
        let mut data = Vec::new();
        for i in 0..500 {
            data.extend_from_slice(
                format!("{i},\"quoted, with a\nnewline and \"\"quotes\"\"\",plain\"text\n")
                    .as_bytes(),
            );
        }
        for format in [
            RowFormat::Csv(None),
            RowFormat::Csv(Some(b',')),
            RowFormat::Ndjson,
        ] {
            let whole = cut(format, 1000, &[&data]);
            for piece in [1, 7, 64, 999, 4096] {
                let pieces: Vec<&[u8]> = data.chunks(piece).collect();
                assert_eq!(
                    cut(format, 1000, &pieces),
                    whole,
                    "{format:?} in pieces of {piece}"
                );
            }
            assert_eq!(whole.concat().as_bytes(), data.as_slice());
        }
    }

    #[test]
    fn csv_newlines_inside_quotes_are_not_boundaries() {
        let data: &[u8] = b"id,text\n1,\"a\nb\"\n2,\"c\"\"\nd\"\n3,x\n";
        let chunks = cut(RowFormat::Csv(None), 1, &[data]);
        assert_eq!(
            chunks,
            ["id,text\n", "1,\"a\nb\"\n", "2,\"c\"\"\nd\"\n", "3,x\n"]
        );
        // A quote inside an unquoted field is text and opens nothing.
        let stray: &[u8] = b"1,5\" screen\n2,ok\n";
        assert_eq!(
            cut(RowFormat::Csv(Some(b',')), 1, &[stray]),
            ["1,5\" screen\n", "2,ok\n"]
        );
        // With `;` as the delimiter, a quote after a comma is text.
        let semicolons: &[u8] = b"a;b,\"c\n1;2\n";
        assert_eq!(
            cut(RowFormat::Csv(Some(b';')), 1, &[semicolons]),
            ["a;b,\"c\n", "1;2\n"]
        );
    }

    #[test]
    fn prefixes_keep_only_complete_rows() {
        let csv = b"a,b\n1,\"x\ny\"\n2,\"unfinished";
        assert_eq!(complete_rows(RowFormat::Csv(None), csv), 12);
        assert_eq!(complete_rows(RowFormat::Ndjson, b"{}\n{}\n{\"a"), 6);
        assert_eq!(complete_rows(RowFormat::Ndjson, b"{\"a"), 0);
        assert_eq!(complete_rows(RowFormat::Ndjson, b"{}\n"), 3);
        assert_eq!(first_row(RowFormat::Csv(None), csv), Some(&b"a,b\n"[..]));
        assert_eq!(
            first_row(RowFormat::Csv(None), b"\"a\nb\",c\n1,2\n"),
            Some(&b"\"a\nb\",c\n"[..])
        );
        assert_eq!(first_row(RowFormat::Csv(None), b"no newline"), None);
    }

    #[test]
    fn whitespace_left_at_the_end_is_no_chunk() {
        assert_eq!(cut(RowFormat::Ndjson, 4, &[b"{}\n\n  \n"]), ["{}\n\n"]);
        assert!(cut(RowFormat::Ndjson, 100, &[b"\n \n"]).is_empty());
    }
}

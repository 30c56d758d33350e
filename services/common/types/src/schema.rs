//! The Tinybird schema string:
//! `` `ts` DateTime `json:$.ts`, `id` String `json:$.user.id` DEFAULT 'anon' CODEC(ZSTD(1)) ``.
//!
//! Parsing it once here gives every crate the same columns; [`Column::ddl`] and [`structure`] turn them
//! back into ClickHouse SQL with names quoted.

use crate::chtype::{ChType, TypeError};
use crate::jsonpath::{JsonPath, JsonPathError};
use crate::lex::read_quoted;
use crate::names::{NameError, quote_ident, validate_column_name};

/// How a column's expression fills it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
pub enum DefaultKind {
    /// `DEFAULT expr`: used when the inserted row has no value.
    #[default]
    Default,
    /// `MATERIALIZED expr`: always computed; the column cannot be inserted into.
    Materialized,
}

impl DefaultKind {
    /// The SQL keyword.
    pub fn keyword(self) -> &'static str {
        match self {
            DefaultKind::Default => "DEFAULT",
            DefaultKind::Materialized => "MATERIALIZED",
        }
    }
}

/// One column of a data source.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Column {
    /// The column name, unquoted.
    pub name: String,
    /// The ClickHouse type.
    pub ty: ChType,
    /// Where NDJSON/Events rows hold the value.
    #[serde(default)]
    pub jsonpath: Option<JsonPath>,
    /// The `DEFAULT` (or `MATERIALIZED`, see `default_kind`) expression, verbatim.
    #[serde(default)]
    pub default: Option<String>,
    /// What is inside `CODEC(...)`, e.g. `ZSTD(1)`.
    #[serde(default)]
    pub codec: Option<String>,
    /// Whether `default` is a `DEFAULT` or a `MATERIALIZED` expression.
    #[serde(default)]
    pub default_kind: DefaultKind,
}

/// A schema string that cannot be parsed. Positions count columns from 1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    /// The schema has no columns.
    #[error("the schema is empty")]
    Empty,
    /// Quotes or parentheses that do not close.
    #[error("invalid schema at character {offset}: {reason}")]
    Syntax {
        /// Byte offset in the schema string.
        offset: usize,
        /// What is wrong.
        reason: String,
    },
    /// A column definition that does not follow the grammar.
    #[error("column {position} ('{name}'): {reason}")]
    Column {
        /// Column number, from 1.
        position: usize,
        /// The column name, or its definition when the name cannot be read.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// An invalid column name.
    #[error("column {position}: {source}")]
    Name {
        /// Column number, from 1.
        position: usize,
        /// Why the name is refused.
        source: NameError,
    },
    /// An invalid column type.
    #[error("column {position} ('{name}'): {source}")]
    Type {
        /// Column number, from 1.
        position: usize,
        /// The column name.
        name: String,
        /// Why the type is refused.
        source: TypeError,
    },
    /// An invalid jsonpath.
    #[error("column {position} ('{name}'): {source}")]
    JsonPath {
        /// Column number, from 1.
        position: usize,
        /// The column name.
        name: String,
        /// Why the path is refused.
        source: JsonPathError,
    },
    /// Two columns with the same name.
    #[error("duplicate column name '{name}'")]
    Duplicate {
        /// The repeated name.
        name: String,
    },
}

impl Column {
    /// A column with no jsonpath, default or codec.
    pub fn new(name: impl Into<String>, ty: ChType) -> Column {
        Column {
            name: name.into(),
            ty,
            jsonpath: None,
            default: None,
            codec: None,
            default_kind: DefaultKind::Default,
        }
    }

    /// The column definition for `CREATE TABLE`: `` `name` Type DEFAULT expr CODEC(x) ``.
    pub fn ddl(&self) -> String {
        let mut out = format!("{} {}", quote_ident(&self.name), self.ty);
        self.push_default_and_codec(&mut out);
        out
    }

    /// The column as written in a Tinybird schema string, with its jsonpath.
    pub fn schema_definition(&self) -> String {
        let mut out = format!("{} {}", quote_ident(&self.name), self.ty);
        if let Some(path) = &self.jsonpath {
            out.push_str(&format!(" `json:{path}`"));
        }
        self.push_default_and_codec(&mut out);
        out
    }

    /// True when inserts may carry a value for this column (it is not `MATERIALIZED`).
    pub fn is_insertable(&self) -> bool {
        self.default.is_none() || self.default_kind != DefaultKind::Materialized
    }

    fn push_default_and_codec(&self, out: &mut String) {
        if let Some(expr) = &self.default {
            out.push_str(&format!(" {} {expr}", self.default_kind.keyword()));
        }
        if let Some(codec) = &self.codec {
            out.push_str(&format!(" CODEC({codec})"));
        }
    }
}

/// Parses a Tinybird schema string into columns. Errors name the column; duplicate names and an empty
/// schema are errors.
pub fn parse_schema(schema: &str) -> Result<Vec<Column>, SchemaError> {
    let mut pieces = Vec::new();
    let mut from = 0;
    loop {
        let comma =
            scan(schema, from, |s, i| s.as_bytes()[i] == b',').map_err(|(offset, reason)| {
                SchemaError::Syntax {
                    offset,
                    reason: reason.to_owned(),
                }
            })?;
        pieces.push(&schema[from..comma]);
        if comma == schema.len() {
            break;
        }
        from = comma + 1;
    }
    // A trailing comma leaves one empty piece at the end; any other empty piece is a mistake.
    if pieces.len() > 1 && pieces.last().is_some_and(|p| p.trim().is_empty()) {
        pieces.pop();
    }
    if pieces.len() == 1 && pieces[0].trim().is_empty() {
        return Err(SchemaError::Empty);
    }
    let mut columns: Vec<Column> = Vec::with_capacity(pieces.len());
    for (i, piece) in pieces.iter().enumerate() {
        let column = parse_column(piece.trim(), i + 1)?;
        if columns.iter().any(|c| c.name == column.name) {
            return Err(SchemaError::Duplicate { name: column.name });
        }
        columns.push(column);
    }
    Ok(columns)
}

/// The Tinybird schema string for `columns`; it parses back to the same columns.
pub fn format_schema(columns: &[Column]) -> String {
    columns
        .iter()
        .map(Column::schema_definition)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Names and types only, `` `a` String, `b` Int32 ``, for ClickHouse `file()`/`input()` structures.
pub fn structure(columns: &[Column]) -> String {
    columns
        .iter()
        .map(|c| format!("{} {}", quote_ident(&c.name), c.ty))
        .collect::<Vec<_>>()
        .join(", ")
}

const JSON_CLAUSE: &str = "`json:";

/// The first byte index at or after `from`, outside quotes and parentheses/brackets, where `stop` holds;
/// `s.len()` if none. Errors carry the offset and reason for unbalanced input.
fn scan(
    s: &str,
    from: usize,
    stop: impl Fn(&str, usize) -> bool,
) -> Result<usize, (usize, &'static str)> {
    let bytes = s.as_bytes();
    let mut depth = 0usize;
    let mut i = from;
    while i < bytes.len() {
        if depth == 0 && stop(s, i) {
            return Ok(i);
        }
        match bytes[i] {
            b'`' if s[i..].starts_with(JSON_CLAUSE) => {
                i = json_clause_end(s, i + JSON_CLAUSE.len())?
            }
            b'\'' | b'"' | b'`' => i = read_quoted(s, i).map_err(|reason| (i, reason))?.1,
            b'(' | b'[' => {
                depth += 1;
                i += 1;
            }
            b')' | b']' => {
                depth = depth
                    .checked_sub(1)
                    .ok_or((i, "unbalanced closing parenthesis"))?;
                i += 1;
            }
            _ => i += 1,
        }
    }
    if depth > 0 {
        return Err((s.len(), "unclosed parenthesis"));
    }
    Ok(s.len())
}

/// The index just past the backquote closing a `` `json:… `` clause whose path starts at `from`.
/// The path is raw text: quoted keys inside it may hold backquotes and keep their escapes for the
/// jsonpath parser.
fn json_clause_end(s: &str, from: usize) -> Result<usize, (usize, &'static str)> {
    let bytes = s.as_bytes();
    let mut i = from;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'`' => return Ok(i + 1),
            b'\'' | b'"' => i = read_quoted(s, i).map_err(|reason| (i, reason))?.1,
            _ => i += 1,
        }
    }
    Err((s.len(), "unterminated `json: clause"))
}

fn starts_with_keyword(s: &str, i: usize, keyword: &str) -> bool {
    let rest = &s.as_bytes()[i..];
    rest.len() >= keyword.len()
        && rest[..keyword.len()].eq_ignore_ascii_case(keyword.as_bytes())
        && !rest
            .get(keyword.len())
            .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
}

/// Where a clause after the type may start: a json path, DEFAULT, MATERIALIZED or CODEC, at the start of
/// a word.
fn is_clause_start(s: &str, i: usize, from: usize) -> bool {
    let at_word_start = i == from || s.as_bytes()[i - 1].is_ascii_whitespace();
    at_word_start
        && (s[i..].starts_with(JSON_CLAUSE)
            || s[i..].starts_with("json:")
            || ["DEFAULT", "MATERIALIZED", "CODEC"]
                .iter()
                .any(|k| starts_with_keyword(s, i, k)))
}

fn parse_column(def: &str, position: usize) -> Result<Column, SchemaError> {
    let column_err = |name: &str, reason: &str| SchemaError::Column {
        position,
        name: name.to_owned(),
        reason: reason.to_owned(),
    };
    let (name, mut i) = if def.starts_with('`') {
        read_quoted(def, 0).map_err(|reason| column_err(def, reason))?
    } else {
        let end = def.find(char::is_whitespace).unwrap_or(def.len());
        (def[..end].to_owned(), end)
    };
    validate_column_name(&name).map_err(|source| SchemaError::Name { position, source })?;
    let name_for_errors = name.clone();
    let syntax = |(_, reason): (usize, &str)| column_err(&name_for_errors, reason);

    let type_start = skip_ws(def, i);
    let type_end =
        scan(def, type_start, |s, j| is_clause_start(s, j, type_start)).map_err(syntax)?;
    let type_text = def[type_start..type_end].trim();
    if type_text.is_empty() {
        return Err(column_err(&name, "missing type"));
    }
    let ty = type_text.parse().map_err(|source| SchemaError::Type {
        position,
        name: name.clone(),
        source,
    })?;
    let mut column = Column::new(name, ty);
    let path_err = |name: &str, source| SchemaError::JsonPath {
        position,
        name: name.to_owned(),
        source,
    };

    i = type_end;
    loop {
        i = skip_ws(def, i);
        if i >= def.len() {
            break;
        }
        let rest = &def[i..];
        if rest.starts_with(JSON_CLAUSE) || rest.starts_with("json:") {
            if column.jsonpath.is_some() {
                return Err(column_err(&column.name, "more than one jsonpath"));
            }
            let (path_text, end) = if rest.starts_with(JSON_CLAUSE) {
                let end = json_clause_end(def, i + JSON_CLAUSE.len()).map_err(syntax)?;
                (&def[i + JSON_CLAUSE.len()..end - 1], end)
            } else {
                let start = i + "json:".len();
                let end = scan(def, start, |s, j| s.as_bytes()[j].is_ascii_whitespace())
                    .map_err(syntax)?;
                (&def[start..end], end)
            };
            column.jsonpath = Some(path_text.parse().map_err(|e| path_err(&column.name, e))?);
            i = end;
        } else if let Some(kind) = [DefaultKind::Default, DefaultKind::Materialized]
            .into_iter()
            .find(|k| starts_with_keyword(def, i, k.keyword()))
        {
            if column.default.is_some() {
                return Err(column_err(
                    &column.name,
                    "more than one DEFAULT or MATERIALIZED expression",
                ));
            }
            let start = i + kind.keyword().len();
            let end = scan(def, start, |s, j| is_clause_start(s, j, start)).map_err(syntax)?;
            let expr = def[start..end].trim();
            if expr.is_empty() {
                return Err(column_err(
                    &column.name,
                    &format!("missing expression after {}", kind.keyword()),
                ));
            }
            column.default = Some(expr.to_owned());
            column.default_kind = kind;
            i = end;
        } else if starts_with_keyword(def, i, "CODEC") {
            if column.codec.is_some() {
                return Err(column_err(&column.name, "more than one CODEC"));
            }
            let open = skip_ws(def, i + "CODEC".len());
            if def.as_bytes().get(open) != Some(&b'(') {
                return Err(column_err(&column.name, "expected '(' after CODEC"));
            }
            let close = scan(def, open + 1, |s, j| s.as_bytes()[j] == b')').map_err(syntax)?;
            if close >= def.len() {
                return Err(column_err(&column.name, "unclosed CODEC("));
            }
            let codec = def[open + 1..close].trim();
            if codec.is_empty() {
                return Err(column_err(&column.name, "empty CODEC()"));
            }
            column.codec = Some(codec.to_owned());
            i = close + 1;
        } else {
            let word = rest.split_whitespace().next().unwrap_or(rest);
            return Err(column_err(&column.name, &format!("unexpected '{word}'")));
        }
    }
    Ok(column)
}

fn skip_ws(s: &str, pos: usize) -> usize {
    let rest = &s[pos..];
    pos + rest.len() - rest.trim_start().len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, ty: &str) -> Column {
        Column::new(name, ty.parse().unwrap())
    }

    fn with_path(mut c: Column, path: &str) -> Column {
        c.jsonpath = Some(path.parse().unwrap());
        c
    }

    #[test]
    fn parses_the_tinybird_example() {
        let schema = "`timestamp` DateTime `json:$.timestamp`, `user_id` String `json:$.user.id` DEFAULT 'anon', \
                      price Nullable(Float64) `json:$.price`, `tags` Array(String) `json:$.tags[:]` CODEC(ZSTD(1))";
        let columns = parse_schema(schema).unwrap();
        let mut user_id = with_path(col("user_id", "String"), "$.user.id");
        user_id.default = Some("'anon'".into());
        let mut tags = with_path(col("tags", "Array(String)"), "$.tags[:]");
        tags.codec = Some("ZSTD(1)".into());
        let expected = vec![
            with_path(col("timestamp", "DateTime"), "$.timestamp"),
            user_id,
            with_path(col("price", "Nullable(Float64)"), "$.price"),
            tags,
        ];
        assert_eq!(columns, expected);
        assert_eq!(parse_schema(&format_schema(&columns)).unwrap(), columns);
        assert_eq!(
            format_schema(&columns),
            "`timestamp` DateTime `json:$.timestamp`, `user_id` String `json:$.user.id` DEFAULT 'anon', \
             `price` Nullable(Float64) `json:$.price`, `tags` Array(String) `json:$.tags[:]` CODEC(ZSTD(1))"
        );
    }

    #[test]
    fn parses_column_variants() {
        let cases: Vec<(&str, Vec<Column>)> = vec![
            ("a String", vec![col("a", "String")]),
            ("a String,", vec![col("a", "String")]),
            (
                "\n  a String,\n  b Int32\n",
                vec![col("a", "String"), col("b", "Int32")],
            ),
            ("`a b` String", vec![col("a b", "String")]),
            ("`a\\\\b` String", vec![col("a\\b", "String")]),
            (
                "a Map(String, Array(Int32))",
                vec![col("a", "Map(String, Array(Int32))")],
            ),
            (
                "a DateTime64(3, 'Europe/Madrid'), b Int8",
                vec![col("a", "DateTime64(3, 'Europe/Madrid')"), col("b", "Int8")],
            ),
            (
                "a Tuple(x String, y Int32)",
                vec![col("a", "Tuple(x String, y Int32)")],
            ),
            (
                "a Enum8('x,y' = 1, 'z' = 2)",
                vec![col("a", "Enum8('x,y' = 1, 'z' = 2)")],
            ),
            (
                "a Array( Nullable(String) )",
                vec![col("a", "Array(Nullable(String))")],
            ),
            (
                "a String json:$.a",
                vec![with_path(col("a", "String"), "$.a")],
            ),
            (
                "a String json:$['x y'], b Int32",
                vec![with_path(col("a", "String"), "$['x y']"), col("b", "Int32")],
            ),
            (
                "a String `json:$['x, `y']`",
                vec![with_path(col("a", "String"), "$['x, `y']")],
            ),
            (
                "a String `json:$['it\\'s']`",
                vec![with_path(col("a", "String"), "$['it\\'s']")],
            ),
            (
                "jsonish JSON `json:$.j`",
                vec![with_path(col("jsonish", "JSON"), "$.j")],
            ),
            ("a INT", vec![col("a", "Int32")]),
        ];
        for (schema, expected) in cases {
            let parsed = parse_schema(schema).unwrap_or_else(|e| panic!("{schema}: {e}"));
            assert_eq!(parsed, expected, "{schema}");
            assert_eq!(
                parse_schema(&format_schema(&parsed)).unwrap(),
                parsed,
                "round trip of {schema}"
            );
        }
    }

    #[test]
    fn defaults_and_codecs() {
        let schema = "a DateTime DEFAULT now() - INTERVAL 1 DAY CODEC(Delta, ZSTD(1)), \
                      b String `json:$.b` default concat('x, y', 'DEFAULT') codec(LZ4), \
                      c UInt64 MATERIALIZED cityHash64(b), \
                      d String DEFAULT 'CODEC(' `json:$.d`, \
                      e Int32 CODEC(ZSTD(3)) DEFAULT -1";
        let columns = parse_schema(schema).unwrap();
        let summary: Vec<_> = columns
            .iter()
            .map(|c| {
                (
                    c.name.as_str(),
                    c.default.as_deref(),
                    c.default_kind,
                    c.codec.as_deref(),
                    c.jsonpath.as_ref().map(ToString::to_string),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (
                    "a",
                    Some("now() - INTERVAL 1 DAY"),
                    DefaultKind::Default,
                    Some("Delta, ZSTD(1)"),
                    None
                ),
                (
                    "b",
                    Some("concat('x, y', 'DEFAULT')"),
                    DefaultKind::Default,
                    Some("LZ4"),
                    Some("$.b".into())
                ),
                (
                    "c",
                    Some("cityHash64(b)"),
                    DefaultKind::Materialized,
                    None,
                    None
                ),
                (
                    "d",
                    Some("'CODEC('"),
                    DefaultKind::Default,
                    None,
                    Some("$.d".into())
                ),
                ("e", Some("-1"), DefaultKind::Default, Some("ZSTD(3)"), None),
            ]
        );
        assert_eq!(
            columns[0].ddl(),
            "`a` DateTime DEFAULT now() - INTERVAL 1 DAY CODEC(Delta, ZSTD(1))"
        );
        assert_eq!(columns[2].ddl(), "`c` UInt64 MATERIALIZED cityHash64(b)");
        assert!(!columns[2].is_insertable());
        assert!(columns[0].is_insertable());
        assert_eq!(parse_schema(&format_schema(&columns)).unwrap(), columns);
    }

    #[test]
    fn ddl_and_structure_quote_names() {
        let mut c = with_path(col("we`ird", "Nullable(String)"), "$.x");
        c.default = Some("'x'".into());
        assert_eq!(c.ddl(), "`we\\`ird` Nullable(String) DEFAULT 'x'");
        let columns = vec![col("a", "String"), col("b c", "Int32")];
        assert_eq!(structure(&columns), "`a` String, `b c` Int32");
        assert_eq!(structure(&[]), "");
    }

    #[test]
    fn rejects_invalid_schemas() {
        let cases: Vec<(&str, &str)> = vec![
            ("", "the schema is empty"),
            ("  \n ", "the schema is empty"),
            (",", "the schema is empty"),
            ("a String,, b Int32", "column 2: Column name is empty"),
            ("a", "column 1 ('a'): missing type"),
            ("a DEFAULT 1", "column 1 ('a'): missing type"),
            ("a Strin", "column 1 ('a'): unknown type 'Strin' in 'Strin'"),
            (
                "a String, b Nope",
                "column 2 ('b'): unknown type 'Nope' in 'Nope'",
            ),
            ("a String, a Int32", "duplicate column name 'a'"),
            (
                "a String `json:a`",
                "column 1 ('a'): invalid jsonpath 'a' at position 0: a jsonpath starts with '$'",
            ),
            (
                "a String `json:$.a",
                "invalid schema at character 18: unterminated `json: clause",
            ),
            (
                "a String DEFAULT 1 DEFAULT 2",
                "column 1 ('a'): more than one DEFAULT or MATERIALIZED expression",
            ),
            (
                "a String `json:$.a` `json:$.b`",
                "column 1 ('a'): more than one jsonpath",
            ),
            (
                "a String DEFAULT",
                "column 1 ('a'): missing expression after DEFAULT",
            ),
            (
                "a String DEFAULT 'x' MATERIALIZED 'y'",
                "column 1 ('a'): more than one DEFAULT or MATERIALIZED expression",
            ),
            ("a String CODEC", "column 1 ('a'): expected '(' after CODEC"),
            ("a String CODEC()", "column 1 ('a'): empty CODEC()"),
            (
                "a String CODEC(LZ4) CODEC(LZ4)",
                "column 1 ('a'): more than one CODEC",
            ),
            (
                "a Array(String",
                "invalid schema at character 14: unclosed parenthesis",
            ),
            (
                "a String)",
                "invalid schema at character 8: unbalanced closing parenthesis",
            ),
            (
                "a Enum8('x = 1)",
                "invalid schema at character 8: unterminated quoted literal",
            ),
            (
                "`a String",
                "invalid schema at character 0: unterminated quoted literal",
            ),
            (
                "`a\\`b` String",
                "column 1: Invalid column name 'a`b': it must not contain a backquote",
            ),
            (
                "a`b String",
                "invalid schema at character 1: unterminated quoted literal",
            ),
        ];
        for (schema, message) in cases {
            let err = parse_schema(schema).expect_err(schema);
            assert_eq!(err.to_string(), message, "{schema}");
        }
    }

    #[test]
    fn trailing_words_are_reported() {
        let err = parse_schema("a String TTL now()").unwrap_err();
        // `TTL` is not a clause, so it is read as part of the type.
        assert!(
            matches!(err, SchemaError::Type { position: 1, .. }),
            "{err}"
        );
        let err = parse_schema("a String `json:$.a` junk").unwrap_err();
        assert_eq!(err.to_string(), "column 1 ('a'): unexpected 'junk'");
    }

    #[test]
    fn serde_round_trip() {
        let mut c = with_path(col("a", "Array(String)"), "$.a[:]");
        c.codec = Some("ZSTD(1)".into());
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["ty"], "Array(String)");
        assert_eq!(json["jsonpath"], "$.a[:]");
        assert_eq!(serde_json::from_value::<Column>(json).unwrap(), c);
        let minimal: Column = serde_json::from_str(r#"{"name": "x", "ty": "Int8"}"#).unwrap();
        assert_eq!(minimal, col("x", "Int8"));
    }
}

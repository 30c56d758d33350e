//! Tinybird jsonpaths (`$.a.b`, `$['a b']`, `$.arr[0]`, `$.arr[:].field`): parsing, printing and
//! extraction from a parsed JSON row.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use serde_json::Value;

use crate::lex::read_quoted;
use crate::names::{is_plain_identifier, quote_string};

/// A parsed jsonpath: a sequence of steps from the root of a JSON row. No segments means `$`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct JsonPath {
    segments: Vec<Segment>,
}

/// One step of a [`JsonPath`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    /// An object member: `.key` or `['key']`.
    Key(String),
    /// An array element: `[3]`.
    Index(usize),
    /// Every element of an array: `[:]` (`[*]` is accepted too).
    All,
}

/// A jsonpath that cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid jsonpath '{path}' at position {position}: {reason}")]
pub struct JsonPathError {
    /// The whole path as given.
    pub path: String,
    /// Byte offset where parsing failed.
    pub position: usize,
    /// What was expected or found.
    pub reason: String,
}

impl JsonPath {
    /// A path made of the given segments.
    pub fn new(segments: Vec<Segment>) -> JsonPath {
        JsonPath { segments }
    }

    /// The steps of the path, from the root.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// True for `$`, the whole row.
    pub fn is_root(&self) -> bool {
        self.segments.is_empty()
    }

    /// The top-level member this path reads: its first segment when that is a key.
    pub fn root_key(&self) -> Option<&str> {
        match self.segments.first() {
            Some(Segment::Key(key)) => Some(key),
            _ => None,
        }
    }

    /// The path `$.k1.k2…` through nested objects.
    pub fn from_keys(keys: &[&str]) -> JsonPath {
        JsonPath {
            segments: keys
                .iter()
                .map(|key| Segment::Key((*key).to_owned()))
                .collect(),
        }
    }

    /// The value at this path, or `None` when a key is missing, an index is out of range or a step
    /// meets the wrong kind of value. JSON null is `Some(Null)`.
    ///
    /// After `[:]` the rest of the path is applied to every element and the results are collected
    /// into a new array, skipping elements where it finds nothing; only then is the result owned.
    pub fn extract<'a>(&self, value: &'a Value) -> Option<Cow<'a, Value>> {
        walk(value, &self.segments)
    }
}

fn walk<'a>(value: &'a Value, segments: &[Segment]) -> Option<Cow<'a, Value>> {
    match segments.split_first() {
        None => Some(Cow::Borrowed(value)),
        Some((Segment::Key(key), rest)) => walk(value.as_object()?.get(key)?, rest),
        Some((Segment::Index(index), rest)) => walk(value.as_array()?.get(*index)?, rest),
        Some((Segment::All, [])) => value.is_array().then_some(Cow::Borrowed(value)),
        Some((Segment::All, rest)) => {
            let items = value
                .as_array()?
                .iter()
                .filter_map(|item| walk(item, rest))
                .map(Cow::into_owned)
                .collect();
            Some(Cow::Owned(Value::Array(items)))
        }
    }
}

/// Characters that end an unbracketed key, or could not be read back from one.
fn ends_dotted_key(c: char) -> bool {
    matches!(c, '.' | '[' | ']' | '\'' | '"' | '`') || c.is_whitespace()
}

impl FromStr for JsonPath {
    type Err = JsonPathError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let path = input.trim();
        let err = |position: usize, reason: &str| JsonPathError {
            path: path.to_owned(),
            position,
            reason: reason.to_owned(),
        };
        if !path.starts_with('$') {
            return Err(err(0, "a jsonpath starts with '$'"));
        }
        let bytes = path.as_bytes();
        let mut segments = Vec::new();
        let mut pos = 1;
        while let Some(&byte) = bytes.get(pos) {
            match byte {
                b'.' => {
                    pos += 1;
                    let rest = &path[pos..];
                    let len = rest.find(ends_dotted_key).unwrap_or(rest.len());
                    if len == 0 {
                        return Err(err(pos, "expected a key after '.'"));
                    }
                    segments.push(Segment::Key(rest[..len].to_owned()));
                    pos += len;
                }
                b'[' => {
                    pos += 1;
                    pos = skip_ws(path, pos);
                    let segment = match bytes.get(pos) {
                        Some(b'\'' | b'"') => {
                            let (key, end) =
                                read_quoted(path, pos).map_err(|reason| err(pos, reason))?;
                            pos = end;
                            Segment::Key(key)
                        }
                        Some(b':' | b'*') => {
                            pos += 1;
                            Segment::All
                        }
                        Some(b) if b.is_ascii_digit() => {
                            let len = path[pos..].bytes().take_while(u8::is_ascii_digit).count();
                            let index = path[pos..pos + len]
                                .parse()
                                .map_err(|_| err(pos, "index out of range"))?;
                            pos += len;
                            Segment::Index(index)
                        }
                        _ => {
                            return Err(err(
                                pos,
                                "expected a quoted key, an index, ':' or '*' after '['",
                            ));
                        }
                    };
                    pos = skip_ws(path, pos);
                    if bytes.get(pos) != Some(&b']') {
                        return Err(err(pos, "expected ']'"));
                    }
                    pos += 1;
                    segments.push(segment);
                }
                _ => return Err(err(pos, "expected '.' or '['")),
            }
        }
        Ok(JsonPath { segments })
    }
}

fn skip_ws(s: &str, pos: usize) -> usize {
    let rest = &s[pos..];
    pos + rest.len() - rest.trim_start().len()
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("$")?;
        for segment in &self.segments {
            match segment {
                Segment::Key(key) if is_plain_identifier(key) => write!(f, ".{key}")?,
                Segment::Key(key) => write!(f, "[{}]", quote_string(key))?,
                Segment::Index(index) => write!(f, "[{index}]")?,
                Segment::All => f.write_str("[:]")?,
            }
        }
        Ok(())
    }
}

impl serde::Serialize for JsonPath {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for JsonPath {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(k: &str) -> Segment {
        Segment::Key(k.to_owned())
    }

    #[test]
    fn parses_and_prints() {
        let cases: Vec<(&str, Vec<Segment>, &str)> = vec![
            ("$", vec![], "$"),
            ("$.a", vec![key("a")], "$.a"),
            ("$.a.b", vec![key("a"), key("b")], "$.a.b"),
            ("$['a b']", vec![key("a b")], "$['a b']"),
            ("$[\"x\"]", vec![key("x")], "$.x"),
            ("$.arr[0]", vec![key("arr"), Segment::Index(0)], "$.arr[0]"),
            ("$.arr[:]", vec![key("arr"), Segment::All], "$.arr[:]"),
            ("$.arr[*]", vec![key("arr"), Segment::All], "$.arr[:]"),
            (
                "$.arr[:].field",
                vec![key("arr"), Segment::All, key("field")],
                "$.arr[:].field",
            ),
            (
                "$.m[0][12]",
                vec![key("m"), Segment::Index(0), Segment::Index(12)],
                "$.m[0][12]",
            ),
            ("$[0]", vec![Segment::Index(0)], "$[0]"),
            ("$.user-id", vec![key("user-id")], "$['user-id']"),
            ("$.@timestamp", vec![key("@timestamp")], "$['@timestamp']"),
            ("$.1st", vec![key("1st")], "$['1st']"),
            ("$['it\\'s']", vec![key("it's")], "$['it\\'s']"),
            ("$['a.b'].c", vec![key("a.b"), key("c")], "$['a.b'].c"),
            ("$[ 'a' ]", vec![key("a")], "$.a"),
            ("$.a[ : ]", vec![key("a"), Segment::All], "$.a[:]"),
            ("  $.a  ", vec![key("a")], "$.a"),
            ("$.naïve", vec![key("naïve")], "$['naïve']"),
        ];
        for (input, segments, canonical) in cases {
            let path: JsonPath = input.parse().unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(path.segments(), segments.as_slice(), "{input}");
            assert_eq!(path.to_string(), canonical, "{input}");
            assert_eq!(
                canonical.parse::<JsonPath>().unwrap(),
                path,
                "round trip of {canonical}"
            );
        }
    }

    #[test]
    fn rejects_invalid_paths() {
        let cases = [
            "", "a.b", ".a", "$.", "$..a", "$a", "$[", "$[]", "$['a'", "$['a]", "$[x]", "$[-1]",
            "$[0", "$.a b", "$.a]",
        ];
        for input in cases {
            assert!(
                input.parse::<JsonPath>().is_err(),
                "{input} should be refused"
            );
        }
        let err = "$.a[x]".parse::<JsonPath>().unwrap_err();
        assert_eq!(err.position, 4);
        assert!(
            err.to_string()
                .starts_with("invalid jsonpath '$.a[x]' at position 4"),
            "{err}"
        );
    }

    #[test]
    fn extracts_values() {
        let row = json!({
            "a": {"b": 1, "n": null},
            "a b": "spaced",
            "arr": [{"f": 1}, {"g": 2}, {"f": 3}],
            "tags": ["x", "y"],
            "nested": [[1, 2], [3]],
            "s": "str"
        });
        let cases: Vec<(&str, Option<Value>)> = vec![
            ("$", Some(row.clone())),
            ("$.a.b", Some(json!(1))),
            ("$.a.n", Some(Value::Null)),
            ("$.a.missing", None),
            ("$.missing.b", None),
            ("$['a b']", Some(json!("spaced"))),
            ("$.tags[1]", Some(json!("y"))),
            ("$.tags[2]", None),
            ("$.tags[:]", Some(json!(["x", "y"]))),
            ("$.arr[:].f", Some(json!([1, 3]))),
            ("$.arr[:].h", Some(json!([]))),
            ("$.arr[1].g", Some(json!(2))),
            ("$.nested[:][0]", Some(json!([1, 3]))),
            ("$.nested[:][:]", Some(json!([[1, 2], [3]]))),
            ("$.s[:]", None),
            ("$.s[0]", None),
            ("$.s.x", None),
            ("$.a[:]", None),
        ];
        for (path, expected) in cases {
            let parsed: JsonPath = path.parse().unwrap();
            assert_eq!(
                parsed.extract(&row).map(Cow::into_owned),
                expected,
                "{path}"
            );
        }
    }

    #[test]
    fn extract_borrows_unless_it_must_collect() {
        let row = json!({"a": {"b": [1, 2]}, "c": [{"d": 1}]});
        let path: JsonPath = "$.a.b[:]".parse().unwrap();
        assert!(matches!(path.extract(&row), Some(Cow::Borrowed(_))));
        let path: JsonPath = "$.c[:].d".parse().unwrap();
        assert!(matches!(path.extract(&row), Some(Cow::Owned(_))));
    }

    #[test]
    fn helpers() {
        let path = JsonPath::from_keys(&["user", "first name"]);
        assert_eq!(path.to_string(), "$.user['first name']");
        assert_eq!(path.root_key(), Some("user"));
        assert!(!path.is_root());
        assert_eq!(JsonPath::from_keys(&[]).to_string(), "$");
        assert!(JsonPath::from_keys(&[]).is_root());
        assert_eq!("$".parse::<JsonPath>().unwrap().root_key(), None);
        assert_eq!("$[0].a".parse::<JsonPath>().unwrap().root_key(), None);
        assert_eq!(
            JsonPath::new(vec![key("a"), Segment::All]).to_string(),
            "$.a[:]"
        );
    }

    #[test]
    fn serde_uses_the_path_string() {
        let path: JsonPath = "$.a['b c'][:]".parse().unwrap();
        let json = serde_json::to_string(&path).unwrap();
        assert_eq!(json, "\"$.a['b c'][:]\"");
        assert_eq!(serde_json::from_str::<JsonPath>(&json).unwrap(), path);
    }
}

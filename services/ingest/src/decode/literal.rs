//! ClickHouse text literals for composite values in text formats: `['a','b']`, `[1,2]`, `{'k':1}`,
//! `('a',1)`, nested freely. Strings may be quoted with `'` or `"` (so JSON arrays parse too), with
//! backslash escapes or a doubled quote; unquoted words (numbers, `NULL`) are kept as text for the
//! element type to read.

use std::borrow::Cow;

use super::value::Reason;

/// One parsed literal.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Literal<'a> {
    /// `NULL` (unquoted, any case).
    Null,
    /// A quoted string, unescaped.
    Text(Cow<'a, str>),
    /// An unquoted word such as a number, trimmed.
    Bare(&'a str),
    /// `[...]`
    Array(Vec<Literal<'a>>),
    /// `(...)`
    Tuple(Vec<Literal<'a>>),
    /// `{k: v, ...}`
    Map(Vec<(Literal<'a>, Literal<'a>)>),
}

/// Parses one literal that must span the whole text (surrounding whitespace aside).
pub(super) fn parse(text: &str) -> Result<Literal<'_>, Reason> {
    let mut parser = Parser { text, pos: 0 };
    let value = parser.value(b"")?;
    parser.skip_ws();
    if parser.pos != text.len() {
        return Err(format!("unexpected text at position {}", parser.pos).into());
    }
    Ok(value)
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_whitespace()) {
            self.pos += 1;
        }
    }

    /// A value; a bare word ends at whitespace, `,`, a closing bracket or one of `stops`.
    fn value(&mut self, stops: &[u8]) -> Result<Literal<'a>, Reason> {
        self.skip_ws();
        match self.peek() {
            None => Err("unexpected end of value".into()),
            Some(b'[') => Ok(Literal::Array(self.list(b']')?)),
            Some(b'(') => Ok(Literal::Tuple(self.list(b')')?)),
            Some(b'{') => self.map(),
            Some(quote @ (b'\'' | b'"')) => Ok(Literal::Text(self.quoted(quote)?)),
            Some(_) => {
                let start = self.pos;
                while let Some(b) = self.peek() {
                    if matches!(b, b',' | b']' | b')' | b'}')
                        || b.is_ascii_whitespace()
                        || stops.contains(&b)
                    {
                        break;
                    }
                    self.pos += 1;
                }
                let word = &self.text[start..self.pos];
                if word.is_empty() {
                    return Err(format!("missing value at position {start}").into());
                }
                if word.eq_ignore_ascii_case("null") {
                    Ok(Literal::Null)
                } else {
                    Ok(Literal::Bare(word))
                }
            }
        }
    }

    fn expect(&mut self, byte: u8) -> Result<(), Reason> {
        self.skip_ws();
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(format!("expected '{}' at position {}", byte as char, self.pos).into())
        }
    }

    /// Items separated by commas up to `close`; the opening bracket is at `pos`.
    fn list(&mut self, close: u8) -> Result<Vec<Literal<'a>>, Reason> {
        self.pos += 1;
        let mut items = Vec::new();
        self.skip_ws();
        if self.peek() == Some(close) {
            self.pos += 1;
            return Ok(items);
        }
        loop {
            items.push(self.value(b"")?);
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b) if b == close => {
                    self.pos += 1;
                    return Ok(items);
                }
                _ => {
                    return Err(format!(
                        "expected ',' or '{}' at position {}",
                        close as char, self.pos
                    )
                    .into());
                }
            }
        }
    }

    fn map(&mut self) -> Result<Literal<'a>, Reason> {
        self.pos += 1;
        let mut pairs = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(Literal::Map(pairs));
        }
        loop {
            let key = self.value(b":")?;
            self.expect(b':')?;
            let value = self.value(b"")?;
            pairs.push((key, value));
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Literal::Map(pairs));
                }
                _ => return Err(format!("expected ',' or '}}' at position {}", self.pos).into()),
            }
        }
    }

    /// A string quoted with `quote`, at `pos`.
    fn quoted(&mut self, quote: u8) -> Result<Cow<'a, str>, Reason> {
        let bytes = self.text.as_bytes();
        let start = self.pos + 1;
        // Fast path: no escapes.
        let mut i = start;
        while i < bytes.len() && bytes[i] != quote && bytes[i] != b'\\' {
            i += 1;
        }
        if i < bytes.len() && bytes[i] == quote && bytes.get(i + 1) != Some(&quote) {
            self.pos = i + 1;
            return Ok(Cow::Borrowed(&self.text[start..i]));
        }
        let mut out = String::with_capacity(i - start + 8);
        out.push_str(&self.text[start..i]);
        let mut chars = self.text[i..].char_indices();
        while let Some((offset, c)) = chars.next() {
            match c {
                '\\' => {
                    let (_, escaped) = chars.next().ok_or("unterminated string")?;
                    out.push(match escaped {
                        'n' => '\n',
                        't' => '\t',
                        'r' => '\r',
                        '0' => '\0',
                        'b' => '\u{8}',
                        'f' => '\u{c}',
                        other => other,
                    });
                }
                c if c as u32 == u32::from(quote) => {
                    let after = i + offset + 1;
                    if bytes.get(after) == Some(&quote) {
                        out.push(c);
                        chars.next();
                    } else {
                        self.pos = after;
                        return Ok(Cow::Owned(out));
                    }
                }
                c => out.push(c),
            }
        }
        Err("unterminated string".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Literal<'_> {
        Literal::Text(Cow::Borrowed(s))
    }

    #[test]
    fn parses_nested_literals() {
        assert_eq!(
            parse("['a', \"b\", 3, NULL]").unwrap(),
            Literal::Array(vec![
                text("a"),
                text("b"),
                Literal::Bare("3"),
                Literal::Null
            ])
        );
        assert_eq!(
            parse(" [[1], []] ").unwrap(),
            Literal::Array(vec![
                Literal::Array(vec![Literal::Bare("1")]),
                Literal::Array(vec![])
            ])
        );
        assert_eq!(
            parse("{'a': (1, 'x'), 'b':2}").unwrap(),
            Literal::Map(vec![
                (
                    text("a"),
                    Literal::Tuple(vec![Literal::Bare("1"), text("x")])
                ),
                (text("b"), Literal::Bare("2")),
            ])
        );
    }

    #[test]
    fn unescapes_strings() {
        assert_eq!(
            parse(r"['it\'s', 'a''b', 'tab\there', '\\']").unwrap(),
            Literal::Array(vec![
                Literal::Text("it's".into()),
                Literal::Text("a'b".into()),
                Literal::Text("tab\there".into()),
                Literal::Text("\\".into()),
            ])
        );
        assert_eq!(
            parse(r#"["q\"uote", "é"]"#).unwrap(),
            Literal::Array(vec![Literal::Text("q\"uote".into()), text("é")])
        );
    }

    #[test]
    fn refuses_malformed_text() {
        for bad in ["[1, 2", "['a]", "[1 2]", "[1,]", "{'a' 1}", "[1] x", ""] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}

//! Lexing shared by the type, jsonpath and schema parsers: ClickHouse-style quoted literals.

/// Reads a literal opened by the quote character at byte `start` (`'`, `"` or `` ` ``) and returns the
/// unescaped text and the byte index just past the closing quote.
///
/// Accepts what ClickHouse accepts in literals: backslash escapes (`\n`, `\t`, `\xNN`, `\\`, an escaped
/// quote, any other escaped character standing for itself) and a doubled quote standing for one.
pub(crate) fn read_quoted(src: &str, start: usize) -> Result<(String, usize), &'static str> {
    let bytes = src.as_bytes();
    let Some(&quote) = bytes.get(start) else {
        return Err("expected a quoted literal");
    };
    let mut out = Vec::new();
    let mut i = start + 1;
    loop {
        match bytes.get(i) {
            None => return Err("unterminated quoted literal"),
            Some(&b) if b == quote => {
                if bytes.get(i + 1) == Some(&quote) {
                    out.push(quote);
                    i += 2;
                } else {
                    i += 1;
                    break;
                }
            }
            Some(b'\\') => {
                let Some(&escaped) = bytes.get(i + 1) else {
                    return Err("unterminated quoted literal");
                };
                i += 2;
                match escaped {
                    b'n' => out.push(b'\n'),
                    b't' => out.push(b'\t'),
                    b'r' => out.push(b'\r'),
                    b'0' => out.push(0),
                    b'a' => out.push(0x07),
                    b'b' => out.push(0x08),
                    b'f' => out.push(0x0C),
                    b'v' => out.push(0x0B),
                    b'x' | b'X' => {
                        let hex = bytes
                            .get(i..i + 2)
                            .and_then(|h| std::str::from_utf8(h).ok())
                            .and_then(|h| u8::from_str_radix(h, 16).ok())
                            .ok_or("\\x must be followed by two hexadecimal digits")?;
                        out.push(hex);
                        i += 2;
                    }
                    // Includes the quotes and the backslash itself; a multi-byte character keeps its
                    // remaining bytes, which the next iterations copy.
                    other => out.push(other),
                }
            }
            Some(&b) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out)
        .map(|s| (s, i))
        .map_err(|_| "escaped literal is not valid UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The unescaped text and end index, or the error.
    type Expected = Result<(&'static str, usize), &'static str>;

    #[test]
    fn quoted_literals() {
        let cases: &[(&str, Expected)] = &[
            ("'abc' rest", Ok(("abc", 5))),
            ("''", Ok(("", 2))),
            ("'it''s'", Ok(("it's", 7))),
            ("'it\\'s'", Ok(("it's", 7))),
            ("'a\\\\b'", Ok(("a\\b", 6))),
            ("'\\n\\t\\x41'", Ok(("\n\tA", 10))),
            ("\"dq\\\"\"", Ok(("dq\"", 6))),
            ("`a``b`", Ok(("a`b", 6))),
            ("'é\\é'", Ok(("éé", 7))),
            ("'abc", Err("unterminated quoted literal")),
            ("'abc\\", Err("unterminated quoted literal")),
            (
                "'\\xZZ'",
                Err("\\x must be followed by two hexadecimal digits"),
            ),
            ("'\\xFF'", Err("escaped literal is not valid UTF-8")),
            ("", Err("expected a quoted literal")),
        ];
        for (input, expected) in cases {
            let got = read_quoted(input, 0);
            let got = got
                .as_ref()
                .map(|(s, end)| (s.as_str(), *end))
                .map_err(|e| *e);
            assert_eq!(got, *expected, "{input}");
        }
    }
}

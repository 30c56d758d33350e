//! A tokenizer that splits text exactly where ClickHouse's own lexer (`src/Parsers/Lexer.cpp`) does.
//!
//! Agreement with ClickHouse matters more than anything else here: if we believed some text was a
//! string or a comment while ClickHouse read it as code, a user could hide a table reference from the
//! scanner. So strings, quoted identifiers, comments, heredocs and numbers follow ClickHouse's rules
//! byte for byte, and every construct whose reading could differ between ClickHouse versions (nested
//! block comments, heredoc tags with odd characters, backslashes in quoted identifiers, non-ASCII
//! text outside literals) is refused instead of guessed.

use super::SqlError;

/// What a significant token is. Whitespace and comments are dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// A bare word: keyword or unquoted identifier (ClickHouse's `BareWord`, which includes `1abc`).
    Word,
    /// A `` `backquoted` `` or `"double-quoted"` identifier.
    QuotedIdent,
    /// A string literal: `'...'`, `x'..'`, `b'..'` or a `$tag$...$tag$` heredoc.
    Str,
    Number,
    LParen,
    RParen,
    LBracket,
    RBracket,
    LBrace,
    RBrace,
    Comma,
    Semicolon,
    Dot,
    Arrow,
    /// Any other operator (`=`, `::`, `||`, `<=`, ...); the text tells which.
    Op,
}

/// One significant token: its kind and its byte span in the query text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Token {
    pub kind: Kind,
    pub start: usize,
    pub end: usize,
}

fn is_word_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

fn is_whitespace(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0B | 0x0C)
}

/// ClickHouse's `isNumberSeparator`: an `_` between two digits of a number.
fn is_number_separator(b: &[u8], pos: usize, start_of_block: bool, hex: bool) -> bool {
    if b[pos] != b'_' || start_of_block || pos + 1 >= b.len() {
        return false;
    }
    let next = b[pos + 1];
    if hex {
        next.is_ascii_hexdigit()
    } else {
        next.is_ascii_digit()
    }
}

fn syntax(message: String) -> SqlError {
    SqlError::Syntax(message)
}

/// Splits `sql` into significant tokens, or fails on anything ClickHouse would not lex the same way.
pub(super) fn tokenize(sql: &str) -> Result<Vec<Token>, SqlError> {
    let b = sql.as_bytes();
    let end = b.len();
    let mut tokens: Vec<Token> = Vec::new();
    let mut pos = 0;
    while pos < end {
        let start = pos;
        let c = b[pos];
        let prev = tokens.last().map(|t| t.kind);
        let kind = match c {
            _ if is_whitespace(c) => {
                while pos < end && is_whitespace(b[pos]) {
                    pos += 1;
                }
                continue;
            }
            b'0'..=b'9' => {
                pos = lex_number(b, pos, prev)?;
                if pos < end && is_word_char(b[pos]) {
                    // `1abc` is a bare word for ClickHouse; `1.5abc` is an error.
                    while pos < end && is_word_char(b[pos]) {
                        pos += 1;
                    }
                    if b[start..pos]
                        .iter()
                        .any(|&ch| !is_word_char(ch) && ch != b'$')
                    {
                        return Err(syntax(format!(
                            "Wrong number '{}' at position {}",
                            &sql[start..pos],
                            start + 1
                        )));
                    }
                    Kind::Word
                } else {
                    Kind::Number
                }
            }
            b'\'' => {
                pos = quoted(b, pos, b'\'').ok_or_else(|| {
                    syntax(format!(
                        "Unterminated string literal starting at position {}",
                        start + 1
                    ))
                })?;
                Kind::Str
            }
            b'"' | b'`' => {
                pos = quoted(b, pos, c).ok_or_else(|| {
                    syntax(format!(
                        "Unterminated quoted identifier starting at position {}",
                        start + 1
                    ))
                })?;
                if b[start..pos].contains(&b'\\') {
                    // ClickHouse unescapes these; refusing them keeps our idea of a name identical to its.
                    return Err(syntax(format!(
                        "Backslash escapes in quoted identifiers are not supported (position {})",
                        start + 1
                    )));
                }
                Kind::QuotedIdent
            }
            b'(' => {
                pos += 1;
                Kind::LParen
            }
            b')' => {
                pos += 1;
                Kind::RParen
            }
            b'[' => {
                pos += 1;
                Kind::LBracket
            }
            b']' => {
                pos += 1;
                Kind::RBracket
            }
            b'{' => {
                pos += 1;
                Kind::LBrace
            }
            b'}' => {
                pos += 1;
                Kind::RBrace
            }
            b',' => {
                pos += 1;
                Kind::Comma
            }
            b';' => {
                pos += 1;
                Kind::Semicolon
            }
            b'.' => {
                let next_is_digit = pos + 1 < end && b[pos + 1].is_ascii_digit();
                let after_operand = matches!(
                    prev,
                    Some(
                        Kind::RParen
                            | Kind::RBracket
                            | Kind::Word
                            | Kind::QuotedIdent
                            | Kind::Number
                    )
                );
                if pos > 0 && (!next_is_digit || after_operand) {
                    pos += 1;
                    Kind::Dot
                } else {
                    pos = lex_fraction(b, pos);
                    Kind::Number
                }
            }
            b'-' => {
                pos += 1;
                if pos < end && b[pos] == b'>' {
                    pos += 1;
                    Kind::Arrow
                } else if pos < end && b[pos] == b'-' {
                    pos = line_end(b, pos);
                    continue;
                } else {
                    Kind::Op
                }
            }
            b'/' => {
                pos += 1;
                if pos < end && b[pos] == b'/' {
                    pos = line_end(b, pos);
                    continue;
                } else if pos < end && b[pos] == b'*' {
                    pos = block_comment_end(b, pos + 1, start)?;
                    continue;
                } else {
                    Kind::Op
                }
            }
            b'#' => {
                // ClickHouse only treats `# ` and `#!` as comments; a lone `#` is an error there.
                if pos + 1 < end && (b[pos + 1] == b' ' || b[pos + 1] == b'!') {
                    pos = line_end(b, pos);
                    continue;
                }
                return Err(syntax(format!(
                    "Unexpected character '#' at position {}",
                    start + 1
                )));
            }
            b'+' | b'*' | b'%' | b'?' => {
                pos += 1;
                Kind::Op
            }
            b'=' => {
                pos += 1;
                if pos < end && b[pos] == b'=' {
                    pos += 1;
                }
                Kind::Op
            }
            b'!' => {
                if pos + 1 < end && b[pos + 1] == b'=' {
                    pos += 2;
                    Kind::Op
                } else {
                    return Err(syntax(format!(
                        "Unexpected character '!' at position {}",
                        start + 1
                    )));
                }
            }
            b'<' => {
                pos += 1;
                if pos < end && (b[pos] == b'=' || b[pos] == b'>') {
                    pos += 1;
                }
                Kind::Op
            }
            b'>' | b':' | b'|' | b'@' => {
                // `>=`, `::`, `||`, `@@`
                pos += 1;
                let second = match c {
                    b'>' => b'=',
                    other => other,
                };
                if pos < end && b[pos] == second {
                    pos += 1;
                }
                Kind::Op
            }
            b'$' => {
                pos = heredoc_end(b, pos).ok_or_else(|| {
                    syntax(format!(
                        "Unexpected '$' at position {}: only $$...$$ and $tag$...$tag$ strings are supported",
                        start + 1
                    ))
                })?;
                Kind::Str
            }
            b'x' | b'X' | b'b' | b'B' if pos + 2 < end && b[pos + 1] == b'\'' => {
                pos = hex_or_bin_string_end(b, pos).ok_or_else(|| {
                    syntax(format!(
                        "Unterminated string literal starting at position {}",
                        start + 1
                    ))
                })?;
                Kind::Str
            }
            _ if is_word_char(c) => {
                while pos < end && (is_word_char(b[pos]) || b[pos] == b'$') {
                    pos += 1;
                }
                Kind::Word
            }
            _ => {
                let ch = sql[pos..].chars().next().unwrap_or('?');
                return Err(syntax(format!(
                    "Unexpected character '{}' at position {}",
                    ch.escape_default(),
                    start + 1
                )));
            }
        };
        tokens.push(Token {
            kind,
            start,
            end: pos,
        });
    }
    Ok(tokens)
}

/// The number starting with a digit at `pos` (ClickHouse's digit case, without the trailing-word part).
fn lex_number(b: &[u8], mut pos: usize, prev: Option<Kind>) -> Result<usize, SqlError> {
    let end = b.len();
    if prev == Some(Kind::Dot) {
        // After a dot only a plain integer, so that `x.1.1` is two tuple accesses.
        pos += 1;
        while pos < end && (b[pos].is_ascii_digit() || is_number_separator(b, pos, false, false)) {
            pos += 1;
        }
        return Ok(pos);
    }
    let mut start_of_block = false;
    let mut hex = false;
    if pos + 2 < end && b[pos] == b'0' && matches!(b[pos + 1], b'x' | b'X' | b'b' | b'B') {
        let valid = if matches!(b[pos + 1], b'x' | b'X') {
            hex = b[pos + 2].is_ascii_hexdigit();
            hex
        } else {
            b[pos + 2] == b'0' || b[pos + 2] == b'1'
        };
        if valid {
            pos += 2;
            start_of_block = true;
        } else {
            pos += 1;
        }
    } else {
        pos += 1;
    }
    let digit = |ch: u8| {
        if hex {
            ch.is_ascii_hexdigit()
        } else {
            ch.is_ascii_digit()
        }
    };
    while pos < end && (digit(b[pos]) || is_number_separator(b, pos, start_of_block, hex)) {
        pos += 1;
        start_of_block = false;
    }
    if pos < end && b[pos] == b'.' {
        start_of_block = true;
        pos += 1;
        while pos < end && (digit(b[pos]) || is_number_separator(b, pos, start_of_block, hex)) {
            pos += 1;
            start_of_block = false;
        }
    }
    let exponent = |ch: u8| {
        if hex {
            ch == b'p' || ch == b'P'
        } else {
            ch == b'e' || ch == b'E'
        }
    };
    if pos + 1 < end && exponent(b[pos]) {
        pos = lex_exponent(b, pos);
    }
    Ok(pos)
}

/// An exponent starting at the `e`/`p` at `pos`; the sign is taken even without digits, as ClickHouse does.
fn lex_exponent(b: &[u8], mut pos: usize) -> usize {
    let end = b.len();
    let mut start_of_block = true;
    pos += 1;
    if pos + 1 < end && (b[pos] == b'-' || b[pos] == b'+') {
        pos += 1;
    }
    while pos < end
        && (b[pos].is_ascii_digit() || is_number_separator(b, pos, start_of_block, false))
    {
        pos += 1;
        start_of_block = false;
    }
    pos
}

/// A number with no integer part, starting at the `.` at `pos` (`.5`, `.5e3`).
fn lex_fraction(b: &[u8], mut pos: usize) -> usize {
    let end = b.len();
    let mut start_of_block = true;
    pos += 1;
    while pos < end
        && (b[pos].is_ascii_digit() || is_number_separator(b, pos, start_of_block, false))
    {
        pos += 1;
        start_of_block = false;
    }
    if pos + 1 < end && (b[pos] == b'e' || b[pos] == b'E') {
        pos = lex_exponent(b, pos);
    }
    pos
}

/// End of the quoted literal opening at `pos` (ClickHouse's `quotedString`): backslash escapes the next
/// byte, a doubled quote is a quote. None when unterminated.
fn quoted(b: &[u8], mut pos: usize, quote: u8) -> Option<usize> {
    pos += 1;
    while pos < b.len() {
        if b[pos] == quote {
            pos += 1;
            if pos < b.len() && b[pos] == quote {
                pos += 1;
                continue;
            }
            return Some(pos);
        }
        if b[pos] == b'\\' {
            pos += 1;
            if pos >= b.len() {
                return None;
            }
        }
        pos += 1;
    }
    None
}

/// End of `x'1F'` / `b'0101'` starting at `pos`: only hex (or binary) digits up to the closing quote.
fn hex_or_bin_string_end(b: &[u8], pos: usize) -> Option<usize> {
    let hex = b[pos] == b'x' || b[pos] == b'X';
    let mut pos = pos + 2;
    while pos < b.len()
        && (if hex {
            b[pos].is_ascii_hexdigit()
        } else {
            b[pos] == b'0' || b[pos] == b'1'
        })
    {
        pos += 1;
    }
    (pos < b.len() && b[pos] == b'\'').then_some(pos + 1)
}

/// End of the heredoc `$tag$...$tag$` at `pos`. ClickHouse takes everything up to the next `$` as the
/// tag; we accept only word-character tags, so that both readings always agree.
fn heredoc_end(b: &[u8], pos: usize) -> Option<usize> {
    let tag_close = pos + 1 + b[pos + 1..].iter().position(|&ch| ch == b'$')?;
    let tag = &b[pos..=tag_close];
    if !tag[1..tag.len() - 1].iter().all(|&ch| is_word_char(ch)) {
        return None;
    }
    let body = &b[tag_close + 1..];
    let found = body.windows(tag.len()).position(|w| w == tag)?;
    Some(tag_close + 1 + found + tag.len())
}

/// Position of the `\n` ending a line comment (ClickHouse does not end them at `\r`).
fn line_end(b: &[u8], pos: usize) -> usize {
    b[pos..]
        .iter()
        .position(|&ch| ch == b'\n')
        .map_or(b.len(), |i| pos + i)
}

/// End of a `/* */` comment whose body starts at `pos`. ClickHouse nests these comments (older
/// versions may not), so a `/*` inside one is refused rather than guessed.
fn block_comment_end(b: &[u8], mut pos: usize, start: usize) -> Result<usize, SqlError> {
    while pos + 1 < b.len() {
        if b[pos] == b'/' && b[pos + 1] == b'*' {
            return Err(syntax(format!(
                "Nested comments are not supported (comment starting at position {})",
                start + 1
            )));
        }
        if b[pos] == b'*' && b[pos + 1] == b'/' {
            return Ok(pos + 2);
        }
        pos += 1;
    }
    Err(syntax(format!(
        "Unterminated comment starting at position {}",
        start + 1
    )))
}

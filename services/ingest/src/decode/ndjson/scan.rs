//! The fast path's JSON reader: one validating pass over a line that records where the values the
//! columns read are ([`Raw`] spans into the line), without building any value.
//!
//! It must never accept a line serde_json refuses, and must see the same values serde_json would:
//! - syntax, string escapes (paired surrogates only), control characters in strings, invalid UTF-8
//!   and numbers follow serde_json's grammar; numbers are converted with serde_json's own formula;
//! - a key that appears twice keeps its last value (`serde_json::Map::insert`), and a repeated
//!   object replaces the earlier one as a whole, so values read below a key are cleared when the key
//!   comes again.
//!
//! Whatever it does not handle it refuses with [`Bail`] (escaped keys that a column might read,
//! nesting past [`MAX_DEPTH`], numbers with more than 19 significant digits or an exponent past ±22,
//! and every invalid line); the caller then decodes that line with serde_json, which decides.

use super::plan::{Plan, ROOT};

/// Containers nested deeper than this are left to serde_json (whose own limit is 128).
pub(super) const MAX_DEPTH: usize = 100;

/// The fast path cannot decide this line; serde_json will.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Bail;

/// A JSON number as serde_json holds it (without `arbitrary_precision`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Num {
    U64(u64),
    I64(i64),
    F64(f64),
}

impl Num {
    /// The value as serde_json's `Number::as_f64` gives it.
    #[inline]
    pub(super) fn as_f64(self) -> f64 {
        match self {
            Num::U64(v) => v as f64,
            Num::I64(v) => v as f64,
            Num::F64(v) => v,
        }
    }

    /// The `serde_json::Number` serde_json would have built.
    pub(super) fn to_number(self) -> serde_json::Number {
        match self {
            Num::U64(v) => v.into(),
            Num::I64(v) => v.into(),
            // Finite by construction: infinite results bail.
            Num::F64(v) => serde_json::Number::from_f64(v).unwrap_or_else(|| 0u64.into()),
        }
    }
}

/// Where a value is in the line, and its kind. Spans are byte offsets into the line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Raw {
    /// The key is not in the row.
    Missing,
    Null,
    Bool(bool),
    Number(Num),
    /// A string's content between its quotes; `escaped` when it holds backslash escapes.
    Str {
        start: usize,
        end: usize,
        escaped: bool,
    },
    /// From `[` to `]` inclusive, with the number of elements.
    Array {
        start: usize,
        end: usize,
        len: usize,
    },
    /// From `{` to `}` inclusive.
    Object {
        start: usize,
        end: usize,
    },
}

/// `10^0 ..= 10^22`: the powers of ten a double holds exactly, as in serde_json's table.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// A cursor over one line (valid UTF-8, trimmed).
pub(super) struct Scanner<'a> {
    bytes: &'a [u8],
    pub(super) pos: usize,
}

impl<'a> Scanner<'a> {
    pub(super) fn new(line: &'a str, pos: usize) -> Scanner<'a> {
        Scanner {
            bytes: line.as_bytes(),
            pos,
        }
    }

    /// Scans a whole line (a JSON object), filling `slots` as `plan` says; `hints` remember where
    /// each object's keys matched last, since rows of one body tend to share their key order.
    pub(super) fn scan_line(
        &mut self,
        plan: &Plan,
        slots: &mut [Raw],
        hints: &mut [usize],
    ) -> Result<(), Bail> {
        slots.fill(Raw::Missing);
        if self.peek() != Some(b'{') {
            return Err(Bail);
        }
        self.object(plan, ROOT, 1, slots, hints)?;
        self.skip_ws();
        if self.pos != self.bytes.len() {
            return Err(Bail);
        }
        if let Some(slot) = plan.root_slot() {
            slots[slot] = Raw::Object {
                start: 0,
                end: self.bytes.len(),
            };
        }
        Ok(())
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    #[inline]
    pub(super) fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    #[inline]
    fn expect(&mut self, byte: u8) -> Result<(), Bail> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(Bail)
        }
    }

    /// An object at `pos` whose keys are matched against the plan's `node`, and captured.
    fn object(
        &mut self,
        plan: &Plan,
        node: usize,
        depth: usize,
        slots: &mut [Raw],
        hints: &mut [usize],
    ) -> Result<(), Bail> {
        if depth > MAX_DEPTH {
            return Err(Bail);
        }
        self.pos += 1;
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            if self.peek() != Some(b'"') {
                return Err(Bail);
            }
            let child = match plan.match_expected(node, &self.bytes[self.pos..], &mut hints[node]) {
                Some((child, length)) => {
                    self.pos += length;
                    Some(child)
                }
                None => {
                    let (start, end, escaped) = self.string()?;
                    if escaped {
                        // It may spell a key a column reads: serde_json compares it unescaped.
                        return Err(Bail);
                    }
                    plan.find(node, &self.bytes[start..end], &mut hints[node])
                }
            };
            self.skip_ws();
            self.expect(b':')?;
            self.skip_ws();
            match child {
                None => self.skip_value(depth)?,
                Some(child) => {
                    if child.node.is_some() {
                        // A repeated key replaces the whole earlier value, nested keys included.
                        slots[child.reset.clone()].fill(Raw::Missing);
                    }
                    match (child.node, self.peek()) {
                        (Some(inner), Some(b'{')) => {
                            let start = self.pos;
                            self.object(plan, inner, depth + 1, slots, hints)?;
                            if let Some(slot) = child.slot {
                                slots[slot] = Raw::Object {
                                    start,
                                    end: self.pos,
                                };
                            }
                        }
                        _ => match child.slot {
                            Some(slot) => self.value_into(depth, &mut slots[slot])?,
                            None => self.skip_value(depth)?,
                        },
                    }
                }
            }
            self.skip_ws();
            match self.peek() {
                Some(b',') => {
                    self.pos += 1;
                    self.skip_ws();
                }
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(Bail),
            }
        }
    }

    /// Any value at `pos` inside a container at `depth`.
    pub(super) fn value(&mut self, depth: usize) -> Result<Raw, Bail> {
        let mut raw = Raw::Missing;
        self.value_into(depth, &mut raw)?;
        Ok(raw)
    }

    /// [`Scanner::value`] written straight into `out` (returning a `Raw` through a `Result`
    /// costs a round trip through memory, measurable at this rate).
    #[inline]
    fn value_into(&mut self, depth: usize, out: &mut Raw) -> Result<(), Bail> {
        *out = match self.peek() {
            Some(b'"') => {
                let (start, end, escaped) = self.string()?;
                Raw::Str {
                    start,
                    end,
                    escaped,
                }
            }
            Some(b'{') => {
                let start = self.pos;
                self.skip_object(depth + 1)?;
                Raw::Object {
                    start,
                    end: self.pos,
                }
            }
            Some(b'[') => {
                let start = self.pos;
                let len = self.array(depth + 1)?;
                Raw::Array {
                    start,
                    end: self.pos,
                    len,
                }
            }
            Some(b't') => self.literal(b"true", Raw::Bool(true))?,
            Some(b'f') => self.literal(b"false", Raw::Bool(false))?,
            Some(b'n') => self.literal(b"null", Raw::Null)?,
            Some(b'-' | b'0'..=b'9') => Raw::Number(self.number()?),
            _ => return Err(Bail),
        };
        Ok(())
    }

    /// Checks the value at `pos` and moves past it, recording nothing.
    fn skip_value(&mut self, depth: usize) -> Result<(), Bail> {
        match self.peek() {
            Some(b'"') => self.string().map(|_| ()),
            Some(b'{') => self.skip_object(depth + 1),
            Some(b'[') => self.array(depth + 1).map(|_| ()),
            Some(b't') => self.literal(b"true", Raw::Null).map(|_| ()),
            Some(b'f') => self.literal(b"false", Raw::Null).map(|_| ()),
            Some(b'n') => self.literal(b"null", Raw::Null).map(|_| ()),
            Some(b'-' | b'0'..=b'9') => self.number().map(|_| ()),
            _ => Err(Bail),
        }
    }

    fn literal(&mut self, word: &[u8], raw: Raw) -> Result<Raw, Bail> {
        if self.bytes[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(raw)
        } else {
            Err(Bail)
        }
    }

    fn skip_object(&mut self, depth: usize) -> Result<(), Bail> {
        // No plan node: keys are validated but never matched.
        if depth > MAX_DEPTH {
            return Err(Bail);
        }
        self.pos += 1;
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            if self.peek() != Some(b'"') {
                return Err(Bail);
            }
            self.string()?;
            self.skip_ws();
            self.expect(b':')?;
            self.skip_ws();
            self.skip_value(depth)?;
            self.skip_ws();
            match self.peek() {
                Some(b',') => {
                    self.pos += 1;
                    self.skip_ws();
                }
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(Bail),
            }
        }
    }

    /// An array at `pos`; its number of elements.
    fn array(&mut self, depth: usize) -> Result<usize, Bail> {
        if depth > MAX_DEPTH {
            return Err(Bail);
        }
        self.pos += 1;
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(0);
        }
        let mut len = 0;
        loop {
            self.skip_value(depth)?;
            len += 1;
            self.skip_ws();
            match self.peek() {
                Some(b',') => {
                    self.pos += 1;
                    self.skip_ws();
                }
                Some(b']') => {
                    self.pos += 1;
                    return Ok(len);
                }
                _ => return Err(Bail),
            }
        }
    }

    /// A string at `pos`: the span of its content and whether it has escapes. Control characters
    /// and malformed escapes (including unpaired surrogates) bail, as serde_json refuses them.
    #[inline(always)]
    fn string(&mut self) -> Result<(usize, usize, bool), Bail> {
        self.pos += 1;
        let start = self.pos;
        let mut escaped = false;
        loop {
            // Eight bytes at a time to the first quote, backslash or control character.
            while let Some(chunk) = self.bytes.get(self.pos..self.pos + 8) {
                let word = u64::from_le_bytes(chunk.try_into().map_err(|_| Bail)?);
                let found = special_bytes(word);
                if found != 0 {
                    self.pos += (found.trailing_zeros() / 8) as usize;
                    break;
                }
                self.pos += 8;
            }
            match self.peek() {
                Some(b'"') => {
                    let end = self.pos;
                    self.pos += 1;
                    return Ok((start, end, escaped));
                }
                Some(b'\\') => {
                    escaped = true;
                    self.escape()?;
                }
                Some(byte) if byte < 0x20 => return Err(Bail),
                Some(_) => self.pos += 1,
                None => return Err(Bail),
            }
        }
    }

    /// Checks one escape at `pos` (the backslash).
    fn escape(&mut self) -> Result<(), Bail> {
        match self.bytes.get(self.pos + 1) {
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                self.pos += 2;
                Ok(())
            }
            Some(b'u') => {
                let (_, next) = unicode_escape(self.bytes, self.pos).ok_or(Bail)?;
                self.pos = next;
                Ok(())
            }
            _ => Err(Bail),
        }
    }

    /// A number at `pos`, converted as serde_json converts it.
    fn number(&mut self) -> Result<Num, Bail> {
        let bytes = self.bytes;
        let positive = bytes[self.pos] != b'-';
        if !positive {
            self.pos += 1;
        }
        let mut significand: u64 = match self.peek() {
            Some(b'0') => {
                self.pos += 1;
                // There can be only one leading '0'.
                if let Some(b'0'..=b'9') = self.peek() {
                    return Err(Bail);
                }
                0
            }
            Some(digit @ b'1'..=b'9') => {
                self.pos += 1;
                let mut value = u64::from(digit - b'0');
                while let Some(digit @ b'0'..=b'9') = self.peek() {
                    value = value
                        .checked_mul(10)
                        .and_then(|v| v.checked_add(u64::from(digit - b'0')))
                        .ok_or(Bail)?;
                    self.pos += 1;
                }
                value
            }
            _ => return Err(Bail),
        };
        let mut exponent: i32 = 0;
        let mut is_float = false;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            is_float = true;
            let digits_start = self.pos;
            while let Some(digit @ b'0'..=b'9') = self.peek() {
                significand = significand
                    .checked_mul(10)
                    .and_then(|v| v.checked_add(u64::from(digit - b'0')))
                    .ok_or(Bail)?;
                exponent -= 1;
                self.pos += 1;
            }
            if self.pos == digits_start {
                return Err(Bail);
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            is_float = true;
            let positive_exponent = match self.peek() {
                Some(b'+') => {
                    self.pos += 1;
                    true
                }
                Some(b'-') => {
                    self.pos += 1;
                    false
                }
                _ => true,
            };
            let digits_start = self.pos;
            let mut value: i32 = 0;
            while let Some(digit @ b'0'..=b'9') = self.peek() {
                value = value
                    .checked_mul(10)
                    .and_then(|v| v.checked_add(i32::from(digit - b'0')))
                    .ok_or(Bail)?;
                self.pos += 1;
            }
            if self.pos == digits_start {
                return Err(Bail);
            }
            exponent = if positive_exponent {
                exponent.saturating_add(value)
            } else {
                exponent.saturating_sub(value)
            };
        }
        if !is_float {
            if positive {
                return Ok(Num::U64(significand));
            }
            let negative = (significand as i64).wrapping_neg();
            // serde_json: a float when it does not fit, and for `-0`.
            return Ok(if negative >= 0 {
                Num::F64(-(significand as f64))
            } else {
                Num::I64(negative)
            });
        }
        // serde_json's `f64_from_parts` (without `float_roundtrip`) for exponents its table of
        // exact powers covers; others are left to serde_json itself.
        let power = *POW10.get(exponent.unsigned_abs() as usize).ok_or(Bail)?;
        let mut value = significand as f64;
        if exponent >= 0 {
            value *= power;
            if value.is_infinite() {
                return Err(Bail);
            }
        } else {
            value /= power;
        }
        Ok(Num::F64(if positive { value } else { -value }))
    }
}

/// Flags the bytes of `word` (little-endian) that are `"`, `\` or below 0x20 with their high bit.
/// SWAR: XOR turns a match into a zero byte, and subtracting one from each byte borrows out of
/// exactly the zero bytes (0x20 for the bytes below 0x20). A borrow can also flag a byte above a
/// real match, never one below it, so the lowest flag is always exact: the result is zero when
/// no byte matches, and otherwise its trailing zeros locate the first match.
#[inline]
fn special_bytes(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let quote = has_zero(word ^ (ONES * u64::from(b'"')));
    let backslash = has_zero(word ^ (ONES * u64::from(b'\\')));
    let control = word.wrapping_sub(ONES * 0x20) & !word & HIGH;
    quote | backslash | control
}

/// The code point of a `\uXXXX` escape at `at` (the backslash), joined with its trailing
/// surrogate when it is a leading one, and the offset after it; None where serde_json refuses it.
pub(super) fn unicode_escape(bytes: &[u8], at: usize) -> Option<(char, usize)> {
    let first = hex4(bytes.get(at + 2..at + 6)?)?;
    match first {
        0xDC00..=0xDFFF => None,
        0xD800..=0xDBFF => {
            if bytes.get(at + 6..at + 8)? != b"\\u" {
                return None;
            }
            let second = hex4(bytes.get(at + 8..at + 12)?)?;
            if !(0xDC00..=0xDFFF).contains(&second) {
                return None;
            }
            let code = 0x10000 + ((u32::from(first) - 0xD800) << 10) + (u32::from(second) - 0xDC00);
            Some((char::from_u32(code)?, at + 12))
        }
        _ => Some((char::from_u32(u32::from(first))?, at + 6)),
    }
}

fn hex4(digits: &[u8]) -> Option<u16> {
    let mut value = 0u16;
    for &digit in digits {
        let nibble = (digit as char).to_digit(16)?;
        value = (value << 4) | nibble as u16;
    }
    Some(value)
}

/// The content of a string with escapes, unescaped.
pub(super) fn unescape(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        let next = memchr::memchr(b'\\', &bytes[i..]).map_or(bytes.len(), |offset| i + offset);
        out.push_str(text.get(i..next)?);
        if next == bytes.len() {
            break;
        }
        i = match bytes.get(next + 1)? {
            b'"' => push(&mut out, '"', next + 2),
            b'\\' => push(&mut out, '\\', next + 2),
            b'/' => push(&mut out, '/', next + 2),
            b'b' => push(&mut out, '\u{8}', next + 2),
            b'f' => push(&mut out, '\u{c}', next + 2),
            b'n' => push(&mut out, '\n', next + 2),
            b'r' => push(&mut out, '\r', next + 2),
            b't' => push(&mut out, '\t', next + 2),
            b'u' => {
                let (c, after) = unicode_escape(bytes, next)?;
                push(&mut out, c, after)
            }
            _ => return None,
        };
    }
    Some(out)
}

fn push(out: &mut String, c: char, next: usize) -> usize {
    out.push(c);
    next
}

#[cfg(test)]
mod tests {
    use super::*;

    fn number(text: &str) -> Result<Num, Bail> {
        let mut scanner = Scanner::new(text, 0);
        let n = scanner.number()?;
        if scanner.pos != text.len() {
            return Err(Bail);
        }
        Ok(n)
    }

    #[test]
    fn numbers_match_serde_json() {
        for text in [
            "0",
            "-0",
            "7",
            "-7",
            "18446744073709551615",
            "-9223372036854775808",
            "-9223372036854775809",
            "1.5",
            "-1.25e3",
            "1705313472.123",
            "0.1",
            "1e22",
            "1E-22",
            "123456789.0123456789",
            "5e-1",
            "0.000",
        ] {
            let ours = number(text).unwrap_or_else(|_| panic!("{text} bailed"));
            let theirs: serde_json::Number = serde_json::from_str(text).unwrap();
            assert_eq!(ours.to_number(), theirs, "{text}");
            assert_eq!(ours.to_number().to_string(), theirs.to_string(), "{text}");
        }
        // Grammar errors and what the fast path leaves to serde_json.
        for text in [
            "01",
            "-",
            "1.",
            ".5",
            "1e",
            "1e+",
            "+1",
            "18446744073709551616",
            "1e23",
            "1e400",
            "12345678901234567890.5",
        ] {
            assert_eq!(number(text), Err(Bail), "{text}");
        }
    }

    #[test]
    fn swar_finds_the_first_quote_backslash_or_control() {
        let special = |b: u8| b == b'"' || b == b'\\' || b < 0x20;
        let first = |word: [u8; 8]| match special_bytes(u64::from_le_bytes(word)) {
            0 => None,
            found => Some(found.trailing_zeros() as usize / 8),
        };
        for byte in 0..=255u8 {
            for at in 0..8 {
                let mut word = [b'a'; 8];
                word[at] = byte;
                assert_eq!(first(word), special(byte).then_some(at), "{byte} at {at}");
            }
        }
        // Pseudo-random words, including runs of matches that make borrows ripple upwards.
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        for _ in 0..200_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let mut word = state.to_le_bytes();
            for byte in &mut word {
                // Mostly bytes near the interesting ones.
                *byte = match *byte % 4 {
                    0 => b'"' + (*byte >> 6),
                    1 => b'\\' - 1 + (*byte >> 6),
                    2 => 0x1e + (*byte >> 6),
                    _ => *byte,
                };
            }
            assert_eq!(
                first(word),
                word.iter().position(|b| special(*b)),
                "{word:?}"
            );
        }
    }

    #[test]
    fn unescapes_like_serde_json() {
        for text in [
            r#"plain"#,
            r#"a\"b\\c\/d\be\ff\ng\rh\ti"#,
            r#"\u00e9\u0000\u20AC"#,
            r#"\ud83d\ude00!"#,
        ] {
            let theirs: String = serde_json::from_str(&format!("\"{text}\"")).unwrap();
            assert_eq!(unescape(text).as_deref(), Some(theirs.as_str()), "{text}");
        }
        for text in [
            r#"\ud83d"#,
            r#"\ude00"#,
            r#"\ud83d\u0041"#,
            r#"\x"#,
            r#"\u12"#,
        ] {
            assert_eq!(unescape(text), None, "{text}");
            assert!(serde_json::from_str::<String>(&format!("\"{text}\"")).is_err());
        }
    }
}

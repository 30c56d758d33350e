//! One value to RowBinary: from a parsed JSON value (NDJSON) or from text (CSV fields, map keys and the
//! elements of ClickHouse array literals). Both paths share the scalar text parsers, so `"42"` in JSON
//! and `42` in CSV are read by the same code.
//!
//! Encoders append to the output and return the reason on failure; the caller truncates the buffer to
//! the row's start, so a half-written value never reaches an insert.

use std::borrow::Cow;
use std::net::{Ipv4Addr, Ipv6Addr};

use chrono::NaiveDate;
use roost_types::ChType;
use serde_json::{Number, Value};

use super::literal::{self, Literal};
use super::rowbinary::{Wide, int_spec, write_bytes, write_varint};

/// Why a value does not fit its type; empty when the type name says it all.
pub(super) type Reason = Cow<'static, str>;

const NO_DETAIL: Reason = Cow::Borrowed("");

/// Days from 0001-01-01 (day 1 in chrono's count) to 1970-01-01.
const UNIX_EPOCH_DAYS_FROM_CE: i32 = 719_163;

/// Encodes a non-null JSON value as `ty`.
pub(super) fn encode_json(ty: &ChType, value: &Value, out: &mut Vec<u8>) -> Result<(), Reason> {
    match (ty, value) {
        (ChType::Nullable(_), Value::Null) => {
            out.push(1);
            Ok(())
        }
        (ChType::Nullable(inner), _) => {
            out.push(0);
            encode_json(inner, value, out)
        }
        (ChType::LowCardinality(inner), _) => encode_json(inner, value, out),
        (_, Value::Null) => Err("NULL is not allowed here".into()),
        (_, Value::String(s)) => encode_json_str(ty, s, out),
        (ChType::String, other) => {
            write_bytes(out, other.to_string().as_bytes());
            Ok(())
        }
        (ChType::FixedString(n), other) => write_fixed(*n, other.to_string().as_bytes(), out),
        (ChType::Array(inner), Value::Array(items)) => {
            write_varint(out, items.len() as u64);
            for (i, item) in items.iter().enumerate() {
                encode_json(inner, item, out).map_err(|r| nested("element", i, r))?;
            }
            Ok(())
        }
        (ChType::Map(key, val), Value::Object(map)) => {
            write_varint(out, map.len() as u64);
            for (k, v) in map {
                encode_text(key, k, out).map_err(|r| nested_key(k, r))?;
                encode_json(val, v, out).map_err(|r| nested_key(k, r))?;
            }
            Ok(())
        }
        (ChType::Tuple(elements), Value::Array(items)) => {
            if items.len() != elements.len() {
                return Err(format!(
                    "expected {} tuple elements, got {}",
                    elements.len(),
                    items.len()
                )
                .into());
            }
            for (i, ((_, ty), item)) in elements.iter().zip(items).enumerate() {
                encode_json(ty, item, out).map_err(|r| nested("element", i, r))?;
            }
            Ok(())
        }
        (ChType::Tuple(elements), Value::Object(map)) => {
            for (i, (name, ty)) in elements.iter().enumerate() {
                let key = name.clone().unwrap_or_else(|| (i + 1).to_string());
                let item = map
                    .get(&key)
                    .ok_or_else(|| Reason::from(format!("missing tuple element '{key}'")))?;
                encode_json(ty, item, out).map_err(|r| nested_key(&key, r))?;
            }
            Ok(())
        }
        (ChType::Array(_) | ChType::Map(..) | ChType::Tuple(_), _) => Err(NO_DETAIL),
        (_, Value::Number(n)) => encode_number(ty, n, out),
        (_, Value::Bool(b)) => encode_bool_value(ty, *b, out),
        _ => Err(NO_DETAIL),
    }
}

/// Encodes a JSON string as `ty`: the text itself for `String` and `FixedString`, the text read as
/// a value of `ty` for every other type (composite values as literals, e.g. `"['a','b']"`).
pub(super) fn encode_json_str(ty: &ChType, s: &str, out: &mut Vec<u8>) -> Result<(), Reason> {
    match ty {
        ChType::Nullable(inner) => {
            out.push(0);
            encode_json_str(inner, s, out)
        }
        ChType::LowCardinality(inner) => encode_json_str(inner, s, out),
        ChType::String => {
            write_bytes(out, s.as_bytes());
            Ok(())
        }
        ChType::FixedString(n) => write_fixed(*n, s.as_bytes(), out),
        _ => encode_text(ty, s, out),
    }
}

/// A JSON number as a scalar type.
fn encode_number(ty: &ChType, n: &Number, out: &mut Vec<u8>) -> Result<(), Reason> {
    if let Some((bits, signed)) = int_spec(ty) {
        let wide = number_to_wide(n).ok_or("not an integer")?;
        return write_int(wide, bits, signed, out);
    }
    match ty {
        ChType::Float32 => out.extend_from_slice(&(number_f64(n) as f32).to_le_bytes()),
        ChType::Float64 => out.extend_from_slice(&number_f64(n).to_le_bytes()),
        ChType::Bool => match n.as_u64() {
            Some(v @ (0 | 1)) => out.push(v as u8),
            _ => return Err("expected 0 or 1".into()),
        },
        ChType::Decimal { precision, scale } => {
            let wide = parse_decimal(&n.to_string(), *precision, *scale)?;
            wide.write_le(decimal_bytes(*precision), out);
        }
        ChType::Date => {
            let days = number_to_wide(n)
                .and_then(Wide::to_i64)
                .ok_or("not a day number")?;
            write_date(days, out)?;
        }
        ChType::Date32 => {
            let days = number_to_wide(n)
                .and_then(Wide::to_i64)
                .ok_or("not a day number")?;
            write_date32(days, out)?;
        }
        ChType::DateTime(_) => {
            // Unix seconds; a fraction is dropped, as for DateTime text with one.
            let ticks = parse_decimal_ticks(&n.to_string(), 0)?;
            write_datetime(ticks, out)?;
        }
        ChType::DateTime64(precision, _) => {
            let ticks = parse_decimal_ticks(&n.to_string(), *precision)?;
            out.extend_from_slice(&ticks.to_le_bytes());
        }
        ChType::IPv4 => {
            let v = n
                .as_u64()
                .and_then(|v| u32::try_from(v).ok())
                .ok_or("out of range")?;
            out.extend_from_slice(&v.to_le_bytes());
        }
        ChType::Enum8(items) => {
            let v = n.as_i64().ok_or("not an enum value")?;
            let v = i8::try_from(v).map_err(|_| "not an enum value")?;
            enum_value_defined(items.iter().map(|(_, x)| i16::from(*x)), i16::from(v))?;
            out.push(v as u8);
        }
        ChType::Enum16(items) => {
            let v = n.as_i64().ok_or("not an enum value")?;
            let v = i16::try_from(v).map_err(|_| "not an enum value")?;
            enum_value_defined(items.iter().map(|(_, x)| *x), v)?;
            out.extend_from_slice(&v.to_le_bytes());
        }
        _ => return Err(NO_DETAIL),
    }
    Ok(())
}

fn encode_bool_value(ty: &ChType, b: bool, out: &mut Vec<u8>) -> Result<(), Reason> {
    if let Some((bits, signed)) = int_spec(ty) {
        return write_int(Wide::from_u64(u64::from(b)), bits, signed, out);
    }
    match ty {
        ChType::Bool => out.push(u8::from(b)),
        ChType::Float32 => out.extend_from_slice(&f32::from(u8::from(b)).to_le_bytes()),
        ChType::Float64 => out.extend_from_slice(&f64::from(u8::from(b)).to_le_bytes()),
        _ => return Err(NO_DETAIL),
    }
    Ok(())
}

fn number_to_wide(n: &Number) -> Option<Wide> {
    if let Some(v) = n.as_u64() {
        Some(Wide::from_u64(v))
    } else if let Some(v) = n.as_i64() {
        Some(Wide::from_i64(v))
    } else {
        Wide::from_f64(n.as_f64()?)
    }
}

fn number_f64(n: &Number) -> f64 {
    n.as_f64().unwrap_or(f64::NAN)
}

/// Encodes text as `ty`: a CSV field, a map key, or an element of an array literal.
pub(super) fn encode_text(ty: &ChType, text: &str, out: &mut Vec<u8>) -> Result<(), Reason> {
    if let Some((bits, signed)) = int_spec(ty) {
        let wide = parse_int_text(text.trim())?;
        return write_int(wide, bits, signed, out);
    }
    match ty {
        ChType::Nullable(inner) => {
            if text == "\\N" {
                out.push(1);
            } else {
                out.push(0);
                encode_text(inner, text, out)?;
            }
        }
        ChType::LowCardinality(inner) => encode_text(inner, text, out)?,
        ChType::String => write_bytes(out, text.as_bytes()),
        ChType::FixedString(n) => write_fixed(*n, text.as_bytes(), out)?,
        ChType::Float32 => out.extend_from_slice(&(parse_float(text)? as f32).to_le_bytes()),
        ChType::Float64 => out.extend_from_slice(&parse_float(text)?.to_le_bytes()),
        ChType::Bool => out.push(u8::from(parse_bool(text.trim()).ok_or(NO_DETAIL)?)),
        ChType::Decimal { precision, scale } => {
            let wide = parse_decimal(text.trim(), *precision, *scale)?;
            wide.write_le(decimal_bytes(*precision), out);
        }
        ChType::Uuid => out.extend_from_slice(&parse_uuid(text.trim()).ok_or(NO_DETAIL)?),
        ChType::Date => write_date(parse_date_text(text.trim())?, out)?,
        ChType::Date32 => write_date32(parse_date_text(text.trim())?, out)?,
        ChType::DateTime(_) => write_datetime(parse_datetime_text(text.trim(), 0)?, out)?,
        ChType::DateTime64(precision, _) => {
            let ticks = parse_datetime_text(text.trim(), *precision)?;
            out.extend_from_slice(&ticks.to_le_bytes());
        }
        ChType::IPv4 => {
            let ip: Ipv4Addr = text.trim().parse().map_err(|_| NO_DETAIL)?;
            out.extend_from_slice(&u32::from(ip).to_le_bytes());
        }
        ChType::IPv6 => out.extend_from_slice(&parse_ipv6(text.trim()).ok_or(NO_DETAIL)?),
        ChType::Enum8(items) => {
            let v = enum_from_text(items.iter().map(|(n, v)| (n.as_str(), i16::from(*v))), text)?;
            out.push(v as i8 as u8);
        }
        ChType::Enum16(items) => {
            let v = enum_from_text(items.iter().map(|(n, v)| (n.as_str(), *v)), text)?;
            out.extend_from_slice(&v.to_le_bytes());
        }
        ChType::Array(_) | ChType::Map(..) | ChType::Tuple(_) => {
            let parsed = literal::parse(text)?;
            encode_literal(ty, &parsed, out)?;
        }
        ChType::Json => return Err("JSON columns are not supported".into()),
        _ => return Err(NO_DETAIL),
    }
    Ok(())
}

/// Encodes a parsed ClickHouse text literal (an element of `[...]`, `(...)` or `{...}`) as `ty`.
fn encode_literal(ty: &ChType, value: &Literal<'_>, out: &mut Vec<u8>) -> Result<(), Reason> {
    match (ty, value) {
        (ChType::Nullable(_), Literal::Null) => {
            out.push(1);
            Ok(())
        }
        (ChType::Nullable(inner), _) => {
            out.push(0);
            encode_literal(inner, value, out)
        }
        (ChType::LowCardinality(inner), _) => encode_literal(inner, value, out),
        (_, Literal::Null) => Err("NULL is not allowed here".into()),
        (ChType::Array(inner), Literal::Array(items)) => {
            write_varint(out, items.len() as u64);
            for (i, item) in items.iter().enumerate() {
                encode_literal(inner, item, out).map_err(|r| nested("element", i, r))?;
            }
            Ok(())
        }
        (ChType::Map(key, val), Literal::Map(pairs)) => {
            write_varint(out, pairs.len() as u64);
            for (i, (k, v)) in pairs.iter().enumerate() {
                encode_literal(key, k, out).map_err(|r| nested("key", i, r))?;
                encode_literal(val, v, out).map_err(|r| nested("value", i, r))?;
            }
            Ok(())
        }
        (ChType::Tuple(elements), Literal::Tuple(items) | Literal::Array(items)) => {
            if items.len() != elements.len() {
                return Err(format!(
                    "expected {} tuple elements, got {}",
                    elements.len(),
                    items.len()
                )
                .into());
            }
            for (i, ((_, ty), item)) in elements.iter().zip(items).enumerate() {
                encode_literal(ty, item, out).map_err(|r| nested("element", i, r))?;
            }
            Ok(())
        }
        (_, Literal::Text(text)) => encode_text(ty, text, out),
        // Unquoted words are numbers, booleans or bare strings; composite types need brackets.
        (ChType::Array(_) | ChType::Map(..) | ChType::Tuple(_), Literal::Bare(_)) => Err(NO_DETAIL),
        (_, Literal::Bare(text)) => encode_text(ty, text, out),
        _ => Err(NO_DETAIL),
    }
}

pub(super) fn nested(what: &str, index: usize, reason: Reason) -> Reason {
    if reason.is_empty() {
        format!("invalid {what} {index}").into()
    } else {
        format!("{what} {index}: {reason}").into()
    }
}

fn nested_key(key: &str, reason: Reason) -> Reason {
    if reason.is_empty() {
        format!("invalid value at key '{key}'").into()
    } else {
        format!("key '{key}': {reason}").into()
    }
}

fn write_int(wide: Wide, bits: u32, signed: bool, out: &mut Vec<u8>) -> Result<(), Reason> {
    if !wide.fits(bits, signed) {
        return Err("out of range".into());
    }
    wide.write_le(bits as usize / 8, out);
    Ok(())
}

fn parse_int_text(text: &str) -> Result<Wide, Reason> {
    Wide::parse(text).ok_or(NO_DETAIL)
}

fn write_fixed(n: usize, bytes: &[u8], out: &mut Vec<u8>) -> Result<(), Reason> {
    if bytes.len() > n {
        return Err(format!("longer than {n} bytes").into());
    }
    out.extend_from_slice(bytes);
    out.resize(out.len() + n - bytes.len(), 0);
    Ok(())
}

/// Floats as ClickHouse reads them, including `inf`, `-inf` and `nan`.
fn parse_float(text: &str) -> Result<f64, Reason> {
    let text = text.trim();
    if text.is_empty() {
        return Err(NO_DETAIL);
    }
    text.parse::<f64>().map_err(|_| NO_DETAIL)
}

/// The spellings ClickHouse accepts for `Bool`.
pub(super) fn parse_bool(text: &str) -> Option<bool> {
    const TRUE: [&str; 7] = ["true", "1", "t", "yes", "y", "on", "enable"];
    const FALSE: [&str; 7] = ["false", "0", "f", "no", "n", "off", "disable"];
    if TRUE.iter().any(|t| text.eq_ignore_ascii_case(t)) {
        Some(true)
    } else if FALSE.iter().any(|f| text.eq_ignore_ascii_case(f)) {
        Some(false)
    } else {
        None
    }
}

/// Bytes of a `Decimal(P, S)` in RowBinary.
fn decimal_bytes(precision: u8) -> usize {
    match precision {
        0..=9 => 4,
        10..=18 => 8,
        19..=38 => 16,
        _ => 32,
    }
}

/// Parses `[+-]digits[.digits][e[+-]digits]` into the integer `value * 10^scale`, truncating digits past
/// `scale` as ClickHouse does, and refusing values with more than `precision` significant digits.
pub(super) fn parse_decimal(text: &str, precision: u8, scale: u8) -> Result<Wide, Reason> {
    let bytes = text.as_bytes();
    let (negative, rest) = match bytes.first() {
        Some(b'-') => (true, &bytes[1..]),
        Some(b'+') => (false, &bytes[1..]),
        _ => (false, bytes),
    };
    let mantissa_end = rest
        .iter()
        .position(|b| *b == b'e' || *b == b'E')
        .unwrap_or(rest.len());
    let (mantissa, exponent_text) = rest.split_at(mantissa_end);
    let exponent: i64 = if exponent_text.is_empty() {
        0
    } else {
        let digits = std::str::from_utf8(&exponent_text[1..]).map_err(|_| NO_DETAIL)?;
        let e: i64 = digits.parse().map_err(|_| NO_DETAIL)?;
        e.clamp(-1000, 1000)
    };
    let (int_part, frac_part) = match mantissa.iter().position(|b| *b == b'.') {
        Some(dot) => (&mantissa[..dot], &mantissa[dot + 1..]),
        None => (mantissa, &mantissa[..0]),
    };
    if int_part.is_empty() && frac_part.is_empty()
        || !int_part.iter().chain(frac_part).all(u8::is_ascii_digit)
    {
        return Err(NO_DETAIL);
    }
    let digit_at = |i: i64| -> u8 {
        let i = i as usize;
        if i < int_part.len() {
            int_part[i] - b'0'
        } else if i - int_part.len() < frac_part.len() {
            frac_part[i - int_part.len()] - b'0'
        } else {
            0
        }
    };
    // Digits [start, end) of the virtual digit string make up the scaled integer; positions before 0
    // are leading zeros.
    let point = int_part.len() as i64 + exponent;
    let end = point + i64::from(scale);
    let mut wide = Wide::default();
    let mut significant = 0u32;
    for i in 0..end.max(0) {
        let digit = digit_at(i);
        if significant == 0 && digit == 0 {
            continue;
        }
        significant += 1;
        if significant > u32::from(precision) {
            return Err(format!("too many digits for Decimal({precision}, {scale})").into());
        }
        wide.push_digit(digit);
    }
    if negative {
        wide.negate();
    }
    Ok(wide)
}

/// A decimal number of seconds as ticks of `10^-precision` seconds.
fn parse_decimal_ticks(text: &str, precision: u8) -> Result<i64, Reason> {
    parse_decimal(text, 40, precision)?
        .to_i64()
        .ok_or_else(|| "out of range".into())
}

/// Parses `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (or 32 hex digits, optionally in braces) into RowBinary
/// UUID bytes: ClickHouse stores a UUID as two little-endian u64 halves, so each 8-byte half of the
/// textual big-endian form is reversed.
pub(super) fn parse_uuid(text: &str) -> Option<[u8; 16]> {
    let text = text
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .unwrap_or(text);
    let bytes = text.as_bytes();
    let dashed = bytes.len() == 36;
    if dashed {
        if [8, 13, 18, 23].iter().any(|&i| bytes[i] != b'-') {
            return None;
        }
    } else if bytes.len() != 32 {
        return None;
    }
    let mut raw = [0u8; 16];
    let mut nibbles = bytes.iter().filter(|b| !dashed || **b != b'-');
    for byte in &mut raw {
        let high = hex_value(*nibbles.next()?)?;
        let low = hex_value(*nibbles.next()?)?;
        *byte = high << 4 | low;
    }
    raw[..8].reverse();
    raw[8..].reverse();
    Some(raw)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn parse_ipv6(text: &str) -> Option<[u8; 16]> {
    if let Ok(ip) = text.parse::<Ipv6Addr>() {
        return Some(ip.octets());
    }
    text.parse::<Ipv4Addr>()
        .ok()
        .map(|ip| ip.to_ipv6_mapped().octets())
}

fn enum_value_defined(mut values: impl Iterator<Item = i16>, value: i16) -> Result<(), Reason> {
    if values.any(|v| v == value) {
        Ok(())
    } else {
        Err(format!("{value} is not a value of the enum").into())
    }
}

/// An enum value from its name, or from its number when that number is defined.
fn enum_from_text<'a>(
    items: impl Iterator<Item = (&'a str, i16)> + Clone,
    text: &str,
) -> Result<i16, Reason> {
    if let Some((_, v)) = items.clone().find(|(name, _)| *name == text) {
        return Ok(v);
    }
    let number: i16 = text.trim().parse().map_err(|_| "not a name of the enum")?;
    enum_value_defined(items.map(|(_, v)| v), number)?;
    Ok(number)
}

fn write_date(days: i64, out: &mut Vec<u8>) -> Result<(), Reason> {
    let days = u16::try_from(days).map_err(|_| "outside Date's range 1970-01-01 to 2149-06-06")?;
    out.extend_from_slice(&days.to_le_bytes());
    Ok(())
}

fn write_date32(days: i64, out: &mut Vec<u8>) -> Result<(), Reason> {
    // 1900-01-01 to 2299-12-31.
    if !(-25_567..=120_529).contains(&days) {
        return Err("outside Date32's range 1900-01-01 to 2299-12-31".into());
    }
    out.extend_from_slice(&(days as i32).to_le_bytes());
    Ok(())
}

fn write_datetime(seconds: i64, out: &mut Vec<u8>) -> Result<(), Reason> {
    let seconds = u32::try_from(seconds)
        .map_err(|_| "outside DateTime's range 1970-01-01 00:00:00 to 2106-02-07 06:28:15")?;
    out.extend_from_slice(&seconds.to_le_bytes());
    Ok(())
}

/// Days since 1970-01-01 of a `YYYY-MM-DD` date, or of the date part of a date-time.
fn parse_date_text(text: &str) -> Result<i64, Reason> {
    match parse_date_prefix(text.as_bytes()) {
        Some((days, [] | [b' ' | b'T' | b't', ..])) => Ok(days),
        _ => Err(NO_DETAIL),
    }
}

/// Reads `YYYY-MM-DD` at the start of `bytes`: days since the epoch and the rest.
fn parse_date_prefix(bytes: &[u8]) -> Option<(i64, &[u8])> {
    if bytes.len() < 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return None;
    }
    let year = digits(&bytes[0..4])?;
    let month = digits(&bytes[5..7])?;
    let day = digits(&bytes[8..10])?;
    let date = NaiveDate::from_ymd_opt(year as i32, month, day)?;
    let days = i64::from(chrono::Datelike::num_days_from_ce(&date) - UNIX_EPOCH_DAYS_FROM_CE);
    Some((days, &bytes[10..]))
}

fn digits(bytes: &[u8]) -> Option<u32> {
    let mut value = 0u32;
    for &b in bytes {
        if !b.is_ascii_digit() {
            return None;
        }
        value = value * 10 + u32::from(b - b'0');
    }
    Some(value)
}

/// A date-time as ticks of `10^-precision` seconds since the epoch: `YYYY-MM-DD[( |T)hh:mm[:ss[.f]]]`
/// with an optional `Z` or `±hh[:mm]` offset (naive times are UTC), or a unix timestamp in seconds
/// (digits, optionally with a fraction). Fraction digits past `precision` are truncated.
pub(super) fn parse_datetime_text(text: &str, precision: u8) -> Result<i64, Reason> {
    let bytes = text.as_bytes();
    if bytes.len() < 10 || bytes[4] != b'-' {
        // A unix timestamp.
        if !bytes.is_empty()
            && bytes
                .iter()
                .all(|b| b.is_ascii_digit() || *b == b'.' || *b == b'-')
        {
            return parse_decimal_ticks(text, precision);
        }
        return Err(NO_DETAIL);
    }
    let (days, mut rest) = parse_date_prefix(bytes).ok_or(NO_DETAIL)?;
    let mut seconds = days * 86_400;
    let mut fraction = 0i64;
    if let [b' ' | b'T' | b't', time @ ..] = rest {
        if time.len() < 5 || time[2] != b':' {
            return Err(NO_DETAIL);
        }
        let hour = digits(&time[0..2]).ok_or(NO_DETAIL)?;
        let minute = digits(&time[3..5]).ok_or(NO_DETAIL)?;
        let mut second = 0;
        rest = &time[5..];
        if let [b':', s1, s2, tail @ ..] = rest {
            second = digits(&[*s1, *s2]).ok_or(NO_DETAIL)?;
            rest = tail;
        }
        if hour > 23 || minute > 59 || second > 60 {
            return Err(NO_DETAIL);
        }
        seconds += i64::from(hour * 3600 + minute * 60 + second);
        if let [b'.', tail @ ..] = rest {
            let count = tail.iter().take_while(|b| b.is_ascii_digit()).count();
            if count == 0 {
                return Err(NO_DETAIL);
            }
            for i in 0..usize::from(precision) {
                let digit = tail.get(i).filter(|_| i < count).map_or(0, |d| d - b'0');
                fraction = fraction * 10 + i64::from(digit);
            }
            rest = &tail[count..];
        }
    }
    let rest = trim_ascii_start(rest);
    match rest {
        [] => {}
        [b'Z' | b'z'] => {}
        [sign @ (b'+' | b'-'), offset @ ..] => {
            let (hours, minutes) = match offset {
                [h1, h2] => (digits(&[*h1, *h2]), Some(0)),
                [h1, h2, b':', m1, m2] | [h1, h2, m1, m2] => {
                    (digits(&[*h1, *h2]), digits(&[*m1, *m2]))
                }
                _ => (None, None),
            };
            let (hours, minutes) = hours.zip(minutes).ok_or(NO_DETAIL)?;
            let offset = i64::from(hours * 3600 + minutes * 60);
            seconds -= if *sign == b'+' { offset } else { -offset };
        }
        _ => return Err(NO_DETAIL),
    }
    seconds
        .checked_mul(10i64.pow(u32::from(precision)))
        .and_then(|ticks| ticks.checked_add(fraction))
        .ok_or_else(|| "out of range".into())
}

fn trim_ascii_start(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    &bytes[start..]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ty(s: &str) -> ChType {
        s.parse().unwrap()
    }

    fn json_bytes(t: &str, value: Value) -> Result<Vec<u8>, Reason> {
        let mut out = Vec::new();
        encode_json(&ty(t), &value, &mut out).map(|_| out)
    }

    fn text_bytes(t: &str, text: &str) -> Result<Vec<u8>, Reason> {
        let mut out = Vec::new();
        encode_text(&ty(t), text, &mut out).map(|_| out)
    }

    fn ok_json(t: &str, value: Value) -> Vec<u8> {
        json_bytes(t, value.clone()).unwrap_or_else(|e| panic!("{t} {value}: {e}"))
    }

    fn ok_text(t: &str, text: &str) -> Vec<u8> {
        text_bytes(t, text).unwrap_or_else(|e| panic!("{t} {text}: {e}"))
    }

    #[test]
    fn integers_of_every_width() {
        assert_eq!(ok_json("UInt8", json!(255)), [255]);
        assert_eq!(ok_json("Int8", json!(-128)), [0x80]);
        assert_eq!(ok_json("UInt16", json!(513)), [1, 2]);
        assert_eq!(ok_json("Int16", json!(-2)), [0xfe, 0xff]);
        assert_eq!(ok_json("UInt32", json!(7)), [7, 0, 0, 0]);
        assert_eq!(ok_json("Int32", json!(-1)), [0xff; 4]);
        assert_eq!(ok_json("UInt64", json!(u64::MAX)), [0xff; 8]);
        assert_eq!(ok_json("Int64", json!(i64::MIN)), i64::MIN.to_le_bytes());
        assert_eq!(ok_json("Int128", json!("-3")), (-3i128).to_le_bytes());
        assert_eq!(
            ok_json("UInt128", json!("340282366920938463463374607431768211455")),
            [0xff; 16]
        );
        let mut u256 = vec![0u8; 32];
        u256[0] = 1;
        u256[16] = 1; // 2^128 + 1
        assert_eq!(
            ok_json("UInt256", json!("340282366920938463463374607431768211457")),
            u256
        );
        assert_eq!(ok_json("Int256", json!(-1)), [0xff; 32]);
        // Quoted numbers, floats without a fraction and booleans are integers too.
        assert_eq!(ok_json("Int32", json!("42")), [42, 0, 0, 0]);
        assert_eq!(ok_json("Int32", json!(42.0)), [42, 0, 0, 0]);
        assert_eq!(ok_json("UInt8", json!(true)), [1]);
        assert_eq!(ok_text("Int16", " 12 "), [12, 0]);
        // Out of range, fractions and text are refused.
        assert_eq!(json_bytes("UInt8", json!(256)).unwrap_err(), "out of range");
        assert!(json_bytes("UInt32", json!(-1)).is_err());
        assert!(json_bytes("Int8", json!(128)).is_err());
        assert!(json_bytes("Int32", json!(1.5)).is_err());
        assert!(json_bytes("Int32", json!("abc")).is_err());
        assert!(json_bytes("Int32", json!("1.0")).is_err());
        assert!(json_bytes("Int32", json!([1])).is_err());
        assert!(json_bytes("Int32", json!({"a": 1})).is_err());
        assert!(text_bytes("Int32", "").is_err());
    }

    #[test]
    fn floats_and_bools() {
        assert_eq!(ok_json("Float64", json!(1.5)), 1.5f64.to_le_bytes());
        assert_eq!(ok_json("Float64", json!(3)), 3f64.to_le_bytes());
        assert_eq!(ok_json("Float32", json!("2.5")), 2.5f32.to_le_bytes());
        assert_eq!(
            ok_json("Float64", json!("-inf")),
            f64::NEG_INFINITY.to_le_bytes()
        );
        assert_eq!(ok_text("Float64", "inf"), f64::INFINITY.to_le_bytes());
        assert!(f64::from_le_bytes(ok_text("Float64", "nan").try_into().unwrap()).is_nan());
        assert!(text_bytes("Float64", "1,5").is_err());
        assert_eq!(ok_json("Bool", json!(true)), [1]);
        assert_eq!(ok_json("Bool", json!(false)), [0]);
        assert_eq!(ok_json("Bool", json!(1)), [1]);
        assert_eq!(ok_json("Bool", json!("false")), [0]);
        assert_eq!(ok_text("Bool", "1"), [1]);
        assert_eq!(ok_text("Bool", "TRUE"), [1]);
        assert!(json_bytes("Bool", json!(2)).is_err());
        assert!(text_bytes("Bool", "maybe").is_err());
    }

    #[test]
    fn strings() {
        assert_eq!(ok_json("String", json!("hé")), [3, b'h', 0xc3, 0xa9]);
        assert_eq!(ok_json("String", json!(12)), [2, b'1', b'2']);
        assert_eq!(ok_json("String", json!(true)), [4, b't', b'r', b'u', b'e']);
        assert_eq!(
            ok_json("String", json!({"a": [1]})),
            b"\x09{\"a\":[1]}".to_vec()
        );
        assert_eq!(ok_json("LowCardinality(String)", json!("x")), [1, b'x']);
        assert_eq!(ok_text("String", ""), [0]);
        assert_eq!(ok_json("FixedString(4)", json!("ab")), [b'a', b'b', 0, 0]);
        assert_eq!(ok_text("FixedString(2)", "ab"), [b'a', b'b']);
        assert!(text_bytes("FixedString(2)", "abc").is_err());
    }

    #[test]
    fn decimals() {
        let d = |t: &str, text: &str| ok_text(t, text);
        assert_eq!(d("Decimal(9, 2)", "1.5"), 150i32.to_le_bytes());
        assert_eq!(d("Decimal(9, 2)", "-1.239"), (-123i32).to_le_bytes());
        assert_eq!(d("Decimal(9, 2)", "3"), 300i32.to_le_bytes());
        assert_eq!(d("Decimal(9, 2)", ".5"), 50i32.to_le_bytes());
        assert_eq!(d("Decimal(9, 2)", "1e2"), 10000i32.to_le_bytes());
        assert_eq!(d("Decimal(9, 2)", "1.5e-1"), 15i32.to_le_bytes());
        assert_eq!(d("Decimal(9, 2)", "0.001"), 0i32.to_le_bytes());
        assert_eq!(
            d("Decimal(18, 4)", "12345.6789"),
            123456789i64.to_le_bytes()
        );
        assert_eq!(
            d("Decimal(38, 10)", "-12345678901234567890.5"),
            (-123456789012345678905000000000i128).to_le_bytes()
        );
        assert_eq!(d("Decimal(76, 0)", "-1"), [0xff; 32]);
        assert_eq!(d("Decimal(9, 2)", "9999999.99"), 999999999i32.to_le_bytes());
        assert!(text_bytes("Decimal(9, 2)", "10000000").is_err());
        assert!(text_bytes("Decimal(9, 2)", "abc").is_err());
        assert!(text_bytes("Decimal(9, 2)", "1.2.3").is_err());
        assert!(text_bytes("Decimal(9, 2)", "").is_err());
        assert_eq!(ok_json("Decimal(9, 2)", json!(0.1)), 10i32.to_le_bytes());
        assert_eq!(ok_json("Decimal(9, 2)", json!(-7)), (-700i32).to_le_bytes());
        assert_eq!(
            ok_json("Decimal(9, 2)", json!("2.25")),
            225i32.to_le_bytes()
        );
    }

    #[test]
    fn uuids() {
        let expected = [
            0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, 0x00, 0xff, 0xee, 0xdd, 0xcc, 0xbb,
            0xaa, 0x99,
        ];
        assert_eq!(
            ok_json("UUID", json!("11223344-5566-7788-99aa-bbccddeeff00")),
            expected
        );
        assert_eq!(
            ok_text("UUID", "112233445566778899AABBCCDDEEFF00"),
            expected
        );
        assert_eq!(
            ok_text("UUID", "{11223344-5566-7788-99aa-bbccddeeff00}"),
            expected
        );
        assert!(text_bytes("UUID", "11223344-5566-7788-99aa-bbccddeeff0").is_err());
        assert!(text_bytes("UUID", "11223344x5566-7788-99aa-bbccddeeff00").is_err());
        assert!(text_bytes("UUID", "g1223344-5566-7788-99aa-bbccddeeff00").is_err());
    }

    #[test]
    fn dates() {
        assert_eq!(ok_json("Date", json!("1970-01-02")), [1, 0]);
        assert_eq!(ok_json("Date", json!("2024-01-15")), 19737u16.to_le_bytes());
        assert_eq!(
            ok_text("Date", "2024-01-15 10:11:12"),
            19737u16.to_le_bytes()
        );
        assert_eq!(ok_json("Date", json!(19737)), 19737u16.to_le_bytes());
        assert!(text_bytes("Date", "1969-12-31").is_err());
        assert!(text_bytes("Date", "2024-02-30").is_err());
        assert!(text_bytes("Date", "15/01/2024").is_err());
        assert_eq!(ok_text("Date32", "1969-12-31"), (-1i32).to_le_bytes());
        assert_eq!(ok_text("Date32", "1900-01-01"), (-25567i32).to_le_bytes());
        assert!(text_bytes("Date32", "1899-12-31").is_err());
    }

    #[test]
    fn datetimes() {
        let t = 1_705_313_472u32; // 2024-01-15 10:11:12 UTC
        for text in [
            "2024-01-15 10:11:12",
            "2024-01-15T10:11:12",
            "2024-01-15T10:11:12Z",
            "2024-01-15T10:11:12.999Z",
            "2024-01-15T12:11:12+02:00",
            "2024-01-15T12:11:12+0200",
            "2024-01-15T09:11:12-01",
            "1705313472",
        ] {
            assert_eq!(ok_text("DateTime", text), t.to_le_bytes(), "{text}");
        }
        assert_eq!(ok_json("DateTime", json!(1705313472)), t.to_le_bytes());
        assert_eq!(
            ok_text("DateTime", "2024-01-15"),
            1_705_276_800u32.to_le_bytes()
        );
        assert_eq!(
            ok_text("DateTime('Europe/Madrid')", "1970-01-01 00:00:01"),
            [1, 0, 0, 0]
        );
        assert!(text_bytes("DateTime", "1969-12-31 23:59:59").is_err());
        assert!(text_bytes("DateTime", "2024-01-15 25:00:00").is_err());
        assert!(text_bytes("DateTime", "2024-01-15 10:11:12 junk").is_err());
        assert!(text_bytes("DateTime", "yesterday").is_err());

        let ms = 1_705_313_472_123i64;
        assert_eq!(
            ok_text("DateTime64(3)", "2024-01-15 10:11:12.123456"),
            ms.to_le_bytes()
        );
        assert_eq!(
            ok_text("DateTime64(3)", "2024-01-15T10:11:12.123Z"),
            ms.to_le_bytes()
        );
        assert_eq!(
            ok_text("DateTime64(6)", "2024-01-15T10:11:12.1Z"),
            1_705_313_472_100_000i64.to_le_bytes()
        );
        assert_eq!(
            ok_json("DateTime64(3)", json!(1705313472.123)),
            ms.to_le_bytes()
        );
        assert_eq!(
            ok_json("DateTime64(3)", json!(1705313472)),
            1_705_313_472_000i64.to_le_bytes()
        );
        assert_eq!(
            ok_text("DateTime64(3)", "1705313472.5"),
            1_705_313_472_500i64.to_le_bytes()
        );
        assert_eq!(
            ok_text("DateTime64(0)", "1969-12-31 23:59:59"),
            (-1i64).to_le_bytes()
        );
        assert_eq!(
            ok_text("DateTime64(3)", "1969-12-31 23:59:59.5"),
            (-500i64).to_le_bytes()
        );
    }

    #[test]
    fn ip_addresses() {
        assert_eq!(ok_text("IPv4", "1.2.3.4"), [4, 3, 2, 1]);
        assert_eq!(ok_json("IPv4", json!(16909060)), [4, 3, 2, 1]);
        assert!(text_bytes("IPv4", "1.2.3").is_err());
        let mut v6 = [0u8; 16];
        v6[0] = 0x20;
        v6[1] = 0x01;
        v6[2] = 0x0d;
        v6[3] = 0xb8;
        v6[15] = 1;
        assert_eq!(ok_text("IPv6", "2001:db8::1"), v6);
        let mut mapped = [0u8; 16];
        mapped[10] = 0xff;
        mapped[11] = 0xff;
        mapped[12..].copy_from_slice(&[1, 2, 3, 4]);
        assert_eq!(ok_text("IPv6", "1.2.3.4"), mapped);
        assert!(text_bytes("IPv6", "nope").is_err());
    }

    #[test]
    fn enums() {
        let e8 = "Enum8('a' = 1, 'b' = -2)";
        assert_eq!(ok_json(e8, json!("b")), [0xfe]);
        assert_eq!(ok_json(e8, json!(1)), [1]);
        assert_eq!(ok_text(e8, "-2"), [0xfe]);
        assert!(json_bytes(e8, json!("c")).is_err());
        assert!(json_bytes(e8, json!(3)).is_err());
        let e16 = "Enum16('x' = 1000)";
        assert_eq!(ok_json(e16, json!("x")), 1000i16.to_le_bytes());
    }

    #[test]
    fn nullable_and_nested() {
        assert_eq!(ok_json("Nullable(Int32)", json!(null)), [1]);
        assert_eq!(ok_json("Nullable(Int32)", json!(5)), [0, 5, 0, 0, 0]);
        assert_eq!(ok_text("Nullable(String)", "\\N"), [1]);
        assert_eq!(
            ok_json("LowCardinality(Nullable(String))", json!(null)),
            [1]
        );
        assert_eq!(ok_json("Array(UInt8)", json!([1, 2])), [2, 1, 2]);
        assert_eq!(
            ok_json("Array(Nullable(UInt8))", json!([null, 2])),
            [2, 1, 0, 2]
        );
        assert!(json_bytes("Array(UInt8)", json!([null])).is_err());
        assert!(json_bytes("Array(UInt8)", json!([1, 300])).is_err());
        assert_eq!(
            ok_json("Array(Array(String))", json!([["a"], []])),
            [2, 1, 1, b'a', 0]
        );
        assert_eq!(
            ok_json("Array(String)", json!("['a','b']")),
            [2, 1, b'a', 1, b'b']
        );
        assert_eq!(
            ok_json("Map(String, UInt8)", json!({"a": 1, "b": 2})),
            [2, 1, b'a', 1, 1, b'b', 2]
        );
        assert_eq!(
            ok_json("Map(UInt8, String)", json!({"7": "x"})),
            [1, 7, 1, b'x']
        );
        assert!(json_bytes("Map(UInt8, String)", json!({"x": "x"})).is_err());
        assert_eq!(
            ok_json("Tuple(String, UInt8)", json!(["a", 1])),
            [1, b'a', 1]
        );
        assert_eq!(
            ok_json("Tuple(s String, n UInt8)", json!({"n": 1, "s": "a"})),
            [1, b'a', 1]
        );
        assert!(json_bytes("Tuple(String, UInt8)", json!(["a"])).is_err());
        assert!(json_bytes("Array(UInt8)", json!(1)).is_err());
    }

    #[test]
    fn composite_text() {
        assert_eq!(ok_text("Array(String)", "['a','b']"), [2, 1, b'a', 1, b'b']);
        assert_eq!(
            ok_text("Array(String)", "[\"a\", \"b\"]"),
            [2, 1, b'a', 1, b'b']
        );
        assert_eq!(
            ok_text("Array(Int32)", "[1, -2]"),
            [2, 1, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff]
        );
        assert_eq!(ok_text("Array(Int32)", "[]"), [0]);
        assert_eq!(ok_text("Array(Nullable(Int8))", "[NULL,1]"), [2, 1, 0, 1]);
        assert_eq!(
            ok_text("Array(Array(UInt8))", "[[1],[2,3]]"),
            [2, 1, 1, 2, 2, 3]
        );
        assert_eq!(
            ok_text("Array(String)", r"['it\'s', 'a,b']"),
            b"\x02\x04it's\x03a,b".to_vec()
        );
        assert_eq!(ok_text("Map(String, UInt8)", "{'a':1}"), [1, 1, b'a', 1]);
        assert_eq!(ok_text("Tuple(String, UInt8)", "('a', 1)"), [1, b'a', 1]);
        assert_eq!(
            ok_text("Array(DateTime)", "['1970-01-01 00:00:02']"),
            [1, 2, 0, 0, 0]
        );
        assert!(text_bytes("Array(Int32)", "[1, 'x']").is_err());
        assert!(text_bytes("Array(Int32)", "1, 2").is_err());
        assert!(text_bytes("Array(Int32)", "[1, 2").is_err());
    }
}

//! Encoding a value the scanner found ([`Raw`]) as a column type, with exactly the result of
//! [`encode_json`] on the `serde_json::Value` serde_json would have built, but without building it
//! for what events are made of: strings, numbers, booleans, nulls and arrays of them. Objects, and
//! arrays bound for anything but an `Array` column, are parsed by serde_json and handed to
//! [`encode_json`] itself.

use roost_types::ChType;
use serde_json::Value;

use super::super::rowbinary::write_varint;
use super::super::value::{Reason, encode_json, encode_json_str, nested};
use super::scan::{Bail, Raw, Scanner, unescape};

/// Encodes a non-missing `raw` of `line` as `ty`.
pub(super) fn encode_raw(
    ty: &ChType,
    raw: Raw,
    line: &str,
    out: &mut Vec<u8>,
) -> Result<(), Reason> {
    match raw {
        Raw::Missing => Err("missing value".into()),
        Raw::Null => encode_json(ty, &Value::Null, out),
        Raw::Bool(b) => encode_json(ty, &Value::Bool(b), out),
        Raw::Number(n) => encode_json(ty, &Value::Number(n.to_number()), out),
        Raw::Str {
            start,
            end,
            escaped: false,
        } => encode_json_str(ty, &line[start..end], out),
        Raw::Str { start, end, .. } => {
            let text = unescape(&line[start..end]).ok_or("invalid escape")?;
            encode_json_str(ty, &text, out)
        }
        Raw::Array { .. } | Raw::Object { .. } => match ty {
            ChType::Nullable(inner) => {
                out.push(0);
                encode_raw(inner, raw, line, out)
            }
            ChType::LowCardinality(inner) => encode_raw(inner, raw, line, out),
            ChType::Array(inner) => match raw {
                Raw::Array { start, len, .. } => encode_items(inner, start, len, line, out),
                _ => encode_json(ty, &to_value(raw, line).map_err(|_| "invalid JSON")?, out),
            },
            _ => encode_json(ty, &to_value(raw, line).map_err(|_| "invalid JSON")?, out),
        },
    }
}

/// The `len` elements of the array at `start` as `inner`, after their count.
fn encode_items(
    inner: &ChType,
    start: usize,
    len: usize,
    line: &str,
    out: &mut Vec<u8>,
) -> Result<(), Reason> {
    write_varint(out, len as u64);
    let mut scanner = Scanner::new(line, start + 1);
    for i in 0..len {
        scanner.skip_ws();
        let item = scanner.value(1).map_err(|_| Reason::from("invalid JSON"))?;
        encode_raw(inner, item, line, out).map_err(|r| nested("element", i, r))?;
        scanner.skip_ws();
        // The ',' or ']' after the element; the scanner has already checked which.
        scanner.pos += 1;
    }
    Ok(())
}

/// The `serde_json::Value` of `raw`.
pub(super) fn to_value(raw: Raw, line: &str) -> Result<Value, Bail> {
    Ok(match raw {
        Raw::Missing | Raw::Null => Value::Null,
        Raw::Bool(b) => Value::Bool(b),
        Raw::Number(n) => Value::Number(n.to_number()),
        Raw::Str {
            start,
            end,
            escaped: false,
        } => Value::String(line[start..end].to_owned()),
        Raw::Str { start, end, .. } => Value::String(unescape(&line[start..end]).ok_or(Bail)?),
        Raw::Array { start, end, .. } | Raw::Object { start, end } => {
            serde_json::from_str(&line[start..end]).map_err(|_| Bail)?
        }
    })
}

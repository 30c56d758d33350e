//! Encoding a value the scanner found ([`Raw`]) as a column type, with exactly the result of
//! [`encode_json`] on the `serde_json::Value` serde_json would have built, but without building it
//! for what events are made of: strings, numbers, booleans, nulls and arrays of them. Objects, and
//! arrays bound for anything but an `Array` column, are parsed by serde_json and handed to
//! [`encode_json`] itself.

use roost_types::ChType;
use serde_json::Value;

use super::super::rowbinary::{write_bytes, write_varint};
use super::super::value::{Reason, encode_json, encode_json_str, nested};
use super::scan::{Bail, Num, Raw, Scanner, unescape};

/// Column types events mostly hold, with the values they mostly get, encoded without the general
/// dispatch of [`encode_raw`]; anything else takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Leaf {
    String,
    /// An integer type: its width in bytes and signedness (up to 64 bits).
    Int {
        bytes: usize,
        signed: bool,
    },
    Float64,
    Float32,
    /// `Array(String)`.
    Strings,
    Other,
}

impl Leaf {
    pub(super) fn of(ty: &ChType) -> Leaf {
        match ty {
            ChType::String => Leaf::String,
            ChType::UInt8 => Leaf::Int {
                bytes: 1,
                signed: false,
            },
            ChType::UInt16 => Leaf::Int {
                bytes: 2,
                signed: false,
            },
            ChType::UInt32 => Leaf::Int {
                bytes: 4,
                signed: false,
            },
            ChType::UInt64 => Leaf::Int {
                bytes: 8,
                signed: false,
            },
            ChType::Int8 => Leaf::Int {
                bytes: 1,
                signed: true,
            },
            ChType::Int16 => Leaf::Int {
                bytes: 2,
                signed: true,
            },
            ChType::Int32 => Leaf::Int {
                bytes: 4,
                signed: true,
            },
            ChType::Int64 => Leaf::Int {
                bytes: 8,
                signed: true,
            },
            ChType::Float64 => Leaf::Float64,
            ChType::Float32 => Leaf::Float32,
            ChType::Array(inner) if **inner == ChType::String => Leaf::Strings,
            _ => Leaf::Other,
        }
    }

    /// Encodes `raw` when it is a value this leaf has a shortcut for (one [`encode_raw`] would
    /// encode the same way); false, with nothing written, otherwise.
    #[inline]
    pub(super) fn encode(self, raw: Raw, line: &str, out: &mut Vec<u8>) -> bool {
        match (self, raw) {
            (
                Leaf::String,
                Raw::Str {
                    start,
                    end,
                    escaped: false,
                },
            ) => write_bytes(out, &line.as_bytes()[start..end]),
            (Leaf::Int { bytes, signed }, Raw::Number(Num::U64(v))) => {
                let max = if signed {
                    u64::MAX >> (65 - 8 * bytes as u32)
                } else {
                    u64::MAX >> (64 - 8 * bytes as u32)
                };
                if v > max {
                    return false;
                }
                out.extend_from_slice(&v.to_le_bytes()[..bytes]);
            }
            (
                Leaf::Int {
                    bytes,
                    signed: true,
                },
                Raw::Number(Num::I64(v)),
            ) => {
                let min = i64::MIN >> (64 - 8 * bytes as u32);
                if v < min {
                    return false;
                }
                out.extend_from_slice(&v.to_le_bytes()[..bytes]);
            }
            (Leaf::Float64, Raw::Number(n)) => out.extend_from_slice(&n.as_f64().to_le_bytes()),
            (Leaf::Float32, Raw::Number(n)) => {
                out.extend_from_slice(&(n.as_f64() as f32).to_le_bytes());
            }
            (Leaf::Strings, Raw::Array { start, len, .. }) => {
                let before = out.len();
                write_varint(out, len as u64);
                let mut scanner = Scanner::new(line, start + 1);
                for _ in 0..len {
                    scanner.skip_ws();
                    match scanner.value(1) {
                        Ok(Raw::Str {
                            start,
                            end,
                            escaped: false,
                        }) => write_bytes(out, &line.as_bytes()[start..end]),
                        _ => {
                            out.truncate(before);
                            return false;
                        }
                    }
                    scanner.skip_ws();
                    // The ',' or ']' after the element; the scanner has already checked which.
                    scanner.pos += 1;
                }
            }
            _ => return false,
        }
        true
    }
}

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

//! ClickHouse `Native` blocks built from per-column RowBinary values.
//!
//! The decoders encode each column's values in RowBinary into a buffer of its own. For strings and
//! fixed-size types (most columns) RowBinary values laid end to end already are the column's Native
//! data, so those buffers are copied as they are; `Nullable`, `Array`, `Map` and `Tuple` columns are
//! re-laid (null map first, array offsets first, one stream per tuple element).
//!
//! `LowCardinality` has a serialization of its own in Native; the block declares the plain type
//! instead and the engine converts it on insert (`input_format_native_allow_types_conversion`,
//! on by default), as it does for any type that differs from the table's.
//!
//! Block layout (the Native format without the protocol's block info): the column count and the
//! row count as varints, then per column its name, its type name and its data.
//!
//! Blocks of several batches for one table are merged into one ([`merge_blocks`]) by reading each
//! column's layout back from its declared type: the same walk as building, over Native data.

use roost_types::{ChType, Column};

use super::rowbinary::{write_bytes, write_varint};

/// Values of a column did not parse as RowBinary of its type: a bug in an encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Malformed;

/// Appends one Native block of `rows` rows: `values[i]` holds the RowBinary values of `columns[i]`.
pub(super) fn write_block(
    columns: &[&Column],
    values: &[Vec<u8>],
    rows: u64,
    out: &mut Vec<u8>,
) -> Result<(), Malformed> {
    let total: usize = values.iter().map(Vec::len).sum();
    out.reserve(total + rows as usize * 8 + 64 * columns.len());
    write_varint(out, columns.len() as u64);
    write_varint(out, rows);
    for (column, data) in columns.iter().zip(values) {
        write_bytes(out, column.name.as_bytes());
        write_bytes(out, native_type(&column.ty).to_string().as_bytes());
        let mut builder = Builder::new(&column.ty);
        if let Builder::Fixed { .. } | Builder::String { .. } = builder {
            out.extend_from_slice(data);
            continue;
        }
        let mut input = data.as_slice();
        for _ in 0..rows {
            builder.read(&mut input)?;
        }
        if !input.is_empty() {
            return Err(Malformed);
        }
        builder.write(out);
    }
    Ok(())
}

/// Joins Native blocks that declare the same columns (names and types, in order) into one block,
/// as [`write_block`] would have written their rows together. The engine stores one large block
/// as it comes, where several small ones are first squashed into one (a copy of every column).
pub(super) fn merge_blocks<'a>(
    inputs: impl IntoIterator<Item = &'a [u8]>,
    out: &mut Vec<u8>,
) -> Result<(), Malformed> {
    let mut blocks = Vec::new();
    let mut bytes = 0;
    for mut input in inputs {
        bytes += input.len();
        while !input.is_empty() {
            blocks.push(read_block(&mut input)?);
        }
    }
    let Some(first) = blocks.first() else {
        return Ok(());
    };
    let same_columns = |block: &Block| {
        block.columns.len() == first.columns.len()
            && block
                .columns
                .iter()
                .zip(&first.columns)
                .all(|(a, b)| (a.name, a.type_name) == (b.name, b.type_name))
    };
    if !blocks.iter().all(same_columns) {
        return Err(Malformed);
    }
    out.reserve(bytes);
    write_varint(out, first.columns.len() as u64);
    write_varint(out, blocks.iter().map(|block| block.rows).sum());
    for (index, column) in first.columns.iter().enumerate() {
        write_bytes(out, column.name);
        write_bytes(out, column.type_name);
        let parts: Vec<Part> = blocks
            .iter()
            .map(|block| Part {
                data: block.columns[index].data,
                rows: block.rows,
            })
            .collect();
        merge_column(&column.ty, &parts, out)?;
    }
    Ok(())
}

/// A Native block read in place.
struct Block<'a> {
    rows: u64,
    columns: Vec<BlockColumn<'a>>,
}

struct BlockColumn<'a> {
    name: &'a [u8],
    type_name: &'a [u8],
    ty: ChType,
    data: &'a [u8],
}

/// One block's data of a column (or a nested stream): exactly `rows` values, nothing after them.
#[derive(Clone, Copy)]
struct Part<'a> {
    data: &'a [u8],
    rows: u64,
}

fn read_block<'a>(input: &mut &'a [u8]) -> Result<Block<'a>, Malformed> {
    let count = read_varint(input).ok_or(Malformed)?;
    let rows = read_varint(input).ok_or(Malformed)?;
    let mut columns = Vec::new();
    for _ in 0..count {
        let name = read_string(input).ok_or(Malformed)?;
        let type_name = read_string(input).ok_or(Malformed)?;
        let ty: ChType = std::str::from_utf8(type_name)
            .ok()
            .and_then(|name| name.parse().ok())
            .ok_or(Malformed)?;
        let length = column_length(&ty, rows, input).ok_or(Malformed)?;
        let data = take(input, length).ok_or(Malformed)?;
        columns.push(BlockColumn {
            name,
            type_name,
            ty,
            data,
        });
    }
    Ok(Block { rows, columns })
}

/// The length of `rows` values of `ty` laid out as a Native column at the start of `data`; None
/// when they do not fit, or for `LowCardinality`, which our blocks never declare.
fn column_length(ty: &ChType, rows: u64, data: &[u8]) -> Option<usize> {
    let count = usize::try_from(rows).ok()?;
    if let Some(width) = fixed_width(ty) {
        let length = width.checked_mul(count)?;
        return (data.len() >= length).then_some(length);
    }
    match ty {
        ChType::String => {
            let mut rest = data;
            for _ in 0..rows {
                read_string(&mut rest)?;
            }
            Some(data.len() - rest.len())
        }
        ChType::Nullable(inner) => {
            let nested = data.get(count..)?;
            Some(count + column_length(inner, rows, nested)?)
        }
        ChType::Array(_) | ChType::Map(..) => {
            let (offsets, elements) = array_offsets(data, count)?;
            let nested = &data[offsets.len()..];
            Some(offsets.len() + streams_length(&stream_types(ty), elements, nested)?)
        }
        ChType::Tuple(_) => streams_length(&stream_types(ty), rows, data),
        _ => None,
    }
}

/// The length of streams of `types` laid end to end, each `rows` values long.
fn streams_length(types: &[&ChType], rows: u64, data: &[u8]) -> Option<usize> {
    let mut length = 0;
    for ty in types {
        length += column_length(ty, rows, data.get(length..)?)?;
    }
    Some(length)
}

/// An array column's offsets (one cumulative UInt64 per row) and the number of elements.
fn array_offsets(data: &[u8], rows: usize) -> Option<(&[u8], u64)> {
    let offsets = data.get(..rows.checked_mul(8)?)?;
    let elements = match offsets.last_chunk::<8>() {
        Some(last) => u64::from_le_bytes(*last),
        None => 0,
    };
    Some((offsets, elements))
}

/// The streams laid end to end in a column of `ty`: a tuple's elements, an array's elements or a
/// map's keys then its values (after the offsets).
fn stream_types(ty: &ChType) -> Vec<&ChType> {
    match ty {
        ChType::Array(inner) => vec![inner],
        ChType::Map(key, value) => vec![key, value],
        ChType::Tuple(elements) => elements.iter().map(|(_, ty)| ty).collect(),
        _ => Vec::new(),
    }
}

/// Appends the values of every part of a column of type `ty`, in order, as one column.
fn merge_column(ty: &ChType, parts: &[Part], out: &mut Vec<u8>) -> Result<(), Malformed> {
    if fixed_width(ty).is_some() || *ty == ChType::String {
        parts
            .iter()
            .for_each(|part| out.extend_from_slice(part.data));
        return Ok(());
    }
    match ty {
        ChType::Nullable(inner) => {
            let mut nested = Vec::with_capacity(parts.len());
            for part in parts {
                let count = usize::try_from(part.rows).map_err(|_| Malformed)?;
                let (nulls, rest) = part.data.split_at_checked(count).ok_or(Malformed)?;
                out.extend_from_slice(nulls);
                nested.push(Part {
                    data: rest,
                    rows: part.rows,
                });
            }
            merge_column(inner, &nested, out)
        }
        ChType::Array(_) | ChType::Map(..) => {
            let mut nested = Vec::with_capacity(parts.len());
            let mut base = 0u64;
            for part in parts {
                let count = usize::try_from(part.rows).map_err(|_| Malformed)?;
                let (offsets, elements) = array_offsets(part.data, count).ok_or(Malformed)?;
                for offset in offsets.chunks_exact(8) {
                    let offset = u64::from_le_bytes(offset.try_into().map_err(|_| Malformed)?);
                    let rebased = base.checked_add(offset).ok_or(Malformed)?;
                    out.extend_from_slice(&rebased.to_le_bytes());
                }
                base = base.checked_add(elements).ok_or(Malformed)?;
                nested.push(Part {
                    data: &part.data[offsets.len()..],
                    rows: elements,
                });
            }
            merge_streams(&stream_types(ty), &nested, out)
        }
        ChType::Tuple(_) => merge_streams(&stream_types(ty), parts, out),
        _ => Err(Malformed),
    }
}

/// Merges parts that each hold streams of `types` laid end to end, stream by stream.
fn merge_streams(types: &[&ChType], parts: &[Part], out: &mut Vec<u8>) -> Result<(), Malformed> {
    if let [only] = types {
        // An array's elements: each part is that one stream, measured when its block was read.
        return merge_column(only, parts, out);
    }
    let mut rests: Vec<Part> = parts.to_vec();
    for ty in types {
        let mut streams = Vec::with_capacity(parts.len());
        for rest in &mut rests {
            let length = column_length(ty, rest.rows, rest.data).ok_or(Malformed)?;
            let (stream, after) = rest.data.split_at(length);
            streams.push(Part {
                data: stream,
                rows: rest.rows,
            });
            rest.data = after;
        }
        merge_column(ty, &streams, out)?;
    }
    Ok(())
}

fn read_string<'a>(input: &mut &'a [u8]) -> Option<&'a [u8]> {
    let length = read_varint(input)?;
    take(input, usize::try_from(length).ok()?)
}

/// Splits rows of `RowBinaryWithDefaults` into each column's RowBinary values (without the
/// defaults flags, which must be 0: a Native block has no per-value defaults).
pub(super) fn split_rows(
    columns: &[&Column],
    mut rows: &[u8],
    values: &mut [Vec<u8>],
) -> Result<(), Malformed> {
    while !rows.is_empty() {
        for (column, out) in columns.iter().zip(values.iter_mut()) {
            let (flag, rest) = rows.split_first().ok_or(Malformed)?;
            if *flag != 0 {
                return Err(Malformed);
            }
            let length = value_length(&column.ty, rest).ok_or(Malformed)?;
            out.extend_from_slice(&rest[..length]);
            rows = &rest[length..];
        }
    }
    Ok(())
}

/// The type a Native block declares for `ty`: `ty` without `LowCardinality`.
pub(super) fn native_type(ty: &ChType) -> ChType {
    match ty {
        ChType::LowCardinality(inner) => native_type(inner),
        ChType::Nullable(inner) => ChType::Nullable(Box::new(native_type(inner))),
        ChType::Array(inner) => ChType::Array(Box::new(native_type(inner))),
        ChType::Map(key, value) => {
            ChType::Map(Box::new(native_type(key)), Box::new(native_type(value)))
        }
        ChType::Tuple(elements) => ChType::Tuple(
            elements
                .iter()
                .map(|(name, ty)| (name.clone(), native_type(ty)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Bytes of one RowBinary value of a fixed-size type; None for variable-size types.
fn fixed_width(ty: &ChType) -> Option<usize> {
    Some(match ty {
        ChType::UInt8 | ChType::Int8 | ChType::Bool | ChType::Enum8(_) => 1,
        ChType::UInt16 | ChType::Int16 | ChType::Date | ChType::Enum16(_) => 2,
        ChType::UInt32
        | ChType::Int32
        | ChType::Float32
        | ChType::Date32
        | ChType::DateTime(_)
        | ChType::IPv4 => 4,
        ChType::UInt64 | ChType::Int64 | ChType::Float64 | ChType::DateTime64(..) => 8,
        ChType::UInt128 | ChType::Int128 | ChType::Uuid | ChType::IPv6 => 16,
        ChType::UInt256 | ChType::Int256 => 32,
        ChType::Decimal { precision, .. } => match precision {
            0..=9 => 4,
            10..=18 => 8,
            19..=38 => 16,
            _ => 32,
        },
        ChType::FixedString(n) => *n,
        _ => return None,
    })
}

/// The length of the RowBinary value of `ty` at the start of `input`.
fn value_length(ty: &ChType, input: &[u8]) -> Option<usize> {
    if let Some(width) = fixed_width(ty) {
        return (input.len() >= width).then_some(width);
    }
    let mut rest = input;
    match ty {
        ChType::LowCardinality(inner) => return value_length(inner, input),
        ChType::String => {
            read_string(&mut rest)?;
        }
        ChType::Nullable(inner) => {
            let (flag, after) = rest.split_first()?;
            rest = after;
            if *flag == 0 {
                skip(&mut rest, inner)?;
            }
        }
        ChType::Array(inner) => {
            for _ in 0..read_varint(&mut rest)? {
                skip(&mut rest, inner)?;
            }
        }
        ChType::Map(key, value) => {
            for _ in 0..read_varint(&mut rest)? {
                skip(&mut rest, key)?;
                skip(&mut rest, value)?;
            }
        }
        ChType::Tuple(elements) => {
            for (_, element) in elements {
                skip(&mut rest, element)?;
            }
        }
        _ => return None,
    }
    Some(input.len() - rest.len())
}

/// Moves `input` past one RowBinary value of `ty`.
fn skip(input: &mut &[u8], ty: &ChType) -> Option<()> {
    let length = value_length(ty, input)?;
    take(input, length).map(|_| ())
}

fn read_varint(input: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (byte, rest) = input.split_first()?;
        *input = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

fn take<'a>(input: &mut &'a [u8], length: usize) -> Option<&'a [u8]> {
    if input.len() < length {
        return None;
    }
    let (taken, rest) = input.split_at(length);
    *input = rest;
    Some(taken)
}

/// One column (or nested stream) of a Native block, filled value by value from RowBinary.
enum Builder {
    Fixed {
        width: usize,
        data: Vec<u8>,
    },
    String {
        data: Vec<u8>,
    },
    Nullable {
        nulls: Vec<u8>,
        inner: Box<Builder>,
    },
    /// Arrays and maps (an array of key-value tuples): cumulative UInt64 offsets, then elements.
    Array {
        offsets: Vec<u8>,
        total: u64,
        inner: Box<Builder>,
    },
    Tuple {
        elements: Vec<Builder>,
    },
}

impl Builder {
    fn new(ty: &ChType) -> Builder {
        if let Some(width) = fixed_width(ty) {
            return Builder::Fixed {
                width,
                data: Vec::new(),
            };
        }
        match ty {
            ChType::LowCardinality(inner) => Builder::new(inner),
            ChType::Nullable(inner) => Builder::Nullable {
                nulls: Vec::new(),
                inner: Box::new(Builder::new(inner)),
            },
            ChType::Array(inner) => Builder::Array {
                offsets: Vec::new(),
                total: 0,
                inner: Box::new(Builder::new(inner)),
            },
            ChType::Map(key, value) => Builder::Array {
                offsets: Vec::new(),
                total: 0,
                inner: Box::new(Builder::Tuple {
                    elements: vec![Builder::new(key), Builder::new(value)],
                }),
            },
            ChType::Tuple(elements) => Builder::Tuple {
                elements: elements.iter().map(|(_, ty)| Builder::new(ty)).collect(),
            },
            // Strings, and the JSON type the decoders refuse before getting here.
            _ => Builder::String { data: Vec::new() },
        }
    }

    /// Moves one RowBinary value from the front of `input` into the column.
    fn read(&mut self, input: &mut &[u8]) -> Result<(), Malformed> {
        match self {
            Builder::Fixed { width, data } => {
                data.extend_from_slice(take(input, *width).ok_or(Malformed)?);
            }
            Builder::String { data } => {
                let before = *input;
                read_string(input).ok_or(Malformed)?;
                data.extend_from_slice(&before[..before.len() - input.len()]);
            }
            Builder::Nullable { nulls, inner } => {
                let flag = *take(input, 1).ok_or(Malformed)?.first().ok_or(Malformed)?;
                nulls.push(flag);
                if flag == 0 {
                    inner.read(input)?;
                } else {
                    inner.push_default();
                }
            }
            Builder::Array {
                offsets,
                total,
                inner,
            } => {
                let count = read_varint(input).ok_or(Malformed)?;
                for _ in 0..count {
                    inner.read(input)?;
                }
                *total += count;
                offsets.extend_from_slice(&total.to_le_bytes());
            }
            Builder::Tuple { elements } => {
                for element in elements {
                    element.read(input)?;
                }
            }
        }
        Ok(())
    }

    /// The value a NULL row holds in the nested column: zeros, an empty string or array.
    fn push_default(&mut self) {
        match self {
            Builder::Fixed { width, data } => data.resize(data.len() + *width, 0),
            Builder::String { data } => data.push(0),
            Builder::Nullable { nulls, inner } => {
                nulls.push(1);
                inner.push_default();
            }
            Builder::Array { offsets, total, .. } => {
                offsets.extend_from_slice(&total.to_le_bytes());
            }
            Builder::Tuple { elements } => elements.iter_mut().for_each(Builder::push_default),
        }
    }

    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Builder::Fixed { data, .. } | Builder::String { data } => out.extend_from_slice(data),
            Builder::Nullable { nulls, inner } => {
                out.extend_from_slice(nulls);
                inner.write(out);
            }
            Builder::Array { offsets, inner, .. } => {
                out.extend_from_slice(offsets);
                inner.write(out);
            }
            Builder::Tuple { elements } => elements.iter().for_each(|e| e.write(out)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use roost_types::parse_schema;

    fn block(schema: &str, rows: u64, values: Vec<Vec<u8>>) -> Vec<u8> {
        let columns = parse_schema(schema).unwrap();
        let refs: Vec<&Column> = columns.iter().collect();
        let mut out = Vec::new();
        write_block(&refs, &values, rows, &mut out).unwrap();
        out
    }

    #[test]
    fn plain_columns_are_copied() {
        let out = block(
            "a UInt16, s LowCardinality(String)",
            2,
            vec![vec![1, 0, 2, 0], vec![1, b'x', 0]],
        );
        let mut expected = vec![2, 2, 1, b'a', 6];
        expected.extend_from_slice(b"UInt16");
        expected.extend_from_slice(&[1, 0, 2, 0, 1, b's', 6]);
        expected.extend_from_slice(b"String");
        expected.extend_from_slice(&[1, b'x', 0]);
        assert_eq!(out, expected);
    }

    #[test]
    fn nullable_array_map_and_tuple_are_relaid() {
        // Nullable(UInt8): [NULL, 7]
        let out = block("n Nullable(UInt8)", 2, vec![vec![1, 0, 7]]);
        assert!(out.ends_with(&[1, 0, 0, 7]), "{out:?}");
        // Array(Nullable(String)): [['a', NULL], []]
        let out = block(
            "a Array(Nullable(String))",
            2,
            vec![vec![2, 0, 1, b'a', 1, 0]],
        );
        let mut data = 2u64.to_le_bytes().to_vec();
        data.extend_from_slice(&2u64.to_le_bytes());
        data.extend_from_slice(&[0, 1, 1, b'a', 0]);
        assert!(out.ends_with(&data), "{out:?}");
        // Map(String, UInt8): {'k': 1}
        let out = block("m Map(String, UInt8)", 1, vec![vec![1, 1, b'k', 1]]);
        let mut data = 1u64.to_le_bytes().to_vec();
        data.extend_from_slice(&[1, b'k', 1]);
        assert!(out.ends_with(&data), "{out:?}");
        // Tuple(String, UInt8): ('a', 1), ('b', 2)
        let out = block(
            "t Tuple(String, UInt8)",
            2,
            vec![vec![1, b'a', 1, 1, b'b', 2]],
        );
        assert!(out.ends_with(&[1, b'a', 1, b'b', 1, 2]), "{out:?}");
    }

    #[test]
    fn malformed_values_are_reported() {
        let columns = parse_schema("a Array(UInt8)").unwrap();
        let refs: Vec<&Column> = columns.iter().collect();
        let mut out = Vec::new();
        assert_eq!(
            write_block(&refs, &[vec![3, 1]], 1, &mut out),
            Err(Malformed)
        );
        assert_eq!(
            write_block(&refs, &[vec![1, 1, 9]], 1, &mut out),
            Err(Malformed)
        );
    }

    #[test]
    fn rows_split_into_columns() {
        let columns =
            parse_schema("a Nullable(String), b Array(UInt16), c Tuple(String, UInt8)").unwrap();
        let refs: Vec<&Column> = columns.iter().collect();
        let mut values = vec![Vec::new(); 3];
        let row = [0, 0, 1, b'x', 0, 1, 5, 0, 0, 0, 7];
        split_rows(&refs, &row, &mut values).unwrap();
        assert_eq!(values, [vec![0, 1, b'x'], vec![1, 5, 0], vec![0, 7]]);
        assert!(split_rows(&refs, &[1, 0, 0], &mut values).is_err());
        assert!(split_rows(&refs, &row[..row.len() - 1], &mut values).is_err());
        assert_eq!(
            native_type(
                &"Map(LowCardinality(String), Array(LowCardinality(Nullable(String))))"
                    .parse()
                    .unwrap()
            )
            .to_string(),
            "Map(String, Array(Nullable(String)))"
        );
    }
}

//! The schema of a Parquet file, read from its footer: each top-level field becomes a column
//! named as the field (the engine matches Parquet columns by name on insert) with the
//! ClickHouse type the engine reads that Parquet type as.

use bytes::Bytes;
use parquet::basic::{ConvertedType, LogicalType, Repetition, TimeUnit, Type as Physical};
use parquet::file::metadata::ParquetMetaDataReader;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::schema::types::Type;
use roost_types::{ChType, Column, validate_column_name};
use serde_json::Value;

use super::{Analysis, AnalyzeError, PREVIEW_ROWS, share};

pub(super) fn analyze(data: &[u8]) -> Result<Analysis, AnalyzeError> {
    let data = Bytes::copy_from_slice(data);
    let metadata = ParquetMetaDataReader::new()
        .parse_and_finish(&data)
        .map_err(|e| AnalyzeError::Unusable(format!("Invalid Parquet file: {e}")))?;
    let rows = metadata.file_metadata().num_rows().max(0) as u64;
    let root = metadata.file_metadata().schema_descr().root_schema();
    let mut columns = Vec::new();
    let mut present = Vec::new();
    for field in root.get_fields() {
        let name = field.name();
        validate_column_name(name).map_err(|e| {
            AnalyzeError::Unusable(format!(
                "The Parquet column '{name}' cannot be a column name ({e}); pass a schema"
            ))
        })?;
        columns.push(Column::new(name.to_string(), field_type(field)));
        let nulls = (field.is_primitive() && field.is_optional())
            .then(|| {
                metadata
                    .row_groups()
                    .iter()
                    .map(|group| {
                        group
                            .columns()
                            .iter()
                            .find(|c| c.column_path().parts() == [name])
                            .and_then(|c| c.statistics())
                            .and_then(|s| s.null_count_opt())
                    })
                    .sum::<Option<u64>>()
            })
            .flatten()
            .unwrap_or(0);
        present.push(share(rows.saturating_sub(nulls) as usize, rows as usize));
    }
    Ok(Analysis {
        columns,
        present,
        preview: preview(data),
        dialect: None,
        sampled_rows: rows,
    })
}

/// The first rows, or none when they cannot be read (a compression this build lacks): the
/// schema alone is what creating a data source needs.
fn preview(data: Bytes) -> Vec<Value> {
    let rows = SerializedFileReader::new(data).and_then(|reader| {
        reader
            .get_row_iter(None)?
            .take(PREVIEW_ROWS)
            .map(|row| row.map(|row| row.to_json_value()))
            .collect::<Result<Vec<_>, _>>()
    });
    rows.unwrap_or_else(|error| {
        tracing::debug!(%error, "no preview of a Parquet file");
        Vec::new()
    })
}

/// The column type of a field, Nullable when the field is optional and the type allows it,
/// an Array when the field repeats.
fn field_type(field: &Type) -> ChType {
    let base = if field.is_primitive() {
        primitive_type(field)
    } else {
        group_type(field)
    };
    let info = field.get_basic_info();
    if !info.has_repetition() {
        return base;
    }
    match info.repetition() {
        Repetition::REPEATED => ChType::Array(Box::new(base)),
        Repetition::OPTIONAL if can_be_nullable(&base) => base.nullable(),
        _ => base,
    }
}

fn can_be_nullable(ty: &ChType) -> bool {
    !matches!(
        ty,
        ChType::Array(_) | ChType::Map(..) | ChType::Tuple(_) | ChType::Nullable(_)
    )
}

fn is_list(field: &Type) -> bool {
    let info = field.get_basic_info();
    matches!(info.logical_type_ref(), Some(LogicalType::List))
        || info.converted_type() == ConvertedType::LIST
}

fn is_map(field: &Type) -> bool {
    let info = field.get_basic_info();
    matches!(info.logical_type_ref(), Some(LogicalType::Map))
        || matches!(
            info.converted_type(),
            ConvertedType::MAP | ConvertedType::MAP_KEY_VALUE
        )
}

/// A group: a LIST (Array), a MAP (Map) or a struct (a named Tuple).
fn group_type(field: &Type) -> ChType {
    let fields = field.get_fields();
    let single_repeated = match fields {
        [only] if only.get_basic_info().repetition() == Repetition::REPEATED => Some(only),
        _ => None,
    };
    if is_list(field)
        && let Some(repeated) = single_repeated
    {
        // The standard three levels (`list` group of one `element`) or a legacy two-level
        // list whose repeated field is the element itself.
        let element = match repeated.get_fields() {
            [element]
                if repeated.is_group()
                    && repeated.name() != "array"
                    && !repeated.name().ends_with("_tuple") =>
            {
                field_type(element)
            }
            _ if repeated.is_primitive() => primitive_type(repeated),
            _ => group_type(repeated),
        };
        return ChType::Array(Box::new(element));
    }
    if is_map(field)
        && let Some(entries) = single_repeated
        && let [key, value] = entries.get_fields()
    {
        let key = field_type(key).unwrap_nullable().clone();
        return ChType::Map(Box::new(key), Box::new(field_type(value)));
    }
    ChType::Tuple(
        fields
            .iter()
            .map(|f| (Some(f.name().to_string()), field_type(f)))
            .collect(),
    )
}

/// A leaf's type: its logical type, else its legacy converted type, else its physical type.
fn primitive_type(field: &Type) -> ChType {
    let info = field.get_basic_info();
    let physical = field.get_physical_type();
    let decimal = |precision: i32, scale: i32| match (u8::try_from(precision), u8::try_from(scale))
    {
        (Ok(precision @ 1..=76), Ok(scale)) if scale <= precision => {
            ChType::Decimal { precision, scale }
        }
        _ => ChType::String,
    };
    let timestamp = |unit: &TimeUnit| {
        let precision = match unit {
            TimeUnit::MILLIS => 3,
            TimeUnit::MICROS => 6,
            TimeUnit::NANOS => 9,
        };
        ChType::DateTime64(precision, None)
    };
    if let Some(logical) = info.logical_type_ref() {
        let from_logical = match logical {
            LogicalType::String | LogicalType::Enum | LogicalType::Json | LogicalType::Bson => {
                Some(ChType::String)
            }
            LogicalType::Uuid => Some(ChType::Uuid),
            LogicalType::Decimal(d) => Some(decimal(d.precision, d.scale)),
            LogicalType::Date => Some(ChType::Date32),
            LogicalType::Timestamp(t) => Some(timestamp(&t.unit)),
            LogicalType::Time(t) => Some(match t.unit {
                TimeUnit::MILLIS => ChType::Int32,
                _ => ChType::Int64,
            }),
            LogicalType::Integer(int) => integer(int.bit_width, int.is_signed),
            LogicalType::Float16 => Some(ChType::Float32),
            _ => None,
        };
        if let Some(ty) = from_logical {
            return ty;
        }
    }
    let from_converted = match info.converted_type() {
        ConvertedType::UTF8 | ConvertedType::ENUM | ConvertedType::JSON | ConvertedType::BSON => {
            Some(ChType::String)
        }
        ConvertedType::DECIMAL => Some(decimal(field.get_precision(), field.get_scale())),
        ConvertedType::DATE => Some(ChType::Date32),
        ConvertedType::TIME_MILLIS => Some(ChType::Int32),
        ConvertedType::TIME_MICROS => Some(ChType::Int64),
        ConvertedType::TIMESTAMP_MILLIS => Some(timestamp(&TimeUnit::MILLIS)),
        ConvertedType::TIMESTAMP_MICROS => Some(timestamp(&TimeUnit::MICROS)),
        ConvertedType::UINT_8 => integer(8, false),
        ConvertedType::UINT_16 => integer(16, false),
        ConvertedType::UINT_32 => integer(32, false),
        ConvertedType::UINT_64 => integer(64, false),
        ConvertedType::INT_8 => integer(8, true),
        ConvertedType::INT_16 => integer(16, true),
        ConvertedType::INT_32 => integer(32, true),
        ConvertedType::INT_64 => integer(64, true),
        _ => None,
    };
    if let Some(ty) = from_converted {
        return ty;
    }
    match physical {
        Physical::BOOLEAN => ChType::Bool,
        Physical::INT32 => ChType::Int32,
        Physical::INT64 => ChType::Int64,
        // Legacy nanosecond timestamps (Impala, Spark).
        Physical::INT96 => ChType::DateTime64(9, None),
        Physical::FLOAT => ChType::Float32,
        Physical::DOUBLE => ChType::Float64,
        Physical::BYTE_ARRAY => ChType::String,
        Physical::FIXED_LEN_BYTE_ARRAY => match field {
            Type::PrimitiveType { type_length, .. } if *type_length > 0 => {
                ChType::FixedString(*type_length as usize)
            }
            _ => ChType::String,
        },
    }
}

fn integer(bits: i8, signed: bool) -> Option<ChType> {
    Some(match (bits, signed) {
        (8, true) => ChType::Int8,
        (16, true) => ChType::Int16,
        (32, true) => ChType::Int32,
        (64, true) => ChType::Int64,
        (8, false) => ChType::UInt8,
        (16, false) => ChType::UInt16,
        (32, false) => ChType::UInt32,
        (64, false) => ChType::UInt64,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::parser::parse_message_type;

    use super::*;

    /// A Parquet file of `schema` with no rows.
    fn empty_file(schema: &str) -> Vec<u8> {
        let schema = Arc::new(parse_message_type(schema).unwrap());
        let mut out = Vec::new();
        let writer =
            SerializedFileWriter::new(&mut out, schema, Arc::new(WriterProperties::default()))
                .unwrap();
        writer.close().unwrap();
        out
    }

    #[test]
    fn parquet_types_map_to_clickhouse_types() {
        let file = empty_file(
            "message m {
                required int64 id;
                optional binary name (STRING);
                required int32 small (INTEGER(8, false));
                optional int64 at (TIMESTAMP(MICROS, true));
                required int32 day (DATE);
                optional fixed_len_byte_array(16) key (UUID);
                required fixed_len_byte_array(8) raw;
                required int64 price (DECIMAL(18, 4));
                required boolean flag;
                optional double ratio;
                required int96 legacy;
                optional group tags (LIST) { repeated group list { optional binary element (STRING); } }
                required group attrs (MAP) { repeated group key_value { required binary key (STRING); optional int32 value; } }
                optional group point { required double x; required double y; }
                repeated int32 old_list;
            }",
        );
        let analysis = analyze(&file).unwrap();
        let described: Vec<String> = analysis
            .columns
            .iter()
            .map(|c| format!("{} {}", c.name, c.ty))
            .collect();
        assert_eq!(
            described,
            [
                "id Int64",
                "name Nullable(String)",
                "small UInt8",
                "at Nullable(DateTime64(6))",
                "day Date32",
                "key Nullable(UUID)",
                "raw FixedString(8)",
                "price Decimal(18, 4)",
                "flag Bool",
                "ratio Nullable(Float64)",
                "legacy DateTime64(9)",
                "tags Array(Nullable(String))",
                "attrs Map(String, Nullable(Int32))",
                "point Tuple(x Float64, y Float64)",
                "old_list Array(Int32)",
            ]
        );
        assert_eq!(analysis.sampled_rows, 0);
        assert!(analysis.preview.is_empty());
    }

    #[test]
    fn not_parquet_is_refused() {
        assert!(analyze(b"PAR1 not really").is_err());
    }
}

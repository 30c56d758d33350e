//! Conversions between the wire messages and `roost-types`' parsed forms.

use roost_types::{ChType, Column, DefaultKind, JsonPath};

use crate::ServiceError;
use crate::catalog::v1 as catalog;

impl From<&Column> for catalog::Column {
    fn from(column: &Column) -> Self {
        catalog::Column {
            name: column.name.clone(),
            r#type: column.ty.to_string(),
            jsonpath: column
                .jsonpath
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            default_value: column.default.clone().unwrap_or_default(),
            codec: column.codec.clone().unwrap_or_default(),
            materialized: column.default_kind == DefaultKind::Materialized,
        }
    }
}

impl TryFrom<&catalog::Column> for Column {
    type Error = ServiceError;

    fn try_from(column: &catalog::Column) -> Result<Self, Self::Error> {
        let ty: ChType = column.r#type.parse().map_err(|e| {
            ServiceError::bad_request(format!("Invalid type for column '{}': {e}", column.name))
        })?;
        let jsonpath = match column.jsonpath.as_str() {
            "" => None,
            path => Some(path.parse::<JsonPath>().map_err(|e| {
                ServiceError::bad_request(format!(
                    "Invalid jsonpath for column '{}': {e}",
                    column.name
                ))
            })?),
        };
        let non_empty = |text: &str| (!text.is_empty()).then(|| text.to_string());
        Ok(Column {
            name: column.name.clone(),
            ty,
            jsonpath,
            default: non_empty(&column.default_value),
            codec: non_empty(&column.codec),
            default_kind: if column.materialized {
                DefaultKind::Materialized
            } else {
                DefaultKind::Default
            },
        })
    }
}

/// Parses every column of a message list.
pub fn columns_from_proto(columns: &[catalog::Column]) -> Result<Vec<Column>, ServiceError> {
    columns.iter().map(Column::try_from).collect()
}

/// The wire form of parsed columns.
pub fn columns_to_proto(columns: &[Column]) -> Vec<catalog::Column> {
    columns.iter().map(catalog::Column::from).collect()
}

/// Parses a Tinybird schema string into wire columns; errors are bad requests.
pub fn parse_schema_to_proto(schema: &str) -> Result<Vec<catalog::Column>, ServiceError> {
    let columns = roost_types::parse_schema(schema)
        .map_err(|e| ServiceError::bad_request(format!("Invalid schema: {e}")))?;
    Ok(columns_to_proto(&columns))
}

/// The Tinybird schema string of wire columns (columns that do not parse are skipped).
pub fn schema_string(columns: &[catalog::Column]) -> String {
    let parsed: Vec<Column> = columns
        .iter()
        .filter_map(|c| Column::try_from(c).ok())
        .collect();
    roost_types::format_schema(&parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_round_trip() {
        let parsed = roost_types::parse_schema(
            "`a` Nullable(String) `json:$.x.y` DEFAULT 'z' CODEC(ZSTD(1)), b Int32",
        )
        .unwrap();
        let wire = columns_to_proto(&parsed);
        assert_eq!(wire[0].jsonpath, "$.x.y");
        assert_eq!(columns_from_proto(&wire).unwrap(), parsed);
    }

    #[test]
    fn bad_types_are_bad_requests() {
        let wire = catalog::Column {
            name: "a".into(),
            r#type: "Strin".into(),
            ..Default::default()
        };
        assert_eq!(Column::try_from(&wire).unwrap_err().code.http_status(), 400);
    }
}

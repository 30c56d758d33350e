//! The shape of a data source's quarantine table, `<name>_quarantine`, as Tinybird defines it: why
//! each row failed, then every insertable column as the raw text that was sent.

use crate::{ChType, Column};

/// The column holding the names of the columns that failed.
pub const ERROR_COLUMN: &str = "c__error_column";
/// The column holding the reasons.
pub const ERROR: &str = "c__error";
/// The column naming the import (request) the row came with.
pub const IMPORT_ID: &str = "c__import_id";
/// When the row was quarantined.
pub const INSERTION_DATE: &str = "insertion_date";

/// The quarantine table's columns for a data source with `columns`.
pub fn quarantine_columns(columns: &[Column]) -> Vec<Column> {
    let mut quarantine = vec![
        Column::new(ERROR_COLUMN, ChType::Array(Box::new(ChType::String))),
        Column::new(ERROR, ChType::Array(Box::new(ChType::String))),
        Column::new(IMPORT_ID, ChType::Nullable(Box::new(ChType::String))),
        Column::new(INSERTION_DATE, ChType::DateTime(None)),
    ];
    quarantine.extend(
        columns
            .iter()
            .filter(|column| column.is_insertable())
            .map(|column| {
                Column::new(
                    column.name.clone(),
                    ChType::Nullable(Box::new(ChType::String)),
                )
            }),
    );
    quarantine
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_insertable_column_becomes_nullable_text() {
        let columns =
            crate::parse_schema("a Int32, b Array(String), c String MATERIALIZED upper(b[1])")
                .unwrap();
        let names: Vec<String> = quarantine_columns(&columns)
            .iter()
            .map(|c| format!("{} {}", c.name, c.ty))
            .collect();
        assert_eq!(
            names,
            [
                "c__error_column Array(String)",
                "c__error Array(String)",
                "c__import_id Nullable(String)",
                "insertion_date DateTime",
                "a Nullable(String)",
                "b Nullable(String)",
            ]
        );
    }
}

//! The `<name>_quarantine` table: its columns and the `RowBinaryWithDefaults` of quarantined rows.

#[cfg(test)]
use roost_types::Column;

use super::QuarantinedRow;
use super::rowbinary::{write_bytes, write_varint};

/// The quarantine table's columns: one shape for every crate, defined in `roost-types`.
pub use roost_types::quarantine_columns;

/// `RowBinaryWithDefaults` of `rows` for [`quarantine_columns`], with `import_id` and `insertion_date`
/// = `now_unix` on every row.
pub fn encode_quarantine(
    rows: &[QuarantinedRow],
    import_id: Option<&str>,
    now_unix: u32,
) -> Vec<u8> {
    let mut out = Vec::new();
    for row in rows {
        write_text_array(&mut out, &row.error_columns);
        write_text_array(&mut out, &row.errors);
        write_nullable_text(&mut out, import_id);
        out.push(0);
        out.extend_from_slice(&now_unix.to_le_bytes());
        for value in &row.values {
            write_nullable_text(&mut out, value.as_deref());
        }
    }
    out
}

fn write_text_array(out: &mut Vec<u8>, items: &[String]) {
    out.push(0);
    write_varint(out, items.len() as u64);
    for item in items {
        write_bytes(out, item.as_bytes());
    }
}

fn write_nullable_text(out: &mut Vec<u8>, value: Option<&str>) {
    out.push(0);
    match value {
        None => out.push(1),
        Some(text) => {
            out.push(0);
            write_bytes(out, text.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use roost_types::parse_schema;

    #[test]
    fn columns_of_the_quarantine_table() {
        let columns = parse_schema("a Int32, b Int32 MATERIALIZED a, c Array(String)").unwrap();
        let text: Vec<String> = quarantine_columns(&columns)
            .iter()
            .map(Column::ddl)
            .collect();
        assert_eq!(
            text,
            [
                "`c__error_column` Array(String)",
                "`c__error` Array(String)",
                "`c__import_id` Nullable(String)",
                "`insertion_date` DateTime",
                "`a` Nullable(String)",
                "`c` Nullable(String)",
            ]
        );
    }

    #[test]
    fn encodes_rows() {
        let rows = [QuarantinedRow {
            values: vec![Some("x".into()), None],
            error_columns: vec!["a".into()],
            errors: vec!["bad".into()],
        }];
        let data = encode_quarantine(&rows, Some("i1"), 0x0102_0304);
        let mut expected = vec![
            0, 1, 1, b'a', 0, 1, 3, b'b', b'a', b'd', 0, 0, 2, b'i', b'1',
        ];
        expected.extend_from_slice(&[0, 4, 3, 2, 1, 0, 0, 1, b'x', 0, 1]);
        assert_eq!(data, expected);
        let data = encode_quarantine(&rows, None, 0);
        assert_eq!(&data[10..12], [0, 1]);
        assert!(encode_quarantine(&[], None, 0).is_empty());
    }
}

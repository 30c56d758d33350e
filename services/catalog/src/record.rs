//! The stored form of a data source (JSON text columns) and its wire message.

use roost_proto::catalog::v1 as proto;
use roost_store::DataSourceRecord;
use roost_types::{Column, quote_ident};
use serde_json::{Value, json};

pub fn columns_json(columns: &[Column]) -> String {
    let wire: Vec<Value> = roost_proto::columns_to_proto(columns)
        .into_iter()
        .map(|c| {
            json!({
                "name": c.name, "type": c.r#type, "jsonpath": c.jsonpath,
                "default_value": c.default_value, "codec": c.codec, "materialized": c.materialized,
            })
        })
        .collect();
    Value::Array(wire).to_string()
}

fn text(value: &Value, key: &str) -> String {
    value
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn columns_from_json(text_value: &str) -> Vec<proto::Column> {
    let parsed: Vec<Value> = serde_json::from_str(text_value).unwrap_or_default();
    parsed
        .iter()
        .map(|c| proto::Column {
            name: text(c, "name"),
            r#type: text(c, "type"),
            jsonpath: text(c, "jsonpath"),
            default_value: text(c, "default_value"),
            codec: text(c, "codec"),
            materialized: c
                .get("materialized")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        })
        .collect()
}

pub fn engine_json(engine: &proto::EngineSettings) -> String {
    json!({
        "engine": engine.engine, "sorting_key": engine.sorting_key, "partition_key": engine.partition_key,
        "primary_key": engine.primary_key, "ttl": engine.ttl, "ver": engine.ver, "sign": engine.sign,
        "version": engine.version, "is_deleted": engine.is_deleted, "settings": engine.settings,
        "summing_columns": engine.summing_columns,
    })
    .to_string()
}

fn engine_from_json(text_value: &str) -> proto::EngineSettings {
    let v: Value = serde_json::from_str(text_value).unwrap_or_default();
    proto::EngineSettings {
        engine: text(&v, "engine"),
        sorting_key: text(&v, "sorting_key"),
        partition_key: text(&v, "partition_key"),
        primary_key: text(&v, "primary_key"),
        ttl: text(&v, "ttl"),
        ver: text(&v, "ver"),
        sign: text(&v, "sign"),
        version: text(&v, "version"),
        is_deleted: text(&v, "is_deleted"),
        settings: text(&v, "settings"),
        summing_columns: text(&v, "summing_columns"),
    }
}

/// The wire message of a record; statistics are filled by the caller when asked for.
pub fn to_message(record: &DataSourceRecord, database: &str) -> proto::DataSource {
    let database = quote_ident(database);
    proto::DataSource {
        id: record.id.clone(),
        name: record.name.clone(),
        workspace_id: record.workspace_id.clone(),
        columns: columns_from_json(&record.columns),
        engine: Some(engine_from_json(&record.engine)),
        description: record.description.clone(),
        created_at: record.created_at.clone(),
        updated_at: record.updated_at.clone(),
        table: format!("{database}.{}", quote_ident(&record.table_name)),
        quarantine_table: format!(
            "{database}.{}",
            quote_ident(&format!("{}_quarantine", record.table_name))
        ),
        statistics: None,
        origin_format: record.origin_format.clone(),
        used_by: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_and_engine_survive_storage() {
        let columns =
            roost_types::parse_schema("`a` String `json:$.a` DEFAULT 'x', `b` Int32").unwrap();
        let engine = proto::EngineSettings {
            engine: "MergeTree".into(),
            sorting_key: "a".into(),
            ..Default::default()
        };
        let record = DataSourceRecord {
            id: "t_1".into(),
            workspace_id: "w".into(),
            name: "events".into(),
            columns: columns_json(&columns),
            engine: engine_json(&engine),
            description: String::new(),
            origin_format: String::new(),
            table_name: "t_1".into(),
            created_at: String::new(),
            updated_at: String::new(),
        };
        let message = to_message(&record, "w_1");
        assert_eq!(
            roost_proto::columns_from_proto(&message.columns).unwrap(),
            columns
        );
        assert_eq!(message.engine.unwrap(), engine);
        assert_eq!(message.table, "`w_1`.`t_1`");
        assert_eq!(message.quarantine_table, "`w_1`.`t_1_quarantine`");
    }
}

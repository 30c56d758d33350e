//! CREATE TABLE statements from a data source's columns and Tinybird engine settings.
//!
//! Engine settings are ClickHouse expressions the user wrote (sorting key, partition key, TTL...).
//! They go into DDL, so each is checked first: one expression, balanced brackets, no statement
//! separators, comments or subqueries.

use roost_proto::catalog::v1::EngineSettings;
use roost_types::{Column, quarantine_columns};

use crate::CatalogError;

const ENGINES: &[&str] = &[
    "MergeTree",
    "ReplacingMergeTree",
    "SummingMergeTree",
    "AggregatingMergeTree",
    "CollapsingMergeTree",
    "VersionedCollapsingMergeTree",
    "Null",
];

/// Refuses anything but a plain expression list.
pub fn check_expression(setting: &str, expression: &str) -> Result<(), CatalogError> {
    let invalid = |why: &str| {
        Err(CatalogError::InvalidSetting(format!(
            "Invalid engine_{setting} '{expression}': {why}"
        )))
    };
    let mut depth: i32 = 0;
    let mut quote: Option<char> = None;
    let mut previous = ' ';
    for ch in expression.chars() {
        match quote {
            Some(q) if ch == q && previous != '\\' => quote = None,
            Some(_) => {}
            None => match ch {
                '\'' | '`' | '"' => quote = Some(ch),
                '(' | '[' => depth += 1,
                ')' | ']' => {
                    depth -= 1;
                    if depth < 0 {
                        return invalid("unbalanced brackets");
                    }
                }
                ';' => return invalid("statement separators are not allowed"),
                '#' => return invalid("comments are not allowed"),
                '-' if previous == '-' => return invalid("comments are not allowed"),
                '*' if previous == '/' => return invalid("comments are not allowed"),
                '{' | '}' => return invalid("query parameters are not allowed"),
                _ => {}
            },
        }
        previous = ch;
    }
    if quote.is_some() || depth != 0 {
        return invalid("unbalanced quotes or brackets");
    }
    let lowered = expression.to_ascii_lowercase();
    let has_word = |word: &str| {
        lowered
            .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
            .any(|token| token == word)
    };
    for word in [
        "select",
        "settings",
        "format",
        "from",
        "engine",
        "partition",
        "order",
        "primary",
        "ttl",
        "sample",
    ] {
        if has_word(word) && !(word == "ttl" && setting == "ttl") {
            return invalid("only an expression is allowed here");
        }
    }
    if let Some(name) = called_functions(expression)
        .into_iter()
        .find(|name| roost_types::sql_policy::is_denied_function(name))
    {
        return invalid(&format!("the function '{name}' is not allowed here"));
    }
    Ok(())
}

/// The names `expression` calls as functions, lowercased: each identifier, bare or quoted with
/// backquotes or double quotes (ClickHouse accepts `` `file`(...) ``), followed by `(`. String
/// literals are skipped.
fn called_functions(expression: &str) -> Vec<String> {
    let chars: Vec<char> = expression.chars().collect();
    let mut names = Vec::new();
    let mut at = 0;
    while at < chars.len() {
        let ch = chars[at];
        let (name, end) = match ch {
            '\'' => {
                let mut next = at + 1;
                while next < chars.len() && chars[next] != '\'' {
                    next += if chars[next] == '\\' { 2 } else { 1 };
                }
                at = next + 1;
                continue;
            }
            '`' | '"' => {
                let close = chars[at + 1..]
                    .iter()
                    .position(|c| *c == ch)
                    .map_or(chars.len(), |offset| at + 1 + offset);
                (chars[at + 1..close].iter().collect::<String>(), close + 1)
            }
            c if c.is_alphanumeric() || c == '_' => {
                let close = chars[at..]
                    .iter()
                    .position(|c| !(c.is_alphanumeric() || *c == '_'))
                    .map_or(chars.len(), |offset| at + offset);
                (chars[at..close].iter().collect::<String>(), close)
            }
            _ => {
                at += 1;
                continue;
            }
        };
        let end = end.min(chars.len());
        if chars[end..].iter().find(|c| !c.is_whitespace()) == Some(&'(') {
            names.push(name.to_lowercase());
        }
        at = end;
    }
    names
}

fn non_empty(value: &str) -> Option<&str> {
    let value = value.trim();
    (!value.is_empty()).then_some(value)
}

/// Where a replicated table keeps its state in ZooKeeper and the name of this replica: the first
/// two arguments of a `Replicated*MergeTree` engine. Both may hold the server's macros
/// (`{shard}`, `{replica}`), which ClickHouse expands on each server.
#[derive(Debug, Clone, Copy)]
pub struct Replication<'a> {
    /// The table's ZooKeeper path, e.g. `/clickhouse/tables/{shard}/db/events`.
    pub zookeeper_path: &'a str,
    /// The replica's name, e.g. `{replica}`.
    pub replica: &'a str,
}

/// The engine clause: `ENGINE = X(args) PARTITION BY .. PRIMARY KEY .. ORDER BY .. TTL .. SETTINGS ..`.
pub fn engine_clause(settings: &EngineSettings) -> Result<String, CatalogError> {
    engine_clause_with(settings, None)
}

/// The engine clause of the replicated variant of the engine (`ReplicatedMergeTree(path, replica,
/// args)` ...), for a table on a cluster. `Null` stays `Null`: it holds nothing to replicate.
pub fn replicated_engine_clause(
    settings: &EngineSettings,
    replication: Replication<'_>,
) -> Result<String, CatalogError> {
    engine_clause_with(settings, Some(replication))
}

fn engine_clause_with(
    settings: &EngineSettings,
    replication: Option<Replication<'_>>,
) -> Result<String, CatalogError> {
    let requested = non_empty(&settings.engine).unwrap_or("MergeTree");
    let engine = ENGINES
        .iter()
        .find(|name| name.eq_ignore_ascii_case(requested))
        .ok_or_else(|| {
            CatalogError::InvalidSetting(format!(
                "Engine '{requested}' is not supported; use one of {}",
                ENGINES.join(", ")
            ))
        })?;
    let checked = |name: &str, value: &str| -> Result<Option<String>, CatalogError> {
        match non_empty(value) {
            Some(value) => check_expression(name, value).map(|()| Some(value.to_string())),
            None => Ok(None),
        }
    };
    let ver = checked("ver", &settings.ver)?;
    let sign = checked("sign", &settings.sign)?;
    let version = checked("version", &settings.version)?;
    let is_deleted = checked("is_deleted", &settings.is_deleted)?;
    let summing = checked("columns", &settings.summing_columns)?;
    let required = |name: &str, value: &Option<String>| {
        value.clone().ok_or_else(|| {
            CatalogError::InvalidSetting(format!("Engine {engine} needs engine_{name}"))
        })
    };
    let arguments = match *engine {
        "ReplacingMergeTree" => match (ver, is_deleted) {
            (Some(ver), Some(is_deleted)) => format!("{ver}, {is_deleted}"),
            (Some(ver), None) => ver,
            (None, Some(_)) => {
                return Err(CatalogError::InvalidSetting(
                    "engine_is_deleted needs engine_ver".into(),
                ));
            }
            (None, None) => String::new(),
        },
        "SummingMergeTree" => summing
            .map(|columns| format!("({columns})"))
            .unwrap_or_default(),
        "CollapsingMergeTree" => required("sign", &sign)?,
        "VersionedCollapsingMergeTree" => format!(
            "{}, {}",
            required("sign", &sign)?,
            required("version", &version)?
        ),
        _ => String::new(),
    };
    if *engine == "Null" {
        return Ok("ENGINE = Null".to_string());
    }
    let mut clause = match replication {
        Some(replication) => {
            let mut replicated = format!(
                "{}, {}",
                roost_types::quote_string(replication.zookeeper_path),
                roost_types::quote_string(replication.replica)
            );
            if !arguments.is_empty() {
                replicated.push_str(", ");
                replicated.push_str(&arguments);
            }
            format!("ENGINE = Replicated{engine}({replicated})")
        }
        None => format!("ENGINE = {engine}({arguments})"),
    };
    if let Some(partition) = checked("partition_key", &settings.partition_key)? {
        clause.push_str(&format!(" PARTITION BY {partition}"));
    }
    if let Some(primary) = checked("primary_key", &settings.primary_key)? {
        clause.push_str(&format!(" PRIMARY KEY {primary}"));
    }
    let sorting =
        checked("sorting_key", &settings.sorting_key)?.unwrap_or_else(|| "tuple()".to_string());
    clause.push_str(&format!(" ORDER BY ({sorting})"));
    if let Some(ttl) = checked("ttl", &settings.ttl)? {
        clause.push_str(&format!(" TTL {ttl}"));
    }
    if let Some(extra) = checked("settings", &settings.settings)? {
        clause.push_str(&format!(" SETTINGS {extra}"));
    }
    Ok(clause)
}

/// `CREATE TABLE table (...) ENGINE ...` for a data source.
pub fn create_table(
    table: &str,
    columns: &[Column],
    settings: &EngineSettings,
) -> Result<String, CatalogError> {
    Ok(format!(
        "CREATE TABLE {table} ({}) {}",
        column_definitions(columns)?,
        engine_clause(settings)?
    ))
}

/// The column list of a `CREATE TABLE` (`a String DEFAULT 'x', b Int32`), after checking each
/// DEFAULT and CODEC expression.
pub fn column_definitions(columns: &[Column]) -> Result<String, CatalogError> {
    for column in columns {
        if let Some(default) = &column.default {
            check_expression("default", default)?;
        }
        if let Some(codec) = &column.codec {
            check_expression("codec", codec)?;
        }
    }
    let columns: Vec<String> = columns.iter().map(Column::ddl).collect();
    Ok(columns.join(", "))
}

/// `CREATE TABLE` for the quarantine of a data source.
pub fn create_quarantine_table(table: &str, columns: &[Column]) -> String {
    let columns: Vec<String> = quarantine_columns(columns)
        .iter()
        .map(Column::ddl)
        .collect();
    format!(
        "CREATE TABLE {table} ({}) ENGINE = MergeTree ORDER BY insertion_date",
        columns.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(engine: &str) -> EngineSettings {
        EngineSettings {
            engine: engine.into(),
            ..Default::default()
        }
    }

    #[test]
    fn merge_tree_family_clauses() {
        let cases = [
            (
                EngineSettings {
                    sorting_key: "a, b".into(),
                    partition_key: "toYYYYMM(t)".into(),
                    ..settings("MergeTree")
                },
                "ENGINE = MergeTree() PARTITION BY toYYYYMM(t) ORDER BY (a, b)",
            ),
            (settings(""), "ENGINE = MergeTree() ORDER BY (tuple())"),
            (
                EngineSettings {
                    ver: "v".into(),
                    sorting_key: "id".into(),
                    ..settings("ReplacingMergeTree")
                },
                "ENGINE = ReplacingMergeTree(v) ORDER BY (id)",
            ),
            (
                EngineSettings {
                    summing_columns: "n".into(),
                    ..settings("summingmergetree")
                },
                "ENGINE = SummingMergeTree((n)) ORDER BY (tuple())",
            ),
            (
                EngineSettings {
                    sign: "s".into(),
                    ..settings("CollapsingMergeTree")
                },
                "ENGINE = CollapsingMergeTree(s) ORDER BY (tuple())",
            ),
            (
                EngineSettings {
                    ttl: "t + INTERVAL 1 DAY".into(),
                    settings: "index_granularity = 8192".into(),
                    ..settings("MergeTree")
                },
                "ENGINE = MergeTree() ORDER BY (tuple()) TTL t + INTERVAL 1 DAY SETTINGS index_granularity = 8192",
            ),
            (settings("Null"), "ENGINE = Null"),
        ];
        for (settings, expected) in cases {
            assert_eq!(engine_clause(&settings).unwrap(), expected);
        }
    }

    #[test]
    fn replicated_engines_take_the_replication_arguments_first() {
        let replication = Replication {
            zookeeper_path: "/clickhouse/tables/{shard}/d/t",
            replica: "{replica}",
        };
        let cases = [
            (
                EngineSettings {
                    sorting_key: "a".into(),
                    ..settings("MergeTree")
                },
                "ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/d/t', '{replica}') ORDER BY (a)",
            ),
            (
                EngineSettings {
                    ver: "v".into(),
                    ..settings("ReplacingMergeTree")
                },
                "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/d/t', '{replica}', v) ORDER BY (tuple())",
            ),
            (settings("Null"), "ENGINE = Null"),
        ];
        for (settings, expected) in cases {
            assert_eq!(
                replicated_engine_clause(&settings, replication).unwrap(),
                expected
            );
        }
    }

    #[test]
    fn unsafe_or_incomplete_settings_are_refused() {
        let cases = [
            EngineSettings {
                sorting_key: "a); DROP TABLE x; --".into(),
                ..settings("MergeTree")
            },
            EngineSettings {
                sorting_key: "(SELECT 1)".into(),
                ..settings("MergeTree")
            },
            EngineSettings {
                partition_key: "a /* x */".into(),
                ..settings("MergeTree")
            },
            EngineSettings {
                sorting_key: "a) SETTINGS x = (1".into(),
                ..settings("MergeTree")
            },
            EngineSettings {
                sorting_key: "a)".into(),
                ..settings("MergeTree")
            },
            settings("Log"),
            settings("CollapsingMergeTree"),
            EngineSettings {
                is_deleted: "d".into(),
                ..settings("ReplacingMergeTree")
            },
        ];
        for settings in cases {
            assert!(engine_clause(&settings).is_err(), "{settings:?}");
        }
    }

    #[test]
    fn functions_reaching_outside_are_refused() {
        for expression in [
            "file('/etc/passwd')",
            "concat(`file` ('/etc/passwd'), 'x')",
            "\"url\"('http://x')",
            "remoteSecure('h', 'db', 't')",
            "dictGetString('d', 'a', toUInt64(1))",
            "joinGet('t', 'a', 1)",
            "arrayMap(x -> s3Cluster(x), [1])",
            "disk(type = 'local', path = '/tmp/')",
        ] {
            assert!(
                check_expression("default", expression).is_err(),
                "{expression}"
            );
        }
        assert_eq!(
            called_functions("toDate(t) + f ('file(') + `g`(x)"),
            ["todate", "f", "g"]
        );
        check_expression("default", "concat('file(', toString(now()))").unwrap();
        check_expression("sorting_key", "toStartOfHour(ts), cityHash64(url)").unwrap();
    }

    #[test]
    fn strings_may_hold_anything() {
        check_expression("ttl", "t + INTERVAL 1 DAY DELETE WHERE s = 'a;b--c'").unwrap();
    }

    #[test]
    fn create_statements() {
        let columns =
            roost_types::parse_schema("`a` String `json:$.a` DEFAULT 'x', `b` Nullable(Int32)")
                .unwrap();
        assert_eq!(
            create_table("`d`.`t`", &columns, &settings("MergeTree")).unwrap(),
            "CREATE TABLE `d`.`t` (`a` String DEFAULT 'x', `b` Nullable(Int32)) ENGINE = MergeTree() ORDER BY (tuple())"
        );
        assert!(create_quarantine_table("`d`.`q`", &columns).contains("`c__error` Array(String)"));
    }
}

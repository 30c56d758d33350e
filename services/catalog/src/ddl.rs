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

/// The engine clause: `ENGINE = X(args) PARTITION BY .. PRIMARY KEY .. ORDER BY .. TTL .. SETTINGS ..`.
/// With a `replica_path` (a table on every shard of a cluster) the engine is the replicated
/// variant, keeping its parts in ZooKeeper under that path (see [`replicated`]).
pub fn engine_clause(
    settings: &EngineSettings,
    replica_path: Option<&str>,
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
    let mut clause = format!("ENGINE = {}", replicated(engine, &arguments, replica_path));
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

/// `engine(arguments)`, or with a ZooKeeper path its replicated variant,
/// `Replicated<engine>('<path>', '{replica}', arguments)`: the server's `{shard}` and `{replica}`
/// macros make each shard's replicas share one path.
pub fn replicated(engine: &str, arguments: &str, replica_path: Option<&str>) -> String {
    match replica_path {
        None => format!("{engine}({arguments})"),
        Some(path) => {
            let path = roost_types::quote_string(path);
            let rest = if arguments.is_empty() {
                String::new()
            } else {
                format!(", {arguments}")
            };
            format!("Replicated{engine}({path}, '{{replica}}'{rest})")
        }
    }
}

/// `CREATE TABLE table (...) ENGINE ...` for a data source (`on_cluster` is the ` ON CLUSTER c`
/// clause or empty; see [`engine_clause`] for `replica_path`).
pub fn create_table(
    table: &str,
    on_cluster: &str,
    columns: &[Column],
    settings: &EngineSettings,
    replica_path: Option<&str>,
) -> Result<String, CatalogError> {
    Ok(format!(
        "CREATE TABLE {table}{on_cluster} ({}) {}",
        column_definitions(columns)?,
        engine_clause(settings, replica_path)?
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
pub fn create_quarantine_table(
    table: &str,
    on_cluster: &str,
    columns: &[Column],
    replica_path: Option<&str>,
) -> String {
    let columns: Vec<String> = quarantine_columns(columns)
        .iter()
        .map(Column::ddl)
        .collect();
    format!(
        "CREATE TABLE {table}{on_cluster} ({}) ENGINE = {} ORDER BY insertion_date",
        columns.join(", "),
        replicated("MergeTree", "", replica_path)
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
            assert_eq!(engine_clause(&settings, None).unwrap(), expected);
        }
    }

    #[test]
    fn replicated_engines_take_the_replication_arguments_first() {
        let path = Some("/clickhouse/tables/{shard}/d/t");
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
            assert_eq!(engine_clause(&settings, path).unwrap(), expected);
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
            assert!(engine_clause(&settings, None).is_err(), "{settings:?}");
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
            create_table("`d`.`t`", "", &columns, &settings("MergeTree"), None).unwrap(),
            "CREATE TABLE `d`.`t` (`a` String DEFAULT 'x', `b` Nullable(Int32)) ENGINE = MergeTree() ORDER BY (tuple())"
        );
        assert!(
            create_quarantine_table("`d`.`q`", "", &columns, None)
                .contains("`c__error` Array(String)")
        );
    }

    #[test]
    fn tables_on_a_cluster_are_replicated_with_the_engine_arguments_after_the_path() {
        let columns = roost_types::parse_schema("`id` Int32, `v` UInt32").unwrap();
        let path = Some("/clickhouse/tables/{shard}/d/t");
        assert_eq!(
            create_table(
                "`d`.`t_local`",
                " ON CLUSTER `c`",
                &columns,
                &settings("MergeTree"),
                path
            )
            .unwrap(),
            "CREATE TABLE `d`.`t_local` ON CLUSTER `c` (`id` Int32, `v` UInt32) \
             ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/d/t', '{replica}') ORDER BY (tuple())"
        );
        let replacing = EngineSettings {
            ver: "v".into(),
            sorting_key: "id".into(),
            ..settings("ReplacingMergeTree")
        };
        assert_eq!(
            engine_clause(&replacing, path).unwrap(),
            "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/d/t', '{replica}', v) ORDER BY (id)"
        );
        assert!(
            create_quarantine_table("`d`.`q_local`", " ON CLUSTER `c`", &columns, path)
                .contains("ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/d/t', '{replica}') ORDER BY insertion_date")
        );
    }
}

//! The ClickHouse statements the operator runs, and the column changes a new schema asks for.
//! Pure: no I/O. The column and engine clauses come from the catalog's DDL building
//! (`roost_catalog::ddl`) and the schema parser from `roost-types`, so a data source made by the
//! operator has the same table definition as one made through the API.

use roost_catalog::ddl::{column_definitions, engine_clause};
use roost_engine::on_cluster;
use roost_proto::catalog::v1::EngineSettings;
use roost_types::{Column, quote_ident, quote_string};

use crate::crd::{AppliedColumn, EngineSpec};

/// `CREATE DATABASE IF NOT EXISTS` on every server of the cluster.
pub fn create_database(database: &str, cluster: &str) -> String {
    format!(
        "CREATE DATABASE IF NOT EXISTS {}{}",
        quote_ident(database),
        on_cluster(Some(cluster))
    )
}

/// `DROP DATABASE IF EXISTS` on every server of the cluster.
pub fn drop_database(database: &str, cluster: &str) -> String {
    format!(
        "DROP DATABASE IF EXISTS {}{}",
        quote_ident(database),
        on_cluster(Some(cluster))
    )
}

/// `DROP TABLE IF EXISTS` on every server of the cluster.
pub fn drop_table(database: &str, table: &str, cluster: &str) -> String {
    format!(
        "DROP TABLE IF EXISTS {}{}",
        qualified(database, table),
        on_cluster(Some(cluster))
    )
}

/// `` `db`.`table` ``.
pub fn qualified(database: &str, table: &str) -> String {
    format!("{}.{}", quote_ident(database), quote_ident(table))
}

/// The catalog's engine settings for a data source's engine and TTL.
pub fn engine_settings(engine: &EngineSpec, ttl: Option<&str>) -> EngineSettings {
    let text = |value: &Option<String>| value.clone().unwrap_or_default();
    EngineSettings {
        engine: engine.kind.name().to_string(),
        sorting_key: text(&engine.sorting_key),
        partition_key: text(&engine.partition_key),
        primary_key: text(&engine.primary_key),
        ttl: ttl.unwrap_or_default().to_string(),
        ver: text(&engine.ver),
        sign: text(&engine.sign),
        version: text(&engine.version),
        summing_columns: text(&engine.summing_columns),
        settings: text(&engine.settings),
        ..Default::default()
    }
}

/// The ZooKeeper path of a data source's replicated table. The resource's uid makes it unique:
/// a data source deleted and made again never meets the previous replicas' state.
pub fn zookeeper_path(database: &str, uid: &str) -> String {
    format!("/clickhouse/tables/{{shard}}/roost/{database}/{uid}")
}

/// The engine clause of the local table: the replicated variant of the data source's engine.
pub fn local_engine(settings: &EngineSettings, zookeeper_path: &str) -> Result<String, String> {
    engine_clause(settings, Some(zookeeper_path)).map_err(|e| e.to_string())
}

/// `CREATE TABLE IF NOT EXISTS` of the replicated table that holds a shard's rows.
pub fn create_local_table(
    database: &str,
    table: &str,
    cluster: &str,
    columns: &[Column],
    engine: &str,
) -> Result<String, String> {
    Ok(format!(
        "CREATE TABLE IF NOT EXISTS {}{} ({}) {engine}",
        qualified(database, table),
        on_cluster(Some(cluster)),
        column_definitions(columns).map_err(|e| e.to_string())?,
    ))
}

/// `CREATE TABLE IF NOT EXISTS` of the Distributed table over every shard's local table: inserts
/// spread rows at random, queries read all shards.
pub fn create_distributed_table(database: &str, table: &str, local: &str, cluster: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {}{} AS {} ENGINE = Distributed({}, {}, {}, rand())",
        qualified(database, table),
        on_cluster(Some(cluster)),
        qualified(database, local),
        quote_string(cluster),
        quote_string(database),
        quote_string(local),
    )
}

/// The query listing a table's columns (name, type), in table order (18.16's `system.columns`
/// has no `position` to sort by, and lists them in order), as TabSeparated.
pub fn columns_query(database: &str, table: &str) -> String {
    format!(
        "SELECT name, type FROM system.columns WHERE database = {} AND table = {}",
        quote_string(database),
        quote_string(table)
    )
}

/// Reads the answer of [`columns_query`].
pub fn parse_columns(tab_separated: &str) -> Vec<(String, String)> {
    tab_separated
        .lines()
        .filter_map(|line| {
            let (name, ty) = line.split_once('\t')?;
            Some((unescape(name), unescape(ty)))
        })
        .collect()
}

/// TabSeparated escapes backslashes, tabs and newlines.
fn unescape(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// What bringing a table's columns to the schema takes.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ColumnPlan {
    /// Columns to add, each with the column it goes after (`None`: first).
    pub add: Vec<(Column, Option<String>)>,
    /// Columns to drop.
    pub drop: Vec<String>,
    /// Changes that cannot be made without losing or rewriting data, for people.
    pub refused: Vec<String>,
}

impl ColumnPlan {
    /// Whether the table already matches.
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.drop.is_empty() && self.refused.is_empty()
    }
}

/// Types compare without blanks: ClickHouse writes `Decimal(10, 2)` for `Decimal(10,2)`.
fn same_type(a: &str, b: &str) -> bool {
    let compact = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();
    compact(a) == compact(b)
}

/// The changes from `actual` (name, type as ClickHouse reports them) to `desired`. A changed type
/// is refused; a removed column is dropped only when `allow_drops`, else refused: data is never
/// lost silently.
pub fn plan_columns(
    actual: &[(String, String)],
    desired: &[Column],
    allow_drops: bool,
) -> ColumnPlan {
    let mut plan = ColumnPlan::default();
    let mut previous: Option<String> = None;
    for column in desired {
        match actual.iter().find(|(name, _)| *name == column.name) {
            Some((_, ty)) if !same_type(ty, &column.ty.to_string()) => {
                plan.refused.push(format!(
                    "column `{}` would change type from {ty} to {}",
                    column.name, column.ty
                ));
            }
            Some(_) => {}
            None => plan.add.push((column.clone(), previous.clone())),
        }
        previous = Some(column.name.clone());
    }
    for (name, _) in actual {
        if desired.iter().any(|column| column.name == *name) {
            continue;
        }
        if allow_drops {
            plan.drop.push(name.clone());
        } else {
            plan.refused.push(format!(
                "column `{name}` is no longer in the schema; set allowColumnDrops to drop it and its data"
            ));
        }
    }
    plan
}

/// The `ALTER TABLE` statements that carry out `plan` on one table, adds first: `ON CLUSTER` for
/// the replicated table, on one server (`cluster` None) for the Distributed one, since a cluster
/// with `internal_replication` refuses distributed ALTERs of tables that are not replicated.
pub fn alter_statements(
    database: &str,
    table: &str,
    cluster: Option<&str>,
    plan: &ColumnPlan,
) -> Vec<String> {
    let target = format!("{}{}", qualified(database, table), on_cluster(cluster));
    let adds = plan.add.iter().map(|(column, after)| {
        let position = match after {
            Some(after) => format!(" AFTER {}", quote_ident(after)),
            // 18.16 has no `FIRST`: a new first column goes last, which only the order shows.
            None => String::new(),
        };
        format!("ALTER TABLE {target} ADD COLUMN {}{position}", column.ddl())
    });
    let drops = plan
        .drop
        .iter()
        .map(|name| format!("ALTER TABLE {target} DROP COLUMN {}", quote_ident(name)));
    adds.chain(drops).collect()
}

/// The columns as the status shows them.
pub fn applied_columns(columns: &[Column]) -> Vec<AppliedColumn> {
    columns
        .iter()
        .map(|column| AppliedColumn {
            name: column.name.clone(),
            ty: column.ty.to_string(),
            jsonpath: column.jsonpath.as_ref().map(ToString::to_string),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::EngineKind;

    fn schema(text: &str) -> Vec<Column> {
        roost_types::parse_schema(text).unwrap()
    }

    fn actual(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect()
    }

    #[test]
    fn tables_are_replicated_and_distributed_on_the_cluster() {
        let columns = schema("`id` UInt64 `json:$.id`, `name` String `json:$.name` DEFAULT 'x'");
        let engine = EngineSpec {
            kind: EngineKind::ReplacingMergeTree,
            sorting_key: Some("id".into()),
            ver: Some("id".into()),
            ..Default::default()
        };
        let settings = engine_settings(&engine, Some("now() + INTERVAL 1 DAY"));
        let path = zookeeper_path("w_1", "uid-1");
        let clause = local_engine(&settings, &path).unwrap();
        assert_eq!(
            create_local_table("w_1", "events_local", "roost", &columns, &clause).unwrap(),
            "CREATE TABLE IF NOT EXISTS `w_1`.`events_local` ON CLUSTER `roost` (`id` UInt64, `name` String DEFAULT 'x') \
             ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/roost/w_1/uid-1', '{replica}', id) \
             ORDER BY (id) TTL now() + INTERVAL 1 DAY"
        );
        assert_eq!(
            create_distributed_table("w_1", "events", "events_local", "roost"),
            "CREATE TABLE IF NOT EXISTS `w_1`.`events` ON CLUSTER `roost` AS `w_1`.`events_local` \
             ENGINE = Distributed('roost', 'w_1', 'events_local', rand())"
        );
        assert_eq!(
            create_database("w_1", "roost"),
            "CREATE DATABASE IF NOT EXISTS `w_1` ON CLUSTER `roost`"
        );
        assert_eq!(
            drop_table("w_1", "events", "roost"),
            "DROP TABLE IF EXISTS `w_1`.`events` ON CLUSTER `roost`"
        );
    }

    #[test]
    fn unsafe_engine_settings_are_refused_by_the_catalog_checks() {
        let engine = EngineSpec {
            sorting_key: Some("a); DROP TABLE x; --".into()),
            ..Default::default()
        };
        assert!(local_engine(&engine_settings(&engine, None), "/p").is_err());
        let columns = schema("`a` String DEFAULT file('/etc/passwd')");
        assert!(create_local_table("d", "t", "c", &columns, "ENGINE = Null").is_err());
    }

    #[test]
    fn new_columns_are_added_in_place() {
        let desired = schema("`a` String, `b` Int32, `c` DateTime, `z` Decimal(10,2)");
        let plan = plan_columns(
            &actual(&[("a", "String"), ("c", "DateTime"), ("z", "Decimal(10, 2)")]),
            &desired,
            false,
        );
        assert!(plan.refused.is_empty() && plan.drop.is_empty());
        assert_eq!(plan.add.len(), 1);
        assert_eq!(plan.add[0].0.name, "b");
        assert_eq!(plan.add[0].1.as_deref(), Some("a"));
        assert_eq!(
            alter_statements("d", "t", Some("roost"), &plan),
            ["ALTER TABLE `d`.`t` ON CLUSTER `roost` ADD COLUMN `b` Int32 AFTER `a`"]
        );
        let first = plan_columns(
            &actual(&[("b", "Int32")]),
            &schema("`a` String, `b` Int32"),
            false,
        );
        assert_eq!(
            alter_statements("d", "t", None, &first),
            ["ALTER TABLE `d`.`t` ADD COLUMN `a` String"]
        );
    }

    #[test]
    fn type_changes_and_silent_drops_are_refused() {
        let plan = plan_columns(
            &actual(&[("a", "String"), ("b", "Int32")]),
            &schema("`a` Int64"),
            false,
        );
        assert!(plan.add.is_empty() && plan.drop.is_empty());
        assert_eq!(plan.refused.len(), 2);
        assert!(plan.refused[0].contains("from String to Int64"));
        assert!(plan.refused[1].contains("`b`") && plan.refused[1].contains("allowColumnDrops"));
    }

    #[test]
    fn drops_happen_only_when_allowed() {
        let plan = plan_columns(
            &actual(&[("a", "String"), ("b", "Int32")]),
            &schema("`a` String"),
            true,
        );
        assert_eq!(plan.drop, ["b"]);
        assert!(plan.refused.is_empty());
        assert_eq!(
            alter_statements("d", "t", Some("roost"), &plan),
            ["ALTER TABLE `d`.`t` ON CLUSTER `roost` DROP COLUMN `b`"]
        );
        assert!(plan_columns(&actual(&[("a", "String")]), &schema("`a` String"), true).is_empty());
    }

    #[test]
    fn column_listings_are_read_from_tab_separated() {
        assert_eq!(
            parse_columns("a\tString\nb\\tc\tNullable(Int32)\n"),
            actual(&[("a", "String"), ("b\tc", "Nullable(Int32)")])
        );
        assert_eq!(
            columns_query("d", "t"),
            "SELECT name, type FROM system.columns WHERE database = 'd' AND table = 't'"
        );
    }

    #[test]
    fn applied_columns_keep_jsonpaths() {
        let applied = applied_columns(&schema("`a` String `json:$.a.b`"));
        assert_eq!(applied[0].jsonpath.as_deref(), Some("$.a.b"));
        assert_eq!(applied[0].ty, "String");
    }
}

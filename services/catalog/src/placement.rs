//! Where a data source's tables live. On one server: one table. On a cluster (when the engine
//! names one): a replicated local table on every shard (`<table>_local`, created `ON CLUSTER`)
//! and, under the data source's own table name, a Distributed table over them. Readers and
//! writers keep using that one name; rows spread over the shards at random.

use roost_engine::{Engine, LOCAL_TABLE_SUFFIX, local_table, on_cluster};
use roost_types::{quote_ident, quote_string};

/// Builds the DDL of data source tables for one server or one cluster.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Placement<'a> {
    cluster: Option<&'a str>,
}

impl<'a> Placement<'a> {
    /// The placement `engine` calls for.
    pub(crate) fn of(engine: &'a dyn Engine) -> Self {
        Placement {
            cluster: engine.cluster(),
        }
    }

    /// The cluster, if any.
    pub(crate) fn cluster(&self) -> Option<&'a str> {
        self.cluster
    }

    /// ` ON CLUSTER c`, or nothing.
    pub(crate) fn on_cluster(&self) -> String {
        on_cluster(self.cluster)
    }

    /// `CREATE DATABASE IF NOT EXISTS`, on every server of the cluster.
    pub(crate) fn create_database(&self, database: &str) -> String {
        format!(
            "CREATE DATABASE IF NOT EXISTS {}{}",
            quote_ident(database),
            self.on_cluster()
        )
    }

    /// `DROP DATABASE IF EXISTS`, on every server of the cluster.
    pub(crate) fn drop_database(&self, database: &str) -> String {
        format!(
            "DROP DATABASE IF EXISTS {}{}",
            quote_ident(database),
            self.on_cluster()
        )
    }

    /// The statements that create `database`.`name`, in order. `create(table, on_cluster,
    /// replica_path)` writes the statement of the table that holds the rows.
    pub(crate) fn create<E>(
        &self,
        database: &str,
        name: &str,
        create: impl Fn(&str, &str, Option<&str>) -> Result<String, E>,
    ) -> Result<Vec<String>, E> {
        let table = format!("{}.{}", quote_ident(database), quote_ident(name));
        let Some(cluster) = self.cluster else {
            return Ok(vec![create(&table, "", None)?]);
        };
        let local = local_table(&table);
        let on = self.on_cluster();
        // The table's own path: a new table never meets parts of an old one of the same name.
        let path = format!("/clickhouse/tables/{{shard}}/{database}/{name}");
        Ok(vec![
            create(&local, &on, Some(&path))?,
            format!(
                "CREATE TABLE {table}{on} AS {local} ENGINE = Distributed({}, {}, {}, rand())",
                quote_string(cluster),
                quote_string(database),
                quote_string(&format!("{name}{LOCAL_TABLE_SUFFIX}")),
            ),
        ])
    }

    /// The statements that drop `table` and, on a cluster, its local tables; `sync` is the
    /// engine's [`Engine::drop_sync_clause`].
    pub(crate) fn drop(&self, table: &str, sync: &str) -> Vec<String> {
        match self.cluster {
            None => vec![format!("DROP TABLE IF EXISTS {table}{sync}")],
            Some(_) => {
                let on = self.on_cluster();
                vec![
                    format!("DROP TABLE IF EXISTS {table}{on}{sync}"),
                    format!("DROP TABLE IF EXISTS {}{on}{sync}", local_table(table)),
                ]
            }
        }
    }

    /// The statement that drops a materialized view (`DROP TABLE` on a cluster: 18.16 has no
    /// `DROP VIEW`); `sync` as for [`Placement::drop`].
    pub(crate) fn drop_view(&self, view: &str, sync: &str) -> String {
        match self.cluster {
            None => format!("DROP VIEW IF EXISTS {view}{sync}"),
            Some(_) => format!("DROP TABLE IF EXISTS {view}{}{sync}", self.on_cluster()),
        }
    }

    /// The statement that empties `table` (on a cluster, its local tables: a Distributed table
    /// holds no rows).
    pub(crate) fn truncate(&self, table: &str) -> String {
        match self.cluster {
            None => format!("TRUNCATE TABLE IF EXISTS {table}"),
            Some(_) => format!(
                "TRUNCATE TABLE IF EXISTS {}{}",
                local_table(table),
                self.on_cluster()
            ),
        }
    }

    /// Where the active parts of every server are listed, and how a part's table name reads as
    /// the data source table it belongs to.
    pub(crate) fn parts_source(&self) -> String {
        match self.cluster {
            None => "system.parts".to_string(),
            Some(cluster) => format!("cluster({}, system, parts)", quote_string(cluster)),
        }
    }

    /// The data source table a part's table belongs to.
    pub(crate) fn table_of_part<'t>(&self, table: &'t str) -> &'t str {
        match self.cluster {
            None => table,
            Some(_) => table.strip_suffix(LOCAL_TABLE_SUFFIX).unwrap_or(table),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statements(cluster: Option<&str>) -> Vec<String> {
        Placement { cluster }
            .create("w_1", "t_2", |table, on, path| {
                Ok::<_, ()>(format!("CREATE {table}{on} {path:?}"))
            })
            .unwrap()
    }

    #[test]
    fn one_server_has_one_table() {
        assert_eq!(statements(None), ["CREATE `w_1`.`t_2` None"]);
        let one = Placement { cluster: None };
        assert_eq!(
            one.drop("`w_1`.`t_2`", " SYNC"),
            ["DROP TABLE IF EXISTS `w_1`.`t_2` SYNC"]
        );
        assert_eq!(
            one.drop("`w_1`.`t_2`", ""),
            ["DROP TABLE IF EXISTS `w_1`.`t_2`"]
        );
        assert_eq!(
            one.truncate("`w_1`.`t_2`"),
            "TRUNCATE TABLE IF EXISTS `w_1`.`t_2`"
        );
        assert_eq!(one.table_of_part("t_2_local"), "t_2_local");
        assert_eq!(
            one.drop_view("`w_1`.`mv`", " SYNC"),
            "DROP VIEW IF EXISTS `w_1`.`mv` SYNC"
        );
    }

    #[test]
    fn a_cluster_has_replicated_local_tables_behind_a_distributed_one() {
        assert_eq!(
            statements(Some("c")),
            [
                "CREATE `w_1`.`t_2_local` ON CLUSTER `c` Some(\"/clickhouse/tables/{shard}/w_1/t_2\")",
                "CREATE TABLE `w_1`.`t_2` ON CLUSTER `c` AS `w_1`.`t_2_local` ENGINE = Distributed('c', 'w_1', 't_2_local', rand())",
            ]
        );
        let cluster = Placement { cluster: Some("c") };
        assert_eq!(
            cluster.drop("`w_1`.`t_2`", ""),
            [
                "DROP TABLE IF EXISTS `w_1`.`t_2` ON CLUSTER `c`",
                "DROP TABLE IF EXISTS `w_1`.`t_2_local` ON CLUSTER `c`",
            ]
        );
        assert_eq!(
            cluster.drop("`w_1`.`t_2`", " SYNC"),
            [
                "DROP TABLE IF EXISTS `w_1`.`t_2` ON CLUSTER `c` SYNC",
                "DROP TABLE IF EXISTS `w_1`.`t_2_local` ON CLUSTER `c` SYNC",
            ]
        );
        assert_eq!(
            cluster.truncate("`w_1`.`t_2`"),
            "TRUNCATE TABLE IF EXISTS `w_1`.`t_2_local` ON CLUSTER `c`"
        );
        assert_eq!(cluster.table_of_part("t_2_local"), "t_2");
        assert_eq!(
            cluster.drop_view("`w_1`.`mv`", ""),
            "DROP TABLE IF EXISTS `w_1`.`mv` ON CLUSTER `c`"
        );
        assert_eq!(cluster.parts_source(), "cluster('c', system, parts)");
    }
}

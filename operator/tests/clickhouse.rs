//! The operator's DDL on the real ClickHouse cluster (two 18.16 shards and ZooKeeper, started by
//! scripts/clickhouse-up.sh): each engine a DataSource may name becomes its replicated variant on
//! both shards under a Distributed table that takes inserts; a column plan is applied as the
//! reconciler applies it. Without a cluster each test prints `SKIPPED: ...`.

mod support;

use roost_engine::{ClickHouse, Engine, ServerVersion};
use roost_operator::crd::{EngineKind, EngineSpec};
use roost_operator::ddl;
use roost_testkit::clickhouse::{ClickHouseCluster, cluster_or_skip};

async fn text(engine: &ClickHouse, sql: &str) -> String {
    let answer = engine
        .query(sql, "TabSeparated")
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    String::from_utf8_lossy(&answer.data).trim_end().to_string()
}

/// A fresh database on the cluster, named for the test and the run.
async fn database(engine: &ClickHouse, cluster: &ClickHouseCluster, test: &str) -> String {
    let name = format!("op_{test}_{}", support::run_id());
    engine
        .execute(&ddl::create_database(&name, &cluster.cluster))
        .await
        .expect("create the database");
    name
}

/// Creates the local and Distributed tables as the reconciler does.
async fn create(
    engine: &ClickHouse,
    cluster: &ClickHouseCluster,
    database: &str,
    name: &str,
    schema: &str,
    spec: &EngineSpec,
    ttl: Option<&str>,
) -> Result<(), String> {
    let columns = roost_types::parse_schema(schema).map_err(|e| e.to_string())?;
    let local = format!("{name}_local");
    let clause = ddl::local_engine(
        &ddl::engine_settings(spec, ttl),
        &ddl::zookeeper_path(database, &format!("{name}_{}", support::run_id())),
    )?;
    let statement = ddl::create_local_table(database, &local, &cluster.cluster, &columns, &clause)?;
    engine
        .execute(&statement)
        .await
        .map_err(|e| e.to_string())?;
    engine
        .execute(&ddl::create_distributed_table(
            database,
            name,
            &local,
            &cluster.cluster,
        ))
        .await
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn every_engine_is_replicated_under_a_distributed_table() {
    let test = "every_engine_is_replicated_under_a_distributed_table";
    let Some(cluster) = cluster_or_skip(test) else {
        return;
    };
    let engine = support::engine(cluster);
    let database = database(&engine, cluster, "engines").await;
    let cases = [
        (
            EngineKind::MergeTree,
            "`id` UInt64, `n` Int64",
            EngineSpec::default(),
        ),
        (
            EngineKind::ReplacingMergeTree,
            "`id` UInt64, `n` Int64",
            EngineSpec {
                ver: Some("n".into()),
                ..EngineSpec::default()
            },
        ),
        (
            EngineKind::SummingMergeTree,
            "`id` UInt64, `n` Int64",
            EngineSpec {
                summing_columns: Some("n".into()),
                ..EngineSpec::default()
            },
        ),
        (
            EngineKind::AggregatingMergeTree,
            "`id` UInt64, `n` AggregateFunction(sum, Int64)",
            EngineSpec::default(),
        ),
        (
            EngineKind::CollapsingMergeTree,
            "`id` UInt64, `n` Int8",
            EngineSpec {
                sign: Some("n".into()),
                ..EngineSpec::default()
            },
        ),
        (
            EngineKind::VersionedCollapsingMergeTree,
            "`id` UInt64, `n` Int8, `v` UInt32",
            EngineSpec {
                sign: Some("n".into()),
                version: Some("v".into()),
                ..EngineSpec::default()
            },
        ),
    ];
    for (kind, schema, spec) in cases {
        let name = kind.name().to_lowercase();
        let spec = EngineSpec {
            kind,
            sorting_key: Some("id".into()),
            partition_key: Some("id % 4".into()),
            ..spec
        };
        create(&engine, cluster, &database, &name, schema, &spec, None)
            .await
            .unwrap_or_else(|e| panic!("{kind:?}: {e}"));
        for index in 0..cluster.urls.len() {
            let shard = support::engine_on(cluster, index);
            let engines = text(
                &shard,
                &format!(
                    "SELECT name, engine FROM system.tables WHERE database = '{database}' AND name LIKE '{name}%' ORDER BY name"
                ),
            )
            .await;
            assert_eq!(
                engines,
                format!(
                    "{name}\tDistributed\n{name}_local\tReplicated{}",
                    kind.name()
                ),
                "shard {index}"
            );
        }
    }
    // Rows inserted through a Distributed table are spread over the shards and read back whole.
    support::insert(
        &engine,
        &format!(
            "INSERT INTO `{database}`.`mergetree` SELECT number, number FROM system.numbers LIMIT 100"
        ),
    )
    .await;
    support::wait_for("the rows on the shards", || async {
        text(
            &engine,
            &format!("SELECT count() FROM `{database}`.`mergetree`"),
        )
        .await
            == "100"
    })
    .await;
    let on_shards: u64 = {
        let mut total = 0;
        for index in 0..cluster.urls.len() {
            let shard = support::engine_on(cluster, index);
            total += text(
                &shard,
                &format!("SELECT count() FROM `{database}`.`mergetree_local`"),
            )
            .await
            .parse::<u64>()
            .unwrap();
        }
        total
    };
    assert_eq!(on_shards, 100, "each row is on exactly one shard");
    engine
        .execute(&ddl::drop_database(&database, &cluster.cluster))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_table_ttl_needs_a_server_that_has_them() {
    let test = "a_table_ttl_needs_a_server_that_has_them";
    let Some(cluster) = cluster_or_skip(test) else {
        return;
    };
    let engine = support::engine(cluster);
    let version = engine.server_version().await.unwrap();
    let database = database(&engine, cluster, "ttl").await;
    let spec = EngineSpec {
        sorting_key: Some("id".into()),
        ..EngineSpec::default()
    };
    let created = create(
        &engine,
        cluster,
        &database,
        "expiring",
        "`id` UInt64, `t` DateTime",
        &spec,
        Some("t + INTERVAL 1 DAY"),
    )
    .await;
    let has_ttl = ServerVersion::parse(&version).is_some_and(|v| v.at_least(19, 6));
    if has_ttl {
        created.expect("a table TTL");
        let ddl = text(
            &support::engine_on(cluster, 1),
            &format!("SHOW CREATE TABLE `{database}`.`expiring_local`"),
        )
        .await;
        assert!(ddl.contains("TTL t + toIntervalDay(1)"), "{ddl}");
    } else {
        // The reconciler reports this error in the DataSource's status and retries.
        let error = created.expect_err("no table TTL before 19.6");
        println!(
            "SKIPPED: {test}: ClickHouse {version} has no table TTL (19.6+); it refuses: {error}"
        );
    }
    engine
        .execute(&ddl::drop_database(&database, &cluster.cluster))
        .await
        .unwrap();
}

#[tokio::test]
async fn column_plans_apply_to_both_tables_on_every_shard() {
    let test = "column_plans_apply_to_both_tables_on_every_shard";
    let Some(cluster) = cluster_or_skip(test) else {
        return;
    };
    let engine = support::engine(cluster);
    let database = database(&engine, cluster, "columns").await;
    let spec = EngineSpec {
        sorting_key: Some("id".into()),
        ..EngineSpec::default()
    };
    create(
        &engine,
        cluster,
        &database,
        "events",
        "`id` UInt64, `old` String",
        &spec,
        None,
    )
    .await
    .unwrap();
    let desired = roost_types::parse_schema(
        "`id` UInt64, `city` LowCardinality(String) DEFAULT 'unknown', `amount` Decimal(10,2)",
    )
    .unwrap();
    let columns_on = |index: usize, table: &'static str| {
        let shard = support::engine_on(cluster, index);
        let database = database.clone();
        async move { ddl::parse_columns(&text(&shard, &ddl::columns_query(&database, table)).await) }
    };
    let actual = columns_on(0, "events_local").await;
    assert!(
        !ddl::plan_columns(&actual, &desired, false)
            .refused
            .is_empty(),
        "dropping `old` needs allowColumnDrops"
    );
    let plan = ddl::plan_columns(&actual, &desired, true);
    for statement in ddl::alter_statements(&database, "events_local", Some(&cluster.cluster), &plan)
    {
        engine
            .execute(&statement)
            .await
            .unwrap_or_else(|e| panic!("{statement}: {e}"));
    }
    for index in 0..cluster.urls.len() {
        let shard = support::engine_on(cluster, index);
        let actual = columns_on(index, "events").await;
        let plan = ddl::plan_columns(&actual, &desired, true);
        for statement in ddl::alter_statements(&database, "events", None, &plan) {
            shard
                .execute(&statement)
                .await
                .unwrap_or_else(|e| panic!("{statement}: {e}"));
        }
    }
    for index in 0..cluster.urls.len() {
        for table in ["events_local", "events"] {
            let actual = columns_on(index, table).await;
            assert!(
                ddl::plan_columns(&actual, &desired, false).is_empty(),
                "{table} on shard {index}: {actual:?}"
            );
            let names: Vec<&str> = actual.iter().map(|(n, _)| n.as_str()).collect();
            assert_eq!(names, ["id", "city", "amount"], "{table} on shard {index}");
        }
    }
    support::insert(
        &engine,
        &format!("INSERT INTO `{database}`.`events` (id, amount) VALUES (1, 2.5)"),
    )
    .await;
    support::wait_for("the row", || async {
        text(
            &engine,
            &format!("SELECT city, amount FROM `{database}`.`events`"),
        )
        .await
            == "unknown\t2.50"
    })
    .await;
    engine
        .execute(&ddl::drop_database(&database, &cluster.cluster))
        .await
        .unwrap();
}

//! The operator against a real Kubernetes API server (scripts/k8s-apiserver.sh: the CRD-serving
//! apiextensions-apiserver over etcd) and the real ClickHouse cluster (two 18.16 shards with
//! ZooKeeper): the controllers run as in production, driven by what is applied to the server.
//! Secrets go through the in-memory stand-in (the server serves no built-in kinds; the Kubernetes
//! Secret calls are covered by the mocked-API tests); Events and Leases go to stand-in CRDs of
//! their own groups, so the operator's real code paths write them.
//!
//! Without an API server or a cluster each test prints `SKIPPED: ...` (set ROOST_TEST_REQUIRE_K8S=1
//! and ROOST_TEST_REQUIRE_CLICKHOUSE=1 to fail instead).

mod support;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::events::v1::Event as KubeEvent;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::events::Reporter;
use kube::{Api, Client};
use roost_engine::Engine;
use roost_operator::Context;
use roost_operator::crd::{
    ClickHouseRef, DataSource, DataSourceSpec, DeletionPolicy, EngineSpec, Workspace,
    WorkspaceSpec, is_true,
};
use roost_operator::lease::LeaderElection;
use roost_operator::metrics::Metrics;
use roost_proto::auth::v1 as auth;
use roost_testkit::clickhouse::cluster_or_skip;
use support::MemorySecrets;

async fn text(engine: &dyn Engine, sql: &str) -> String {
    let answer = engine
        .query(sql, "TabSeparated")
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    String::from_utf8_lossy(&answer.data).trim_end().to_string()
}

/// The columns of `database.table` on one server, as `name type` lines.
async fn columns(engine: &dyn Engine, database: &str, table: &str) -> Vec<String> {
    let answer = text(
        engine,
        &format!(
            "SELECT name, type FROM system.columns WHERE database = '{database}' AND table = '{table}'"
        ),
    )
    .await;
    answer.lines().map(|line| line.replace('\t', " ")).collect()
}

async fn database_exists(engine: &dyn Engine, database: &str) -> bool {
    text(
        engine,
        &format!("SELECT count() FROM system.databases WHERE name = '{database}'"),
    )
    .await
        == "1"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applied_resources_become_databases_and_tables_on_the_cluster() {
    let test = "applied_resources_become_databases_and_tables_on_the_cluster";
    let Some(kubeconfig) = support::api_server_or_skip(test) else {
        return;
    };
    let Some(cluster) = cluster_or_skip(test) else {
        return;
    };
    support::init_logs();
    let client = support::client(kubeconfig).await;
    support::install_crds(&client).await;
    let (auth, seeded, _dir) = support::catalog().await;
    let secrets = Arc::new(MemorySecrets::default());
    let engine = Arc::new(support::engine(cluster));
    let metrics = Arc::new(Metrics::default());
    let ctx = Arc::new(Context::new(
        client.clone(),
        engine.clone(),
        (0..cluster.urls.len())
            .map(|index| Arc::new(support::engine_on(cluster, index)) as Arc<dyn Engine>)
            .collect(),
        auth.clone(),
        secrets.clone(),
        seeded.user_id.clone(),
        metrics.clone(),
        Reporter {
            controller: "roost-operator".into(),
            instance: Some("test".into()),
        },
    ));
    let operator = tokio::spawn(roost_operator::run(ctx));

    let run = support::run_id();
    let namespace = format!("t{run}");
    let workspaces: Api<Workspace> = Api::namespaced(client.clone(), &namespace);
    let data_sources: Api<DataSource> = Api::namespaced(client.clone(), &namespace);
    let display_name = format!("ws_{run}");

    // A Workspace becomes a catalog entry, a database on both shards and a token Secret.
    let workspace = Workspace::new(
        "analytics",
        WorkspaceSpec {
            organization: String::new(),
            display_name: display_name.clone(),
            clickhouse: ClickHouseRef {
                cluster: cluster.cluster.clone(),
            },
            quotas: Default::default(),
            deletion_policy: DeletionPolicy::Drop,
        },
    );
    workspaces
        .create(&PostParams::default(), &workspace)
        .await
        .expect("create the Workspace");
    support::wait_for("the Workspace to be ready", || async {
        workspaces
            .get("analytics")
            .await
            .ok()
            .and_then(|w| w.status)
            .is_some_and(|s| is_true(&s.conditions, "Ready"))
    })
    .await;
    let status = workspaces.get("analytics").await.unwrap().status.unwrap();
    let database = status.database.clone().expect("a database");
    assert_eq!(status.observed_generation, Some(1));
    for index in 0..cluster.urls.len() {
        let shard = support::engine_on(cluster, index);
        assert!(
            database_exists(&shard, &database).await,
            "{database} on shard {index}"
        );
    }
    let listed = auth
        .list_user_workspaces(auth::ListUserWorkspacesRequest {
            user_id: seeded.user_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    let access = listed
        .workspaces
        .iter()
        .find(|a| a.workspace.as_ref().is_some_and(|w| w.name == display_name))
        .expect("the catalog lists the workspace");
    assert_eq!(
        access.workspace.as_ref().unwrap().database,
        database,
        "the status names the catalog's database"
    );
    let secret_name = status.admin_token_secret.clone().expect("a Secret name");
    assert_eq!(
        secrets.value(&namespace, &secret_name, "token").as_deref(),
        Some(access.token.as_str())
    );

    // A DataSource becomes a replicated local table and a Distributed table on both shards.
    let mut data_source = DataSource::new(
        "page-views",
        DataSourceSpec {
            workspace: "analytics".into(),
            name: None,
            schema: "`id` UInt64 `json:$.id`, `url` String `json:$.url`".into(),
            engine: EngineSpec {
                sorting_key: Some("id".into()),
                ..Default::default()
            },
            ttl: None,
            deletion_policy: DeletionPolicy::Drop,
            allow_column_drops: false,
        },
    );
    data_sources
        .create(&PostParams::default(), &data_source)
        .await
        .expect("create the DataSource");
    let ready_at = |generation: i64| {
        let data_sources = data_sources.clone();
        move || {
            let data_sources = data_sources.clone();
            async move {
                data_sources
                    .get("page-views")
                    .await
                    .ok()
                    .and_then(|d| d.status)
                    .is_some_and(|s| {
                        s.observed_generation == Some(generation) && is_true(&s.conditions, "Ready")
                    })
            }
        }
    };
    support::wait_for("the DataSource to be ready", ready_at(1)).await;
    let status = data_sources
        .get("page-views")
        .await
        .unwrap()
        .status
        .unwrap();
    assert_eq!(status.table.as_deref(), Some("page_views"));
    assert_eq!(status.local_table.as_deref(), Some("page_views_local"));
    assert_eq!(status.applied_columns.len(), 2);
    assert_eq!(status.applied_columns[1].jsonpath.as_deref(), Some("$.url"));
    for index in 0..cluster.urls.len() {
        let shard = support::engine_on(cluster, index);
        for table in ["page_views", "page_views_local"] {
            assert_eq!(
                columns(&shard, &database, table).await,
                ["id UInt64", "url String"],
                "{table} on shard {index}"
            );
        }
        let engine_name = text(
            &shard,
            &format!(
                "SELECT engine FROM system.tables WHERE database = '{database}' AND name = 'page_views_local'"
            ),
        )
        .await;
        assert_eq!(engine_name, "ReplicatedMergeTree");
    }
    support::insert(
        engine.as_ref(),
        &format!(
            "INSERT INTO `{database}`.`page_views` (id, url) VALUES (1, '/a'), (2, '/b'), (3, '/c')"
        ),
    )
    .await;
    support::wait_for("the rows to reach the shards", || async {
        text(
            engine.as_ref(),
            &format!("SELECT count() FROM `{database}`.`page_views`"),
        )
        .await
            == "3"
    })
    .await;

    // A column added to the spec is added to both tables on both shards; the rows stay.
    data_source.spec.schema =
        "`id` UInt64 `json:$.id`, `url` String `json:$.url`, `country` String `json:$.country`"
            .into();
    data_sources
        .patch(
            "page-views",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"schema": data_source.spec.schema}})),
        )
        .await
        .expect("change the schema");
    support::wait_for("the new column to be applied", ready_at(2)).await;
    for index in 0..cluster.urls.len() {
        let shard = support::engine_on(cluster, index);
        for table in ["page_views", "page_views_local"] {
            assert_eq!(
                columns(&shard, &database, table).await,
                ["id UInt64", "url String", "country String"],
                "{table} on shard {index}"
            );
        }
    }
    assert_eq!(
        text(
            engine.as_ref(),
            &format!("SELECT count() FROM `{database}`.`page_views` WHERE country = ''"),
        )
        .await,
        "3"
    );

    // A type change is refused: Degraded, the tables untouched.
    data_sources
        .patch(
            "page-views",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"schema":
                "`id` String `json:$.id`, `url` String `json:$.url`, `country` String `json:$.country`"}})),
        )
        .await
        .expect("change a type");
    support::wait_for("the type change to be refused", || async {
        data_sources
            .get("page-views")
            .await
            .ok()
            .and_then(|d| d.status)
            .is_some_and(|s| {
                s.observed_generation == Some(3)
                    && s.conditions.iter().any(|c| {
                        c.type_ == "Degraded"
                            && c.status == "True"
                            && c.reason == "UnsafeSchemaChange"
                    })
            })
    })
    .await;
    assert_eq!(
        columns(engine.as_ref(), &database, "page_views_local").await,
        ["id UInt64", "url String", "country String"]
    );

    // Deleting the DataSource drops both tables on both shards, then lets the resource go.
    data_sources
        .delete("page-views", &DeleteParams::default())
        .await
        .expect("delete the DataSource");
    support::wait_for("the DataSource to be gone", || async {
        data_sources
            .get_opt("page-views")
            .await
            .ok()
            .flatten()
            .is_none()
    })
    .await;
    for index in 0..cluster.urls.len() {
        let shard = support::engine_on(cluster, index);
        assert!(columns(&shard, &database, "page_views").await.is_empty());
        assert!(
            columns(&shard, &database, "page_views_local")
                .await
                .is_empty()
        );
    }

    // Deleting the Workspace drops its database and unregisters it.
    workspaces
        .delete("analytics", &DeleteParams::default())
        .await
        .expect("delete the Workspace");
    support::wait_for("the Workspace to be gone", || async {
        workspaces
            .get_opt("analytics")
            .await
            .ok()
            .flatten()
            .is_none()
    })
    .await;
    for index in 0..cluster.urls.len() {
        let shard = support::engine_on(cluster, index);
        assert!(!database_exists(&shard, &database).await, "shard {index}");
    }
    let listed = auth
        .list_user_workspaces(auth::ListUserWorkspacesRequest {
            user_id: seeded.user_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        !listed
            .workspaces
            .iter()
            .any(|a| a.workspace.as_ref().is_some_and(|w| w.name == display_name))
    );
    assert!(secrets.value(&namespace, &secret_name, "token").is_none());

    // What happened was recorded as events on the resources.
    let events: Api<KubeEvent> = Api::namespaced(client.clone(), &namespace);
    let reasons: Vec<String> = events
        .list(&ListParams::default())
        .await
        .expect("list events")
        .items
        .into_iter()
        .filter_map(|event| event.reason)
        .collect();
    for reason in ["Created", "Applied", "UnsafeSchemaChange", "Deleted"] {
        assert!(
            reasons.iter().any(|r| r == reason),
            "{reason} in {reasons:?}"
        );
    }
    let rendered = metrics.render();
    assert!(
        rendered.contains(r#"roost_operator_reconciliations_total{kind="DataSource"}"#),
        "{rendered}"
    );
    operator.abort();
}

#[tokio::test]
async fn only_one_replica_holds_the_lease() {
    let test = "only_one_replica_holds_the_lease";
    let Some(kubeconfig) = support::api_server_or_skip(test) else {
        return;
    };
    let client: Client = support::client(kubeconfig).await;
    support::install_crds(&client).await;
    let namespace = format!("lease{}", support::run_id());
    // Long enough that a loaded machine's slow API calls do not let the lease lapse between the
    // holder's acquire and the standby's attempt.
    let duration = Duration::from_secs(8);
    let first = LeaderElection::new(
        client.clone(),
        &namespace,
        "roost-operator",
        "pod-a",
        duration,
    );
    let second = LeaderElection::new(
        client.clone(),
        &namespace,
        "roost-operator",
        "pod-b",
        duration,
    );
    assert!(
        first.try_acquire_or_renew().await.unwrap(),
        "the first takes a free lease"
    );
    assert!(
        !second.try_acquire_or_renew().await.unwrap(),
        "a held lease is not taken"
    );
    assert!(
        first.try_acquire_or_renew().await.unwrap(),
        "the holder renews"
    );
    // The holder stops renewing: once the lease lapses, the standby takes over.
    tokio::time::sleep(duration + Duration::from_millis(500)).await;
    assert!(
        second.try_acquire_or_renew().await.unwrap(),
        "a lapsed lease is taken over"
    );
    assert!(
        !first.try_acquire_or_renew().await.unwrap(),
        "the old holder lost it"
    );
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(client, &namespace);
    let spec = leases.get("roost-operator").await.unwrap().spec.unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some("pod-b"));
    assert_eq!(spec.lease_transitions, Some(1));
}

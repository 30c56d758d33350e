//! The reconcilers against a mocked Kubernetes API server (tower-test, as kube-rs/controller-rs
//! does): each test states the calls a reconciliation must make, in order, with what each sends,
//! and answers them. The catalog is the real in-process auth service over SQLite; ClickHouse is a
//! recorder of the statements sent, with the column listings a test sets, so the DDL each step
//! runs is asserted too (the real cluster is in tests/apiserver.rs and tests/clickhouse.rs).

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use http::{Method, Request, Response};
use kube::client::Body;
use kube::runtime::controller::Action;
use kube::runtime::events::Reporter;
use kube::{Client, Resource};
use roost_engine::{Engine, EngineError, InsertBlock, InsertSummary, QueryResult};
use roost_operator::crd::{
    ClickHouseRef, Condition, DataSource, DataSourceSpec, DataSourceStatus, DeletionPolicy,
    EngineSpec, Workspace, WorkspaceSpec, WorkspaceStatus,
};
use roost_operator::metrics::Metrics;
use roost_operator::secrets::KubeSecrets;
use roost_operator::{Context, FINALIZER, controller, datasource, workspace};
use serde_json::{Value, json};

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

/// Records statements; answers `system.columns` listings from what the test set per table.
#[derive(Default)]
struct RecordingEngine {
    statements: Mutex<Vec<String>>,
    columns: Mutex<HashMap<String, Vec<(String, String)>>>,
}

impl RecordingEngine {
    fn set_columns(&self, table: &str, columns: &[(&str, &str)]) {
        self.columns.lock().unwrap().insert(
            table.to_string(),
            columns
                .iter()
                .map(|(n, t)| (n.to_string(), t.to_string()))
                .collect(),
        );
    }

    fn statements(&self) -> Vec<String> {
        self.statements.lock().unwrap().clone()
    }
}

#[async_trait]
impl Engine for RecordingEngine {
    async fn query(&self, sql: &str, _format: &str) -> Result<QueryResult, EngineError> {
        let columns = self.columns.lock().unwrap();
        let table = columns
            .keys()
            .find(|table| sql.ends_with(&format!("AND table = '{table}'")));
        let data = table
            .map(|table| {
                columns[table]
                    .iter()
                    .map(|(n, t)| format!("{n}\t{t}\n"))
                    .collect::<String>()
            })
            .unwrap_or_default();
        Ok(QueryResult {
            data: data.into(),
            ..QueryResult::default()
        })
    }

    async fn execute(&self, sql: &str) -> Result<(), EngineError> {
        self.statements.lock().unwrap().push(sql.to_string());
        Ok(())
    }

    async fn insert(&self, _block: InsertBlock<'_>) -> Result<InsertSummary, EngineError> {
        Err(EngineError::Invalid("the operator never inserts".into()))
    }

    fn kind(&self) -> &'static str {
        "recording"
    }

    fn cluster(&self) -> Option<&str> {
        Some("roost")
    }
}

struct Fixture {
    ctx: Arc<Context>,
    engine: Arc<RecordingEngine>,
    metrics: Arc<Metrics>,
    handle: Handle,
    auth: roost_proto::AuthClient,
    user_id: String,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let (auth, seeded, dir) = support::catalog().await;
    let engine = Arc::new(RecordingEngine::default());
    let metrics = Arc::new(Metrics::default());
    let ctx = Arc::new(Context::new(
        client.clone(),
        engine.clone(),
        vec![engine.clone()],
        auth.clone(),
        Arc::new(KubeSecrets::new(client)),
        seeded.user_id.clone(),
        metrics.clone(),
        Reporter {
            controller: "roost-operator".into(),
            instance: Some("test".into()),
        },
    ));
    Fixture {
        ctx,
        engine,
        metrics,
        handle,
        auth,
        user_id: seeded.user_id,
        _dir: dir,
    }
}

/// Takes the next call, checks its method and path (with query), answers `status` with `answer`
/// and returns the body it carried.
async fn expect(
    handle: &mut Handle,
    method: Method,
    path: &str,
    status: u16,
    answer: impl FnOnce(&Value) -> Value,
) -> Value {
    let (request, respond) = tokio::time::timeout(Duration::from_secs(5), handle.next_request())
        .await
        .unwrap_or_else(|_| panic!("no call came; expected {method} {path}"))
        .expect("the client is alive");
    assert_eq!(
        (request.method().clone(), request.uri().to_string()),
        (method, path.to_string()),
        "calls out of order"
    );
    let bytes = request.into_body().collect_bytes().await.unwrap();
    let body: Value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    let answer = answer(&body);
    respond.send_response(
        Response::builder()
            .status(status)
            .body(Body::from(serde_json::to_vec(&answer).unwrap()))
            .unwrap(),
    );
    body
}

fn not_found() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"})
}

fn workspace(finalized: bool, status: Option<WorkspaceStatus>) -> Workspace {
    let mut workspace = Workspace::new(
        "analytics",
        WorkspaceSpec {
            organization: String::new(),
            display_name: "analytics_ws".into(),
            clickhouse: ClickHouseRef {
                cluster: "roost".into(),
            },
            quotas: Default::default(),
            deletion_policy: DeletionPolicy::Drop,
        },
    );
    let meta = workspace.meta_mut();
    meta.namespace = Some("default".into());
    meta.uid = Some("uid-ws".into());
    meta.generation = Some(1);
    meta.resource_version = Some("1".into());
    if finalized {
        meta.finalizers = Some(vec![FINALIZER.into()]);
    }
    workspace.status = status;
    workspace
}

fn ready(reason: &str) -> Vec<Condition> {
    vec![Condition {
        type_: "Ready".into(),
        status: "True".into(),
        reason: reason.into(),
        message: String::new(),
        last_transition_time: "2026-01-01T00:00:00Z".into(),
        observed_generation: Some(1),
    }]
}

fn data_source(schema: &str, status: Option<DataSourceStatus>) -> DataSource {
    let mut data_source = DataSource::new(
        "page-views",
        DataSourceSpec {
            workspace: "analytics".into(),
            name: None,
            schema: schema.into(),
            engine: EngineSpec {
                sorting_key: Some("id".into()),
                ..Default::default()
            },
            ttl: None,
            deletion_policy: DeletionPolicy::Drop,
            allow_column_drops: false,
        },
    );
    let meta = data_source.meta_mut();
    meta.namespace = Some("default".into());
    meta.uid = Some("uid-ds".into());
    meta.generation = Some(2);
    meta.resource_version = Some("1".into());
    meta.finalizers = Some(vec![FINALIZER.into()]);
    data_source.status = status;
    data_source
}

const WORKSPACES: &str = "/apis/roost.dev/v1alpha1/namespaces/default/workspaces";
const DATA_SOURCES: &str = "/apis/roost.dev/v1alpha1/namespaces/default/datasources";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/default/events?";
const APPLY: &str = "?&force=true&fieldManager=roost-operator";

#[tokio::test]
async fn a_new_workspace_gets_the_finalizer_first() {
    let mut f = fixture().await;
    let object = Arc::new(workspace(false, None));
    let reconcile = tokio::spawn(workspace::reconcile(object.clone(), f.ctx.clone()));
    let patch = expect(
        &mut f.handle,
        Method::PATCH,
        &format!("{WORKSPACES}/analytics?"),
        200,
        |_| {
            let mut finalized = serde_json::to_value(workspace(true, None)).unwrap();
            finalized["metadata"]["resourceVersion"] = "2".into();
            finalized
        },
    )
    .await;
    assert_eq!(patch[0]["op"], "test", "{patch}");
    assert_eq!(patch[1]["op"], "add");
    assert_eq!(patch[1]["value"], json!([FINALIZER]));
    let action = reconcile.await.unwrap().expect("the reconciliation");
    assert_eq!(action, Action::await_change());
    assert!(
        f.engine.statements().is_empty(),
        "nothing made before the finalizer"
    );
}

#[tokio::test]
async fn a_workspace_is_registered_then_gets_its_database_secret_event_and_status() {
    let mut f = fixture().await;
    let object = Arc::new(workspace(true, None));
    let reconcile = tokio::spawn(workspace::reconcile(object, f.ctx.clone()));
    let secret = expect(
        &mut f.handle,
        Method::PATCH,
        &format!("/api/v1/namespaces/default/secrets/analytics-admin-token{APPLY}"),
        200,
        Value::clone,
    )
    .await;
    let event = expect(&mut f.handle, Method::POST, EVENTS, 201, Value::clone).await;
    let status = expect(
        &mut f.handle,
        Method::PATCH,
        &format!("{WORKSPACES}/analytics/status{APPLY}"),
        200,
        |_| serde_json::to_value(workspace(true, None)).unwrap(),
    )
    .await;
    let action = reconcile.await.unwrap().expect("the reconciliation");
    assert_eq!(action, controller_resync());

    let listed = f
        .auth
        .list_user_workspaces(roost_proto::auth::v1::ListUserWorkspacesRequest {
            user_id: f.user_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    let access = listed
        .workspaces
        .iter()
        .find(|a| a.workspace.as_ref().unwrap().name == "analytics_ws")
        .expect("registered in the catalog");
    let record = access.workspace.clone().unwrap();
    assert_eq!(
        f.engine.statements(),
        [format!(
            "CREATE DATABASE IF NOT EXISTS `{}` ON CLUSTER `roost`",
            record.database
        )]
    );
    assert_eq!(secret["kind"], "Secret");
    assert_eq!(secret["metadata"]["ownerReferences"][0]["uid"], "uid-ws");
    assert_eq!(secret["metadata"]["ownerReferences"][0]["controller"], true);
    let token = base64_decode(secret["data"]["token"].as_str().unwrap());
    assert_eq!(token, access.token);
    assert_eq!(event["reason"], "Created");
    assert_eq!(event["type"], "Normal");
    assert_eq!(event["regarding"]["name"], "analytics");
    assert_eq!(status["status"]["database"], record.database.as_str());
    assert_eq!(status["status"]["workspaceId"], record.id.as_str());
    assert_eq!(
        status["status"]["adminTokenSecret"],
        "analytics-admin-token"
    );
    assert_eq!(status["status"]["observedGeneration"], 1);
    let conditions = status["status"]["conditions"].as_array().unwrap();
    assert_eq!(conditions[0]["type"], "Degraded");
    assert_eq!(conditions[0]["status"], "False");
    assert_eq!(conditions[1]["type"], "Ready");
    assert_eq!(conditions[1]["status"], "True");
}

#[tokio::test]
async fn a_workspace_on_another_cluster_is_degraded_without_ddl() {
    let mut f = fixture().await;
    let mut object = workspace(true, None);
    object.spec.clickhouse.cluster = "elsewhere".into();
    let reconcile = tokio::spawn(workspace::reconcile(Arc::new(object), f.ctx.clone()));
    let status = expect(
        &mut f.handle,
        Method::PATCH,
        &format!("{WORKSPACES}/analytics/status{APPLY}"),
        200,
        |_| serde_json::to_value(workspace(true, None)).unwrap(),
    )
    .await;
    let event = expect(&mut f.handle, Method::POST, EVENTS, 201, Value::clone).await;
    reconcile.await.unwrap().expect("the reconciliation");
    assert_eq!(
        status["status"]["conditions"][0]["reason"],
        "UnknownCluster"
    );
    assert_eq!(status["status"]["conditions"][0]["status"], "True");
    assert_eq!(event["type"], "Warning");
    assert!(f.engine.statements().is_empty());
}

#[tokio::test]
async fn a_workspace_is_not_deleted_while_data_sources_use_it() {
    let mut f = fixture().await;
    let mut object = workspace(
        true,
        Some(WorkspaceStatus {
            database: Some("w_1".into()),
            conditions: ready("Reconciled"),
            ..Default::default()
        }),
    );
    object.meta_mut().deletion_timestamp = Some(
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now()),
    );
    let object = Arc::new(object);
    let reconcile = tokio::spawn(workspace::reconcile(object.clone(), f.ctx.clone()));
    expect(
        &mut f.handle,
        Method::GET,
        &format!("{DATA_SOURCES}?"),
        200,
        |_| {
            json!({
                "apiVersion": "roost.dev/v1alpha1", "kind": "DataSourceList", "metadata": {},
                "items": [serde_json::to_value(data_source("`id` UInt64", None)).unwrap()]
            })
        },
    )
    .await;
    let error = reconcile.await.unwrap().expect_err("the cleanup must wait");
    assert_eq!(error.metric_label(), "data_sources_remain");
    assert!(f.engine.statements().is_empty(), "the database stays");
    let action = controller::error_policy(object, &error, f.ctx.clone());
    assert_eq!(action, Action::requeue(Duration::from_secs(1)));
    assert!(
        f.metrics.render().contains(
            r#"roost_operator_reconcile_failures_total{kind="Workspace",error="data_sources_remain"} 1"#
        ),
        "{}",
        f.metrics.render()
    );
}

#[tokio::test]
async fn reconciling_a_ready_workspace_again_changes_nothing() {
    let mut f = fixture().await;
    // The first reconciliation registers the workspace and writes its status.
    let first = tokio::spawn(workspace::reconcile(
        Arc::new(workspace(true, None)),
        f.ctx.clone(),
    ));
    expect(
        &mut f.handle,
        Method::PATCH,
        &format!("/api/v1/namespaces/default/secrets/analytics-admin-token{APPLY}"),
        200,
        Value::clone,
    )
    .await;
    expect(&mut f.handle, Method::POST, EVENTS, 201, Value::clone).await;
    let status = expect(
        &mut f.handle,
        Method::PATCH,
        &format!("{WORKSPACES}/analytics/status{APPLY}"),
        200,
        |_| serde_json::to_value(workspace(true, None)).unwrap(),
    )
    .await;
    first.await.unwrap().expect("the first reconciliation");
    let status: WorkspaceStatus = serde_json::from_value(status["status"].clone()).unwrap();

    // The second, on the object as it now is, finds the same workspace: the Secret is applied
    // again (server-side apply makes that a no-op), and there is no event and no status write.
    let second = tokio::spawn(workspace::reconcile(
        Arc::new(workspace(true, Some(status))),
        f.ctx.clone(),
    ));
    expect(
        &mut f.handle,
        Method::PATCH,
        &format!("/api/v1/namespaces/default/secrets/analytics-admin-token{APPLY}"),
        200,
        Value::clone,
    )
    .await;
    second.await.unwrap().expect("the second reconciliation");
    let statements = f.engine.statements();
    assert_eq!(statements.len(), 2);
    assert_eq!(
        statements[0], statements[1],
        "the same CREATE DATABASE IF NOT EXISTS"
    );
    let listed = f
        .auth
        .list_user_workspaces(roost_proto::auth::v1::ListUserWorkspacesRequest {
            user_id: f.user_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    let registered = listed
        .workspaces
        .iter()
        .filter(|a| a.workspace.as_ref().unwrap().name == "analytics_ws")
        .count();
    assert_eq!(registered, 1, "registered once");
}

#[tokio::test]
async fn deleting_a_workspace_drops_its_database_unregisters_it_and_removes_its_secret() {
    let mut f = fixture().await;
    let created = f
        .auth
        .create_workspace(roost_proto::auth::v1::CreateWorkspaceRequest {
            user_id: f.user_id.clone(),
            name: "analytics_ws".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .workspace
        .unwrap()
        .workspace
        .unwrap();
    let mut object = workspace(
        true,
        Some(WorkspaceStatus {
            workspace_id: Some(created.id.clone()),
            database: Some(created.database.clone()),
            conditions: ready("Reconciled"),
            ..Default::default()
        }),
    );
    object.meta_mut().deletion_timestamp = Some(
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now()),
    );
    let reconcile = tokio::spawn(workspace::reconcile(
        Arc::new(object.clone()),
        f.ctx.clone(),
    ));
    expect(&mut f.handle, Method::GET, &format!("{DATA_SOURCES}?"), 200, |_| {
        json!({"apiVersion": "roost.dev/v1alpha1", "kind": "DataSourceList", "metadata": {}, "items": []})
    })
    .await;
    expect(
        &mut f.handle,
        Method::DELETE,
        "/api/v1/namespaces/default/secrets/analytics-admin-token?",
        404,
        |_| not_found(),
    )
    .await;
    let event = expect(&mut f.handle, Method::POST, EVENTS, 201, Value::clone).await;
    let patch = expect(
        &mut f.handle,
        Method::PATCH,
        &format!("{WORKSPACES}/analytics?"),
        200,
        |_| serde_json::to_value(&object).unwrap(),
    )
    .await;
    reconcile.await.unwrap().expect("the cleanup");
    assert_eq!(
        f.engine.statements(),
        [format!(
            "DROP DATABASE IF EXISTS `{}` ON CLUSTER `roost`",
            created.database
        )]
    );
    assert_eq!(event["reason"], "Deleted");
    assert_eq!(patch[1]["op"], "remove");
    let listed = f
        .auth
        .list_user_workspaces(roost_proto::auth::v1::ListUserWorkspacesRequest {
            user_id: f.user_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        !listed
            .workspaces
            .iter()
            .any(|a| a.workspace.as_ref().unwrap().id == created.id),
        "unregistered from the catalog"
    );
}

fn ready_workspace() -> Value {
    serde_json::to_value(workspace(
        true,
        Some(WorkspaceStatus {
            database: Some("w_1".into()),
            conditions: ready("Reconciled"),
            ..Default::default()
        }),
    ))
    .unwrap()
}

#[tokio::test]
async fn a_data_source_waits_for_its_workspace() {
    let mut f = fixture().await;
    let object = Arc::new(data_source("`id` UInt64", None));
    let reconcile = tokio::spawn(datasource::reconcile(object, f.ctx.clone()));
    expect(
        &mut f.handle,
        Method::GET,
        &format!("{WORKSPACES}/analytics"),
        404,
        |_| not_found(),
    )
    .await;
    let status = expect(
        &mut f.handle,
        Method::PATCH,
        &format!("{DATA_SOURCES}/page-views/status{APPLY}"),
        200,
        |_| serde_json::to_value(data_source("`id` UInt64", None)).unwrap(),
    )
    .await;
    let action = reconcile.await.unwrap().expect("the reconciliation");
    assert_eq!(action, Action::requeue(workspace::WAIT_FOR_WORKSPACE));
    assert_eq!(
        status["status"]["conditions"][0]["reason"],
        "WorkspaceNotReady"
    );
    assert_eq!(status["status"]["conditions"][0]["status"], "False");
    assert!(f.engine.statements().is_empty());
}

#[tokio::test]
async fn a_data_source_becomes_a_replicated_and_a_distributed_table() {
    let mut f = fixture().await;
    let schema = "`id` UInt64 `json:$.id`, `url` String `json:$.url`";
    let object = Arc::new(data_source(schema, None));
    let reconcile = tokio::spawn(datasource::reconcile(object, f.ctx.clone()));
    expect(
        &mut f.handle,
        Method::GET,
        &format!("{WORKSPACES}/analytics"),
        200,
        |_| ready_workspace(),
    )
    .await;
    let status = expect(
        &mut f.handle,
        Method::PATCH,
        &format!("{DATA_SOURCES}/page-views/status{APPLY}"),
        200,
        |_| serde_json::to_value(data_source(schema, None)).unwrap(),
    )
    .await;
    let event = expect(&mut f.handle, Method::POST, EVENTS, 201, Value::clone).await;
    reconcile.await.unwrap().expect("the reconciliation");
    assert_eq!(
        f.engine.statements(),
        [
            "CREATE TABLE IF NOT EXISTS `w_1`.`page_views_local` ON CLUSTER `roost` (`id` UInt64, `url` String) \
             ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/roost/w_1/uid-ds', '{replica}') ORDER BY (id)",
            "CREATE TABLE IF NOT EXISTS `w_1`.`page_views` ON CLUSTER `roost` AS `w_1`.`page_views_local` \
             ENGINE = Distributed('roost', 'w_1', 'page_views_local', rand())",
        ]
    );
    let status = &status["status"];
    assert_eq!(status["table"], "page_views");
    assert_eq!(status["localTable"], "page_views_local");
    assert_eq!(status["observedGeneration"], 2);
    assert_eq!(
        status["appliedColumns"],
        json!([{"name": "id", "type": "UInt64", "jsonpath": "$.id"}, {"name": "url", "type": "String", "jsonpath": "$.url"}])
    );
    assert_eq!(event["reason"], "Applied");
    assert!(
        event["note"]
            .as_str()
            .unwrap()
            .contains("page_views_local created")
    );
}

#[tokio::test]
async fn a_new_column_is_added_to_both_tables() {
    let mut f = fixture().await;
    f.engine
        .set_columns("page_views_local", &[("id", "UInt64")]);
    f.engine.set_columns("page_views", &[("id", "UInt64")]);
    let schema = "`id` UInt64, `country` LowCardinality(String)";
    let object = Arc::new(data_source(schema, None));
    let reconcile = tokio::spawn(datasource::reconcile(object, f.ctx.clone()));
    expect(
        &mut f.handle,
        Method::GET,
        &format!("{WORKSPACES}/analytics"),
        200,
        |_| ready_workspace(),
    )
    .await;
    expect(
        &mut f.handle,
        Method::PATCH,
        &format!("{DATA_SOURCES}/page-views/status{APPLY}"),
        200,
        |_| serde_json::to_value(data_source(schema, None)).unwrap(),
    )
    .await;
    let event = expect(&mut f.handle, Method::POST, EVENTS, 201, Value::clone).await;
    reconcile.await.unwrap().expect("the reconciliation");
    assert_eq!(
        f.engine.statements(),
        [
            "ALTER TABLE `w_1`.`page_views_local` ON CLUSTER `roost` ADD COLUMN `country` LowCardinality(String) AFTER `id`",
            "ALTER TABLE `w_1`.`page_views` ADD COLUMN `country` LowCardinality(String) AFTER `id`",
        ]
    );
    assert_eq!(event["note"], "columns added: country");
}

#[tokio::test]
async fn unsafe_schema_changes_are_refused_with_a_degraded_condition() {
    let mut f = fixture().await;
    f.engine
        .set_columns("page_views_local", &[("id", "UInt64"), ("url", "String")]);
    f.engine
        .set_columns("page_views", &[("id", "UInt64"), ("url", "String")]);
    let schema = "`id` String";
    let previous = DataSourceStatus {
        database: Some("w_1".into()),
        table: Some("page_views".into()),
        conditions: ready("Reconciled"),
        ..Default::default()
    };
    let object = Arc::new(data_source(schema, Some(previous)));
    let reconcile = tokio::spawn(datasource::reconcile(object, f.ctx.clone()));
    expect(
        &mut f.handle,
        Method::GET,
        &format!("{WORKSPACES}/analytics"),
        200,
        |_| ready_workspace(),
    )
    .await;
    let status = expect(
        &mut f.handle,
        Method::PATCH,
        &format!("{DATA_SOURCES}/page-views/status{APPLY}"),
        200,
        |_| serde_json::to_value(data_source(schema, None)).unwrap(),
    )
    .await;
    let event = expect(&mut f.handle, Method::POST, EVENTS, 201, Value::clone).await;
    reconcile.await.unwrap().expect("a refusal is no failure");
    assert!(f.engine.statements().is_empty(), "nothing is altered");
    let conditions = status["status"]["conditions"].as_array().unwrap();
    assert_eq!(conditions[0]["type"], "Degraded");
    assert_eq!(conditions[0]["reason"], "UnsafeSchemaChange");
    let message = conditions[0]["message"].as_str().unwrap();
    assert!(message.contains("from UInt64 to String"), "{message}");
    assert!(message.contains("allowColumnDrops"), "{message}");
    assert_eq!(conditions[1]["type"], "Ready");
    assert_eq!(conditions[1]["status"], "True");
    assert_eq!(conditions[1]["reason"], "ServingPreviousSpec");
    assert_eq!(event["type"], "Warning");
}

#[tokio::test]
async fn deleting_a_data_source_drops_both_tables_then_the_finalizer() {
    let mut f = fixture().await;
    let mut object = data_source(
        "`id` UInt64",
        Some(DataSourceStatus {
            database: Some("w_1".into()),
            table: Some("page_views".into()),
            conditions: ready("Reconciled"),
            ..Default::default()
        }),
    );
    object.meta_mut().deletion_timestamp = Some(
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now()),
    );
    let reconcile = tokio::spawn(datasource::reconcile(
        Arc::new(object.clone()),
        f.ctx.clone(),
    ));
    let event = expect(&mut f.handle, Method::POST, EVENTS, 201, Value::clone).await;
    let patch = expect(
        &mut f.handle,
        Method::PATCH,
        &format!("{DATA_SOURCES}/page-views?"),
        200,
        |_| {
            let mut released = serde_json::to_value(&object).unwrap();
            released["metadata"]["finalizers"] = json!([]);
            released
        },
    )
    .await;
    reconcile.await.unwrap().expect("the cleanup");
    assert_eq!(
        f.engine.statements(),
        [
            "DROP TABLE IF EXISTS `w_1`.`page_views` ON CLUSTER `roost`",
            "DROP TABLE IF EXISTS `w_1`.`page_views_local` ON CLUSTER `roost`",
        ]
    );
    assert_eq!(event["reason"], "Deleted");
    assert_eq!(patch[0]["op"], "test");
    assert_eq!(patch[1]["op"], "remove");
    assert_eq!(patch[1]["path"], "/metadata/finalizers/0");
}

#[tokio::test]
async fn a_retained_data_source_keeps_its_tables() {
    let mut f = fixture().await;
    let mut object = data_source(
        "`id` UInt64",
        Some(DataSourceStatus {
            database: Some("w_1".into()),
            ..Default::default()
        }),
    );
    object.spec.deletion_policy = DeletionPolicy::Retain;
    object.meta_mut().deletion_timestamp = Some(
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now()),
    );
    let reconcile = tokio::spawn(datasource::reconcile(
        Arc::new(object.clone()),
        f.ctx.clone(),
    ));
    let event = expect(&mut f.handle, Method::POST, EVENTS, 201, Value::clone).await;
    expect(
        &mut f.handle,
        Method::PATCH,
        &format!("{DATA_SOURCES}/page-views?"),
        200,
        |_| serde_json::to_value(&object).unwrap(),
    )
    .await;
    reconcile.await.unwrap().expect("the cleanup");
    assert!(f.engine.statements().is_empty());
    assert_eq!(event["reason"], "Retained");
}

fn controller_resync() -> Action {
    Action::requeue(controller::RESYNC)
}

fn base64_decode(text: &str) -> String {
    let bytes: k8s_openapi::ByteString =
        serde_json::from_value(Value::String(text.to_string())).unwrap();
    String::from_utf8(bytes.0).unwrap()
}

//! The custom resources: `Workspace` and `DataSource` in `roost.dev/v1alpha1`, with their
//! validation, printer columns and status conditions. `crdgen` prints their definitions.

use chrono::{SecondsFormat, Utc};
use kube::CustomResource;
use kube::CustomResourceExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The API group of every Roost resource.
pub const GROUP: &str = "roost.dev";

/// A Roost workspace: a ClickHouse database on the cluster, registered in the catalog, with an
/// admin token kept in a Secret.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "roost.dev",
    version = "v1alpha1",
    kind = "Workspace",
    namespaced,
    status = "WorkspaceStatus",
    shortname = "rws",
    category = "roost",
    printcolumn = r#"{"name":"Organization","type":"string","jsonPath":".spec.organization"}"#,
    printcolumn = r#"{"name":"Database","type":"string","jsonPath":".status.database"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceSpec {
    /// The organization that owns the workspace (its id in the catalog); empty for the operator
    /// user's own organization.
    #[serde(default)]
    #[schemars(length(max = 128))]
    pub organization: String,
    /// The workspace's name as Tinybird clients show it: letters, digits and underscores,
    /// starting with a letter or an underscore.
    #[schemars(regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"))]
    pub display_name: String,
    /// The ClickHouse cluster that holds the workspace's tables.
    pub clickhouse: ClickHouseRef,
    /// Limits on what the workspace may use.
    #[serde(default)]
    pub quotas: Quotas,
    /// What deleting the resource does to the database: `Drop` it, or `Retain` it.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

/// Which ClickHouse cluster a workspace lives on.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClickHouseRef {
    /// The cluster name DDL uses in `ON CLUSTER`; it must be the cluster the operator is
    /// configured with.
    #[schemars(regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"))]
    pub cluster: String,
}

/// Limits on a workspace. Absent fields mean no limit.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Quotas {
    /// Largest storage in bytes, over all of the workspace's tables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub storage_bytes: Option<i64>,
    /// Queries that may run at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000))]
    pub max_concurrent_queries: Option<i32>,
    /// API requests per second, over all tokens of the workspace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub requests_per_second: Option<i32>,
    /// Rows per second the Events API accepts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub ingest_rows_per_second: Option<i64>,
}

/// What deleting a resource does to the ClickHouse objects it made.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DeletionPolicy {
    /// Drop the database or tables: the data is gone.
    #[default]
    Drop,
    /// Keep them in ClickHouse; only the resource goes.
    Retain,
}

/// What the operator made of a workspace.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceStatus {
    /// The workspace's id in the catalog.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_id: Option<String>,
    /// The ClickHouse database that holds the workspace's tables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// The Secret (same namespace) whose `token` key holds the workspace's admin token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_token_secret: Option<String>,
    /// `Ready` and `Degraded`.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// The generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// A Roost data source: a replicated table on every shard and a Distributed table over them.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "roost.dev",
    version = "v1alpha1",
    kind = "DataSource",
    namespaced,
    status = "DataSourceStatus",
    shortname = "rds",
    category = "roost",
    printcolumn = r#"{"name":"Workspace","type":"string","jsonPath":".spec.workspace"}"#,
    printcolumn = r#"{"name":"Table","type":"string","jsonPath":".status.table"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct DataSourceSpec {
    /// The `Workspace` (same namespace) the data source belongs to.
    #[schemars(regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"), length(max = 63))]
    pub workspace: String,
    /// The data source's name in the workspace and its Distributed table's name; defaults to the
    /// resource's name with `-` turned into `_`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"))]
    pub name: Option<String>,
    /// The Tinybird schema: `` `col` Type `json:$.path` DEFAULT x CODEC(y) ``, comma separated.
    #[schemars(length(min = 1))]
    pub schema: String,
    /// The table engine and its settings.
    #[serde(default)]
    pub engine: EngineSpec,
    /// The table's TTL expression, e.g. `timestamp + INTERVAL 30 DAY`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    /// What deleting the resource does to the tables: `Drop` them, or `Retain` them.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
    /// Whether a column removed from the schema may be dropped from the tables, with its data.
    /// Without it a removed column is refused with a `Degraded` condition.
    #[serde(default)]
    pub allow_column_drops: bool,
}

/// A MergeTree-family engine and its settings, as in a Tinybird `.datasource` file.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EngineSpec {
    /// The engine; replicated on the cluster (`MergeTree` becomes `ReplicatedMergeTree`).
    #[serde(default)]
    pub kind: EngineKind,
    /// `ENGINE_SORTING_KEY`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sorting_key: Option<String>,
    /// `ENGINE_PARTITION_KEY`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_key: Option<String>,
    /// `ENGINE_PRIMARY_KEY`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_key: Option<String>,
    /// `ENGINE_VER` (ReplacingMergeTree).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ver: Option<String>,
    /// `ENGINE_SIGN` (Collapsing engines).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sign: Option<String>,
    /// `ENGINE_VERSION` (VersionedCollapsingMergeTree).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// `ENGINE_SUMMING_COLUMNS` (SummingMergeTree).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summing_columns: Option<String>,
    /// `ENGINE_SETTINGS`, e.g. `index_granularity = 8192`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<String>,
}

/// The engines a data source may use.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum EngineKind {
    #[default]
    MergeTree,
    ReplacingMergeTree,
    SummingMergeTree,
    AggregatingMergeTree,
    CollapsingMergeTree,
    VersionedCollapsingMergeTree,
}

impl EngineKind {
    /// The engine's name as ClickHouse spells it.
    pub fn name(self) -> &'static str {
        match self {
            EngineKind::MergeTree => "MergeTree",
            EngineKind::ReplacingMergeTree => "ReplacingMergeTree",
            EngineKind::SummingMergeTree => "SummingMergeTree",
            EngineKind::AggregatingMergeTree => "AggregatingMergeTree",
            EngineKind::CollapsingMergeTree => "CollapsingMergeTree",
            EngineKind::VersionedCollapsingMergeTree => "VersionedCollapsingMergeTree",
        }
    }
}

/// What the operator made of a data source.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DataSourceStatus {
    /// The database both tables are in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// The Distributed table queries and inserts use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// The replicated table on every shard that holds the rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_table: Option<String>,
    /// The engine clause the local table was created with; a different one is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    /// The columns the tables have, in order.
    #[serde(default)]
    pub applied_columns: Vec<AppliedColumn>,
    /// `Ready` and `Degraded`.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// The generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// A column as the tables have it.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppliedColumn {
    /// The column name.
    pub name: String,
    /// The ClickHouse type.
    #[serde(rename = "type")]
    pub ty: String,
    /// Where NDJSON rows hold the value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jsonpath: Option<String>,
}

/// A status condition, shaped as Kubernetes' `metav1.Condition`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// `Ready` or `Degraded`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// A CamelCase word for why.
    pub reason: String,
    /// What happened, for people.
    #[serde(default)]
    pub message: String,
    /// When `status` last changed (RFC 3339).
    pub last_transition_time: String,
    /// The generation the condition was set for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// The condition types.
pub const READY: &str = "Ready";
/// Something asked for could not be done safely; the last good state stays.
pub const DEGRADED: &str = "Degraded";

/// A condition's new value, before it is merged into the previous ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionUpdate {
    pub type_: &'static str,
    pub status: bool,
    pub reason: String,
    pub message: String,
}

impl ConditionUpdate {
    pub fn new(
        type_: &'static str,
        status: bool,
        reason: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        ConditionUpdate {
            type_,
            status,
            reason: reason.into(),
            message: message.into(),
        }
    }
}

/// The conditions after `updates`: a condition whose status is unchanged keeps its transition
/// time (so `kubectl wait` and alerting see real transitions only); others get `now`.
pub fn merge_conditions(
    previous: &[Condition],
    updates: &[ConditionUpdate],
    generation: Option<i64>,
) -> Vec<Condition> {
    let now = Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true);
    let mut conditions: Vec<Condition> = previous
        .iter()
        .filter(|c| !updates.iter().any(|u| u.type_ == c.type_))
        .cloned()
        .collect();
    for update in updates {
        let status = if update.status { "True" } else { "False" }.to_string();
        let last_transition_time = previous
            .iter()
            .find(|c| c.type_ == update.type_ && c.status == status)
            .map(|c| c.last_transition_time.clone())
            .unwrap_or_else(|| now.clone());
        conditions.push(Condition {
            type_: update.type_.to_string(),
            status,
            reason: update.reason.clone(),
            message: update.message.clone(),
            last_transition_time,
            observed_generation: generation,
        });
    }
    conditions.sort_by(|a, b| a.type_.cmp(&b.type_));
    conditions
}

/// Whether `conditions` has `type_` set to `True`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == "True")
}

/// Both definitions, in the order `crdgen` prints them.
pub fn definitions()
-> Vec<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>
{
    vec![Workspace::crd(), DataSource::crd()]
}

/// The definitions as one multi-document YAML file, as committed under `crds/`.
pub fn definitions_yaml() -> Result<String, serde_yaml::Error> {
    let mut out = String::from(
        "# Generated by `cargo run -p roost-operator --bin crdgen` (make crds); do not edit.\n",
    );
    for definition in definitions() {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&definition)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn condition(type_: &str, status: &str, time: &str) -> Condition {
        Condition {
            type_: type_.into(),
            status: status.into(),
            reason: "Old".into(),
            message: String::new(),
            last_transition_time: time.into(),
            observed_generation: Some(1),
        }
    }

    #[test]
    fn unchanged_conditions_keep_their_transition_time() {
        let previous = vec![
            condition(READY, "True", "2026-01-01T00:00:00Z"),
            condition(DEGRADED, "False", "2026-01-01T00:00:00Z"),
        ];
        let merged = merge_conditions(
            &previous,
            &[
                ConditionUpdate::new(READY, true, "Reconciled", ""),
                ConditionUpdate::new(DEGRADED, true, "UnsafeSchemaChange", "type of a"),
            ],
            Some(2),
        );
        assert_eq!(merged.len(), 2);
        let degraded = &merged[0];
        let ready = &merged[1];
        assert_eq!(ready.type_, READY);
        assert_eq!(ready.last_transition_time, "2026-01-01T00:00:00Z");
        assert_eq!(ready.reason, "Reconciled");
        assert_eq!(ready.observed_generation, Some(2));
        assert_eq!(degraded.status, "True");
        assert_ne!(degraded.last_transition_time, "2026-01-01T00:00:00Z");
        assert!(is_true(&merged, DEGRADED));
        assert!(!is_true(&merged[1..], DEGRADED));
    }

    #[test]
    fn conditions_not_updated_stay() {
        let previous = vec![condition(DEGRADED, "True", "t")];
        let merged = merge_conditions(
            &previous,
            &[ConditionUpdate::new(READY, false, "Pending", "")],
            None,
        );
        assert_eq!(
            merged.iter().map(|c| c.type_.as_str()).collect::<Vec<_>>(),
            [DEGRADED, READY]
        );
    }

    #[test]
    fn definitions_validate_names_and_enums() {
        let yaml = definitions_yaml().unwrap();
        assert!(yaml.contains("name: workspaces.roost.dev"));
        assert!(yaml.contains("name: datasources.roost.dev"));
        let workspace = serde_json::to_value(Workspace::crd()).unwrap();
        let schema = &workspace["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
        let spec = &schema["properties"]["spec"];
        assert_eq!(
            spec["properties"]["displayName"]["pattern"],
            "^[A-Za-z_][A-Za-z0-9_]{0,63}$"
        );
        assert_eq!(
            spec["properties"]["deletionPolicy"]["enum"],
            serde_json::json!(["Drop", "Retain"])
        );
        assert_eq!(
            workspace["spec"]["versions"][0]["subresources"]["status"],
            serde_json::json!({})
        );
        let columns = &workspace["spec"]["versions"][0]["additionalPrinterColumns"];
        assert_eq!(columns.as_array().unwrap().len(), 5);
    }
}

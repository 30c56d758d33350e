//! What the operator's integration tests share: the real catalog services over SQLite (wired as
//! services/server does), the ClickHouse cluster's engine, the CRD-only API server of
//! scripts/k8s-apiserver.sh, and the stand-ins that server needs.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};
use roost_auth::{Auth, SeedOptions, Seeded};
use roost_engine::{ClickHouse, ClickHouseConfig, Engine, ErrorClass};
use roost_operator::Error;
use roost_operator::secrets::SecretStore;
use roost_proto::AuthClient;
use roost_store::Store;
use roost_testkit::clickhouse::ClickHouseCluster;

/// Set to make a missing API server fail the test instead of skipping it (CI).
pub const REQUIRE_K8S_ENV: &str = "ROOST_TEST_REQUIRE_K8S";

/// Logs of the operator under test, at RUST_LOG's level (warnings by default).
pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,roost_operator=info".into()),
        )
        .with_test_writer()
        .try_init();
}

/// Unique per test process, for names that must not meet an earlier run's.
pub fn run_id() -> &'static str {
    static RUN: OnceLock<String> = OnceLock::new();
    RUN.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        format!("{}{}", std::process::id(), nanos % 1_000_000_000)
    })
}

/// The catalog of workspaces, in process over a fresh SQLite store, and the seeded user the
/// operator registers workspaces for.
pub async fn catalog() -> (AuthClient, Seeded, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = Store::connect(&Store::sqlite_url(&dir.path().join("catalog.db")))
        .await
        .expect("the SQLite store");
    let seeded = Seeded::ensure(&store, &SeedOptions::default())
        .await
        .expect("the seed");
    (Arc::new(Auth::new(store, None)), seeded, dir)
}

/// The engine on the whole cluster, as the operator uses it.
pub fn engine(cluster: &ClickHouseCluster) -> ClickHouse {
    let mut config = ClickHouseConfig::new(cluster.url());
    config.urls = cluster.urls.clone();
    config.cluster = Some(cluster.cluster.clone());
    config.settings = vec![("distributed_ddl_task_timeout".into(), "60".into())];
    ClickHouse::new(&config).expect("valid configuration")
}

/// An engine on one server only, to see what each shard has.
pub fn engine_on(cluster: &ClickHouseCluster, index: usize) -> ClickHouse {
    let mut config = ClickHouseConfig::new(cluster.urls[index].clone());
    config.cluster = Some(cluster.cluster.clone());
    ClickHouse::new(&config).expect("valid configuration")
}

/// The CRD-only API server, started on first use; `Err` says why it cannot run here.
pub fn api_server() -> Result<&'static PathBuf, String> {
    static KUBECONFIG: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    KUBECONFIG
        .get_or_init(|| {
            let script =
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/k8s-apiserver.sh");
            let output = Command::new("bash")
                .arg(&script)
                .arg("up")
                .output()
                .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
            let stdout = String::from_utf8_lossy(&output.stdout);
            let stderr = String::from_utf8_lossy(&output.stderr);
            match output.status.code() {
                Some(0) => stdout
                    .lines()
                    .find_map(|line| line.strip_prefix("ROOST_TEST_KUBECONFIG="))
                    .map(PathBuf::from)
                    .ok_or_else(|| format!("k8s-apiserver.sh printed no kubeconfig: {stdout}")),
                Some(3) => Err(format!(
                    "the API server cannot be built here: {}",
                    stderr.trim()
                )),
                _ => Err(format!("k8s-apiserver.sh failed: {}", stderr.trim())),
            }
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// The API server's kubeconfig, or None after printing `SKIPPED: <test>: <why>`; with
/// [`REQUIRE_K8S_ENV`] set a missing server panics instead.
pub fn api_server_or_skip(test: &str) -> Option<&'static PathBuf> {
    match api_server() {
        Ok(path) => Some(path),
        Err(why) if std::env::var_os(REQUIRE_K8S_ENV).is_some() => {
            panic!("{test}: no API server and {REQUIRE_K8S_ENV} is set: {why}")
        }
        Err(why) => {
            println!("SKIPPED: {test}: {why}");
            None
        }
    }
}

/// A client of the API server, as the admin of the test PKI.
pub async fn client(kubeconfig: &PathBuf) -> Client {
    let kubeconfig = Kubeconfig::read_from(kubeconfig).expect("a kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("a client configuration");
    Client::try_from(config).expect("a client")
}

/// Stand-ins for the built-in kinds the operator writes and this server does not serve: Events
/// (events.k8s.io/v1) and Leases (coordination.k8s.io/v1), as schemaless custom resources.
fn stand_ins() -> Vec<CustomResourceDefinition> {
    [("events.k8s.io", "Event", "events"), ("coordination.k8s.io", "Lease", "leases")]
        .into_iter()
        .map(|(group, kind, plural)| {
            serde_json::from_value(serde_json::json!({
                "apiVersion": "apiextensions.k8s.io/v1",
                "kind": "CustomResourceDefinition",
                "metadata": {
                    "name": format!("{plural}.{group}"),
                    "annotations": {
                        "api-approved.kubernetes.io": "unapproved, a test stand-in for a built-in kind"
                    }
                },
                "spec": {
                    "group": group,
                    "names": {"kind": kind, "plural": plural, "singular": kind.to_lowercase(), "listKind": format!("{kind}List")},
                    "scope": "Namespaced",
                    "versions": [{
                        "name": "v1", "served": true, "storage": true,
                        "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}
                    }]
                }
            }))
            .expect("a CRD")
        })
        .collect()
}

/// Applies the operator's CRDs and the stand-ins, and waits until the server serves them all.
pub async fn install_crds(client: &Client) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut definitions = roost_operator::crd::definitions();
    definitions.extend(stand_ins());
    for definition in &definitions {
        let name = definition.metadata.name.clone().expect("named");
        api.patch(
            &name,
            &PatchParams::apply("roost-operator-tests").force(),
            &Patch::Apply(definition),
        )
        .await
        .unwrap_or_else(|e| panic!("apply {name}: {e}"));
    }
    for definition in &definitions {
        let name = definition.metadata.name.clone().expect("named");
        wait_for(&format!("{name} established"), || async {
            api.get(&name)
                .await
                .ok()
                .and_then(|crd| crd.status)
                .is_some_and(|status| {
                    status
                        .conditions
                        .unwrap_or_default()
                        .iter()
                        .any(|c| c.type_ == "Established" && c.status == "True")
                })
        })
        .await;
    }
}

/// Runs an insert, again while it fails in a way that passes, for at most two minutes: under load
/// a replica can lose its ZooKeeper session and stay read-only until it reconnects. A repeated
/// block is dropped by the replicated tables, so a retry adds no row.
pub async fn insert(engine: &dyn Engine, sql: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        match engine.execute(sql).await {
            Ok(()) => return,
            Err(error)
                if error.class() == ErrorClass::Transient
                    && tokio::time::Instant::now() < deadline =>
            {
                tracing::warn!(%error, "insert failed; trying again");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(error) => panic!("{sql}: {error:?}"),
        }
    }
}

/// Polls `check` until it holds, for at most two minutes (ON CLUSTER DDL on 18.16 is slow).
pub async fn wait_for<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Keeps Secrets in memory: the CRD-only API server serves none. The Kubernetes implementation
/// ([`roost_operator::secrets::KubeSecrets`]) is covered by the mocked-API tests.
#[derive(Default)]
pub struct MemorySecrets {
    pub secrets: Mutex<BTreeMap<(String, String), Secret>>,
}

impl MemorySecrets {
    /// A key of a stored Secret, as text.
    pub fn value(&self, namespace: &str, name: &str, key: &str) -> Option<String> {
        let secrets = self.secrets.lock().unwrap();
        let secret = secrets.get(&(namespace.to_string(), name.to_string()))?;
        let bytes = secret.data.as_ref()?.get(key)?;
        Some(String::from_utf8_lossy(&bytes.0).into_owned())
    }
}

#[async_trait]
impl SecretStore for MemorySecrets {
    async fn apply(&self, secret: Secret) -> Result<(), Error> {
        let key = (
            secret.metadata.namespace.clone().unwrap_or_default(),
            secret.metadata.name.clone().unwrap_or_default(),
        );
        self.secrets.lock().unwrap().insert(key, secret);
        Ok(())
    }

    async fn delete(&self, namespace: &str, name: &str) -> Result<(), Error> {
        self.secrets
            .lock()
            .unwrap()
            .remove(&(namespace.to_string(), name.to_string()));
        Ok(())
    }
}

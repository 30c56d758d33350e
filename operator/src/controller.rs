//! What both reconcilers share: the context they run with, status writes by server-side apply,
//! events, the error policy with per-object backoff, and the controllers' run loop.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::{Controller, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use roost_engine::Engine;
use roost_proto::AuthClient;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::crd::{DataSource, Workspace};
use crate::metrics::Metrics;
use crate::secrets::SecretStore;
use crate::{Error, datasource, workspace};

/// The finalizer both kinds carry while the operator owns ClickHouse objects for them.
pub const FINALIZER: &str = "roost.dev/cleanup";

/// How long a healthy object waits before it is checked again (drift, a database dropped by hand).
pub const RESYNC: Duration = Duration::from_secs(300);

/// Everything a reconciliation needs.
pub struct Context {
    /// The Kubernetes API.
    pub client: Client,
    /// The ClickHouse cluster (its [`Engine::cluster`] is the one DDL names).
    pub engine: Arc<dyn Engine>,
    /// Every server of the cluster on its own, for what `ON CLUSTER` cannot do (altering the
    /// Distributed tables).
    pub servers: Vec<Arc<dyn Engine>>,
    /// The catalog of workspaces (roost-auth's contract).
    pub auth: AuthClient,
    /// Where admin tokens are kept.
    pub secrets: Arc<dyn SecretStore>,
    /// The catalog user that owns the workspaces the operator registers.
    pub owner_user_id: String,
    /// Reconciliation metrics.
    pub metrics: Arc<Metrics>,
    /// Publishes Kubernetes events about the resources.
    pub recorder: Recorder,
    /// Failures in a row per object (uid), for the error policy's backoff.
    failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    /// A context for `client`; events are reported as `reporter`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        client: Client,
        engine: Arc<dyn Engine>,
        servers: Vec<Arc<dyn Engine>>,
        auth: AuthClient,
        secrets: Arc<dyn SecretStore>,
        owner_user_id: String,
        metrics: Arc<Metrics>,
        reporter: Reporter,
    ) -> Self {
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            engine,
            servers,
            auth,
            secrets,
            owner_user_id,
            metrics,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// The cluster DDL names; the engine must be configured with one.
    pub fn cluster(&self) -> &str {
        self.engine.cluster().unwrap_or("")
    }

    /// Publishes an event about `object`. An event that cannot be written is logged, not
    /// fatal: events inform people, the status is what the operator relies on.
    pub async fn publish<K>(&self, object: &K, type_: EventType, reason: &str, note: String)
    where
        K: Resource<DynamicType = ()>,
    {
        let event = Event {
            type_,
            reason: reason.to_string(),
            note: Some(note),
            action: reason.to_string(),
            secondary: None,
        };
        if let Err(error) = self.recorder.publish(&event, &object.object_ref(&())).await {
            tracing::warn!(%error, reason, "could not record an event");
        }
    }

    /// Clears the backoff of an object that reconciled.
    pub fn succeeded(&self, uid: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(uid);
    }

    /// Counts a failure of an object and returns its failures in a row.
    fn failed(&self, uid: &str) -> u32 {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let count = failures.entry(uid.to_string()).or_default();
        *count = count.saturating_add(1);
        *count
    }
}

/// The wait before retrying an object that failed `failures` times in a row: 1 s doubling up to
/// 5 minutes.
pub fn backoff(failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(9);
    Duration::from_secs(1u64 << exponent).min(Duration::from_secs(300))
}

/// The error policy of both controllers: count the failure under its label, retry with backoff.
pub fn error_policy<K>(object: Arc<K>, error: &Error, ctx: Arc<Context>) -> Action
where
    K: Resource<DynamicType = ()>,
{
    let kind = K::kind(&()).to_string();
    ctx.metrics.failed(&kind, error.metric_label());
    let uid = object.meta().uid.clone().unwrap_or_default();
    let wait = backoff(ctx.failed(&uid));
    tracing::warn!(
        kind,
        name = object.meta().name.as_deref().unwrap_or_default(),
        %error,
        retry_in = ?wait,
        "reconciliation failed"
    );
    Action::requeue(wait)
}

/// Writes `status` into the object's status subresource by server-side apply, so the operator
/// owns exactly the status fields and never races a user's spec edit.
pub async fn apply_status<K, S>(api: &Api<K>, object: &K, status: &S) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
    S: Serialize,
{
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api.patch_status(
        &object.name_any(),
        &PatchParams::apply(crate::MANAGER).force(),
        &Patch::Apply(patch),
    )
    .await?;
    Ok(())
}

/// Runs both controllers until a shutdown signal; every namespace is watched.
pub async fn run(ctx: Arc<Context>) {
    let client = ctx.client.clone();
    let workspaces = Controller::new(
        Api::<Workspace>::all(client.clone()),
        watcher::Config::default().any_semantic(),
    )
    .shutdown_on_signal()
    .run(workspace::reconcile, error_policy, ctx.clone())
    .for_each(|result| async move {
        if let Err(error) = result {
            tracing::debug!(%error, "workspace controller");
        }
    });
    let data_sources = Controller::new(
        Api::<DataSource>::all(client),
        watcher::Config::default().any_semantic(),
    )
    .shutdown_on_signal()
    .run(datasource::reconcile, error_policy, ctx)
    .for_each(|result| async move {
        if let Err(error) = result {
            tracing::debug!(%error, "data source controller");
        }
    });
    futures::join!(workspaces, data_sources);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_five_minutes() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(5), Duration::from_secs(16));
        assert_eq!(backoff(9), Duration::from_secs(256));
        assert_eq!(backoff(10), Duration::from_secs(300));
        assert_eq!(backoff(u32::MAX), Duration::from_secs(300));
    }
}

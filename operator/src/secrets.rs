//! Where the admin token of a workspace is kept: a Secret beside the Workspace, owned by it.
//! A seam, because an API server that serves only custom resources (the CRD-only server of the
//! integration tests) has no Secrets: there a stand-in takes the writes, and the mocked-API tests
//! check the Kubernetes implementation's calls.

use std::collections::BTreeMap;

use async_trait::async_trait;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, Client};

use crate::Error;

/// The key of the admin token in the Secret.
pub const TOKEN_KEY: &str = "token";

/// Writes and removes Secrets.
#[async_trait]
pub trait SecretStore: Send + Sync + 'static {
    /// Creates or updates `secret` (named and namespaced in its metadata).
    async fn apply(&self, secret: Secret) -> Result<(), Error>;
    /// Removes a Secret; one that is already gone is no error.
    async fn delete(&self, namespace: &str, name: &str) -> Result<(), Error>;
}

/// The Secret holding a workspace's admin token, owned by the Workspace so Kubernetes removes it
/// with the Workspace.
pub fn admin_token_secret(
    namespace: &str,
    name: &str,
    owner: OwnerReference,
    workspace_id: &str,
    database: &str,
    token: &str,
) -> Secret {
    let data = [
        (TOKEN_KEY, token),
        ("workspaceId", workspace_id),
        ("database", database),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_string(), ByteString(value.as_bytes().to_vec())))
    .collect::<BTreeMap<_, _>>();
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            owner_references: Some(vec![owner]),
            labels: Some(BTreeMap::from([(
                "app.kubernetes.io/managed-by".to_string(),
                "roost-operator".to_string(),
            )])),
            ..ObjectMeta::default()
        },
        data: Some(data),
        type_: Some("Opaque".to_string()),
        ..Secret::default()
    }
}

/// Secrets in the Kubernetes API, written by server-side apply.
pub struct KubeSecrets {
    client: Client,
}

impl KubeSecrets {
    pub fn new(client: Client) -> Self {
        KubeSecrets { client }
    }
}

#[async_trait]
impl SecretStore for KubeSecrets {
    async fn apply(&self, mut secret: Secret) -> Result<(), Error> {
        let namespace = secret
            .metadata
            .namespace
            .clone()
            .ok_or(Error::MissingField("namespace"))?;
        let name = secret
            .metadata
            .name
            .clone()
            .ok_or(Error::MissingField("name"))?;
        // Server-side apply needs the type's identity in the body.
        secret.metadata.managed_fields = None;
        let mut body = serde_json::to_value(&secret).map_err(|e| Error::Secret(e.to_string()))?;
        body["apiVersion"] = "v1".into();
        body["kind"] = "Secret".into();
        let api: Api<Secret> = Api::namespaced(self.client.clone(), &namespace);
        api.patch(
            &name,
            &PatchParams::apply(crate::MANAGER).force(),
            &Patch::Apply(body),
        )
        .await?;
        Ok(())
    }

    async fn delete(&self, namespace: &str, name: &str) -> Result<(), Error> {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(error) => Err(error.into()),
        }
    }
}

//! The Workspace reconciler: the workspace registered in the catalog, its database on every
//! server of the cluster, its admin token in a Secret; on deletion, by policy, the database
//! dropped and the workspace unregistered.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::api::ListParams;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{Event, finalizer};
use kube::{Api, Resource, ResourceExt};
use roost_proto::auth::v1 as auth;

use crate::controller::{Context, FINALIZER, RESYNC, apply_status};
use crate::crd::{
    ConditionUpdate, DEGRADED, DataSource, DeletionPolicy, READY, Workspace, WorkspaceStatus,
    is_true, merge_conditions,
};
use crate::{Error, ddl, secrets};

/// The name of the Secret holding a workspace's admin token.
pub fn secret_name(workspace: &str) -> String {
    format!("{workspace}-admin-token")
}

/// Reconciles one Workspace behind the finalizer.
pub async fn reconcile(workspace: Arc<Workspace>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let namespace = workspace
        .namespace()
        .ok_or(Error::MissingField("namespace"))?;
    let api: Api<Workspace> = Api::namespaced(ctx.client.clone(), &namespace);
    let action = finalizer(&api, FINALIZER, workspace, |event| async {
        match event {
            Event::Apply(workspace) => apply(&workspace, &api, &ctx).await,
            Event::Cleanup(workspace) => cleanup(&workspace, &ctx).await,
        }
    })
    .await?;
    ctx.metrics.reconciled("Workspace", started.elapsed());
    Ok(action)
}

/// The catalog's record of the workspace and its admin token: found by the id the status
/// remembers, else by name, else registered now.
async fn register(workspace: &Workspace, ctx: &Context) -> Result<auth::WorkspaceAccess, Error> {
    let listing = ctx
        .auth
        .list_user_workspaces(auth::ListUserWorkspacesRequest {
            user_id: ctx.owner_user_id.clone(),
            ..Default::default()
        })
        .await?;
    let known_id = workspace
        .status
        .as_ref()
        .and_then(|status| status.workspace_id.clone());
    let found = listing.workspaces.into_iter().find(|access| {
        access.workspace.as_ref().is_some_and(|w| match &known_id {
            Some(id) => w.id == *id,
            None => w.name == workspace.spec.display_name,
        })
    });
    if let Some(access) = found {
        return Ok(access);
    }
    let created = ctx
        .auth
        .create_workspace(auth::CreateWorkspaceRequest {
            user_id: ctx.owner_user_id.clone(),
            name: workspace.spec.display_name.clone(),
            organization_id: workspace.spec.organization.clone(),
            ..Default::default()
        })
        .await?;
    created
        .workspace
        .ok_or_else(|| Error::Catalog(roost_proto::ServiceError::internal("no workspace")))
}

async fn apply(
    workspace: &Workspace,
    api: &Api<Workspace>,
    ctx: &Context,
) -> Result<Action, Error> {
    let name = workspace.name_any();
    let namespace = workspace
        .namespace()
        .ok_or(Error::MissingField("namespace"))?;
    let previous = workspace.status.clone().unwrap_or_default();
    let generation = workspace.metadata.generation;
    let cluster = ctx.cluster();
    if workspace.spec.clickhouse.cluster != cluster {
        let message = format!(
            "the operator manages the ClickHouse cluster '{cluster}', not '{}'",
            workspace.spec.clickhouse.cluster
        );
        let status = WorkspaceStatus {
            conditions: merge_conditions(
                &previous.conditions,
                &[
                    ConditionUpdate::new(READY, false, "UnknownCluster", &message),
                    ConditionUpdate::new(DEGRADED, true, "UnknownCluster", &message),
                ],
                generation,
            ),
            observed_generation: generation,
            ..previous
        };
        apply_status(api, workspace, &status).await?;
        ctx.publish(workspace, EventType::Warning, "UnknownCluster", message)
            .await;
        return Ok(Action::requeue(RESYNC));
    }
    let access = register(workspace, ctx).await?;
    let record = access.workspace.clone().unwrap_or_default();
    ctx.engine
        .execute(&ddl::create_database(&record.database, cluster))
        .await?;
    let secret_name = secret_name(&name);
    let owner = workspace
        .controller_owner_ref(&())
        .ok_or(Error::MissingField("uid"))?;
    ctx.secrets
        .apply(secrets::admin_token_secret(
            &namespace,
            &secret_name,
            owner,
            &record.id,
            &record.database,
            &access.token,
        ))
        .await?;
    let mut updates = vec![ConditionUpdate::new(
        READY,
        true,
        "Reconciled",
        format!("database {} exists on cluster {cluster}", record.database),
    )];
    if record.name == workspace.spec.display_name {
        updates.push(ConditionUpdate::new(DEGRADED, false, "Reconciled", ""));
    } else {
        updates.push(ConditionUpdate::new(
            DEGRADED,
            true,
            "RenameUnsupported",
            format!(
                "the catalog keeps the name '{}': a workspace cannot be renamed",
                record.name
            ),
        ));
    }
    let status = WorkspaceStatus {
        workspace_id: Some(record.id.clone()),
        database: Some(record.database.clone()),
        admin_token_secret: Some(secret_name),
        conditions: merge_conditions(&previous.conditions, &updates, generation),
        observed_generation: generation,
    };
    if !is_true(&previous.conditions, READY) {
        ctx.publish(
            workspace,
            EventType::Normal,
            "Created",
            format!(
                "workspace {} registered; database {} created on cluster {cluster}",
                record.id, record.database
            ),
        )
        .await;
    }
    if status != previous {
        apply_status(api, workspace, &status).await?;
    }
    ctx.succeeded(workspace.meta().uid.as_deref().unwrap_or_default());
    Ok(Action::requeue(RESYNC))
}

async fn cleanup(workspace: &Workspace, ctx: &Context) -> Result<Action, Error> {
    let name = workspace.name_any();
    let namespace = workspace
        .namespace()
        .ok_or(Error::MissingField("namespace"))?;
    let data_sources: Api<DataSource> = Api::namespaced(ctx.client.clone(), &namespace);
    let remaining = data_sources
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .filter(|data_source| data_source.spec.workspace == name)
        .count();
    if remaining > 0 {
        // An error, not a requeue: only a failed cleanup keeps the finalizer.
        return Err(Error::DataSourcesRemain(remaining));
    }
    let status = workspace.status.clone().unwrap_or_default();
    if let Some(database) = &status.database
        && workspace.spec.deletion_policy == DeletionPolicy::Drop
    {
        ctx.engine
            .execute(&ddl::drop_database(database, ctx.cluster()))
            .await?;
    }
    if let Some(id) = &status.workspace_id {
        let removed = ctx
            .auth
            .delete_workspace(auth::DeleteWorkspaceRequest {
                user_id: ctx.owner_user_id.clone(),
                name_or_id: id.clone(),
                ..Default::default()
            })
            .await;
        match removed {
            Ok(_) => {}
            Err(error) if error.code == roost_proto::ErrorCode::NotFound => {}
            Err(error) => return Err(error.into()),
        }
    }
    ctx.secrets.delete(&namespace, &secret_name(&name)).await?;
    let what = match (&status.database, workspace.spec.deletion_policy) {
        (Some(database), DeletionPolicy::Drop) => format!("database {database} dropped"),
        (Some(database), DeletionPolicy::Retain) => format!("database {database} retained"),
        (None, _) => "nothing was created".to_string(),
    };
    ctx.publish(workspace, EventType::Normal, "Deleted", what)
        .await;
    Ok(Action::await_change())
}

/// How long a data source waits for its workspace to be ready.
pub const WAIT_FOR_WORKSPACE: Duration = Duration::from_secs(5);

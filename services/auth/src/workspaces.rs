//! Organizations and workspaces: what the Forward `tb` and the organization routes ask for. A new
//! workspace gets its own ClickHouse database (created by the catalog on first use) and its own
//! admin tokens; deleting one removes its records here and leaves its database to the catalog.

use roost_proto::auth::v1 as proto;
use roost_store::{Organization, StoreError, TokenRecord, User, WorkspaceRecord};

use crate::seed::database_for;
use crate::tokens::WORKSPACE_ADMIN_TOKEN;
use crate::{Auth, AuthError, now_text, token, workspace_message};

/// The name of a user's own admin token in a workspace: the CLI token, which acts for the user.
pub fn user_admin_token_name(email: &str) -> String {
    format!("admin {email}")
}

pub fn organization_message(organization: &Organization) -> proto::Organization {
    proto::Organization {
        id: organization.id.clone(),
        name: organization.name.clone(),
        created_at: organization.created_at.clone(),
    }
}

fn member_message(user: &User) -> proto::Member {
    proto::Member {
        id: user.id.clone(),
        email: user.email.clone(),
        created_at: user.created_at.clone(),
    }
}

/// The two admin tokens every workspace starts with: its own (whose value signs its JWTs) and its
/// owner's.
pub fn admin_tokens(
    workspace: &WorkspaceRecord,
    user: &User,
    created_at: &str,
) -> [TokenRecord; 2] {
    let make = |name: String| {
        let id = uuid::Uuid::new_v4().simple().to_string();
        TokenRecord {
            value: token::new_value(&workspace.id, &id),
            id,
            workspace_id: Some(workspace.id.clone()),
            user_id: user.id.clone(),
            name,
            scopes: serde_json::json!(["ADMIN"]).to_string(),
            description: String::new(),
            created_at: created_at.to_string(),
            origin: "C".into(),
            origin_resource: String::new(),
        }
    };
    [
        make(user_admin_token_name(&user.email)),
        make(WORKSPACE_ADMIN_TOKEN.to_string()),
    ]
}

impl Auth {
    async fn access(
        &self,
        workspace: &WorkspaceRecord,
        owner_email: &str,
    ) -> Result<proto::WorkspaceAccess, AuthError> {
        let admin = self
            .store
            .get_workspace_token(&workspace.id, WORKSPACE_ADMIN_TOKEN)
            .await?;
        Ok(proto::WorkspaceAccess {
            workspace: Some(workspace_message(workspace, owner_email)),
            token: admin.value,
        })
    }

    pub(crate) async fn organization(
        &self,
        id: &str,
    ) -> Result<proto::GetOrganizationResponse, AuthError> {
        let organization = self.store.get_organization(id).await?;
        let users = self.store.list_organization_users(id).await?;
        let email_of = |user_id: &str| {
            users
                .iter()
                .find(|u| u.id == user_id)
                .map(|u| u.email.clone())
                .unwrap_or_default()
        };
        let workspaces = self.store.list_organization_workspaces(id).await?;
        Ok(proto::GetOrganizationResponse {
            organization: Some(organization_message(&organization)),
            members: users.iter().map(member_message).collect(),
            workspaces: workspaces
                .iter()
                .map(|w| workspace_message(w, &email_of(&w.owner_user_id)))
                .collect(),
        })
    }

    pub(crate) async fn user_workspaces(
        &self,
        user_id: &str,
    ) -> Result<proto::ListUserWorkspacesResponse, AuthError> {
        let user = self.store.get_user(user_id).await?;
        let organization = self.store.get_organization(&user.organization_id).await?;
        let mut workspaces = Vec::new();
        for workspace in self.store.list_user_workspaces(user_id).await? {
            workspaces.push(self.access(&workspace, &user.email).await?);
        }
        Ok(proto::ListUserWorkspacesResponse {
            organization: Some(organization_message(&organization)),
            workspaces,
        })
    }

    pub(crate) async fn new_workspace(
        &self,
        request: &proto::CreateWorkspaceRequest,
    ) -> Result<proto::WorkspaceAccess, AuthError> {
        let name = request.name.trim();
        roost_types::validate_name("Workspace", name)
            .map_err(|e| AuthError::BadRequest(e.to_string()))?;
        let user = self.store.get_user(&request.user_id).await?;
        let organization_id = request.organization_id.trim();
        if !organization_id.is_empty() && organization_id != user.organization_id {
            return Err(AuthError::Forbidden(format!(
                "The user is not an admin of the organization '{organization_id}'"
            )));
        }
        let created_at = now_text();
        let id = uuid::Uuid::new_v4().to_string();
        let workspace = WorkspaceRecord {
            database: database_for(&id),
            id,
            name: name.to_string(),
            organization_id: user.organization_id.clone(),
            owner_user_id: user.id.clone(),
            created_at: created_at.clone(),
        };
        self.store.insert_workspace(&workspace).await?;
        for token in admin_tokens(&workspace, &user, &created_at) {
            self.store.insert_token(&token).await?;
        }
        self.access(&workspace, &user.email).await
    }

    pub(crate) async fn remove_workspace(
        &self,
        request: &proto::DeleteWorkspaceRequest,
    ) -> Result<proto::Workspace, AuthError> {
        let user = self.store.get_user(&request.user_id).await?;
        let wanted = request.name_or_id.trim();
        let workspaces = self.store.list_user_workspaces(&user.id).await?;
        let workspace = workspaces
            .iter()
            .find(|w| w.id == wanted)
            .or_else(|| workspaces.iter().find(|w| w.name == wanted))
            .ok_or_else(|| {
                AuthError::Store(StoreError::NotFound(format!("Workspace '{wanted}'")))
            })?;
        if self
            .local
            .as_ref()
            .is_some_and(|seed| seed.workspace_id == workspace.id)
        {
            return Err(AuthError::Forbidden(format!(
                "The workspace '{}' is the default workspace of roost local and cannot be deleted",
                workspace.name
            )));
        }
        self.store.delete_workspace(&workspace.id).await?;
        Ok(workspace_message(workspace, &user.email))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_admin_token_is_named_after_the_email() {
        assert_eq!(user_admin_token_name("a@b.c"), "admin a@b.c");
    }
}

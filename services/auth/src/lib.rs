//! Organizations, users, workspaces and tokens: the first-start seed, token values and their
//! authentication. Depends on the store and the contracts only.
//!
//! Token values look like Tinybird's: `p.` + base64url of `{"u": workspace, "id": token id}` +
//! `.` + a random secret. The id in the value finds the record; the whole value is then compared in
//! constant time, so a lookup never leaks how much of a guess was right.

mod seed;
mod token;

pub use seed::{SeedOptions, Seeded, database_for};

use async_trait::async_trait;
use roost_proto::auth::v1 as proto;
use roost_proto::{AuthService, ServiceError};
use roost_store::{Store, StoreError, TokenRecord, WorkspaceRecord};
use thiserror::Error;

/// Errors of the auth service.
#[derive(Debug, Error)]
pub enum AuthError {
    /// The token is malformed, unknown or revoked.
    #[error("Invalid token")]
    InvalidToken,
    /// Local-only calls in another mode.
    #[error("this call exists only in local mode")]
    NotLocal,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<AuthError> for ServiceError {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::InvalidToken => ServiceError::forbidden("Invalid token"),
            AuthError::NotLocal => ServiceError::not_found("Not found"),
            AuthError::Store(StoreError::NotFound(what)) => {
                ServiceError::not_found(format!("{what} not found"))
            }
            AuthError::Store(other) => {
                tracing::error!(error = %other, "auth store failure");
                ServiceError::internal("internal error")
            }
        }
    }
}

/// The auth service over the repository.
#[derive(Debug, Clone)]
pub struct Auth {
    store: Store,
    /// The seed's tokens when running locally: `GET /tokens` shows them.
    local: Option<Seeded>,
}

impl Auth {
    /// An auth service; `local` is the seed of `roost local`, whose tokens `/tokens` reveals.
    pub fn new(store: Store, local: Option<Seeded>) -> Self {
        Auth { store, local }
    }

    async fn principal(&self, token: &str) -> Result<proto::Principal, AuthError> {
        let id = token::id_of(token).ok_or(AuthError::InvalidToken)?;
        let record = match self.store.get_token(&id).await {
            Ok(record) => record,
            Err(StoreError::NotFound(_)) => return Err(AuthError::InvalidToken),
            Err(other) => return Err(other.into()),
        };
        if !token::same_value(&record.value, token) {
            return Err(AuthError::InvalidToken);
        }
        let user = self.store.get_user(&record.user_id).await?;
        let workspace = match &record.workspace_id {
            Some(id) => Some(workspace_message(
                &self.store.get_workspace(id).await?,
                &user.email,
            )),
            None => None,
        };
        Ok(proto::Principal {
            workspace,
            token_id: record.id.clone(),
            token_name: record.name.clone(),
            scopes: scopes_of(&record),
            user_id: user.id,
            user_email: user.email,
            is_user_token: record.workspace_id.is_none(),
        })
    }
}

fn scopes_of(record: &TokenRecord) -> Vec<String> {
    serde_json::from_str(&record.scopes).unwrap_or_default()
}

fn workspace_message(workspace: &WorkspaceRecord, owner_email: &str) -> proto::Workspace {
    proto::Workspace {
        id: workspace.id.clone(),
        name: workspace.name.clone(),
        database: workspace.database.clone(),
        organization_id: workspace.organization_id.clone(),
        owner_user_id: workspace.owner_user_id.clone(),
        owner_email: owner_email.to_string(),
        created_at: workspace.created_at.clone(),
    }
}

#[async_trait]
impl AuthService for Auth {
    async fn authenticate(
        &self,
        request: proto::AuthenticateRequest,
    ) -> Result<proto::AuthenticateResponse, ServiceError> {
        let principal = self.principal(&request.token).await?;
        Ok(proto::AuthenticateResponse {
            principal: Some(principal),
        })
    }

    async fn get_local_tokens(
        &self,
        _request: proto::GetLocalTokensRequest,
    ) -> Result<proto::GetLocalTokensResponse, ServiceError> {
        let seeded = self.local.as_ref().ok_or(AuthError::NotLocal)?;
        Ok(proto::GetLocalTokensResponse {
            user_token: seeded.user_token.clone(),
            admin_token: seeded.admin_token.clone(),
            workspace_admin_token: seeded.workspace_admin_token.clone(),
        })
    }

    async fn get_workspace(
        &self,
        request: proto::GetWorkspaceRequest,
    ) -> Result<proto::GetWorkspaceResponse, ServiceError> {
        let workspace = self
            .store
            .get_workspace(&request.workspace_id)
            .await
            .map_err(AuthError::from)?;
        let owner = self
            .store
            .get_user(&workspace.owner_user_id)
            .await
            .map_err(AuthError::from)?;
        Ok(proto::GetWorkspaceResponse {
            workspace: Some(workspace_message(&workspace, &owner.email)),
        })
    }
}

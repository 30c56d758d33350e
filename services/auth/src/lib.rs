//! Organizations, users, workspaces and tokens: the first-start seed, token values and their
//! authentication. Depends on the store and the contracts only.
//!
//! Token values look like Tinybird's: `p.` + base64url of `{"u": workspace, "id": token id}` +
//! `.` + a random secret. The id in the value finds the record; the whole value is then compared in
//! constant time, so a lookup never leaks how much of a guess was right.
//!
//! JWTs ([`jwt`]) are recognized by their shape: their `workspace_id` claim finds the workspace,
//! whose admin token's value is the HS256 key, as in Tinybird.

pub mod jwt;
mod principals;
mod seed;
mod token;
mod tokens;
mod workspaces;

pub use seed::{SeedOptions, Seeded, database_for};

use std::sync::Arc;

use async_trait::async_trait;
use principals::{ChangeGuard, PrincipalCache};
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
    /// A JWT that does not verify: wrong key, tampered, expired.
    #[error("Invalid token: {0}")]
    InvalidJwt(jwt::JwtError),
    /// A request the Tokens API refuses.
    #[error("{0}")]
    BadRequest(String),
    /// A change the seed's admin tokens do not allow.
    #[error("{0}")]
    Forbidden(String),
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
            AuthError::InvalidJwt(error) => {
                ServiceError::forbidden(format!("Invalid token: {error}"))
            }
            AuthError::BadRequest(message) => ServiceError::bad_request(message),
            AuthError::Forbidden(message) => ServiceError::forbidden(message),
            AuthError::NotLocal => ServiceError::not_found("Not found"),
            AuthError::Store(StoreError::NotFound(what)) => {
                ServiceError::not_found(format!("{what} not found"))
            }
            AuthError::Store(StoreError::Conflict(what)) => {
                ServiceError::conflict(format!("{what} already exists"))
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
    /// Principals of static tokens, when this service is its store's only writer.
    principals: Option<Arc<PrincipalCache>>,
}

impl Auth {
    /// An auth service; `local` is the seed of `roost local`, whose tokens `/tokens` reveals.
    pub fn new(store: Store, local: Option<Seeded>) -> Self {
        Auth {
            store,
            local,
            principals: None,
        }
    }

    /// Remembers who each static token is until tokens or workspaces change. Only for a service
    /// that is the sole writer of its store (`roost local`): a change made elsewhere would go
    /// unnoticed.
    pub fn with_principal_cache(mut self) -> Self {
        self.principals = Some(Arc::default());
        self
    }

    /// Held while a method changes tokens or workspaces.
    fn changing(&self) -> Option<ChangeGuard> {
        self.principals.as_ref().map(PrincipalCache::changing)
    }

    async fn remembered_principal(&self, token: &str) -> Result<proto::Principal, AuthError> {
        let Some(cache) = self
            .principals
            .as_ref()
            .filter(|_| !jwt::looks_like_jwt(token))
        else {
            return self.principal(token).await;
        };
        if let Some(principal) = cache.get(token) {
            return Ok(principal);
        }
        let generation = cache.generation();
        let principal = self.principal(token).await?;
        cache.put(token, generation, principal.clone());
        Ok(principal)
    }

    async fn principal(&self, token: &str) -> Result<proto::Principal, AuthError> {
        if jwt::looks_like_jwt(token) {
            return self.jwt_principal(token).await;
        }
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
        // The user token, and the user's own admin token (the CLI token) in a workspace.
        let acts_for_user = record.workspace_id.is_none()
            || (record.name == workspaces::user_admin_token_name(&user.email)
                && scopes_of(&record).iter().any(|s| s == "ADMIN"));
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
            is_jwt: false,
            fixed_params: Vec::new(),
            limit_rps: 0,
            acts_for_user,
        })
    }
}

fn scopes_of(record: &TokenRecord) -> Vec<String> {
    tokens::scopes_of(record)
}

fn now_text() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%d %H:%M:%S%.6f")
        .to_string()
}

fn workspace_of(
    header: &Option<roost_proto::common::v1::RequestHeader>,
) -> Result<String, AuthError> {
    header
        .as_ref()
        .map(|h| h.workspace_id.clone())
        .filter(|id| !id.is_empty())
        .ok_or_else(|| AuthError::BadRequest("the request names no workspace".into()))
}

impl Auth {
    /// The principal of a JWT: verified with its workspace's admin token, unexpired.
    async fn jwt_principal(&self, token: &str) -> Result<proto::Principal, AuthError> {
        let workspace_id = jwt::unverified_workspace(token)
            .ok_or(AuthError::InvalidJwt(jwt::JwtError::Malformed))?;
        let key = match self.jwt_key(&workspace_id).await {
            Ok(key) => key,
            Err(AuthError::Store(StoreError::NotFound(_))) => {
                return Err(AuthError::InvalidJwt(jwt::JwtError::Signature));
            }
            Err(other) => return Err(other),
        };
        let claims = jwt::verify(token, &key, chrono::Utc::now().timestamp())
            .map_err(AuthError::InvalidJwt)?;
        let mut scopes = Vec::new();
        let mut fixed_params = Vec::new();
        for scope in &claims.scopes {
            let text = jwt::scope_string(scope).map_err(AuthError::InvalidJwt)?;
            if text.starts_with("PIPES:READ:") {
                for (name, value) in scope.fixed_params.iter().flatten() {
                    fixed_params.push(proto::FixedParam {
                        pipe: scope.resource.clone(),
                        name: name.clone(),
                        values: jwt::param_values(value),
                    });
                }
            }
            scopes.push(text);
        }
        let workspace = self.store.get_workspace(&workspace_id).await?;
        let owner = self.store.get_user(&workspace.owner_user_id).await?;
        Ok(proto::Principal {
            workspace: Some(workspace_message(&workspace, &owner.email)),
            token_id: String::new(),
            token_name: claims.name.clone(),
            scopes,
            user_id: owner.id,
            user_email: owner.email,
            is_user_token: false,
            is_jwt: true,
            fixed_params,
            limit_rps: claims.limits.and_then(|l| l.rps).unwrap_or(0),
            acts_for_user: false,
        })
    }

    /// The HS256 key of a workspace's JWTs: its admin token's value.
    async fn jwt_key(&self, workspace_id: &str) -> Result<String, AuthError> {
        let admin = self
            .store
            .get_workspace_token(workspace_id, tokens::WORKSPACE_ADMIN_TOKEN)
            .await?;
        if !scopes_of(&admin).iter().any(|s| s == "ADMIN") {
            return Err(AuthError::Store(StoreError::NotFound(
                "workspace admin token".into(),
            )));
        }
        Ok(admin.value)
    }

    async fn find_token(
        &self,
        header: &Option<roost_proto::common::v1::RequestHeader>,
        name_or_id: &str,
    ) -> Result<TokenRecord, AuthError> {
        let workspace_id = workspace_of(header)?;
        Ok(self
            .store
            .get_workspace_token(&workspace_id, name_or_id)
            .await?)
    }

    /// The current value of a seed token (it changes when refreshed).
    async fn current_value(&self, seeded_value: &str) -> String {
        match token::id_of(seeded_value) {
            Some(id) => self
                .store
                .get_token(&id)
                .await
                .map(|t| t.value)
                .unwrap_or_default(),
            None => String::new(),
        }
    }
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
        let principal = self.remembered_principal(&request.token).await?;
        Ok(proto::AuthenticateResponse {
            principal: Some(principal),
        })
    }

    async fn get_local_tokens(
        &self,
        _request: proto::GetLocalTokensRequest,
    ) -> Result<proto::GetLocalTokensResponse, ServiceError> {
        let seeded = self.local.as_ref().ok_or(AuthError::NotLocal)?;
        // Values as they are now: a refreshed seed token shows its new value.
        Ok(proto::GetLocalTokensResponse {
            user_token: self.current_value(&seeded.user_token).await,
            admin_token: self.current_value(&seeded.admin_token).await,
            workspace_admin_token: self.current_value(&seeded.workspace_admin_token).await,
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

    async fn create_token(
        &self,
        request: proto::CreateTokenRequest,
    ) -> Result<proto::CreateTokenResponse, ServiceError> {
        let workspace_id = workspace_of(&request.header)?;
        let name = request.name.trim();
        if name.is_empty() {
            return Err(AuthError::BadRequest("The token needs a 'name'".into()).into());
        }
        let scopes = tokens::normalize_scopes(&request.scopes).map_err(AuthError::BadRequest)?;
        let origin = tokens::origin(&request.origin).map_err(AuthError::BadRequest)?;
        let workspace = self
            .store
            .get_workspace(&workspace_id)
            .await
            .map_err(AuthError::from)?;
        let id = uuid::Uuid::new_v4().simple().to_string();
        let record = TokenRecord {
            value: token::new_value(&workspace_id, &id),
            id,
            workspace_id: Some(workspace_id),
            user_id: workspace.owner_user_id,
            name: name.to_string(),
            scopes: serde_json::json!(scopes).to_string(),
            description: request.description,
            created_at: now_text(),
            origin_resource: if origin == "C" {
                String::new()
            } else {
                request.origin_resource
            },
            origin,
        };
        self.store
            .insert_token(&record)
            .await
            .map_err(AuthError::from)?;
        Ok(proto::CreateTokenResponse {
            token: Some(tokens::message(&record)),
        })
    }

    async fn list_tokens(
        &self,
        request: proto::ListTokensRequest,
    ) -> Result<proto::ListTokensResponse, ServiceError> {
        let workspace_id = workspace_of(&request.header)?;
        let records = self
            .store
            .list_workspace_tokens(&workspace_id)
            .await
            .map_err(AuthError::from)?;
        Ok(proto::ListTokensResponse {
            tokens: records.iter().map(tokens::message).collect(),
        })
    }

    async fn get_token(
        &self,
        request: proto::GetTokenRequest,
    ) -> Result<proto::GetTokenResponse, ServiceError> {
        let record = self
            .find_token(&request.header, &request.name_or_id)
            .await?;
        Ok(proto::GetTokenResponse {
            token: Some(tokens::message(&record)),
        })
    }

    async fn update_token(
        &self,
        request: proto::UpdateTokenRequest,
    ) -> Result<proto::UpdateTokenResponse, ServiceError> {
        let _change = self.changing();
        let mut record = self
            .find_token(&request.header, &request.name_or_id)
            .await?;
        let protected = tokens::is_protected(&record);
        if let Some(new_name) = request
            .new_name
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty() && *n != record.name)
        {
            if protected {
                return Err(AuthError::Forbidden(format!(
                    "The token '{}' cannot be renamed",
                    record.name
                ))
                .into());
            }
            record.name = new_name.to_string();
        }
        if let Some(description) = request.description {
            record.description = description;
        }
        if request.replace_scopes {
            let scopes =
                tokens::normalize_scopes(&request.scopes).map_err(AuthError::BadRequest)?;
            if protected && scopes != ["ADMIN"] {
                return Err(AuthError::Forbidden(format!(
                    "The scopes of the token '{}' cannot be changed",
                    record.name
                ))
                .into());
            }
            record.scopes = serde_json::json!(scopes).to_string();
        }
        self.store
            .update_token(&record)
            .await
            .map_err(AuthError::from)?;
        Ok(proto::UpdateTokenResponse {
            token: Some(tokens::message(&record)),
        })
    }

    async fn delete_token(
        &self,
        request: proto::DeleteTokenRequest,
    ) -> Result<proto::DeleteTokenResponse, ServiceError> {
        let _change = self.changing();
        let record = self
            .find_token(&request.header, &request.name_or_id)
            .await?;
        if tokens::is_protected(&record) {
            return Err(AuthError::Forbidden(format!(
                "The token '{}' cannot be deleted: refresh it instead",
                record.name
            ))
            .into());
        }
        let workspace_id = workspace_of(&request.header)?;
        self.store
            .delete_token(&workspace_id, &record.id)
            .await
            .map_err(AuthError::from)?;
        Ok(proto::DeleteTokenResponse {})
    }

    async fn refresh_token(
        &self,
        request: proto::RefreshTokenRequest,
    ) -> Result<proto::RefreshTokenResponse, ServiceError> {
        let _change = self.changing();
        let mut record = self
            .find_token(&request.header, &request.name_or_id)
            .await?;
        record.value = token::new_value(record.workspace_id.as_deref().unwrap_or(""), &record.id);
        self.store
            .update_token(&record)
            .await
            .map_err(AuthError::from)?;
        Ok(proto::RefreshTokenResponse {
            token: Some(tokens::message(&record)),
        })
    }

    async fn create_jwt(
        &self,
        request: proto::CreateJwtRequest,
    ) -> Result<proto::CreateJwtResponse, ServiceError> {
        let workspace_id = workspace_of(&request.header)?;
        let name = request.name.trim();
        if name.is_empty() {
            return Err(AuthError::BadRequest("The token needs a 'name'".into()).into());
        }
        if request.expiration_time <= chrono::Utc::now().timestamp() {
            return Err(AuthError::BadRequest(
                "'expiration_time' must be a future Unix timestamp in seconds".into(),
            )
            .into());
        }
        if request.scopes.is_empty() {
            return Err(AuthError::BadRequest(
                "A JWT needs at least one scope in the body's 'scopes'".into(),
            )
            .into());
        }
        if request.limit_rps < 0 {
            return Err(AuthError::BadRequest("'limits.rps' must be positive".into()).into());
        }
        let mut scopes = Vec::new();
        for scope in &request.scopes {
            let fixed_params = if scope.fixed_params_json.trim().is_empty() {
                None
            } else {
                let value: serde_json::Value = serde_json::from_str(&scope.fixed_params_json)
                    .map_err(|e| AuthError::BadRequest(format!("Invalid 'fixed_params': {e}")))?;
                match value {
                    serde_json::Value::Object(map) if map.is_empty() => None,
                    serde_json::Value::Object(map) => Some(map),
                    serde_json::Value::Null => None,
                    _ => {
                        return Err(AuthError::BadRequest(
                            "'fixed_params' must be an object".into(),
                        )
                        .into());
                    }
                }
            };
            let claim = jwt::ClaimScope {
                kind: scope.r#type.trim().to_ascii_uppercase(),
                resource: scope.resource.trim().to_string(),
                fixed_params,
                filter: Some(scope.filter.trim().to_string()).filter(|f| !f.is_empty()),
            };
            jwt::scope_string(&claim).map_err(|e| AuthError::BadRequest(e.to_string()))?;
            scopes.push(claim);
        }
        let key = self.jwt_key(&workspace_id).await?;
        let claims = jwt::Claims {
            workspace_id,
            name: name.to_string(),
            exp: request.expiration_time,
            scopes,
            limits: (request.limit_rps > 0).then_some(jwt::Limits {
                rps: Some(request.limit_rps),
            }),
        };
        Ok(proto::CreateJwtResponse {
            token: jwt::sign(&claims, &key),
        })
    }

    async fn get_organization(
        &self,
        request: proto::GetOrganizationRequest,
    ) -> Result<proto::GetOrganizationResponse, ServiceError> {
        Ok(self.organization(&request.organization_id).await?)
    }

    async fn list_user_workspaces(
        &self,
        request: proto::ListUserWorkspacesRequest,
    ) -> Result<proto::ListUserWorkspacesResponse, ServiceError> {
        Ok(self.user_workspaces(&request.user_id).await?)
    }

    async fn create_workspace(
        &self,
        request: proto::CreateWorkspaceRequest,
    ) -> Result<proto::CreateWorkspaceResponse, ServiceError> {
        let _change = self.changing();
        Ok(proto::CreateWorkspaceResponse {
            workspace: Some(self.new_workspace(&request).await?),
        })
    }

    async fn delete_workspace(
        &self,
        request: proto::DeleteWorkspaceRequest,
    ) -> Result<proto::DeleteWorkspaceResponse, ServiceError> {
        let _change = self.changing();
        Ok(proto::DeleteWorkspaceResponse {
            workspace: Some(self.remove_workspace(&request).await?),
        })
    }
}

//! What the first start of `roost local` creates: an organization, a user, a workspace and their
//! tokens, recorded in the store so every later start finds the same ones.

use roost_store::{Organization, Store, StoreError, TokenRecord, User, WorkspaceRecord};
use serde::{Deserialize, Serialize};

use crate::token;

const SEED_KEY: &str = "local_seed";

/// Names for the seed.
#[derive(Debug, Clone)]
pub struct SeedOptions {
    /// The organization's name.
    pub organization: String,
    /// The workspace's name.
    pub workspace: String,
    /// The user's email.
    pub user_email: String,
}

impl Default for SeedOptions {
    fn default() -> Self {
        SeedOptions {
            organization: "Roost Local".into(),
            workspace: "local".into(),
            user_email: "local@roost.dev".into(),
        }
    }
}

/// The seed's ids and token values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seeded {
    pub organization_id: String,
    pub user_id: String,
    pub workspace_id: String,
    /// The workspace's ClickHouse database.
    pub database: String,
    /// Manages workspaces (`ADMIN_USER`, bound to no workspace).
    pub user_token: String,
    /// The user's admin token in the workspace (`ADMIN`).
    pub admin_token: String,
    /// The workspace's own admin token (`ADMIN`).
    pub workspace_admin_token: String,
}

fn now() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%d %H:%M:%S%.6f")
        .to_string()
}

fn short_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The database name of a workspace id: ClickHouse-safe and stable.
pub fn database_for(workspace_id: &str) -> String {
    format!("w_{}", workspace_id.replace('-', ""))
}

impl Seeded {
    /// Loads the seed, creating it on the first start.
    pub async fn ensure(store: &Store, options: &SeedOptions) -> Result<Seeded, StoreError> {
        if let Some(text) = store.get_meta(SEED_KEY).await?
            && let Ok(seeded) = serde_json::from_str(&text)
        {
            return Ok(seeded);
        }
        let created_at = now();
        let organization = Organization {
            id: short_id(),
            name: options.organization.clone(),
            created_at: created_at.clone(),
        };
        store.insert_organization(&organization).await?;
        let user = User {
            id: short_id(),
            email: options.user_email.clone(),
            organization_id: organization.id.clone(),
            created_at: created_at.clone(),
        };
        store.insert_user(&user).await?;
        let workspace_id = short_id();
        let workspace = WorkspaceRecord {
            id: workspace_id.clone(),
            name: options.workspace.clone(),
            organization_id: organization.id.clone(),
            owner_user_id: user.id.clone(),
            database: database_for(&workspace_id),
            created_at: created_at.clone(),
        };
        store.insert_workspace(&workspace).await?;
        let make_token = |workspace: Option<&str>, name: &str, scope: &str| {
            let id = short_id();
            TokenRecord {
                value: token::new_value(workspace.unwrap_or(""), &id),
                id,
                workspace_id: workspace.map(str::to_owned),
                user_id: user.id.clone(),
                name: name.to_string(),
                scopes: serde_json::json!([scope]).to_string(),
                description: String::new(),
                created_at: created_at.clone(),
                origin: "C".into(),
                origin_resource: String::new(),
            }
        };
        let user_token = make_token(None, "user token", "ADMIN_USER");
        let admin_token = make_token(
            Some(&workspace.id),
            &format!("admin {}", user.email),
            "ADMIN",
        );
        let workspace_admin_token = make_token(Some(&workspace.id), "admin token", "ADMIN");
        for token in [&user_token, &admin_token, &workspace_admin_token] {
            store.insert_token(token).await?;
        }
        let seeded = Seeded {
            organization_id: organization.id,
            user_id: user.id,
            workspace_id: workspace.id,
            database: workspace.database,
            user_token: user_token.value,
            admin_token: admin_token.value,
            workspace_admin_token: workspace_admin_token.value,
        };
        // A struct of strings always serializes.
        let text = serde_json::to_string(&seeded).unwrap_or_default();
        store.set_meta(SEED_KEY, &text).await?;
        Ok(seeded)
    }
}

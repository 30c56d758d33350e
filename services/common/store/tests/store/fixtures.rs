//! Records the cases build on: one organization `o1` with user `u1` owning workspace `w1`.

use roost_store::{
    DataSourceRecord, NodeRecord, Organization, PipeRecord, Store, StoreError, TokenRecord, User,
    WorkspaceRecord,
};

pub const NOW: &str = "2026-01-01 00:00:00.000000";

/// Adds organization `o1`, user `u1` and workspace `w1` (database `d_w1`).
pub async fn seed(store: &Store) {
    store
        .insert_organization(&Organization {
            id: "o1".into(),
            name: "org".into(),
            created_at: NOW.into(),
        })
        .await
        .unwrap();
    store.insert_user(&user("u1", "a@b.c")).await.unwrap();
    store
        .insert_workspace(&workspace("w1", "ws"))
        .await
        .unwrap();
}

pub fn user(id: &str, email: &str) -> User {
    User {
        id: id.into(),
        email: email.into(),
        organization_id: "o1".into(),
        created_at: NOW.into(),
    }
}

/// A workspace of `o1` owned by `u1`, with database `d_<id>`.
pub fn workspace(id: &str, name: &str) -> WorkspaceRecord {
    WorkspaceRecord {
        id: id.into(),
        name: name.into(),
        organization_id: "o1".into(),
        owner_user_id: "u1".into(),
        database: format!("d_{id}"),
        created_at: NOW.into(),
    }
}

/// A data source of `w1`.
pub fn data_source(id: &str, name: &str) -> DataSourceRecord {
    DataSourceRecord {
        id: id.into(),
        workspace_id: "w1".into(),
        name: name.into(),
        columns: "[]".into(),
        engine: "{}".into(),
        description: String::new(),
        origin_format: "ndjson".into(),
        table_name: format!("t_{id}"),
        created_at: NOW.into(),
        updated_at: NOW.into(),
    }
}

/// A token of `w1` owned by `u1`.
pub fn token(id: &str, name: &str, created_at: &str) -> TokenRecord {
    TokenRecord {
        id: id.into(),
        workspace_id: Some("w1".into()),
        user_id: "u1".into(),
        name: name.into(),
        value: format!("p.value.{id}"),
        scopes: "[\"PIPES:READ:top\"]".into(),
        description: "reads top".into(),
        created_at: created_at.into(),
        origin: "P".into(),
        origin_resource: "top".into(),
    }
}

/// A pipe of `w1` with nothing published.
pub fn pipe(id: &str, name: &str) -> PipeRecord {
    PipeRecord {
        id: id.into(),
        workspace_id: "w1".into(),
        name: name.into(),
        description: String::new(),
        endpoint_node_id: String::new(),
        created_at: NOW.into(),
        updated_at: NOW.into(),
    }
}

pub fn node(id: &str, pipe: &str, name: &str) -> NodeRecord {
    NodeRecord {
        id: id.into(),
        pipe_id: pipe.into(),
        name: name.into(),
        sql: format!("SELECT '{name}'"),
        description: String::new(),
        node_type: String::new(),
        settings: "{}".into(),
        created_at: NOW.into(),
        updated_at: NOW.into(),
    }
}

/// Panics unless the result is a conflict.
#[track_caller]
pub fn assert_conflict<T: std::fmt::Debug>(result: Result<T, StoreError>) {
    assert!(
        matches!(result, Err(StoreError::Conflict(_))),
        "expected a conflict, got {result:?}"
    );
}

/// Panics unless the result is "not found".
#[track_caller]
pub fn assert_not_found<T: std::fmt::Debug>(result: Result<T, StoreError>) {
    assert!(
        matches!(result, Err(StoreError::NotFound(_))),
        "expected not found, got {result:?}"
    );
}

/// Panics unless the write was refused for pointing at a record that does not exist.
#[track_caller]
pub fn assert_missing_reference<T: std::fmt::Debug>(result: Result<T, StoreError>) {
    assert!(
        matches!(
            &result,
            Err(StoreError::Database(sqlx::Error::Database(database)))
                if database.kind() == sqlx::error::ErrorKind::ForeignKeyViolation
        ),
        "expected a foreign key violation, got {result:?}"
    );
}

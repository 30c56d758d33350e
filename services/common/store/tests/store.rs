//! The repository against a real SQLite file.

use roost_store::{
    DataSourceRecord, Organization, Store, StoreError, TokenRecord, User, WorkspaceRecord,
};

async fn seeded() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&Store::sqlite_url(&dir.path().join("catalog.db")))
        .await
        .unwrap();
    let now = "2026-01-01T00:00:00Z".to_string();
    store
        .insert_organization(&Organization {
            id: "o1".into(),
            name: "org".into(),
            created_at: now.clone(),
        })
        .await
        .unwrap();
    store
        .insert_user(&User {
            id: "u1".into(),
            email: "a@b.c".into(),
            organization_id: "o1".into(),
            created_at: now.clone(),
        })
        .await
        .unwrap();
    store
        .insert_workspace(&WorkspaceRecord {
            id: "w1".into(),
            name: "ws".into(),
            organization_id: "o1".into(),
            owner_user_id: "u1".into(),
            database: "d_w1".into(),
            created_at: now,
        })
        .await
        .unwrap();
    (store, dir)
}

fn data_source(id: &str, name: &str) -> DataSourceRecord {
    DataSourceRecord {
        id: id.into(),
        workspace_id: "w1".into(),
        name: name.into(),
        columns: "[]".into(),
        engine: "{}".into(),
        description: String::new(),
        origin_format: "ndjson".into(),
        table_name: format!("t_{id}"),
        created_at: "2026-01-01T00:00:00Z".into(),
        updated_at: "2026-01-01T00:00:00Z".into(),
    }
}

#[tokio::test]
async fn data_sources_are_unique_per_workspace_and_found_by_name_or_id() {
    let (store, _dir) = seeded().await;
    store
        .insert_data_source(&data_source("ds1", "events"))
        .await
        .unwrap();
    assert!(matches!(
        store
            .insert_data_source(&data_source("ds2", "events"))
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.get_data_source("w1", "events").await.unwrap().id,
        "ds1"
    );
    assert_eq!(
        store.get_data_source("w1", "ds1").await.unwrap().name,
        "events"
    );
    assert!(matches!(
        store.get_data_source("other", "events").await,
        Err(StoreError::NotFound(_))
    ));

    let mut renamed = store.get_data_source("w1", "ds1").await.unwrap();
    renamed.name = "clicks".into();
    store.update_data_source(&renamed).await.unwrap();
    let names: Vec<String> = store
        .list_data_sources("w1")
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.name)
        .collect();
    assert_eq!(names, ["clicks"]);
    store.delete_data_source("w1", "ds1").await.unwrap();
    assert!(store.list_data_sources("w1").await.unwrap().is_empty());
}

#[tokio::test]
async fn tokens_and_meta_survive_a_reconnect() {
    let (store, dir) = seeded().await;
    let token = TokenRecord {
        id: "t1".into(),
        workspace_id: Some("w1".into()),
        user_id: "u1".into(),
        name: "admin token".into(),
        value: "p.secret".into(),
        scopes: "[\"ADMIN\"]".into(),
        description: String::new(),
        created_at: "2026-01-01T00:00:00Z".into(),
        origin: "C".into(),
        origin_resource: String::new(),
    };
    store.insert_token(&token).await.unwrap();
    store.set_meta("seeded", "yes").await.unwrap();
    store.set_meta("seeded", "again").await.unwrap();
    drop(store);
    let store = Store::connect(&Store::sqlite_url(&dir.path().join("catalog.db")))
        .await
        .unwrap();
    assert_eq!(store.get_token("t1").await.unwrap(), token);
    assert_eq!(
        store.get_meta("seeded").await.unwrap().as_deref(),
        Some("again")
    );
    assert_eq!(store.get_workspace("w1").await.unwrap().database, "d_w1");
    assert_eq!(store.get_user("u1").await.unwrap().email, "a@b.c");
}

fn node(id: &str, pipe: &str, name: &str) -> roost_store::NodeRecord {
    roost_store::NodeRecord {
        id: id.into(),
        pipe_id: pipe.into(),
        name: name.into(),
        sql: format!("SELECT '{name}'"),
        description: String::new(),
        node_type: String::new(),
        settings: "{}".into(),
        created_at: "2026-01-01 00:00:00.000000".into(),
        updated_at: "2026-01-01 00:00:00.000000".into(),
    }
}

#[tokio::test]
async fn pipes_keep_their_nodes_in_order_and_replace_them_atomically() {
    let (store, _dir) = seeded().await;
    let mut pipe = roost_store::PipeRecord {
        id: "p1".into(),
        workspace_id: "w1".into(),
        name: "top".into(),
        description: String::new(),
        endpoint_node_id: String::new(),
        created_at: "2026-01-01 00:00:00.000000".into(),
        updated_at: "2026-01-01 00:00:00.000000".into(),
    };
    store
        .insert_pipe(
            &pipe,
            &[node("n2", "p1", "second"), node("n1", "p1", "first")],
        )
        .await
        .unwrap();
    let duplicate = roost_store::PipeRecord {
        id: "p2".into(),
        ..pipe.clone()
    };
    assert!(matches!(
        store.insert_pipe(&duplicate, &[]).await,
        Err(StoreError::Conflict(_))
    ));

    let (found, nodes) = store.get_pipe("w1", "top").await.unwrap();
    assert_eq!(found, pipe);
    assert_eq!(
        nodes.iter().map(|n| n.name.as_str()).collect::<Vec<_>>(),
        ["second", "first"]
    );

    pipe.endpoint_node_id = "n3".into();
    store
        .replace_pipe(
            &pipe,
            &[node("n1", "p1", "first"), node("n3", "p1", "third")],
        )
        .await
        .unwrap();
    let listed = store.list_pipes("w1").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].0.endpoint_node_id, "n3");
    assert_eq!(
        listed[0]
            .1
            .iter()
            .map(|n| n.id.as_str())
            .collect::<Vec<_>>(),
        ["n1", "n3"]
    );

    store.delete_pipe("w1", "p1").await.unwrap();
    assert!(matches!(
        store.get_pipe("w1", "p1").await,
        Err(StoreError::NotFound(_))
    ));
}

fn token(id: &str, name: &str, created_at: &str) -> TokenRecord {
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

#[tokio::test]
async fn workspace_tokens_are_found_by_id_or_name_updated_and_deleted() {
    let (store, _dir) = seeded().await;
    store
        .insert_token(&token("t1", "reader", "2026-01-01 00:00:01"))
        .await
        .unwrap();
    store
        .insert_token(&token("t2", "t1", "2026-01-01 00:00:02"))
        .await
        .unwrap();
    assert!(matches!(
        store
            .insert_token(&token("t3", "reader", "2026-01-01 00:00:03"))
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.get_workspace_token("w1", "reader").await.unwrap().id,
        "t1"
    );
    // A token named like another's id: the id wins.
    assert_eq!(
        store.get_workspace_token("w1", "t1").await.unwrap().name,
        "reader"
    );
    assert_eq!(
        store
            .get_workspace_token("w1", "t2")
            .await
            .unwrap()
            .origin_resource,
        "top"
    );
    assert!(matches!(
        store.get_workspace_token("w2", "t1").await,
        Err(StoreError::NotFound(_))
    ));
    let names: Vec<String> = store
        .list_workspace_tokens("w1")
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["reader", "t1"]);

    let mut changed = store.get_workspace_token("w1", "t1").await.unwrap();
    changed.name = "renamed".into();
    changed.value = "p.value.new".into();
    changed.scopes = "[\"ADMIN\"]".into();
    store.update_token(&changed).await.unwrap();
    assert_eq!(store.get_token("t1").await.unwrap(), changed);
    changed.name = "t1".into();
    assert!(matches!(
        store.update_token(&changed).await,
        Err(StoreError::Conflict(_))
    ));

    store.delete_token("w1", "t1").await.unwrap();
    assert!(matches!(
        store.get_token("t1").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.delete_token("w1", "t1").await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(store.list_workspace_tokens("w1").await.unwrap().len(), 1);
}

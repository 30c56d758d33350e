//! Connections: the credentials of sink pipes.

use roost_store::{ConnectionRecord, StoreError};

use crate::backend::TestCatalog;
use crate::fixtures::{
    NOW, assert_conflict, assert_missing_reference, assert_not_found, seed, workspace,
};

conformance!(
    connections_are_found_by_id_or_name_and_listed_by_name,
    a_connection_id_wins_over_a_name_equal_to_it,
    connection_names_are_unique_per_workspace_only,
    a_connection_with_a_nul_or_an_unknown_workspace_is_refused,
    deleting_a_workspace_removes_its_connections,
);

fn connection(id: &str, workspace: &str, name: &str) -> ConnectionRecord {
    ConnectionRecord {
        id: id.into(),
        workspace_id: workspace.into(),
        name: name.into(),
        service: "s3".into(),
        settings: r#"{"s3_region": "eu-west-1"}"#.into(),
        secrets: format!(r#"{{"s3_secret_access_key": "secret-{id}"}}"#),
        created_at: NOW.into(),
        updated_at: NOW.into(),
    }
}

async fn connections_are_found_by_id_or_name_and_listed_by_name(catalog: TestCatalog) {
    let store = catalog.connect().await;
    seed(&store).await;
    let warehouse = connection("c1", "w1", "warehouse");
    store.insert_connection(&warehouse).await.unwrap();
    store
        .insert_connection(&connection("c2", "w1", "archive"))
        .await
        .unwrap();

    assert_eq!(store.get_connection("w1", "c1").await.unwrap(), warehouse);
    assert_eq!(
        store.get_connection("w1", "warehouse").await.unwrap(),
        warehouse
    );
    let names: Vec<String> = store
        .list_connections("w1")
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["archive", "warehouse"]);

    store.delete_connection("w1", "c1").await.unwrap();
    assert_not_found(store.get_connection("w1", "warehouse").await);
    assert_not_found(store.delete_connection("w1", "c1").await);
    assert_eq!(store.list_connections("w1").await.unwrap().len(), 1);
}

async fn a_connection_id_wins_over_a_name_equal_to_it(catalog: TestCatalog) {
    let store = catalog.connect().await;
    seed(&store).await;
    store
        .insert_connection(&connection("c1", "w1", "first"))
        .await
        .unwrap();
    // A second connection named like the first one's id.
    store
        .insert_connection(&connection("c2", "w1", "c1"))
        .await
        .unwrap();
    assert_eq!(store.get_connection("w1", "c1").await.unwrap().id, "c1");
    assert_eq!(store.get_connection("w1", "c2").await.unwrap().name, "c1");
}

async fn connection_names_are_unique_per_workspace_only(catalog: TestCatalog) {
    let store = catalog.connect().await;
    seed(&store).await;
    store
        .insert_workspace(&workspace("w2", "other"))
        .await
        .unwrap();
    store
        .insert_connection(&connection("c1", "w1", "warehouse"))
        .await
        .unwrap();
    assert_conflict(
        store
            .insert_connection(&connection("c2", "w1", "warehouse"))
            .await,
    );
    assert_conflict(
        store
            .insert_connection(&connection("c1", "w2", "elsewhere"))
            .await,
    );
    store
        .insert_connection(&connection("c3", "w2", "warehouse"))
        .await
        .unwrap();
    // Another workspace's connection is not visible by id or by name.
    assert_not_found(store.get_connection("w1", "c3").await);
    assert_eq!(
        store.get_connection("w2", "warehouse").await.unwrap().id,
        "c3"
    );
    assert_not_found(store.delete_connection("w1", "c3").await);
    assert_eq!(store.list_connections("w2").await.unwrap().len(), 1);
}

async fn a_connection_with_a_nul_or_an_unknown_workspace_is_refused(catalog: TestCatalog) {
    let store = catalog.connect().await;
    seed(&store).await;
    let mut bad = connection("c1", "w1", "warehouse");
    bad.secrets = "{\"key\": \"a\0b\"}".into();
    assert!(matches!(
        store.insert_connection(&bad).await,
        Err(StoreError::InvalidText(_))
    ));
    assert_not_found(store.get_connection("w1", "ware\0house").await);
    assert!(store.list_connections("w1\0").await.unwrap().is_empty());
    assert_missing_reference(
        store
            .insert_connection(&connection("c1", "w9", "warehouse"))
            .await,
    );
    assert!(store.list_connections("w1").await.unwrap().is_empty());
}

async fn deleting_a_workspace_removes_its_connections(catalog: TestCatalog) {
    let store = catalog.connect().await;
    seed(&store).await;
    store
        .insert_connection(&connection("c1", "w1", "warehouse"))
        .await
        .unwrap();
    store.delete_workspace("w1").await.unwrap();
    assert!(store.list_connections("w1").await.unwrap().is_empty());
    // The id and the name are free again in a new workspace of the same id.
    store
        .insert_workspace(&workspace("w1", "ws"))
        .await
        .unwrap();
    store
        .insert_connection(&connection("c1", "w1", "warehouse"))
        .await
        .unwrap();
}

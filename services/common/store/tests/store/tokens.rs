//! Workspace and user tokens.

use crate::backend::TestCatalog;
use crate::fixtures::{NOW, assert_conflict, assert_not_found, seed, token, workspace};

conformance!(
    workspace_tokens_are_found_by_id_or_name_updated_and_deleted,
    token_names_are_unique_per_workspace_and_values_everywhere,
    token_misses_are_not_found_and_touch_nothing,
    an_update_that_changes_nothing_still_finds_its_token,
);

async fn workspace_tokens_are_found_by_id_or_name_updated_and_deleted(catalog: TestCatalog) {
    let store = catalog.connect().await;
    seed(&store).await;
    store
        .insert_token(&token("t1", "reader", "2026-01-01 00:00:01"))
        .await
        .unwrap();
    store
        .insert_token(&token("t2", "t1", "2026-01-01 00:00:02"))
        .await
        .unwrap();
    assert_conflict(
        store
            .insert_token(&token("t3", "reader", "2026-01-01 00:00:03"))
            .await,
    );
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
    assert_not_found(store.get_workspace_token("w2", "t1").await);
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
    changed.description = "administers".into();
    store.update_token(&changed).await.unwrap();
    assert_eq!(store.get_token("t1").await.unwrap(), changed);
    changed.name = "t1".into();
    assert_conflict(store.update_token(&changed).await);

    store.delete_token("w1", "t1").await.unwrap();
    assert_not_found(store.get_token("t1").await);
    assert_not_found(store.delete_token("w1", "t1").await);
    assert_eq!(store.list_workspace_tokens("w1").await.unwrap().len(), 1);
}

async fn token_names_are_unique_per_workspace_and_values_everywhere(catalog: TestCatalog) {
    let store = catalog.connect().await;
    seed(&store).await;
    store
        .insert_workspace(&workspace("w2", "other"))
        .await
        .unwrap();
    store
        .insert_token(&token("t1", "reader", NOW))
        .await
        .unwrap();

    // The same name in another workspace is another token.
    let mut elsewhere = token("t2", "reader", NOW);
    elsewhere.workspace_id = Some("w2".into());
    store.insert_token(&elsewhere).await.unwrap();
    // A value is a credential: it names one token in the whole catalog.
    let mut same_value = token("t3", "writer", NOW);
    same_value.workspace_id = Some("w2".into());
    same_value.value = "p.value.t1".into();
    assert_conflict(store.insert_token(&same_value).await);
    assert_conflict(store.insert_token(&token("t1", "writer", NOW)).await);
    let mut steals_value = store.get_token("t2").await.unwrap();
    steals_value.value = "p.value.t1".into();
    assert_conflict(store.update_token(&steals_value).await);

    // User tokens belong to no workspace: NULL is never equal to NULL, on either backend, so two
    // of them may share a name.
    for id in ["user-1", "user-2"] {
        let mut user_token = token(id, "personal", NOW);
        user_token.workspace_id = None;
        store.insert_token(&user_token).await.unwrap();
    }
    assert_eq!(store.get_token("user-2").await.unwrap().workspace_id, None);
}

async fn token_misses_are_not_found_and_touch_nothing(catalog: TestCatalog) {
    let store = catalog.connect().await;
    seed(&store).await;
    store
        .insert_workspace(&workspace("w2", "other"))
        .await
        .unwrap();
    store
        .insert_token(&token("t1", "reader", NOW))
        .await
        .unwrap();
    assert_not_found(store.get_token("t9").await);
    assert_not_found(store.get_workspace_token("w1", "writer").await);
    assert_not_found(store.get_workspace_token("w2", "reader").await);
    assert_not_found(store.update_token(&token("t9", "ghost", NOW)).await);
    // Another workspace cannot delete the token.
    assert_not_found(store.delete_token("w2", "t1").await);
    assert_eq!(
        store.get_token("t1").await.unwrap(),
        token("t1", "reader", NOW)
    );
    assert!(store.list_workspace_tokens("w9").await.unwrap().is_empty());
}

async fn an_update_that_changes_nothing_still_finds_its_token(catalog: TestCatalog) {
    // Both backends count the rows an UPDATE matched, not the rows it changed (MySQL would not),
    // so rewriting a token with its own values is not "not found".
    let store = catalog.connect().await;
    seed(&store).await;
    let unchanged = token("t1", "reader", NOW);
    store.insert_token(&unchanged).await.unwrap();
    store.update_token(&unchanged).await.unwrap();
    assert_eq!(store.get_token("t1").await.unwrap(), unchanged);
}

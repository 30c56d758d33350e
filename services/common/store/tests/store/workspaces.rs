//! Organizations, users, workspaces and the `meta` table.

use roost_store::{Organization, StoreError};

use crate::backend::TestCatalog;
use crate::fixtures::{
    NOW, assert_conflict, assert_missing_reference, assert_not_found, data_source, node, pipe,
    seed, token, user, workspace,
};

conformance!(
    organizations_users_and_workspaces_round_trip,
    the_catalog_survives_a_reconnect,
    duplicate_ids_emails_names_and_databases_conflict,
    missing_organizations_users_and_workspaces_are_not_found,
    records_must_point_at_existing_parents,
    deleting_a_workspace_removes_everything_it_owns_and_nothing_else,
    concurrent_creates_of_one_workspace_name_let_exactly_one_win,
    concurrent_first_connects_apply_the_migrations_once,
);

async fn organizations_users_and_workspaces_round_trip(catalog: TestCatalog) {
    let store = catalog.connect().await;
    seed(&store).await;
    assert_eq!(store.get_organization("o1").await.unwrap().name, "org");
    let mut later = user("u2", "0@b.c");
    later.created_at = "2026-01-02 00:00:00.000000".into();
    store.insert_user(&later).await.unwrap();
    store.insert_user(&user("u3", "z@b.c")).await.unwrap();
    assert_eq!(store.get_user("u3").await.unwrap(), user("u3", "z@b.c"));
    // Oldest first, then by email.
    let emails: Vec<String> = store
        .list_organization_users("o1")
        .await
        .unwrap()
        .into_iter()
        .map(|user| user.email)
        .collect();
    assert_eq!(emails, ["a@b.c", "z@b.c", "0@b.c"]);

    let mut second = workspace("w2", "analytics");
    second.owner_user_id = "u2".into();
    store.insert_workspace(&second).await.unwrap();
    assert_eq!(store.get_workspace("w2").await.unwrap(), second);
    let names: Vec<String> = store
        .list_organization_workspaces("o1")
        .await
        .unwrap()
        .into_iter()
        .map(|workspace| workspace.name)
        .collect();
    assert_eq!(names, ["analytics", "ws"]);
    assert_eq!(store.list_user_workspaces("u2").await.unwrap(), [second]);
    assert!(store.list_user_workspaces("u3").await.unwrap().is_empty());

    assert_eq!(store.get_meta("seeded").await.unwrap(), None);
    store.set_meta("seeded", "yes").await.unwrap();
    store.set_meta("seeded", "again").await.unwrap();
    assert_eq!(
        store.get_meta("seeded").await.unwrap().as_deref(),
        Some("again")
    );
}

async fn the_catalog_survives_a_reconnect(catalog: TestCatalog) {
    let store = catalog.connect().await;
    seed(&store).await;
    let token = token("t1", "admin token", NOW);
    store.insert_token(&token).await.unwrap();
    store.set_meta("seeded", "yes").await.unwrap();
    drop(store);

    // Connecting again finds the migrations applied and the records in place.
    let store = catalog.connect().await;
    assert_eq!(store.get_token("t1").await.unwrap(), token);
    assert_eq!(
        store.get_meta("seeded").await.unwrap().as_deref(),
        Some("yes")
    );
    assert_eq!(store.get_workspace("w1").await.unwrap().database, "d_w1");
    assert_eq!(store.get_user("u1").await.unwrap().email, "a@b.c");
}

async fn duplicate_ids_emails_names_and_databases_conflict(catalog: TestCatalog) {
    let store = catalog.connect().await;
    seed(&store).await;
    assert_conflict(
        store
            .insert_organization(&Organization {
                id: "o1".into(),
                name: "another".into(),
                created_at: NOW.into(),
            })
            .await,
    );
    assert_conflict(store.insert_user(&user("u1", "new@b.c")).await);
    assert_conflict(store.insert_user(&user("u2", "a@b.c")).await);

    assert_conflict(store.insert_workspace(&workspace("w1", "other")).await);
    assert_conflict(store.insert_workspace(&workspace("w2", "ws")).await);
    let mut same_database = workspace("w2", "other");
    same_database.database = "d_w1".into();
    assert_conflict(store.insert_workspace(&same_database).await);
    // The refused writes left nothing behind.
    assert_eq!(
        store
            .list_organization_workspaces("o1")
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(store.list_organization_users("o1").await.unwrap().len(), 1);
}

async fn missing_organizations_users_and_workspaces_are_not_found(catalog: TestCatalog) {
    let store = catalog.connect().await;
    seed(&store).await;
    assert_not_found(store.get_organization("o2").await);
    assert_not_found(store.get_user("u2").await);
    assert_not_found(store.get_workspace("w2").await);
    assert_not_found(store.delete_workspace("w2").await);
    assert!(
        store
            .list_organization_users("o2")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .list_organization_workspaces("o2")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.list_user_workspaces("u2").await.unwrap().is_empty());
}

async fn records_must_point_at_existing_parents(catalog: TestCatalog) {
    let store = catalog.connect().await;
    seed(&store).await;
    let mut orphan = user("u2", "x@b.c");
    orphan.organization_id = "o2".into();
    assert_missing_reference(store.insert_user(&orphan).await);
    let mut unowned = workspace("w2", "other");
    unowned.owner_user_id = "u9".into();
    assert_missing_reference(store.insert_workspace(&unowned).await);
    let mut stray_token = token("t1", "reader", NOW);
    stray_token.workspace_id = Some("w9".into());
    assert_missing_reference(store.insert_token(&stray_token).await);
    let mut stray_data_source = data_source("ds1", "events");
    stray_data_source.workspace_id = "w9".into();
    assert_missing_reference(store.insert_data_source(&stray_data_source).await);
    assert_missing_reference(
        store
            .insert_pipe(&pipe("p1", "top"), &[node("n1", "p9", "first")])
            .await,
    );
    // The pipe whose node was refused was not stored either.
    assert_not_found(store.get_pipe("w1", "p1").await);
}

async fn deleting_a_workspace_removes_everything_it_owns_and_nothing_else(catalog: TestCatalog) {
    let store = catalog.connect().await;
    seed(&store).await;
    store
        .insert_workspace(&workspace("w2", "kept"))
        .await
        .unwrap();
    for (workspace_id, suffix) in [("w1", "1"), ("w2", "2")] {
        let mut token = token(&format!("t{suffix}"), "reader", NOW);
        token.workspace_id = Some(workspace_id.into());
        store.insert_token(&token).await.unwrap();
        let mut data_source = data_source(&format!("ds{suffix}"), "events");
        data_source.workspace_id = workspace_id.into();
        store.insert_data_source(&data_source).await.unwrap();
        let mut pipe = pipe(&format!("p{suffix}"), "top");
        pipe.workspace_id = workspace_id.into();
        let pipe_id = pipe.id.clone();
        store
            .insert_pipe(&pipe, &[node(&format!("n{suffix}"), &pipe_id, "first")])
            .await
            .unwrap();
    }
    let mut user_token = token("user-token", "personal", NOW);
    user_token.workspace_id = None;
    store.insert_token(&user_token).await.unwrap();

    store.delete_workspace("w1").await.unwrap();

    assert_not_found(store.get_workspace("w1").await);
    assert_not_found(store.get_token("t1").await);
    assert!(store.list_workspace_tokens("w1").await.unwrap().is_empty());
    assert!(store.list_data_sources("w1").await.unwrap().is_empty());
    assert!(store.list_pipes("w1").await.unwrap().is_empty());
    assert_not_found(store.delete_workspace("w1").await);
    // The other workspace, the owner and the owner's own token are untouched.
    assert_eq!(store.get_token("t2").await.unwrap().name, "reader");
    assert_eq!(store.list_data_sources("w2").await.unwrap().len(), 1);
    let pipes = store.list_pipes("w2").await.unwrap();
    assert_eq!(pipes.len(), 1);
    assert_eq!(pipes[0].1.len(), 1);
    assert_eq!(store.get_token("user-token").await.unwrap(), user_token);
    assert_eq!(store.get_user("u1").await.unwrap().email, "a@b.c");

    // The name, the database and the records' ids and names are free again.
    store
        .insert_workspace(&workspace("w1", "ws"))
        .await
        .unwrap();
    store
        .insert_token(&token("t1", "reader", NOW))
        .await
        .unwrap();
    store
        .insert_data_source(&data_source("ds1", "events"))
        .await
        .unwrap();
    store
        .insert_pipe(&pipe("p1", "top"), &[node("n1", "p1", "first")])
        .await
        .unwrap();
}

async fn concurrent_creates_of_one_workspace_name_let_exactly_one_win(catalog: TestCatalog) {
    let store = catalog.connect().await;
    seed(&store).await;
    let attempts: Vec<_> = (0..8)
        .map(|attempt| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .insert_workspace(&workspace(&format!("racer{attempt}"), "contested"))
                    .await
            })
        })
        .collect();
    let mut won = 0;
    for attempt in attempts {
        match attempt.await.unwrap() {
            Ok(()) => won += 1,
            Err(StoreError::Conflict(_)) => {}
            Err(other) => panic!("a racing create failed with {other}"),
        }
    }
    assert_eq!(won, 1);
    let contested: Vec<_> = store
        .list_organization_workspaces("o1")
        .await
        .unwrap()
        .into_iter()
        .filter(|workspace| workspace.name == "contested")
        .collect();
    assert_eq!(contested.len(), 1);
}

async fn concurrent_first_connects_apply_the_migrations_once(catalog: TestCatalog) {
    // Services of a distributed deployment start together against an empty catalog.
    let connects: Vec<_> = (0..4)
        .map(|_| {
            let catalog = catalog.clone();
            tokio::spawn(async move { catalog.connect().await })
        })
        .collect();
    let mut stores = Vec::new();
    for connect in connects {
        stores.push(connect.await.unwrap());
    }
    seed(&stores[0]).await;
    for store in &stores {
        assert_eq!(store.get_workspace("w1").await.unwrap().name, "ws");
    }
}

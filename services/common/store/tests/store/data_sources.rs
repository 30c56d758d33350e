//! Data source records.

use roost_store::StoreError;

use crate::backend::TestCatalog;
use crate::fixtures::{assert_conflict, assert_not_found, data_source, seed, workspace};

conformance!(
    data_sources_are_unique_per_workspace_and_found_by_name_or_id,
    data_source_names_belong_to_their_workspace,
    a_data_source_id_wins_over_a_name_equal_to_it,
    concurrent_creates_of_one_data_source_name_let_exactly_one_win,
);

async fn data_sources_are_unique_per_workspace_and_found_by_name_or_id(catalog: TestCatalog) {
    let store = catalog.connect().await;
    seed(&store).await;
    store
        .insert_data_source(&data_source("ds1", "events"))
        .await
        .unwrap();
    assert_conflict(
        store
            .insert_data_source(&data_source("ds2", "events"))
            .await,
    );
    assert_conflict(store.insert_data_source(&data_source("ds1", "other")).await);
    assert_eq!(
        store.get_data_source("w1", "events").await.unwrap().id,
        "ds1"
    );
    assert_eq!(
        store.get_data_source("w1", "ds1").await.unwrap(),
        data_source("ds1", "events")
    );
    assert_not_found(store.get_data_source("other", "events").await);

    let mut renamed = store.get_data_source("w1", "ds1").await.unwrap();
    renamed.name = "clicks".into();
    renamed.columns = "[{\"name\":\"id\"}]".into();
    renamed.updated_at = "2026-01-02 00:00:00.000000".into();
    store.update_data_source(&renamed).await.unwrap();
    assert_eq!(
        store.get_data_source("w1", "clicks").await.unwrap(),
        renamed
    );
    assert_not_found(store.get_data_source("w1", "events").await);
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
    // Deleting what is gone is not an error.
    store.delete_data_source("w1", "ds1").await.unwrap();
}

async fn data_source_names_belong_to_their_workspace(catalog: TestCatalog) {
    let store = catalog.connect().await;
    seed(&store).await;
    store
        .insert_workspace(&workspace("w2", "other"))
        .await
        .unwrap();
    store
        .insert_data_source(&data_source("ds1", "events"))
        .await
        .unwrap();
    store
        .insert_data_source(&data_source("ds2", "clicks"))
        .await
        .unwrap();
    let mut elsewhere = data_source("ds3", "events");
    elsewhere.workspace_id = "w2".into();
    store.insert_data_source(&elsewhere).await.unwrap();
    assert_eq!(
        store.get_data_source("w2", "events").await.unwrap().id,
        "ds3"
    );

    // A rename onto a taken name is refused and changes nothing.
    let mut clash = data_source("ds2", "events");
    clash.description = "changed".into();
    assert_conflict(store.update_data_source(&clash).await);
    assert_eq!(
        store.get_data_source("w1", "ds2").await.unwrap(),
        data_source("ds2", "clicks")
    );
    // Another workspace can neither update nor delete it.
    let mut foreign = data_source("ds1", "hijacked");
    foreign.workspace_id = "w2".into();
    assert_not_found(store.update_data_source(&foreign).await);
    store.delete_data_source("w2", "ds1").await.unwrap();
    assert_eq!(
        store.get_data_source("w1", "ds1").await.unwrap().name,
        "events"
    );
    assert_not_found(store.update_data_source(&data_source("ds9", "ghost")).await);
}

async fn a_data_source_id_wins_over_a_name_equal_to_it(catalog: TestCatalog) {
    let store = catalog.connect().await;
    seed(&store).await;
    // Inserted in both orders, so neither backend's row order can decide.
    store
        .insert_data_source(&data_source("t_b", "t_a"))
        .await
        .unwrap();
    store
        .insert_data_source(&data_source("t_a", "events"))
        .await
        .unwrap();
    store
        .insert_data_source(&data_source("t_c", "clicks"))
        .await
        .unwrap();
    store
        .insert_data_source(&data_source("t_d", "t_c"))
        .await
        .unwrap();
    assert_eq!(
        store.get_data_source("w1", "t_a").await.unwrap().name,
        "events"
    );
    assert_eq!(
        store.get_data_source("w1", "t_c").await.unwrap().name,
        "clicks"
    );
}

async fn concurrent_creates_of_one_data_source_name_let_exactly_one_win(catalog: TestCatalog) {
    let store = catalog.connect().await;
    seed(&store).await;
    let attempts: Vec<_> = (0..8)
        .map(|attempt| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .insert_data_source(&data_source(&format!("ds{attempt}"), "contested"))
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
    assert_eq!(store.list_data_sources("w1").await.unwrap().len(), 1);
}

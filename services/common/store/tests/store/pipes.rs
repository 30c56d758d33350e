//! Pipes and their nodes.

use roost_store::StoreError;

use crate::backend::TestCatalog;
use crate::fixtures::{assert_conflict, assert_not_found, node, pipe, seed};

conformance!(
    pipes_keep_their_nodes_in_order_and_replace_them_atomically,
    node_positions_order_numerically,
    a_refused_pipe_write_leaves_the_catalog_as_it_was,
    a_pipe_id_wins_over_a_name_equal_to_it,
    concurrent_creates_of_one_pipe_name_let_exactly_one_win,
);

fn node_names(nodes: &[roost_store::NodeRecord]) -> Vec<&str> {
    nodes.iter().map(|node| node.name.as_str()).collect()
}

async fn pipes_keep_their_nodes_in_order_and_replace_them_atomically(catalog: TestCatalog) {
    let store = catalog.connect().await;
    seed(&store).await;
    let mut top = pipe("p1", "top");
    store
        .insert_pipe(
            &top,
            &[node("n2", "p1", "second"), node("n1", "p1", "first")],
        )
        .await
        .unwrap();
    assert_conflict(store.insert_pipe(&pipe("p2", "top"), &[]).await);

    let (found, nodes) = store.get_pipe("w1", "top").await.unwrap();
    assert_eq!(found, top);
    assert_eq!(node_names(&nodes), ["second", "first"]);
    assert_eq!(nodes[0], node("n2", "p1", "second"));

    top.endpoint_node_id = "n3".into();
    store
        .replace_pipe(
            &top,
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
    assert_not_found(store.get_pipe("w1", "p1").await);
    assert!(store.list_pipes("w1").await.unwrap().is_empty());
    // Deleting what is gone is not an error.
    store.delete_pipe("w1", "p1").await.unwrap();
}

async fn node_positions_order_numerically(catalog: TestCatalog) {
    // Twelve nodes: position 10 must come after 9, which text order would not give.
    let store = catalog.connect().await;
    seed(&store).await;
    let nodes: Vec<_> = (0..12)
        .map(|index| node(&format!("n{index}"), "p1", &format!("step{index}")))
        .collect();
    store
        .insert_pipe(&pipe("p1", "long"), &nodes)
        .await
        .unwrap();
    let (_, found) = store.get_pipe("w1", "long").await.unwrap();
    assert_eq!(found, nodes);
    let listed = store.list_pipes("w1").await.unwrap();
    assert_eq!(listed[0].1, nodes);
}

async fn a_refused_pipe_write_leaves_the_catalog_as_it_was(catalog: TestCatalog) {
    let store = catalog.connect().await;
    seed(&store).await;
    // Two nodes with one name: the pipe row written before them is rolled back too.
    assert_conflict(
        store
            .insert_pipe(
                &pipe("p1", "top"),
                &[node("n1", "p1", "same"), node("n2", "p1", "same")],
            )
            .await,
    );
    assert_not_found(store.get_pipe("w1", "top").await);

    store
        .insert_pipe(&pipe("p1", "top"), &[node("n1", "p1", "first")])
        .await
        .unwrap();
    store
        .insert_pipe(&pipe("p2", "other"), &[node("n2", "p2", "first")])
        .await
        .unwrap();
    let mut rewritten = pipe("p1", "top");
    rewritten.description = "rewritten".into();
    assert_conflict(
        store
            .replace_pipe(
                &rewritten,
                &[node("n3", "p1", "same"), node("n4", "p1", "same")],
            )
            .await,
    );
    assert_conflict(store.replace_pipe(&pipe("p1", "other"), &[]).await);
    let (kept, nodes) = store.get_pipe("w1", "p1").await.unwrap();
    assert_eq!(kept, pipe("p1", "top"));
    assert_eq!(nodes, [node("n1", "p1", "first")]);

    assert_not_found(store.replace_pipe(&pipe("p9", "ghost"), &[]).await);
    let mut foreign = pipe("p1", "top");
    foreign.workspace_id = "w2".into();
    assert_not_found(store.replace_pipe(&foreign, &[]).await);
    store.delete_pipe("w2", "p1").await.unwrap();
    assert_eq!(store.get_pipe("w1", "p1").await.unwrap().1.len(), 1);
}

async fn a_pipe_id_wins_over_a_name_equal_to_it(catalog: TestCatalog) {
    let store = catalog.connect().await;
    seed(&store).await;
    // Inserted in both orders, so neither backend's row order can decide.
    for (id, name) in [
        ("t_b", "t_a"),
        ("t_a", "top"),
        ("t_c", "other"),
        ("t_d", "t_c"),
    ] {
        store.insert_pipe(&pipe(id, name), &[]).await.unwrap();
    }
    assert_eq!(store.get_pipe("w1", "t_a").await.unwrap().0.name, "top");
    assert_eq!(store.get_pipe("w1", "t_c").await.unwrap().0.name, "other");
}

async fn concurrent_creates_of_one_pipe_name_let_exactly_one_win(catalog: TestCatalog) {
    let store = catalog.connect().await;
    seed(&store).await;
    let attempts: Vec<_> = (0..8)
        .map(|attempt| {
            let store = store.clone();
            tokio::spawn(async move {
                let id = format!("p{attempt}");
                let nodes = [
                    node(&format!("{id}-a"), &id, "first"),
                    node(&format!("{id}-b"), &id, "second"),
                ];
                store.insert_pipe(&pipe(&id, "contested"), &nodes).await
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
    let listed = store.list_pipes("w1").await.unwrap();
    assert_eq!(listed.len(), 1);
    // The winner's nodes only: the losers' transactions left nothing behind.
    assert_eq!(node_names(&listed[0].1), ["first", "second"]);
}

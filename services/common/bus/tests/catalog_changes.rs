//! Catalog change facts over the real NATS (`ROOST_TEST_NATS_URL`, default
//! `nats://127.0.0.1:4222`): the catalog and each follower on a connection of its own, as in
//! separate processes, on a subject prefix of the test's own.

use std::sync::Arc;
use std::time::{Duration, Instant};

use roost_bus::{
    Announcer, CatalogChanges, Follow, NatsBus, NatsBusOptions, catalog_changed_subject,
};

fn nats_url() -> String {
    std::env::var("ROOST_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_string())
}

async fn connect() -> (async_nats::Client, NatsBus) {
    let client = async_nats::connect(nats_url())
        .await
        .expect("NATS must run at ROOST_TEST_NATS_URL");
    let bus = NatsBus::new(client.clone(), NatsBusOptions::default());
    (client, bus)
}

fn test_prefix() -> String {
    format!(
        "roost.it{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

#[tokio::test]
async fn a_finished_change_reaches_followers_of_its_prefix_only() {
    let prefix = test_prefix();
    let (_, catalog_bus) = connect().await;
    let catalog =
        CatalogChanges::distributed(Arc::new(catalog_bus), &prefix, true, Follow::Not).await;
    let (_, follower_bus) = connect().await;
    let follower_bus = Arc::new(follower_bus);
    let follower = CatalogChanges::distributed(
        follower_bus.clone(),
        &prefix,
        false,
        Follow::CallsOverTheBus,
    )
    .await;
    let (_, other_bus) = connect().await;
    let other_bus = Arc::new(other_bus);
    let elsewhere = CatalogChanges::distributed(
        other_bus.clone(),
        &test_prefix(),
        false,
        Follow::CallsOverTheBus,
    )
    .await;

    let (_, grpc_replica_bus) = connect().await;
    let called_over_grpc = CatalogChanges::distributed(
        Arc::new(grpc_replica_bus),
        &prefix,
        false,
        Follow::CallsOverAnotherPath,
    )
    .await;

    for round in 0..10 {
        let before = follower.version().await.expect("following");
        let unrelated = elsewhere.version().await.expect("following");
        let before_over_grpc = called_over_grpc.version().await.expect("following");
        catalog.guard("w_round").finish().await;
        // A call that does not come over NATS: its read's own round trip brings the fact in.
        assert_ne!(
            called_over_grpc.version().await,
            Some(before_over_grpc),
            "round {round}, read right after the change"
        );
        // Anything the follower's connection receives from now on comes after the fact, as a
        // call sent over NATS to a follower does.
        follower_bus.flush().await.expect("a round trip");
        other_bus.flush().await.expect("a round trip");
        assert_ne!(follower.version().await, Some(before), "round {round}");
        assert_eq!(
            elsewhere.version().await,
            Some(unrelated),
            "round {round}: another deployment's change"
        );
    }
}

#[tokio::test]
async fn facts_are_announced_on_the_workspace_subject() {
    let prefix = test_prefix();
    let (listener, _) = connect().await;
    let mut facts = listener
        .subscribe(format!("{prefix}.>"))
        .await
        .expect("subscribe");
    listener.flush().await.expect("flush");
    let (_, catalog_bus) = connect().await;
    let catalog =
        CatalogChanges::distributed(Arc::new(catalog_bus), &prefix, true, Follow::Not).await;
    catalog.guard("w_7f3a").finish().await;
    let fact = tokio::time::timeout(Duration::from_secs(2), futures::StreamExt::next(&mut facts))
        .await
        .expect("a fact within 2 s")
        .expect("the subscription lives");
    assert_eq!(
        fact.subject.as_str(),
        catalog_changed_subject(&prefix, "w_7f3a")
    );
    assert_eq!(
        fact.subject.as_str(),
        format!("{prefix}.catalog.changed.w_7f3a")
    );
}

#[tokio::test]
async fn a_reconnection_moves_the_version() {
    let prefix = test_prefix();
    let (client, bus) = connect().await;
    let follower =
        CatalogChanges::distributed(Arc::new(bus), &prefix, false, Follow::CallsOverTheBus).await;
    let before = follower.version().await.expect("following");
    client.force_reconnect().await.expect("reconnect");
    let deadline = Instant::now() + Duration::from_secs(10);
    let after = loop {
        // `None` while the connection is down; a new version once it is up again.
        if let Some(version) = follower.version().await
            && version != before
        {
            break version;
        }
        assert!(Instant::now() < deadline, "no reconnection within 10 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // Facts still arrive on the subscription once reconnected.
    let (_, catalog_bus) = connect().await;
    let catalog =
        CatalogChanges::distributed(Arc::new(catalog_bus), &prefix, true, Follow::Not).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        catalog.guard("w1").finish().await;
        if follower
            .version()
            .await
            .is_some_and(|version| version != after)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no fact after reconnecting within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_drained_connection_leaves_no_version() {
    let prefix = test_prefix();
    let (client, bus) = connect().await;
    let follower =
        CatalogChanges::distributed(Arc::new(bus), &prefix, false, Follow::CallsOverTheBus).await;
    assert!(follower.version().await.is_some());
    client.drain().await.expect("drain");
    let deadline = Instant::now() + Duration::from_secs(10);
    while follower.version().await.is_some() {
        assert!(
            Instant::now() < deadline,
            "still a version 10 s after the subscription ended"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(follower.version().await, None, "for good");
}

//! Where SQLite and PostgreSQL differ unless the store evens them out: text order, case, unicode,
//! NUL characters and the types that travel through sqlx's `Any` driver.

use roost_store::{StoreError, TokenRecord};
use sqlx::{AnyConnection, Connection, Executor, Row};

use crate::backend::TestCatalog;
use crate::fixtures::{
    NOW, assert_conflict, assert_not_found, data_source, node, pipe, seed, token, user, workspace,
};

conformance!(
    lists_are_in_byte_order_whatever_the_collation,
    names_are_case_sensitive,
    unicode_names_round_trip_and_match_exactly,
    text_with_a_nul_character_is_refused_and_never_found,
    text_integers_flags_and_nulls_read_back_alike,
);

/// Names whose byte order (SQLite, Rust) differs from a linguistic collation such as en-US, which
/// would give `_x a a b ab b B é Z`.
const AWKWARD_NAMES: [&str; 8] = ["b", "B", "_x", "a b", "ab", "é", "Z", "a"];
const BYTE_ORDER: [&str; 8] = ["B", "Z", "_x", "a", "a b", "ab", "b", "é"];

async fn lists_are_in_byte_order_whatever_the_collation(catalog: TestCatalog) {
    let store = catalog.connect().await;
    seed(&store).await;
    for (index, name) in AWKWARD_NAMES.into_iter().enumerate() {
        store
            .insert_data_source(&data_source(&format!("ds{index}"), name))
            .await
            .unwrap();
        store
            .insert_pipe(&pipe(&format!("p{index}"), name), &[])
            .await
            .unwrap();
        // One timestamp for all, so the name decides.
        store
            .insert_token(&token(&format!("t{index}"), name, NOW))
            .await
            .unwrap();
        store
            .insert_workspace(&workspace(&format!("w{index}x"), name))
            .await
            .unwrap();
        // The store does not check emails; any unique text will do.
        store
            .insert_user(&user(&format!("u{index}x"), name))
            .await
            .unwrap();
    }

    let data_sources: Vec<String> = store
        .list_data_sources("w1")
        .await
        .unwrap()
        .into_iter()
        .map(|record| record.name)
        .collect();
    assert_eq!(data_sources, BYTE_ORDER);
    let pipes: Vec<String> = store
        .list_pipes("w1")
        .await
        .unwrap()
        .into_iter()
        .map(|(record, _)| record.name)
        .collect();
    assert_eq!(pipes, BYTE_ORDER);
    let tokens: Vec<String> = store
        .list_workspace_tokens("w1")
        .await
        .unwrap()
        .into_iter()
        .map(|record| record.name)
        .collect();
    assert_eq!(tokens, BYTE_ORDER);

    let workspaces: Vec<String> = store
        .list_user_workspaces("u1")
        .await
        .unwrap()
        .into_iter()
        .map(|record| record.name)
        .collect();
    assert_eq!(
        workspaces,
        ["B", "Z", "_x", "a", "a b", "ab", "b", "ws", "é"]
    );
    let emails: Vec<String> = store
        .list_organization_users("o1")
        .await
        .unwrap()
        .into_iter()
        .map(|record| record.email)
        .collect();
    assert_eq!(
        emails,
        ["B", "Z", "_x", "a", "a b", "a@b.c", "ab", "b", "é"]
    );
}

async fn names_are_case_sensitive(catalog: TestCatalog) {
    let store = catalog.connect().await;
    seed(&store).await;
    store
        .insert_data_source(&data_source("ds1", "events"))
        .await
        .unwrap();
    store
        .insert_data_source(&data_source("ds2", "Events"))
        .await
        .unwrap();
    assert_eq!(
        store.get_data_source("w1", "Events").await.unwrap().id,
        "ds2"
    );
    assert_not_found(store.get_data_source("w1", "EVENTS").await);
    assert_not_found(store.get_data_source("w1", "DS1").await);

    store.insert_pipe(&pipe("p1", "top"), &[]).await.unwrap();
    store.insert_pipe(&pipe("p2", "Top"), &[]).await.unwrap();
    assert_eq!(store.get_pipe("w1", "Top").await.unwrap().0.id, "p2");
    assert_not_found(store.get_pipe("w1", "TOP").await);

    store
        .insert_token(&token("t1", "reader", NOW))
        .await
        .unwrap();
    store
        .insert_token(&token("t2", "Reader", NOW))
        .await
        .unwrap();
    assert_eq!(
        store.get_workspace_token("w1", "Reader").await.unwrap().id,
        "t2"
    );
    assert_not_found(store.get_workspace_token("w1", "READER").await);

    store
        .insert_workspace(&workspace("w2", "WS"))
        .await
        .unwrap();
    // Emails too: uniqueness is by exact text, so only the same spelling conflicts.
    store.insert_user(&user("u2", "A@B.C")).await.unwrap();
    assert_conflict(store.insert_user(&user("u3", "A@B.C")).await);
}

async fn unicode_names_round_trip_and_match_exactly(catalog: TestCatalog) {
    let store = catalog.connect().await;
    seed(&store).await;
    let mut ingest = data_source("ds1", "événements_日本語");
    ingest.description = "naïve 🦀 données — ⚡".into();
    ingest.columns = "[{\"name\":\"città\",\"type\":\"String\"}]".into();
    store.insert_data_source(&ingest).await.unwrap();
    assert_eq!(
        store
            .get_data_source("w1", "événements_日本語")
            .await
            .unwrap(),
        ingest
    );
    // A decomposed "é" (e + combining accent) is another name: no normalization on either side.
    assert_not_found(
        store
            .get_data_source("w1", "e\u{301}vénements_日本語")
            .await,
    );
    store
        .insert_data_source(&data_source("ds2", "e\u{301}vénements_日本語"))
        .await
        .unwrap();

    let mut report = pipe("p1", "отчёт_📈");
    report.description = "多字节".into();
    let mut step = node("n1", "p1", "шаг");
    step.sql = "SELECT '🦀' AS crab, 'ß' AS eszett".into();
    store
        .insert_pipe(&report, std::slice::from_ref(&step))
        .await
        .unwrap();
    assert_eq!(
        store.get_pipe("w1", "отчёт_📈").await.unwrap(),
        (report, vec![step])
    );

    let key = TokenRecord {
        description: "🔑".repeat(64),
        ..token("t1", "lecteur 🔑", NOW)
    };
    store.insert_token(&key).await.unwrap();
    assert_eq!(
        store.get_workspace_token("w1", "lecteur 🔑").await.unwrap(),
        key
    );
    store
        .insert_workspace(&workspace("w2", "análisis"))
        .await
        .unwrap();
    assert_eq!(store.get_workspace("w2").await.unwrap().name, "análisis");
    assert_conflict(store.insert_workspace(&workspace("w3", "análisis")).await);
}

async fn text_with_a_nul_character_is_refused_and_never_found(catalog: TestCatalog) {
    // PostgreSQL cannot store U+0000 in text and SQLite can; the store refuses it on both.
    let store = catalog.connect().await;
    seed(&store).await;
    let refused = |result: Result<(), StoreError>| {
        assert!(
            matches!(result, Err(StoreError::InvalidText(_))),
            "expected the NUL to be refused, got {result:?}"
        );
    };
    refused(
        store
            .insert_data_source(&data_source("ds1", "ev\0ents"))
            .await,
    );
    let mut described = data_source("ds1", "events");
    described.description = "tail\0".into();
    refused(store.insert_data_source(&described).await);
    refused(
        store
            .insert_pipe(&pipe("p1", "top"), &[node("n1", "p1", "fi\0rst")])
            .await,
    );
    refused(store.insert_token(&token("t1", "read\0er", NOW)).await);
    refused(store.insert_workspace(&workspace("w2", "w\0s")).await);
    refused(store.insert_user(&user("u2", "\0@b.c")).await);
    refused(store.set_meta("key", "va\0lue").await);

    store
        .insert_data_source(&data_source("ds1", "events"))
        .await
        .unwrap();
    store
        .insert_token(&token("t1", "reader", NOW))
        .await
        .unwrap();
    let mut renamed = data_source("ds1", "ev\0ents");
    renamed.workspace_id = "w1".into();
    refused(store.update_data_source(&renamed).await);
    refused(store.update_token(&token("t1", "read\0er", NOW)).await);
    assert_eq!(
        store.get_data_source("w1", "ds1").await.unwrap().name,
        "events"
    );

    // A key with a NUL cannot name anything stored.
    assert_not_found(store.get_data_source("w1", "ev\0ents").await);
    assert_not_found(store.get_data_source("w\0", "events").await);
    assert_not_found(store.get_pipe("w1", "\0").await);
    assert_not_found(store.get_token("t1\0").await);
    assert_not_found(store.get_workspace_token("w1", "reader\0").await);
    assert_not_found(store.get_workspace("w1\0").await);
    assert_not_found(store.get_user("\0").await);
    assert_not_found(store.get_organization("\0").await);
    assert_not_found(store.delete_token("w1", "t1\0").await);
    assert_not_found(store.delete_workspace("w1\0").await);
    assert_eq!(store.get_meta("k\0").await.unwrap(), None);
    assert!(store.list_data_sources("w1\0").await.unwrap().is_empty());
    assert!(store.list_pipes("\0").await.unwrap().is_empty());
    assert!(store.list_workspace_tokens("\0").await.unwrap().is_empty());
    store.delete_data_source("w1", "ds1\0").await.unwrap();
    store.delete_pipe("w1", "\0").await.unwrap();
    assert_eq!(store.list_data_sources("w1").await.unwrap().len(), 1);
}

async fn text_integers_flags_and_nulls_read_back_alike(catalog: TestCatalog) {
    // The conventions the crate docs set for new tables, checked through `Any` on a scratch
    // table: BIGINT as i64 (also an INTEGER column), BOOLEAN bound as bool and read through
    // `CAST(.. AS INTEGER)`, NULL text as None.
    catalog.connect().await;
    sqlx::any::install_default_drivers();
    let mut connection = AnyConnection::connect(catalog.url()).await.unwrap();
    connection
        .execute(
            "CREATE TABLE probe (id TEXT PRIMARY KEY, big BIGINT NOT NULL, small INTEGER NOT NULL, \
             flag BOOLEAN NOT NULL, note TEXT)",
        )
        .await
        .unwrap();
    for (id, big, flag, note) in [
        ("max", i64::MAX, true, Some("ü")),
        ("min", i64::MIN, false, None),
    ] {
        sqlx::query("INSERT INTO probe (id, big, small, flag, note) VALUES ($1, $2, $3, $4, $5)")
            .bind(id)
            .bind(big)
            .bind(7_i64)
            .bind(flag)
            .bind(note)
            .execute(&mut connection)
            .await
            .unwrap();
    }
    let rows = sqlx::query(
        "SELECT id, big, small, CAST(flag AS INTEGER), note FROM probe WHERE flag = $1 OR big < $2",
    )
    .bind(true)
    .bind(0_i64)
    .fetch_all(&mut connection)
    .await
    .unwrap();
    let mut read: Vec<(String, i64, i64, i64, Option<String>)> = rows
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4)))
        .collect();
    read.sort();
    assert_eq!(
        read,
        [
            ("max".to_string(), i64::MAX, 7, 1, Some("ü".to_string())),
            ("min".to_string(), i64::MIN, 7, 0, None),
        ]
    );
    let _ = connection.close().await;
}

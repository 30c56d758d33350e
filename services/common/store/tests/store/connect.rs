//! Connecting to a PostgreSQL server that is late, absent or wrong. SQLite is a local file and
//! has no such cases.

use std::time::{Duration, Instant};

use roost_store::{ConnectRetry, Store, StoreError};
use tokio::net::{TcpListener, TcpStream};

use crate::backend::{Backend, host_and_port, postgres_url, run_case, with_database};
use crate::fixtures::seed;

/// A port nothing listens on (yet): the operating system picked it free a moment ago.
async fn unused_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

/// `url` pointed at `127.0.0.1:port` instead of its server.
fn via_port(url: &str, port: u16) -> String {
    url.replacen(&host_and_port(url), &format!("127.0.0.1:{port}"), 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_waits_for_a_server_that_comes_up_late() {
    run_case(Backend::Postgres, "connect_late", |catalog| async move {
        let port = unused_port().await;
        let server = host_and_port(&postgres_url());
        // The "server" appears after a while: a forwarder to the real one starts listening
        // on the port the store is already trying.
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                let server = server.clone();
                tokio::spawn(async move {
                    if let Ok(mut upstream) = TcpStream::connect(server).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                    }
                });
            }
        });
        let started = Instant::now();
        let store = Store::connect_with_retry(
            &via_port(catalog.url(), port),
            ConnectRetry {
                deadline: Duration::from_secs(30),
                initial_backoff: Duration::from_millis(50),
                max_backoff: Duration::from_millis(400),
            },
        )
        .await
        .unwrap();
        assert!(started.elapsed() >= Duration::from_millis(1400));
        seed(&store).await;
        assert_eq!(store.get_workspace("w1").await.unwrap().name, "ws");
    })
    .await;
}

#[tokio::test]
async fn connect_gives_up_after_its_deadline_without_showing_the_password() {
    let port = unused_port().await;
    let url = format!("postgres://roost:hunter2@127.0.0.1:{port}/catalog");
    let started = Instant::now();
    let error = Store::connect_with_retry(
        &url,
        ConnectRetry {
            deadline: Duration::from_secs(1),
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(200),
        },
    )
    .await
    .unwrap_err();
    let waited = started.elapsed();
    assert!(
        (Duration::from_millis(700)..Duration::from_secs(5)).contains(&waited),
        "gave up after {waited:?}"
    );
    assert!(
        matches!(error, StoreError::Unreachable { attempts, .. } if attempts > 2),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains(&format!("postgres://127.0.0.1:{port}/catalog")),
        "{message}"
    );
    assert!(!message.contains("hunter2"), "{message}");
}

#[tokio::test]
async fn connect_fails_at_once_when_the_database_does_not_exist() {
    // A missing database is a configuration mistake, not a server starting up.
    let url = with_database(&postgres_url(), "roost_no_such_database");
    let started = Instant::now();
    let error = Store::connect_with_retry(
        &url,
        ConnectRetry {
            deadline: Duration::from_secs(30),
            ..ConnectRetry::default()
        },
    )
    .await
    .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        matches!(
            &error,
            StoreError::Database(sqlx::Error::Database(database))
                if database.code().as_deref() == Some("3D000")
        ),
        "{error:?}"
    );
}

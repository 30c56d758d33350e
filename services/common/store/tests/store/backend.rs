//! The two backends every case runs against, each in a catalog of its own: SQLite in a
//! temporary directory, PostgreSQL in a fresh database that is dropped when the case ends.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use roost_store::Store;
use sqlx::{AnyConnection, Connection, Executor};

/// Where the PostgreSQL cases find a server; the URL's database is only used to create and drop
/// the per-case databases.
const POSTGRES_URL_VARIABLE: &str = "ROOST_TEST_POSTGRES_URL";
const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A catalog implementation under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// An empty catalog of one backend, private to one case.
#[derive(Debug, Clone)]
pub struct TestCatalog {
    pub backend: Backend,
    url: String,
    /// Keeps the SQLite file's directory alive while any clone of the catalog is.
    _sqlite_dir: Option<Arc<tempfile::TempDir>>,
    /// The PostgreSQL database to drop once the case ends.
    postgres_database: Option<String>,
}

impl TestCatalog {
    /// Opens the catalog as a service would, applying the migrations on first use.
    pub async fn connect(&self) -> Store {
        Store::connect(&self.url)
            .await
            .unwrap_or_else(|error| panic!("connecting to the {:?} catalog: {error}", self.backend))
    }

    /// The catalog's URL, for cases that need a raw connection.
    pub fn url(&self) -> &str {
        &self.url
    }

    async fn create(backend: Backend, case: &str) -> TestCatalog {
        match backend {
            Backend::Sqlite => {
                let dir =
                    tempfile::tempdir().expect("a temporary directory for the SQLite catalog");
                TestCatalog {
                    backend,
                    url: Store::sqlite_url(&dir.path().join("catalog.db")),
                    _sqlite_dir: Some(Arc::new(dir)),
                    postgres_database: None,
                }
            }
            Backend::Postgres => {
                // Named after the case for whoever finds a leftover, unique so that parallel
                // processes and repeated runs never share one.
                let mut name = format!("roost_test_{case}");
                name.truncate(48);
                name.push('_');
                name.push_str(&uuid::Uuid::new_v4().simple().to_string()[..12]);
                let mut admin = admin_connection().await;
                // ICU en-US rather than the server's default collation, which is often C: it is
                // what a production server typically runs with, and it orders and compares text
                // unlike SQLite, so a query relying on SQLite's byte order fails here.
                admin
                    .execute(
                        format!(
                            "CREATE DATABASE \"{name}\" TEMPLATE template0 ENCODING 'UTF8' \
                             LOCALE_PROVIDER icu ICU_LOCALE 'en-US'"
                        )
                        .as_str(),
                    )
                    .await
                    .unwrap_or_else(|error| panic!("creating database {name}: {error}"));
                let _ = admin.close().await;
                TestCatalog {
                    backend,
                    url: with_database(&postgres_url(), &name),
                    _sqlite_dir: None,
                    postgres_database: Some(name),
                }
            }
        }
    }

    async fn destroy(&self) {
        if let Some(name) = &self.postgres_database {
            let mut admin = admin_connection().await;
            // FORCE ends the connections the case's pools still hold.
            admin
                .execute(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)").as_str())
                .await
                .unwrap_or_else(|error| panic!("dropping database {name}: {error}"));
            let _ = admin.close().await;
        }
    }
}

/// Runs one case against a fresh catalog of `backend` and cleans the catalog up afterwards, also
/// when the case fails.
pub async fn run_case<Case, Run>(backend: Backend, case_name: &str, case: Case)
where
    Case: FnOnce(TestCatalog) -> Run,
    Run: Future<Output = ()> + Send + 'static,
{
    let catalog = TestCatalog::create(backend, case_name).await;
    // A task of its own, so that a failing assertion comes back here as an error and the
    // database is still dropped before the failure is passed on.
    let outcome = tokio::spawn(case(catalog.clone())).await;
    catalog.destroy().await;
    if let Err(error) = outcome {
        match error.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(error) => panic!("the case did not finish: {error}"),
        }
    }
}

/// The PostgreSQL server the cases use.
pub fn postgres_url() -> String {
    std::env::var(POSTGRES_URL_VARIABLE).unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_string())
}

/// A connection to the maintenance database, or a failure that says how to get one.
async fn admin_connection() -> AnyConnection {
    sqlx::any::install_default_drivers();
    let url = postgres_url();
    let attempt = tokio::time::timeout(Duration::from_secs(10), AnyConnection::connect(&url)).await;
    let error = match attempt {
        Ok(Ok(connection)) => return connection,
        Ok(Err(error)) => error.to_string(),
        Err(_) => "no answer within 10s".to_string(),
    };
    panic!(
        "PostgreSQL is not reachable at {url} ({error}).\n\
         Every store case also runs against PostgreSQL. Start the local server with\n    \
         pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start\n\
         or point {POSTGRES_URL_VARIABLE} at another server (trust auth, allowed to create databases)."
    )
}

/// `url` with its database replaced by `database`, keeping any query parameters.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |index| index + 3);
    let server = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{server}/{database}?{query}"),
        None => format!("{server}/{database}"),
    }
}

/// The `host:port` of a PostgreSQL URL.
pub fn host_and_port(url: &str) -> String {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = after_scheme
        .split(['/', '?'])
        .next()
        .unwrap_or(after_scheme);
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    if host.contains(':') {
        host.to_string()
    } else {
        format!("{host}:5432")
    }
}

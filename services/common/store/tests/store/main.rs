//! The store's conformance suite: every case runs once against SQLite (a file in a temporary
//! directory) and once against PostgreSQL (a fresh database per case on the server named by
//! `ROOST_TEST_POSTGRES_URL`, by default `postgres://postgres@127.0.0.1:5432/postgres`), so the
//! two catalogs behave the same. A case is an `async fn(TestCatalog)` listed in `conformance!`,
//! which makes the tests `<case>::sqlite` and `<case>::postgres`.

/// Declares, for each listed case, a module with one test per backend.
macro_rules! conformance {
    ($($case:ident),+ $(,)?) => {$(
        mod $case {
            use crate::backend::{run_case, Backend};

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                run_case(Backend::Sqlite, stringify!($case), super::$case).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                run_case(Backend::Postgres, stringify!($case), super::$case).await;
            }
        }
    )+};
}

mod backend;
mod connect;
mod connections;
mod data_sources;
mod fixtures;
mod jobs;
mod pipes;
mod portability;
mod tokens;
mod workspaces;

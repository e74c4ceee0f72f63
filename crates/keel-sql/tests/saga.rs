//! The saga stores against `keel_saga::conformance` (the state machine and the store
//! contract): SQLite always, PostgreSQL with `KEEL_TEST_POSTGRES_URL` (each check in a
//! fresh schema; an unreachable server fails the test).

#[cfg(feature = "postgres")]
mod support;

use std::sync::atomic::{AtomicUsize, Ordering};

use keel_saga::conformance;
use keel_sql::SqliteSagaStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_conformance() {
    let dir = tempfile::tempdir().unwrap();
    let count = AtomicUsize::new(0);
    conformance::run_all(|| {
        let path = dir
            .path()
            .join(format!("{}.db", count.fetch_add(1, Ordering::Relaxed)));
        let store = SqliteSagaStore::open(path).unwrap();
        async move { store }
    })
    .await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_conformance() {
    if std::env::var_os("KEEL_TEST_POSTGRES_URL").is_none() {
        eprintln!("postgres saga conformance: not run, KEEL_TEST_POSTGRES_URL is unset");
        return;
    }
    let count = AtomicUsize::new(0);
    conformance::run_all(|| {
        let test = format!("saga_{}", count.fetch_add(1, Ordering::Relaxed));
        async move {
            let (url, _) = support::fresh_schema(&test).await.expect("url set");
            let db = keel_sql::PgDatabase::connect(&url).await.expect("connect");
            db.saga_store()
        }
    })
    .await;
}

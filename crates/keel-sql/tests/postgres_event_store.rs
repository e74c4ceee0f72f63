//! The PostgreSQL event store against the event store conformance suite
//! (`KEEL_TEST_POSTGRES_URL`, e.g. `postgres://postgres@127.0.0.1:5432/test`). Each store
//! gets a schema of its own. Without the variable the test says it did not run and passes;
//! with it, an unreachable server fails it.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};

use keel_sql::{PgDatabase, PgEventStore};
use keel_store::conformance;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_suite() {
    if std::env::var_os("KEEL_TEST_POSTGRES_URL").is_none() {
        eprintln!("postgres event store conformance: not run, KEEL_TEST_POSTGRES_URL is unset");
        return;
    }
    let count = AtomicUsize::new(0);
    conformance::run_all(|| {
        let test = format!("es_{}", count.fetch_add(1, Ordering::Relaxed));
        async move {
            let (url, _) = support::fresh_schema(&test).await.expect("url set");
            let db = PgDatabase::connect(&url).await.expect("connect");
            PgEventStore::open(&db).await.expect("open the event store")
        }
    })
    .await;
}

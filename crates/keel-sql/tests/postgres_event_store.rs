//! The PostgreSQL event store against the event store conformance suite
//! (`KEEL_TEST_POSTGRES_URL`, e.g. `postgres://postgres@127.0.0.1:5432/test`). Each store
//! gets a schema of its own. Without the variable the test says it did not run and passes;
//! with it, an unreachable server fails it.

use std::sync::atomic::{AtomicUsize, Ordering};

use keel_sql::{PgDatabase, PgEventStore};
use keel_store::conformance;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_suite() {
    let Ok(base) = std::env::var("KEEL_TEST_POSTGRES_URL") else {
        eprintln!("postgres event store conformance: not run, KEEL_TEST_POSTGRES_URL is unset");
        return;
    };
    let (client, connection) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("KEEL_TEST_POSTGRES_URL={base} is unreachable: {e}"));
    tokio::spawn(connection);
    let count = AtomicUsize::new(0);
    let client = &client;
    let base = &base;
    conformance::run_all(|| {
        let schema = format!(
            "keel_test_es_{}_{}",
            std::process::id(),
            count.fetch_add(1, Ordering::Relaxed)
        );
        async move {
            client
                .batch_execute(&format!(
                    "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
                ))
                .await
                .expect("create schema");
            let separator = if base.contains('?') { '&' } else { '?' };
            let url = format!("{base}{separator}options=-c%20search_path%3D{schema}");
            let db = PgDatabase::connect(&url).await.expect("connect");
            PgEventStore::open(&db).await.expect("open the event store")
        }
    })
    .await;
}

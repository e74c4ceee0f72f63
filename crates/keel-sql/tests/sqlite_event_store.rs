//! The SQLite event store against the event store conformance suite, plus what only it has:
//! several processes' worth of stores on one file (two handles here, each its own
//! connections) agreeing on versions.

use std::sync::atomic::{AtomicUsize, Ordering};

use keel_sql::SqliteEventStore;
use keel_store::conformance::{self, event};
use keel_store::{AppendError, EventStore, ExpectedVersion};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let count = AtomicUsize::new(0);
    conformance::run_all(|| {
        let path = dir
            .path()
            .join(format!("{}.db", count.fetch_add(1, Ordering::Relaxed)));
        let store = SqliteEventStore::open(path).unwrap();
        async move { store }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_handles_on_one_file_detect_each_others_appends() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    let first = SqliteEventStore::open(&path).unwrap();
    let second = SqliteEventStore::open(&path).unwrap();
    first
        .append("order-1", ExpectedVersion::NoStream, vec![event(1)])
        .await
        .unwrap();
    let refused = second
        .append("order-1", ExpectedVersion::NoStream, vec![event(2)])
        .await
        .unwrap_err();
    assert!(matches!(refused, AppendError::Conflict(_)), "{refused}");
    let head = first.head().await.unwrap();
    let waiter = tokio::spawn({
        let first = first.clone();
        async move {
            first
                .wait_for(head, std::time::Duration::from_secs(20))
                .await
        }
    });
    second
        .append("order-1", ExpectedVersion::Exact(1), vec![event(2)])
        .await
        .unwrap();
    assert_eq!(waiter.await.unwrap().unwrap(), head + 1, "seen by polling");
}

#[test]
fn a_newer_schema_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    drop(SqliteEventStore::open(&path).unwrap());
    let connection = rusqlite::Connection::open(&path).unwrap();
    connection
        .execute(
            "INSERT INTO keel_event_store_migrations VALUES (99, 'future', 0)",
            [],
        )
        .unwrap();
    let error = SqliteEventStore::open(&path).unwrap_err().to_string();
    assert!(error.contains("schema version 99"), "{error}");
}

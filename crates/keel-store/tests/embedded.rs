//! The embedded backend against the conformance suite, plus what only it has: the index
//! rebuilt from the log on reopen, and its checks on the topic's shape.

use std::sync::atomic::{AtomicUsize, Ordering};

use keel_log::{Log, TopicConfig};
use keel_store::conformance::{self, event};
use keel_store::{AllFilter, Direction, EmbeddedStore, EventStore, ExpectedVersion};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let count = AtomicUsize::new(0);
    let logs = std::sync::Mutex::new(Vec::new());
    conformance::run_all(|| {
        let path = dir
            .path()
            .join(count.fetch_add(1, Ordering::Relaxed).to_string());
        let log = Log::open(path).unwrap();
        let store = EmbeddedStore::open(&log).unwrap();
        logs.lock().unwrap().push(log);
        async move { store }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_index_is_rebuilt_from_the_log_on_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = Log::open(dir.path()).unwrap();
        let store = EmbeddedStore::open(&log).unwrap();
        for n in 0..50 {
            let stream = format!("order-{}", n % 5);
            store
                .append(&stream, ExpectedVersion::Any, vec![event(n)])
                .await
                .unwrap();
        }
    }
    let log = Log::open(dir.path()).unwrap();
    let store = EmbeddedStore::open(&log).unwrap();
    assert_eq!(store.stream_version("order-3").await.unwrap(), 10);
    assert_eq!(store.head().await.unwrap(), 50);
    let conflict = store
        .append("order-3", ExpectedVersion::Exact(9), vec![event(99)])
        .await
        .unwrap_err();
    assert!(conflict.to_string().contains("at version 10"), "{conflict}");
    let appended = store
        .append("order-3", ExpectedVersion::Exact(10), vec![event(100)])
        .await
        .unwrap();
    assert_eq!((appended.version, appended.first_position), (11, 50));
    let order3 = store
        .read_stream("order-3", 1, Direction::Forward, 100)
        .await
        .unwrap();
    assert_eq!(order3.len(), 11);
    let category = store
        .read_all(0, 1000, &AllFilter::Category("order".into()))
        .await
        .unwrap();
    assert_eq!(category.len(), 51);
}

#[test]
fn a_topic_with_many_partitions_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path()).unwrap();
    log.create_topic("keel.events", TopicConfig::new(3))
        .unwrap();
    let error = EmbeddedStore::open(&log).unwrap_err().to_string();
    assert!(
        error.contains("keel.events") && error.contains("3 partitions"),
        "{error}"
    );
}

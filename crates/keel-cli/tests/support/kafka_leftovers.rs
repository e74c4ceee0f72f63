//! What a test made on the shared Apache Kafka broker, deleted when the test ends — passed
//! or failed — so the broker does not keep every run's topics and groups (thousands of them
//! slowed every test that lists them). Included (`#[path]`) by the `*_apache_kafka.rs` tests.

use futures_util::{StreamExt, stream};
use keel_core::{AdminTransport, TransportError};
use keel_kafka_client::KafkaAdmin;

/// Groups deleted at once.
const DELETES_CONCURRENT: usize = 8;

/// The topics and groups a test made; [`Drop`] deletes them.
pub(crate) struct KafkaLeftovers {
    admin: KafkaAdmin,
    topics: Vec<String>,
    groups: Vec<String>,
}

impl KafkaLeftovers {
    /// Nothing to delete yet, on the cluster `admin` reaches.
    pub(crate) fn new(admin: &KafkaAdmin) -> KafkaLeftovers {
        KafkaLeftovers {
            admin: admin.clone(),
            topics: Vec::new(),
            groups: Vec::new(),
        }
    }

    /// Deletes `topic` at the end (it need not exist by then).
    pub(crate) fn topic(&mut self, topic: &str) {
        self.topics.push(topic.to_string());
    }

    /// Deletes `group` at the end (it need not exist by then).
    pub(crate) fn group(&mut self, group: &str) {
        self.groups.push(group.to_string());
    }
}

impl Drop for KafkaLeftovers {
    /// Runs the deletes on a thread of its own (a test's runtime cannot be blocked on from
    /// inside); a panicking test unwinds through here too.
    fn drop(&mut self) {
        let (admin, topics, groups) = (
            self.admin.clone(),
            std::mem::take(&mut self.topics),
            std::mem::take(&mut self.groups),
        );
        let deleted = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the deletes")
                .block_on(delete(&admin, &topics, &groups));
        })
        .join();
        if deleted.is_err() {
            eprintln!("deleting the test's topics and groups panicked");
        }
    }
}

/// Deletes `groups`, then `topics`; reports what it could not delete without failing the
/// test for it.
async fn delete(admin: &KafkaAdmin, topics: &[String], groups: &[String]) {
    let failures: Vec<String> = stream::iter(groups)
        .map(|group| async move {
            admin
                .delete_group(group)
                .await
                .err()
                .map(|e| format!("group '{group}': {e}"))
        })
        .buffer_unordered(DELETES_CONCURRENT)
        .filter_map(std::future::ready)
        .collect()
        .await;
    for failure in failures {
        eprintln!("left on the broker: {failure}");
    }
    for topic in topics {
        match admin.delete_topic(topic).await {
            Ok(()) | Err(TransportError::UnknownTopic { .. }) => {}
            Err(error) => eprintln!("left on the broker: topic '{topic}': {error}"),
        }
    }
}

//! The embedded log against the transport conformance suite (`keel_runtime::conformance`):
//! the same router checks `keel-kafka-client` runs against `keel serve` and Apache Kafka.

use std::sync::Arc;
use std::time::Duration;

use keel_core::{AdminTransport, GroupPolicy};
use keel_embedded::EmbeddedBus;
use keel_log::Log;
use keel_runtime::conformance::Harness;
use keel_runtime::{Publisher, Transport};

/// A fresh log in a temporary directory and the one bus on it.
struct Embedded {
    bus: EmbeddedBus,
    _dir: tempfile::TempDir,
}

impl Harness for Embedded {
    fn transport(&self) -> Transport {
        self.bus.transport()
    }

    fn admin(&self) -> Arc<dyn AdminTransport> {
        Arc::new(self.bus.clone())
    }

    fn publisher(&self) -> Publisher {
        self.bus.publisher()
    }

    fn group_policy(&self) -> GroupPolicy {
        GroupPolicy {
            session_timeout: Duration::from_secs(3),
            heartbeat_interval: Duration::from_millis(100),
            rebalance_timeout: Duration::from_secs(10),
        }
    }

    fn broker_for_child(&self) -> Option<String> {
        // The log lives in this process: a dead member is abandoned in place.
        None
    }
}

async fn embedded() -> Embedded {
    let dir = tempfile::tempdir().expect("temporary directory");
    let log = Arc::new(Log::open(dir.path()).expect("open log"));
    Embedded {
        bus: EmbeddedBus::new(log),
        _dir: dir,
    }
}

keel_runtime::conformance_tests!(embedded());
keel_sql::relay_conformance_tests!(embedded());
keel_runtime::admin_conformance_tests!(embedded());
keel_runtime::group_deletion_conformance_tests!(embedded());
keel_runtime::topic_deletion_conformance_tests!(embedded());
keel_runtime::dead_letter_conformance_tests!(embedded());
keel_runtime::gauge_conformance_tests!(embedded());
keel_runtime::live_lag_conformance_tests!(embedded());

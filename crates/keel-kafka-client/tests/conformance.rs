//! The Kafka transport against the transport conformance suite (`keel_runtime::conformance`),
//! on `keel serve`'s broker and group coordinator in-process: the same router checks the
//! embedded log passes — pub/sub, competing consumers, per-key order under retries, dead
//! letters, the inbox, the retry topic, resuming from committed offsets. Topics are created
//! and read back through `KafkaAdmin`, the administrative port over the Kafka protocol.

mod support;

use std::time::Duration;

use keel_core::GroupPolicy;
use keel_kafka_client::KafkaConfig;
use keel_runtime::conformance::inherited_broker;
use support::Serve;
use support::harness::KafkaHarness;

/// A fresh broker (every check has its own, so names need no prefix); in a child process of
/// a check (a member killed there), the parent's broker.
async fn kafka() -> KafkaHarness<Option<Serve>> {
    let (serve, bootstrap) = match inherited_broker() {
        Some(bootstrap) => (None, bootstrap),
        None => {
            let serve = Serve::start_fast_groups().await;
            let bootstrap = serve.bootstrap();
            (Some(serve), bootstrap)
        }
    };
    let config = KafkaConfig::new(&bootstrap);
    let policy = GroupPolicy {
        session_timeout: Duration::from_secs(3),
        heartbeat_interval: Duration::from_millis(200),
        rebalance_timeout: Duration::from_secs(20),
    };
    KafkaHarness::new(serve, config, policy, String::new(), bootstrap)
}

keel_runtime::conformance_tests!(kafka());
keel_sql::relay_conformance_tests!(kafka());
keel_runtime::admin_conformance_tests!(kafka());
keel_runtime::group_deletion_conformance_tests!(kafka());
keel_runtime::topic_deletion_conformance_tests!(kafka());
keel_runtime::live_lag_conformance_tests!(kafka());
keel_runtime::gauge_conformance_tests!(kafka());

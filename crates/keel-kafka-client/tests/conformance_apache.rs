//! The transport conformance suite (`keel_runtime::conformance`) on the real Apache Kafka
//! broker: the checks `keel serve` and the embedded log pass, through the same transport,
//! publisher and administrative port (`KafkaAdmin`) a service would use on a production
//! cluster. Every check names its topics and groups with a prefix no other check or run
//! uses, since the broker keeps them between runs.
//!
//! Runs against `KEEL_TEST_KAFKA_BROKERS` (`scripts/services start kafka` serves Apache Kafka
//! on 127.0.0.1:29092): unset, each check says it did not run; set, an unreachable broker
//! fails it.

mod support;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use keel_core::{AdminTransport, GroupPolicy};
use keel_kafka_client::{KafkaAdmin, KafkaConfig};
use keel_runtime::conformance::inherited_broker;
use support::harness::KafkaHarness;

const BROKERS_VAR: &str = "KEEL_TEST_KAFKA_BROKERS";

/// The harness on the broker, or `None` (with a message) when the variable is unset. A set
/// variable and a broker that does not answer fail the check here, naming the address.
async fn apache_kafka() -> Option<KafkaHarness<()>> {
    let Ok(brokers) = std::env::var(BROKERS_VAR) else {
        eprintln!("conformance on apache kafka: not run, {BROKERS_VAR} is unset");
        return None;
    };
    let config = KafkaConfig::new(&brokers);
    let probe = KafkaAdmin::connect(&config).expect("admin clients");
    if let Err(error) = probe.topics().await {
        panic!("{BROKERS_VAR}={brokers} does not answer: {error}");
    }
    // Kafka's brokers refuse sessions under `group.min.session.timeout.ms` (6 s by default).
    let policy = GroupPolicy {
        session_timeout: Duration::from_secs(6),
        heartbeat_interval: Duration::from_millis(500),
        rebalance_timeout: Duration::from_secs(20),
    };
    // A child process of a check (a member killed there) works in its parent's namespace.
    let namespace = inherited_broker().unwrap_or_else(fresh_namespace);
    Some(KafkaHarness::new(
        (),
        config,
        policy,
        namespace.clone(),
        namespace,
    ))
}

/// A prefix no other check of this run, nor any earlier run, uses.
fn fresh_namespace() -> String {
    static CHECK: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos();
    let check = CHECK.fetch_add(1, Ordering::Relaxed);
    format!("keel-conf-{}-{nanos}-{check}-", std::process::id())
}

keel_runtime::conformance_tests!(optional apache_kafka());
keel_sql::relay_conformance_tests!(optional apache_kafka());
keel_runtime::admin_conformance_tests!(optional apache_kafka());
keel_runtime::group_deletion_conformance_tests!(optional apache_kafka());
keel_runtime::topic_deletion_conformance_tests!(optional apache_kafka());
keel_runtime::dead_letter_conformance_tests!(optional apache_kafka());
keel_runtime::live_lag_conformance_tests!(optional apache_kafka());
keel_runtime::gauge_conformance_tests!(optional apache_kafka());

//! The NATS transport against the transport conformance suite (`keel_runtime::conformance`)
//! on the real server at `KEEL_TEST_NATS_URL` (`scripts/services start nats`;
//! `scripts/services env` prints the variable): unset, each check says it did not run;
//! set, an unreachable server fails it. Each check gets a namespace of its own, so checks
//! and parallel runs share the server without meeting.

use std::sync::Arc;
use std::time::Duration;

use keel_core::{AdminTransport, GroupPolicy};
use keel_nats::{NatsConfig, NatsTransport};
use keel_runtime::conformance::{Harness, inherited_broker};
use keel_runtime::{Publisher, Transport};

const URL_VAR: &str = "KEEL_TEST_NATS_URL";

/// A fresh namespace on the server.
struct Nats {
    transport: NatsTransport,
    namespace: String,
}

impl Harness for Nats {
    fn transport(&self) -> Transport {
        self.transport.transport()
    }

    fn admin(&self) -> Arc<dyn AdminTransport> {
        Arc::new(self.transport.clone())
    }

    fn publisher(&self) -> Publisher {
        self.transport.publisher()
    }

    fn group_policy(&self) -> GroupPolicy {
        GroupPolicy {
            session_timeout: Duration::from_secs(3),
            heartbeat_interval: Duration::from_millis(200),
            rebalance_timeout: Duration::from_secs(20),
        }
    }

    fn broker_for_child(&self) -> Option<String> {
        Some(self.namespace.clone())
    }
}

async fn nats() -> Option<Nats> {
    let Ok(url) = std::env::var(URL_VAR) else {
        eprintln!("nats conformance: not run, {URL_VAR} is unset");
        return None;
    };
    // A child process of a check (a member killed there) works in its parent's namespace.
    let namespace = inherited_broker()
        .unwrap_or_else(|| format!("t{}", uuid::Uuid::now_v7().simple())[..32].to_string());
    let config = NatsConfig::new(url)
        .with_namespace(&namespace)
        .expect("namespace");
    let transport = NatsTransport::connect(&config)
        .await
        .unwrap_or_else(|e| panic!("{URL_VAR} is set but NATS is unreachable: {e}"));
    Some(Nats {
        transport,
        namespace,
    })
}

keel_runtime::conformance_tests!(optional nats());
keel_sql::relay_conformance_tests!(optional nats());
// Offsets skip the other partitions' sequences; the admin port counts a partition's records.
keel_runtime::admin_conformance_tests!(optional nats());
keel_runtime::dead_letter_conformance_tests!(optional nats());
keel_runtime::gauge_conformance_tests!(optional nats());

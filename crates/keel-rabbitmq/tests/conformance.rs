//! The RabbitMQ transport against the transport conformance suite
//! (`keel_runtime::conformance`), on the RabbitMQ at `KEEL_TEST_RABBITMQ_URL`
//! (`scripts/services start rabbitmq`; `scripts/services env` prints the variable): unset,
//! each check says it did not run; set, an unreachable server fails it. Every check works
//! in a namespace of its own, so runs and checks never see each other's topics.

use std::sync::Arc;
use std::time::Duration;

use keel_core::{AdminTransport, GroupPolicy};
use keel_rabbitmq::{RabbitConfig, RabbitTransport};
use keel_runtime::conformance::{Harness, inherited_broker};
use keel_runtime::{Publisher, Transport};

const URL_VAR: &str = "KEEL_TEST_RABBITMQ_URL";

/// One namespace on the shared RabbitMQ and a transport in it.
struct Rabbit {
    config: RabbitConfig,
    rabbit: RabbitTransport,
    prefix: String,
}

impl Harness for Rabbit {
    fn transport(&self) -> Transport {
        RabbitTransport::connect(&self.config)
            .expect("RabbitMQ transport")
            .transport()
    }

    fn admin(&self) -> Arc<dyn AdminTransport> {
        Arc::new(self.rabbit.admin())
    }

    fn publisher(&self) -> Publisher {
        self.rabbit.publisher()
    }

    fn group_policy(&self) -> GroupPolicy {
        GroupPolicy {
            session_timeout: Duration::from_secs(3),
            heartbeat_interval: Duration::from_millis(200),
            rebalance_timeout: Duration::from_secs(20),
        }
    }

    fn broker_for_child(&self) -> Option<String> {
        Some(self.prefix.clone())
    }
}

async fn rabbit() -> Option<Rabbit> {
    let Ok(url) = std::env::var(URL_VAR) else {
        eprintln!("rabbitmq conformance: not run, {URL_VAR} is unset");
        return None;
    };
    // A child process of a check (a member killed there) works in its parent's namespace.
    let prefix =
        inherited_broker().unwrap_or_else(|| format!("conformance-{}.", uuid::Uuid::now_v7()));
    let config = RabbitConfig::new(&url).with_prefix(&prefix);
    let rabbit = RabbitTransport::connect(&config).expect("RabbitMQ transport");
    rabbit
        .admin()
        .topics()
        .await
        .unwrap_or_else(|e| panic!("RabbitMQ at {URL_VAR}={url} is unreachable: {e}"));
    Some(Rabbit {
        config,
        rabbit,
        prefix,
    })
}

keel_runtime::conformance_tests!(optional rabbit());
keel_sql::relay_conformance_tests!(optional rabbit());
keel_runtime::admin_conformance_tests!(optional rabbit());
keel_runtime::dead_letter_conformance_tests!(optional rabbit());
keel_runtime::gauge_conformance_tests!(optional rabbit());

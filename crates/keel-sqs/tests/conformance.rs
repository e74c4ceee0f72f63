//! The SQS/SNS transport against the transport conformance suite
//! (`keel_runtime::conformance`) on the API-compatible server at `KEEL_TEST_SQS_URL` (moto,
//! `scripts/services start sqs`; `scripts/services env` prints the variable): unset, each
//! check says it did not run; set, an unreachable server fails it. Each check gets a
//! namespace of its own, so checks and parallel runs share the server without meeting.
//!
//! The checks that need what SQS does not keep are left out (docs/engines.md): reading a
//! topic back (the dead-letter and retry-topic checks read `.dlq`/`.retry` through the
//! admin port), a backlog published before the group existed (also in the check of a killed
//! member's takeover, which commits at offsets; `tests/takeover.rs` is SQS's own), reading
//! back what the outbox relay stored (`keel_sql::relay_conformance_tests!`), and the
//! operator and gauge checks (`admin_conformance_tests!`, `gauge_conformance_tests!`: lag
//! in events, an offset reset). The test
//! `what_sqs_cannot_keep_is_refused` shows each is refused, not faked.

use std::sync::Arc;
use std::time::Duration;

use keel_core::{AdminTransport, GroupPolicy, TransportError};
use keel_runtime::conformance::{self, Harness};
use keel_runtime::{Publisher, Transport};
use keel_sqs::{SqsConfig, SqsTransport};
use support::URL_VAR;

// The checks here run through the harness, not `support::connect`.
#[allow(dead_code)]
mod support;

/// A fresh namespace on the server.
struct Sqs {
    transport: SqsTransport,
    namespace: String,
}

impl Harness for Sqs {
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
        // The visibility timeout: long enough that renewals stay ahead of it while six
        // checks share moto and two cores.
        GroupPolicy {
            session_timeout: Duration::from_secs(10),
            heartbeat_interval: Duration::from_millis(200),
            rebalance_timeout: Duration::from_secs(20),
        }
    }

    fn broker_for_child(&self) -> Option<String> {
        Some(self.namespace.clone())
    }
}

async fn sqs() -> Option<Sqs> {
    let Ok(url) = std::env::var(URL_VAR) else {
        eprintln!("sqs conformance: not run, {URL_VAR} is unset");
        return None;
    };
    let namespace = support::namespace();
    let config = SqsConfig::local(url)
        .with_namespace(&namespace)
        .expect("namespace");
    let transport = SqsTransport::connect(&config)
        .await
        .unwrap_or_else(|e| panic!("{URL_VAR} is set but the SQS/SNS server is unreachable: {e}"));
    Some(Sqs {
        transport,
        namespace,
    })
}

macro_rules! checks {
    ($($check:ident,)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let Some(harness) = sqs().await else { return };
                conformance::$check(&harness).await;
            }
        )*
    };
}

checks! {
    two_groups_each_see_every_event,
    members_share_partitions_and_handle_each_event_once,
    same_key_order_holds_under_retries,
    inbox_drops_a_redelivered_event,
    committed_offsets_resume_after_a_restart,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_sqs_cannot_keep_is_refused() {
    let Some(harness) = sqs().await else { return };
    let admin = harness.admin();
    assert_eq!(admin.create_topic("orders", 2).await, Ok(2));
    let unsupported = |result: Result<(), TransportError>| match result {
        Err(error @ TransportError::Unsupported { .. }) => error.to_string(),
        other => panic!("expected Unsupported, got {other:?}"),
    };
    let refusals = [
        unsupported(admin.partition_offsets("orders").await.map(drop)),
        unsupported(admin.read("orders", 0, 0, 1 << 20).await.map(drop)),
        unsupported(admin.offset_for_time("orders", 0, 0).await.map(drop)),
        unsupported(admin.committed("billing").await.map(drop)),
        unsupported(admin.commit("billing", &[]).await),
    ];
    assert_eq!(
        refusals[1],
        "Amazon SQS cannot read a topic's stored records: SQS keeps no offsets: a message is gone once a member deletes it"
    );
    let topics = admin.topics().await.expect("topics");
    assert_eq!(topics.len(), 1);
    assert_eq!(
        (topics[0].name.as_str(), topics[0].partitions),
        ("orders", 2)
    );
}

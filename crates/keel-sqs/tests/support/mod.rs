//! What keel-sqs's own tests share: a transport in a fresh namespace on the server at
//! `KEEL_TEST_SQS_URL` (moto), or `None` after saying the test did not run.

use keel_sqs::{SqsConfig, SqsTransport};

pub(crate) const URL_VAR: &str = "KEEL_TEST_SQS_URL";

/// A namespace no other test meets: `t` and 13 random hex digits (52 bits), 14 bytes so
/// the longest queue names stay within SQS's 80. Not the head of a UUIDv7, which is its
/// millisecond: tests that nextest starts in the same millisecond shared topics and groups
/// that way, and took each other's events (the checks that timed out now and then in CI).
pub(crate) fn namespace() -> String {
    let id = uuid::Uuid::now_v7().simple().to_string();
    format!("t{}", &id[id.len() - 13..])
}

/// A transport in a namespace of its own; `None` (said on stderr, naming `test`) when the
/// variable is unset; panics when it is set and the server is unreachable.
pub(crate) async fn connect(test: &str) -> Option<SqsTransport> {
    let Ok(url) = std::env::var(URL_VAR) else {
        eprintln!("sqs {test}: not run, {URL_VAR} is unset");
        return None;
    };
    let config = SqsConfig::local(url)
        .with_namespace(&namespace())
        .expect("namespace");
    Some(
        SqsTransport::connect(&config)
            .await
            .unwrap_or_else(|e| panic!("{URL_VAR} is set but the server is unreachable: {e}")),
    )
}

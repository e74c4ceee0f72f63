//! What keel-sqs's own tests share: a transport in a fresh namespace on the server at
//! `KEEL_TEST_SQS_URL` (moto), or `None` after saying the test did not run.

use keel_sqs::{SqsConfig, SqsTransport};

pub(crate) const URL_VAR: &str = "KEEL_TEST_SQS_URL";

/// A transport in a namespace of its own; `None` (said on stderr, naming `test`) when the
/// variable is unset; panics when it is set and the server is unreachable.
pub(crate) async fn connect(test: &str) -> Option<SqsTransport> {
    let Ok(url) = std::env::var(URL_VAR) else {
        eprintln!("sqs {test}: not run, {URL_VAR} is unset");
        return None;
    };
    let namespace = format!("t{}", uuid::Uuid::now_v7().simple());
    let config = SqsConfig::local(url)
        .with_namespace(&namespace[..14])
        .expect("namespace");
    Some(
        SqsTransport::connect(&config)
            .await
            .unwrap_or_else(|e| panic!("{URL_VAR} is set but the server is unreachable: {e}")),
    )
}

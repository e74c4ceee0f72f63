//! EndTxn (26): commits or aborts a producer's transaction, answered once the markers are in
//! every partition of it (`txn/mod.rs`). Served at v0–4: v5 belongs to KIP-890's second
//! transaction version (an epoch bump at every end), which `keel serve` does not advertise.

use kafka_protocol::messages::{ApiKey, EndTxnRequest, EndTxnResponse};

use crate::acl::Caller;
use crate::api::code;
use crate::broker::Broker;
use crate::txn::fenced;

/// Answers EndTxn.
pub(crate) async fn handle(
    broker: &Broker,
    caller: &Caller,
    request: EndTxnRequest,
    version: i16,
) -> EndTxnResponse {
    let id = request.transactional_id.to_string();
    let outcome = match broker.transactional_id_access(caller, &id) {
        Err(error) => Err(error),
        Ok(()) => {
            let producer = (request.producer_id.0, request.producer_epoch);
            let fenced = fenced(ApiKey::EndTxn, version);
            broker
                .transactions
                .end(broker, &id, producer, request.committed, fenced)
                .await
        }
    };
    if let Err(error) = outcome {
        tracing::debug!(
            transactional_id = id,
            ?error,
            committed = request.committed,
            "EndTxn refused"
        );
    }
    EndTxnResponse::default().with_error_code(outcome.err().map_or(0, code))
}

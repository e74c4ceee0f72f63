//! InitProducerId (22): producer ids for idempotent and transactional producers.
//!
//! Without a transactional id, a producer gets a fresh id at epoch 0; a producer that passes
//! its current id and epoch (KIP-360, after a sequence error) gets the same id at the next
//! epoch, which resets its sequences. With one, the transaction coordinator (`txn/`) answers:
//! the id's producer at its next epoch, fencing the previous owner.
//!
//! Needs IdempotentWrite on the cluster or Write on some topic, as Kafka since 3.0
//! (`CLUSTER_AUTHORIZATION_FAILED`), or Write on the transactional id
//! (`TRANSACTIONAL_ID_AUTHORIZATION_FAILED`).

use kafka_protocol::ResponseError;
use kafka_protocol::messages::{ApiKey, InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use crate::acl::{CLUSTER_NAME, Caller, Operation, ResourceType};
use crate::api::code;
use crate::broker::Broker;
use crate::txn::fenced;

/// Answers InitProducerId.
pub(crate) async fn handle(
    broker: &Broker,
    caller: &Caller,
    request: InitProducerIdRequest,
    version: i16,
) -> InitProducerIdResponse {
    let refused = |error: ResponseError| {
        InitProducerIdResponse::default()
            .with_error_code(code(error))
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    let requested = (request.producer_id.0, request.producer_epoch);
    if let Some(id) = request.transactional_id.as_deref() {
        if let Err(error) = broker.transactional_id_access(caller, id) {
            return refused(error);
        }
        let fenced = fenced(ApiKey::InitProducerId, version);
        let owner = broker
            .transactions
            .init_producer_id(
                broker,
                id,
                request.transaction_timeout_ms,
                requested,
                fenced,
            )
            .await;
        return match owner {
            Ok((id, epoch)) => InitProducerIdResponse::default()
                .with_producer_id(ProducerId(id))
                .with_producer_epoch(epoch),
            Err(error) => refused(error),
        };
    }
    let authorizer = &broker.authorizer;
    let writes =
        |topic: &str| authorizer.allows(caller, Operation::Write, ResourceType::Topic, topic);
    let allowed = authorizer.allows(
        caller,
        Operation::IdempotentWrite,
        ResourceType::Cluster,
        CLUSTER_NAME,
    ) || broker.log.topics().iter().any(|t| writes(t.name()));
    if !allowed {
        tracing::warn!(target: "keel::audit", event = "authorization_denied", principal = %caller.principal, peer = %caller.peer, operation = "IdempotentWrite", resource_type = "Cluster", "no IdempotentWrite on the cluster nor Write on any topic");
        return refused(ResponseError::ClusterAuthorizationFailed);
    }
    let (id, epoch) = match requested {
        (id, epoch) if id >= 0 && (0..i16::MAX).contains(&epoch) => (id, epoch + 1),
        _ => (broker.producers.allocate_id(), 0),
    };
    InitProducerIdResponse::default()
        .with_producer_id(ProducerId(id))
        .with_producer_epoch(epoch)
}

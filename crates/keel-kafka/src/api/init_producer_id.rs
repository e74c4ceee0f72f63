//! InitProducerId (22): producer ids for idempotent producers.
//!
//! Without a transactional id, a producer gets a fresh id at epoch 0; a producer that passes
//! its current id and epoch (KIP-360, after a sequence error) gets the same id at the next
//! epoch, which resets its sequences. Transactions are not supported: a transactional id is
//! refused with `TRANSACTIONAL_ID_AUTHORIZATION_FAILED`, which clients treat as fatal rather
//! than retrying forever.
//!
//! Needs IdempotentWrite on the cluster or Write on some topic, as Kafka since 3.0
//! (`CLUSTER_AUTHORIZATION_FAILED`).

use kafka_protocol::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use crate::acl::{CLUSTER_NAME, Caller, Operation, ResourceType};
use crate::api::code;
use crate::broker::Broker;

/// Answers InitProducerId.
pub(crate) fn handle(
    broker: &Broker,
    caller: &Caller,
    request: InitProducerIdRequest,
    _version: i16,
) -> InitProducerIdResponse {
    if request.transactional_id.is_some() {
        tracing::warn!(
            "InitProducerId with a transactional id refused: transactions are not supported"
        );
        return InitProducerIdResponse::default()
            .with_error_code(code(ResponseError::TransactionalIdAuthorizationFailed));
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
        return InitProducerIdResponse::default()
            .with_error_code(code(ResponseError::ClusterAuthorizationFailed));
    }
    let (id, epoch) = match (request.producer_id.0, request.producer_epoch) {
        (id, epoch) if id >= 0 && (0..i16::MAX).contains(&epoch) => (id, epoch + 1),
        _ => (broker.producers.allocate_id(), 0),
    };
    InitProducerIdResponse::default()
        .with_producer_id(ProducerId(id))
        .with_producer_epoch(epoch)
}

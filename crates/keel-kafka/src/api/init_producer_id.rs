//! InitProducerId (22): producer ids for idempotent producers.
//!
//! Without a transactional id, a producer gets a fresh id at epoch 0; a producer that passes
//! its current id and epoch (KIP-360, after a sequence error) gets the same id at the next
//! epoch, which resets its sequences. Transactions are not supported: a transactional id is
//! refused with `TRANSACTIONAL_ID_AUTHORIZATION_FAILED`, which clients treat as fatal rather
//! than retrying forever.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use crate::api::code;
use crate::broker::Broker;

/// Answers InitProducerId.
pub(crate) fn handle(
    broker: &Broker,
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
    let (id, epoch) = match (request.producer_id.0, request.producer_epoch) {
        (id, epoch) if id >= 0 && (0..i16::MAX).contains(&epoch) => (id, epoch + 1),
        _ => (broker.producers.allocate_id(), 0),
    };
    InitProducerIdResponse::default()
        .with_producer_id(ProducerId(id))
        .with_producer_epoch(epoch)
}

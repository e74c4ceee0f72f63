//! AddOffsetsToTxn (25): a consumer group's offsets join a producer's transaction
//! (`sendOffsetsToTransaction`), to be committed with it by TxnOffsetCommit. Needs Write on
//! the transactional id and Read on the group.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, ApiKey};

use crate::acl::Caller;
use crate::api::code;
use crate::broker::Broker;
use crate::txn::fenced;

/// Answers AddOffsetsToTxn.
pub(crate) async fn handle(
    broker: &Broker,
    caller: &Caller,
    request: AddOffsetsToTxnRequest,
    version: i16,
) -> AddOffsetsToTxnResponse {
    let id = request.transactional_id.to_string();
    let group = request.group_id.to_string();
    let outcome = match broker.txn_group_access(caller, &id, &group) {
        Err(error) => Err(error),
        Ok(()) if group.is_empty() => Err(ResponseError::InvalidGroupId),
        Ok(()) => {
            let producer = (request.producer_id.0, request.producer_epoch);
            let fenced = fenced(ApiKey::AddOffsetsToTxn, version);
            broker
                .transactions
                .add_offsets(broker, &id, producer, group, fenced)
                .await
        }
    };
    AddOffsetsToTxnResponse::default().with_error_code(outcome.err().map_or(0, code))
}

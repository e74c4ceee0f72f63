//! TxnOffsetCommit (28): a consumer group's offsets committed inside a transaction, made
//! visible to the group only when the transaction commits. Served at v0–4 (v5 is KIP-890's
//! second transaction version).
//!
//! The group must have been added with AddOffsetsToTxn, and the member id, generation and
//! group instance id the request names (v3+) must be current in the group, as Kafka checks
//! them (`ILLEGAL_GENERATION`, `UNKNOWN_MEMBER_ID`, `FENCED_INSTANCE_ID`): a member
//! rebalanced away cannot commit offsets of partitions it no longer owns. A request naming
//! no member (v0–2, or generation -1) is checked by the producer's epoch alone.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{ApiKey, TxnOffsetCommitRequest, TxnOffsetCommitResponse};

use crate::acl::{Caller, Operation};
use crate::api::{code, partition_of};
use crate::broker::Broker;
use crate::limits::OFFSET_METADATA_BYTES_MAX_DEFAULT;
use crate::txn::{PendingOffset, fenced};

/// Answers TxnOffsetCommit.
pub(crate) async fn handle(
    broker: &Broker,
    caller: &Caller,
    request: TxnOffsetCommitRequest,
    version: i16,
) -> TxnOffsetCommitResponse {
    let id = request.transactional_id.to_string();
    let group = request.group_id.to_string();
    let refused = broker.txn_group_access(caller, &id, &group).err();
    let mut pending = Vec::new();
    let mut verdicts = Vec::new();
    for topic in &request.topics {
        let access = broker.topic_access(caller, Operation::Read, &topic.name);
        let found = broker.user_topic(&topic.name);
        for asked in &topic.partitions {
            let metadata = asked.committed_metadata.as_deref().unwrap_or("");
            let verdict = match (&access, partition_of(found.as_ref(), asked.partition_index)) {
                _ if refused.is_some() => refused,
                (Err((error, _)), _) => Some(*error),
                (Ok(()), None) => Some(ResponseError::UnknownTopicOrPartition),
                _ if metadata.len() > OFFSET_METADATA_BYTES_MAX_DEFAULT => {
                    Some(ResponseError::OffsetMetadataTooLarge)
                }
                (Ok(()), Some(_)) => match u64::try_from(asked.committed_offset) {
                    Ok(offset) => {
                        pending.push(PendingOffset {
                            group: group.clone(),
                            topic: topic.name.to_string(),
                            partition: asked.partition_index as u32,
                            offset,
                            metadata: metadata.to_string(),
                        });
                        None
                    }
                    Err(_) => Some(ResponseError::InvalidCommitOffsetSize),
                },
            };
            verdicts.push((topic.name.clone(), asked.partition_index, verdict));
        }
    }
    let outcome = if pending.is_empty() {
        Ok(())
    } else if let Err(error) = broker.check_txn_offset_commit(
        &group,
        request.generation_id,
        &request.member_id,
        request.group_instance_id.as_deref(),
    ) {
        Err(error)
    } else {
        let producer = (request.producer_id.0, request.producer_epoch);
        let fenced = fenced(ApiKey::TxnOffsetCommit, version);
        broker
            .transactions
            .commit_offsets(broker, &id, producer, pending, fenced)
            .await
    };
    let mut topics: Vec<TxnOffsetCommitResponseTopic> = Vec::new();
    for (name, index, verdict) in verdicts {
        let error_code = match (verdict, &outcome) {
            (Some(error), _) => code(error),
            (None, Err(error)) => code(*error),
            (None, Ok(())) => 0,
        };
        let partition = TxnOffsetCommitResponsePartition::default()
            .with_partition_index(index)
            .with_error_code(error_code);
        match topics.iter_mut().find(|t| t.name == name) {
            Some(topic) => topic.partitions.push(partition),
            None => topics.push(
                TxnOffsetCommitResponseTopic::default()
                    .with_name(name)
                    .with_partitions(vec![partition]),
            ),
        }
    }
    TxnOffsetCommitResponse::default().with_topics(topics)
}

//! AddPartitionsToTxn (24): partitions join a producer's transaction before it writes to
//! them. Served at v0–3, the versions clients send (v4 and later batch several transactions
//! and are Kafka's broker-to-broker verification, refused as an unsupported version).
//!
//! Every partition must exist and the caller may Write its topic; if one fails, the others
//! are answered `OPERATION_NOT_ATTEMPTED` and nothing is added, as Kafka does.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, ApiKey};

use crate::acl::{Caller, Operation};
use crate::api::{code, partition_of};
use crate::broker::Broker;
use crate::txn::{TxnPartition, fenced};

/// Answers AddPartitionsToTxn.
pub(crate) async fn handle(
    broker: &Broker,
    caller: &Caller,
    request: AddPartitionsToTxnRequest,
    version: i16,
) -> AddPartitionsToTxnResponse {
    let id = request.v3_and_below_transactional_id.to_string();
    let mut verdicts = Vec::new();
    for topic in &request.v3_and_below_topics {
        let access = broker.topic_access(caller, Operation::Write, &topic.name);
        let found = broker.user_topic(&topic.name);
        for &index in &topic.partitions {
            let verdict = match (&access, partition_of(found.as_ref(), index)) {
                (Err((error, _)), _) => Err(*error),
                (Ok(()), None) => Err(ResponseError::UnknownTopicOrPartition),
                (Ok(()), Some(_)) => Ok(TxnPartition {
                    topic: topic.name.to_string(),
                    partition: index as u32,
                }),
            };
            verdicts.push((topic.name.clone(), index, verdict));
        }
    }
    let outcome = if let Err(error) = broker.transactional_id_access(caller, &id) {
        Err(error)
    } else if verdicts.iter().any(|(_, _, v)| v.is_err()) {
        Err(ResponseError::OperationNotAttempted)
    } else {
        let partitions = verdicts
            .iter()
            .filter_map(|(_, _, v)| v.clone().ok())
            .collect();
        let producer = (
            request.v3_and_below_producer_id.0,
            request.v3_and_below_producer_epoch,
        );
        broker
            .transactions
            .add_partitions(
                broker,
                &id,
                producer,
                partitions,
                fenced(ApiKey::AddPartitionsToTxn, version),
            )
            .await
    };
    let mut results: Vec<AddPartitionsToTxnTopicResult> = Vec::new();
    for (name, index, verdict) in verdicts {
        // A partition's own refusal names it; the others carry the transaction's answer.
        let error_code = match (verdict, &outcome) {
            (Err(error), _) => code(error),
            (Ok(_), Err(error)) => code(*error),
            (Ok(_), Ok(())) => 0,
        };
        let partition = AddPartitionsToTxnPartitionResult::default()
            .with_partition_index(index)
            .with_partition_error_code(error_code);
        match results.iter_mut().find(|t| t.name == name) {
            Some(topic) => topic.results_by_partition.push(partition),
            None => results.push(
                AddPartitionsToTxnTopicResult::default()
                    .with_name(name)
                    .with_results_by_partition(vec![partition]),
            ),
        }
    }
    AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results)
}

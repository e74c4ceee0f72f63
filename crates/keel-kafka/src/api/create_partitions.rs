//! CreatePartitions (37): raises a topic's partition count (`Log::add_partitions`); new
//! partitions start empty, existing ones keep their records, so keys move partitions as in
//! Kafka.
//!
//! As Kafka: an unknown topic is `UNKNOWN_TOPIC_OR_PARTITION`, a count not above the current
//! one `INVALID_PARTITIONS`, a manual assignment naming another broker
//! `INVALID_REPLICA_ASSIGNMENT`; `validate_only` checks without adding. The server's
//! `partitions_max` refuses with `POLICY_VIOLATION`, as for CreateTopics. Needs Alter on the
//! topic (`TOPIC_AUTHORIZATION_FAILED`).

use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use keel_log::TopicError;
use keel_log::limits::PARTITIONS_MAX;

use crate::acl::{Caller, Operation};
use crate::api::{code, text};
use crate::broker::{Broker, blocking};

/// Answers CreatePartitions.
pub(crate) async fn handle(
    broker: &Arc<Broker>,
    caller: &Caller,
    request: CreatePartitionsRequest,
    _version: i16,
) -> CreatePartitionsResponse {
    let mut results = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let access = broker.topic_access(caller, Operation::Alter, &topic.name);
        let outcome = match access.and_then(|()| plan(broker, &topic)) {
            Err(refusal) => Err(refusal),
            Ok(_) if request.validate_only => Ok(()),
            Ok(adding) => broker
                .within_topic_limits(0, adding, add(broker, &topic.name, topic.count as u32))
                .await
                .and_then(|added| added),
        };
        let result = CreatePartitionsTopicResult::default().with_name(topic.name);
        results.push(match outcome {
            Ok(()) => result,
            Err((error, message)) => result
                .with_error_code(code(error))
                .with_error_message(Some(text(message))),
        });
    }
    CreatePartitionsResponse::default().with_results(results)
}

/// How many partitions `topic` asks to add, or why not.
fn plan(broker: &Broker, topic: &CreatePartitionsTopic) -> Result<usize, (ResponseError, String)> {
    let name = &*topic.name;
    let existing = broker.user_topic(name).ok_or_else(|| {
        (
            ResponseError::UnknownTopicOrPartition,
            format!("topic '{name}' does not exist"),
        )
    })?;
    let have = existing.partitions().len();
    let asked = usize::try_from(topic.count).unwrap_or(0);
    if asked <= have || asked > PARTITIONS_MAX as usize {
        return Err((
            ResponseError::InvalidPartitions,
            format!(
                "topic '{name}' has {have} partitions; the new count must be above it and at most {PARTITIONS_MAX}, not {}",
                topic.count
            ),
        ));
    }
    let node = broker.node.node_id;
    let elsewhere = topic
        .assignments
        .iter()
        .flatten()
        .any(|assignment| assignment.broker_ids.iter().any(|id| id.0 != node));
    if elsewhere {
        return Err((
            ResponseError::InvalidReplicaAssignment,
            format!("every partition is on broker {node}, the only one"),
        ));
    }
    Ok(asked - have)
}

/// Adds the partitions on a blocking thread.
async fn add(broker: &Arc<Broker>, name: &str, count: u32) -> Result<(), (ResponseError, String)> {
    let log = broker.log.clone();
    let owned = name.to_string();
    blocking(move || log.add_partitions(&owned, count))
        .await
        .map(|topic| {
            tracing::info!(topic = topic.name(), partitions = count, "partitions added");
        })
        .map_err(|error| {
            let kind = match &error {
                TopicError::NotFound(_) => ResponseError::UnknownTopicOrPartition,
                TopicError::PartitionsNotIncreased { .. } | TopicError::Config(_) => {
                    ResponseError::InvalidPartitions
                }
                _ => ResponseError::UnknownServerError,
            };
            (kind, error.to_string())
        })
}

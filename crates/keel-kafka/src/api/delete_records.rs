//! DeleteRecords (21): moves partitions' log start offsets forward, as the Java AdminClient's
//! `deleteRecords` and Kafka Streams' purge of its repartition topics ask. Needs Delete on the
//! topic; Keel's own topics are refused. The new start is durable before the answer
//! (`Partition::delete_records_before`).

use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};
use keel_log::ReadError;

use crate::acl::{Caller, Operation};
use crate::api::{code, partition_of};
use crate::broker::{Broker, blocking};

/// Kafka's offset meaning "up to the high watermark": delete every readable record.
const HIGH_WATERMARK: i64 = -1;

/// Answers DeleteRecords.
pub(crate) async fn handle(
    broker: &Arc<Broker>,
    caller: &Caller,
    request: DeleteRecordsRequest,
    _version: i16,
) -> DeleteRecordsResponse {
    let mut topics = Vec::with_capacity(request.topics.len());
    for wanted in request.topics {
        let access = broker.topic_access(caller, Operation::Delete, &wanted.name);
        let topic = broker.user_topic(&wanted.name);
        let mut partitions = Vec::with_capacity(wanted.partitions.len());
        for asked in wanted.partitions {
            let result = DeleteRecordsPartitionResult::default()
                .with_partition_index(asked.partition_index)
                .with_low_watermark(-1);
            if let Err((error, _)) = &access {
                partitions.push(result.with_error_code(code(*error)));
                continue;
            }
            let Some(partition) = partition_of(topic.as_ref(), asked.partition_index) else {
                partitions
                    .push(result.with_error_code(code(ResponseError::UnknownTopicOrPartition)));
                continue;
            };
            let Some(before) = target(asked.offset, partition.high_watermark()) else {
                partitions.push(result.with_error_code(code(ResponseError::OffsetOutOfRange)));
                continue;
            };
            let deleted = blocking(move || partition.delete_records_before(before)).await;
            partitions.push(match deleted {
                Ok(log_start) => {
                    tracing::info!(topic = &**wanted.name, partition = asked.partition_index, log_start, "records deleted");
                    result.with_low_watermark(log_start as i64)
                }
                Err(ReadError::OffsetOutOfRange { .. }) => {
                    result.with_error_code(code(ResponseError::OffsetOutOfRange))
                }
                Err(error) => {
                    tracing::warn!(topic = &**wanted.name, partition = asked.partition_index, %error, "deleting records failed");
                    result.with_error_code(code(ResponseError::KafkaStorageError))
                }
            });
        }
        topics.push(
            DeleteRecordsTopicResult::default()
                .with_name(wanted.name)
                .with_partitions(partitions),
        );
    }
    DeleteRecordsResponse::default().with_topics(topics)
}

/// The offset to delete before: the one asked for, or the high watermark for -1; `None` for
/// any other negative offset, which Kafka refuses as out of range.
fn target(offset: i64, high_watermark: u64) -> Option<u64> {
    match offset {
        HIGH_WATERMARK => Some(high_watermark),
        offset => u64::try_from(offset).ok(),
    }
}

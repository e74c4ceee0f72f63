//! ListOffsets (2): the earliest offset (-2), the latest (-1, the high watermark), or the
//! first offset whose record timestamp is at or after a time. Needs Describe on the topic.
//! A `read_committed` caller (isolation level 1, v2+) asking for the latest offset gets the
//! last stable offset instead, as Kafka answers it.

use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use keel_log::{Partition, ReadError};

use crate::acl::{Caller, Operation};
use crate::api::{code, partition_of};
use crate::broker::{Broker, blocking};

/// Kafka's timestamp meaning "the latest offset".
const LATEST: i64 = -1;
/// Kafka's timestamp meaning "the earliest offset".
const EARLIEST: i64 = -2;

/// Answers ListOffsets.
pub(crate) async fn handle(
    broker: &Arc<Broker>,
    caller: &Caller,
    request: ListOffsetsRequest,
    version: i16,
) -> ListOffsetsResponse {
    let mut topics = Vec::with_capacity(request.topics.len());
    for wanted in request.topics {
        let access = broker.topic_access(caller, Operation::Describe, &wanted.name);
        let topic = broker.user_topic(&wanted.name);
        let mut partitions = Vec::with_capacity(wanted.partitions.len());
        for asked in wanted.partitions {
            let response =
                ListOffsetsPartitionResponse::default().with_partition_index(asked.partition_index);
            if let Err((error, _)) = &access {
                partitions.push(response.with_error_code(code(*error)));
                continue;
            }
            let Some(partition) = partition_of(topic.as_ref(), asked.partition_index) else {
                partitions
                    .push(response.with_error_code(code(ResponseError::UnknownTopicOrPartition)));
                continue;
            };
            let looked_up = if asked.timestamp == LATEST && request.isolation_level == 1 {
                let high_watermark = partition.high_watermark();
                broker
                    .producers
                    .stable(
                        &wanted.name,
                        asked.partition_index as u32,
                        &partition,
                        high_watermark,
                        high_watermark,
                    )
                    .await
                    .map(|stable| (stable.last_stable_offset as i64, -1))
            } else {
                blocking(move || lookup(&partition, asked.timestamp)).await
            };
            let response = match looked_up {
                Ok((offset, timestamp)) => response.with_offset(offset).with_timestamp(timestamp),
                Err(error) => {
                    tracing::warn!(topic = &**wanted.name, partition = asked.partition_index, %error, "offset lookup failed");
                    response.with_error_code(code(ResponseError::KafkaStorageError))
                }
            };
            partitions.push(if version >= 4 {
                response.with_leader_epoch(0)
            } else {
                response
            });
        }
        topics.push(
            ListOffsetsTopicResponse::default()
                .with_name(wanted.name)
                .with_partitions(partitions),
        );
    }
    ListOffsetsResponse::default().with_topics(topics)
}

/// The offset and record timestamp for a ListOffsets timestamp; -1 when there is none.
fn lookup(partition: &Partition, timestamp: i64) -> Result<(i64, i64), ReadError> {
    match timestamp {
        LATEST => Ok((partition.high_watermark() as i64, -1)),
        EARLIEST => Ok((partition.log_start_offset() as i64, -1)),
        time => match partition.offset_for_timestamp(time)? {
            Some(offset) => {
                let found = partition
                    .read_records(offset, 1)?
                    .into_iter()
                    .find(|r| r.offset == offset)
                    .map_or(-1, |r| r.timestamp_ms);
                Ok((offset as i64, found))
            }
            None => Ok((-1, -1)),
        },
    }
}

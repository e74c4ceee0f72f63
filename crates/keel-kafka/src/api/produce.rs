//! Produce (0): batches stored exactly as received, only their base offset rewritten.
//!
//! Each partition's record set must be one RecordBatch v2 (as Kafka requires from version 3
//! on). It is checked once (length, magic, CRC-32C, record count) before anything is decided
//! or written, and appended without a second CRC pass; a bad
//! batch is refused with `CORRUPT_MESSAGE` and nothing of it is stored. Compressed batches
//! are stored compressed. Partitions of one request are appended concurrently, so they share
//! fsyncs with each other and with other connections (group commit).
//!
//! `acks`: 0 gets no response at all; 1 and -1 (all) are answered once the append returned,
//! which under the topic's `fsync = always` means after `fdatasync`. With one node, "all
//! in-sync replicas" is this one, so 1 and all promise the same.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::TopicName;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;
use keel_log::{AppendError, BatchError, CheckedBatches, Topic};
use tokio::task::JoinSet;

use crate::acl::{Caller, Operation};
use crate::api::text;
use crate::broker::{Broker, blocking};
use crate::producers::{BatchProducer, Idempotent};

/// Answers Produce; `None` for `acks = 0`.
pub(crate) async fn handle(
    broker: &Arc<Broker>,
    caller: &Caller,
    request: ProduceRequest,
    version: i16,
) -> Option<ProduceResponse> {
    let acks = request.acks;
    let valid_acks = matches!(acks, -1..=1);
    let mut pending = JoinSet::new();
    let mut responses = Vec::with_capacity(request.topic_data.len());
    for (topic_slot, mut topic_data) in request.topic_data.into_iter().enumerate() {
        // The name the response echoes, in its own allocation: the decoded one points into
        // the request buffer, which the record set can then take over without a copy.
        topic_data.name = TopicName(StrBytes::from_string(topic_data.name.to_string()));
        let access = broker.topic_access(caller, Operation::Write, &topic_data.name);
        let topic = broker.user_topic(&topic_data.name);
        let mut partitions = Vec::with_capacity(topic_data.partition_data.len());
        for (partition_slot, data) in topic_data.partition_data.into_iter().enumerate() {
            let index = data.index;
            partitions.push(PartitionProduceResponse::default().with_index(index));
            let refused =
                |error: ResponseError, message: String| PartitionOutcome::refused(error, message);
            let outcome = match (&topic, valid_acks, request.transactional_id.is_some()) {
                (_, false, _) => Some(refused(
                    ResponseError::InvalidRequiredAcks,
                    format!("acks {acks} is not -1, 0 or 1"),
                )),
                (_, _, true) => Some(refused(
                    ResponseError::TransactionalIdAuthorizationFailed,
                    "transactions are not supported".into(),
                )),
                _ if access.is_err() => access.clone().err().map(|(e, m)| refused(e, m)),
                (None, _, _) => Some(refused(
                    ResponseError::UnknownTopicOrPartition,
                    format!("topic '{}' does not exist", &*topic_data.name),
                )),
                (Some(topic), _, _) => {
                    let broker = broker.clone();
                    let topic = topic.clone();
                    let records = data.records.unwrap_or_default();
                    pending.spawn(async move {
                        let outcome = append(&broker, &topic, index, records).await;
                        (topic_slot, partition_slot, outcome)
                    });
                    None
                }
            };
            if let Some(outcome) = outcome {
                let response = partitions.pop().expect("pushed above");
                partitions.push(outcome.fill(response, version));
            }
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(topic_data.name)
                .with_partition_responses(partitions),
        );
    }
    while let Some(joined) = pending.join_next().await {
        let (topic_slot, partition_slot, outcome) = match joined {
            Ok(done) => done,
            Err(error) => std::panic::resume_unwind(error.into_panic()),
        };
        let slot = &mut responses[topic_slot].partition_responses[partition_slot];
        *slot = outcome.fill(std::mem::take(slot), version);
    }
    for partition in responses.iter().flat_map(|t| &t.partition_responses) {
        broker
            .metrics
            .partition_error(ApiKey::Produce, partition.error_code);
    }
    (acks != 0).then(|| ProduceResponse::default().with_responses(responses))
}

/// The result of one partition's record set.
struct PartitionOutcome {
    error_code: i16,
    message: Option<String>,
    base_offset: i64,
    log_start_offset: i64,
}

impl PartitionOutcome {
    fn refused(error: ResponseError, message: String) -> PartitionOutcome {
        PartitionOutcome {
            error_code: error.code(),
            message: Some(message),
            base_offset: -1,
            log_start_offset: -1,
        }
    }

    fn stored(base_offset: u64, log_start_offset: u64) -> PartitionOutcome {
        PartitionOutcome {
            error_code: 0,
            message: None,
            base_offset: base_offset as i64,
            log_start_offset: log_start_offset as i64,
        }
    }

    fn fill(self, response: PartitionProduceResponse, version: i16) -> PartitionProduceResponse {
        let mut response = response
            .with_error_code(self.error_code)
            .with_base_offset(self.base_offset)
            .with_log_append_time_ms(-1);
        if version >= 5 {
            response = response.with_log_start_offset(self.log_start_offset);
        }
        if version >= 8 {
            response = response.with_error_message(self.message.map(text));
        }
        response
    }
}

/// Validates and appends one partition's record set.
async fn append(
    broker: &Arc<Broker>,
    topic: &Arc<Topic>,
    index: i32,
    records: Bytes,
) -> PartitionOutcome {
    let name = topic.name();
    let Some(partition) = u32::try_from(index).ok().and_then(|i| topic.partition(i)) else {
        return PartitionOutcome::refused(
            ResponseError::UnknownTopicOrPartition,
            format!("topic '{name}' has no partition {index}"),
        );
    };
    let max = partition.config().max_batch_bytes;
    let size = records.len();
    // The request buffer itself when nothing else holds it (one partition per request, as
    // librdkafka sends), so a megabyte batch is not copied before it is written; a copy when
    // other partitions' record sets share the buffer.
    let bytes = records
        .try_into_mut()
        .unwrap_or_else(|shared| BytesMut::from(&shared[..]));
    // Checked once here, before anything is decided about the batch; the append trusts it.
    let batches = match CheckedBatches::check(bytes, max) {
        Ok(batches) => batches,
        Err(error) => {
            tracing::warn!(topic = name, partition = index, %error, "produce refused: invalid record batch");
            let kind = match error {
                BatchError::BadLength { length, max, .. } if length > i64::from(max) => {
                    ResponseError::MessageTooLarge
                }
                _ => ResponseError::CorruptMessage,
            };
            return PartitionOutcome::refused(kind, format!("invalid record batch: {error}"));
        }
    };
    let [header] = batches.headers()[..] else {
        return PartitionOutcome::refused(
            ResponseError::InvalidRecord,
            format!(
                "expected exactly one record batch, got {}",
                batches.headers().len()
            ),
        );
    };
    let producer = BatchProducer::read(batches.bytes(), &header);
    if producer.transactional {
        return PartitionOutcome::refused(
            ResponseError::InvalidRecord,
            "transactional batches are not supported".into(),
        );
    }
    let outcome = if producer.is_idempotent() {
        match broker
            .producers
            .append(name, index as u32, partition, producer, batches)
            .await
        {
            Idempotent::Appended(info) => Ok(info.base_offset),
            Idempotent::Duplicate { base_offset } => {
                tracing::debug!(
                    topic = name,
                    partition = index,
                    producer = producer.id,
                    "duplicate batch not written again"
                );
                return PartitionOutcome::stored(base_offset, partition.log_start_offset());
            }
            Idempotent::OutOfOrder { expected, got } => {
                return PartitionOutcome::refused(
                    ResponseError::OutOfOrderSequenceNumber,
                    format!(
                        "producer {} sequence {got}, expected {expected}",
                        producer.id
                    ),
                );
            }
            Idempotent::Fenced { current, got } => {
                return PartitionOutcome::refused(
                    ResponseError::InvalidProducerEpoch,
                    format!(
                        "producer {} epoch {got} is older than {current}",
                        producer.id
                    ),
                );
            }
            Idempotent::Failed(error) => Err(error),
            Idempotent::Rebuild(error) => {
                tracing::error!(topic = name, partition = index, %error, "producer state rebuild failed");
                return PartitionOutcome::refused(
                    ResponseError::KafkaStorageError,
                    format!("producer state could not be rebuilt: {error}"),
                );
            }
        }
    } else {
        let appender = partition.clone();
        blocking(move || appender.append_checked_batches(batches))
            .await
            .map(|info| info.base_offset)
    };
    match outcome {
        Ok(base_offset) => {
            broker.metrics.bytes_in(name, size);
            PartitionOutcome::stored(base_offset, partition.log_start_offset())
        }
        Err(error) => {
            let kind = match &error {
                AppendError::RecordTooLarge { .. } => ResponseError::MessageTooLarge,
                AppendError::InvalidBatch(_) | AppendError::Empty => ResponseError::CorruptMessage,
                AppendError::KeyRequired => ResponseError::InvalidRecord,
                _ => ResponseError::KafkaStorageError,
            };
            tracing::warn!(topic = name, partition = index, %error, "produce failed");
            PartitionOutcome::refused(kind, error.to_string())
        }
    }
}
